//! The IONOS stand-in of the tests (`streamedge_tests::Standin`) as a program, for
//! bench/ddns.sh: an IP echo service at `/echo` and the IONOS DNS API on one loopback port.
//! Prints the port, then answers until killed; `GET /_calls` says how many IONOS requests
//! it has had.
//!
//! ionos-standin API_KEY OLD NEW CHANGE_AFTER [ZONE CHALLTESTSRV]
//!   `/echo` answers OLD for CHANGE_AFTER requests, then NEW. No quota: the benchmark raises
//!   the client's own limit. With ZONE, the API holds that zone (id `z1`), and its TXT
//!   records go to the pebble-challtestsrv management URL CHALLTESTSRV (bench/dns01.sh).

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (key, old, new, after, txt) = match args.as_slice() {
        [key, old, new, after] => (key, old, new, after, None),
        [key, old, new, after, zone, to] => (key, old, new, after, Some((zone, to))),
        _ => {
            eprintln!("usage: ionos-standin API_KEY OLD NEW CHANGE_AFTER [ZONE CHALLTESTSRV]");
            std::process::exit(2);
        }
    };
    let Ok(after) = after.parse::<usize>() else {
        eprintln!("ionos-standin: CHANGE_AFTER must be a number, not \"{after}\"");
        std::process::exit(2);
    };
    let standin = streamedge_tests::Standin::start(key);
    {
        let mut st = standin.state.lock().unwrap();
        st.quota = usize::MAX;
        if let Some((zone, to)) = txt {
            st.zones = vec![("z1".into(), zone.clone())];
            st.txt_to = vec![to.clone()];
        }
    }
    standin.set_echo_change("/echo", old, after, new);
    println!("{}", standin.port);
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::park();
    }
}
