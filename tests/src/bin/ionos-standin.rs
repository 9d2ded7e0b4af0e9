//! The IONOS stand-in of the tests (`streamedge_tests::Standin`) as a program, for
//! bench/ddns.sh: an IP echo service at `/echo` and the IONOS DNS API on one loopback port.
//! Prints the port, then answers until killed; `GET /_calls` says how many IONOS requests
//! it has had.
//!
//! ionos-standin API_KEY OLD NEW CHANGE_AFTER
//!   `/echo` answers OLD for CHANGE_AFTER requests, then NEW. No quota: the benchmark raises
//!   the client's own limit.

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [key, old, new, after] = args.as_slice() else {
        eprintln!("usage: ionos-standin API_KEY OLD NEW CHANGE_AFTER");
        std::process::exit(2);
    };
    let Ok(after) = after.parse::<usize>() else {
        eprintln!("ionos-standin: CHANGE_AFTER must be a number, not \"{after}\"");
        std::process::exit(2);
    };
    let standin = streamedge_tests::Standin::start(key);
    standin.state.lock().unwrap().quota = usize::MAX;
    standin.set_echo_change("/echo", old, after, new);
    println!("{}", standin.port);
    std::io::stdout().flush().unwrap();
    loop {
        std::thread::park();
    }
}
