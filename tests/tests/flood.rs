//! Floods from one address: idle RTMP sockets, slowly sent HTTP headers and idle TLS
//! sockets, 2,000 of each at once, against a real server with a live stream. Every flood
//! is bounded in count and time and ends with the test. The flooding client is 127.0.0.77,
//! everyone else 127.0.0.1: both loopback.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use streamedge_tests::{http_get, wait_for, Options, Publisher, Server};

const FLOOD: usize = 2000;
const FLOODER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 77);

/// Opens up to `n` connections from the flooding address to `port`, sending `first` on
/// each; returns those the kernel connected (nginx may close them at once).
fn open_from_flooder(port: u16, n: usize, first: &[u8]) -> Vec<TcpStream> {
    let to = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.bind(&SocketAddr::from((FLOODER, 0)).into()).unwrap();
        if s.connect_timeout(&to.into(), Duration::from_secs(2))
            .is_err()
        {
            continue;
        }
        let mut t: TcpStream = s.into();
        if !first.is_empty() {
            let _ = t.write_all(first);
        }
        out.push(t);
    }
    out
}

/// How many of `n` requests to the server's pages and playlist, over HTTP and HTTPS,
/// are answered 200.
fn answered(s: &Server, n: usize) -> usize {
    (0..n)
        .filter(|i| match i % 3 {
            0 => http_get(&s.url("/")).is_ok_and(|r| r.status == 200),
            1 => http_get(&s.url("/live/flood/index.m3u8")).is_ok_and(|r| r.status == 200),
            _ => Command::new("curl")
                .args(["-sk", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg(format!("https://127.0.0.1:{}/", s.https))
                .output()
                .is_ok_and(|o| o.stdout == b"200"),
        })
        .count()
}

#[test]
fn one_address_cannot_take_the_server_down() {
    let s = Server::start(Options::default());
    let key = s.key("add", "flood");
    let mut publisher = Publisher::start(&key.url(), 120);
    s.wait_live("flood", true);
    wait_for("the playlist", Duration::from_secs(20), || {
        http_get(&s.url("/live/flood/index.m3u8"))
            .ok()
            .filter(|r| r.status == 200)
    });

    let started = Instant::now();
    let rtmp = open_from_flooder(s.rtmp, FLOOD, b"");
    let slow = open_from_flooder(s.http, FLOOD, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    let tls = open_from_flooder(s.https, FLOOD, b"");
    eprintln!(
        "flood: {} rtmp, {} http, {} https sockets connected in {:?}",
        rtmp.len(),
        slow.len(),
        tls.len(),
        started.elapsed()
    );

    // Everyone else is still served, and the stream stays live.
    let probes = 60;
    let ok = answered(&s, probes);
    eprintln!("flood: {ok} of {probes} probes answered");
    assert!(ok * 100 >= probes * 95, "only {ok} of {probes} answered");
    assert!(s.is_live("flood"), "the live stream went offline");
    assert!(publisher.is_running());

    // A revoked key still ends the stream within 10 s (nginx-rtmp's update callback).
    let revoked = Instant::now();
    assert!(s.cli(&["keys", "revoke", "flood"]).status.success());
    wait_for(
        "the publisher to be cut off",
        Duration::from_secs(10),
        || (!publisher.is_running()).then_some(()),
    );
    eprintln!(
        "flood: revocation ended the stream in {:?}",
        revoked.elapsed()
    );
    s.wait_live("flood", false);

    // The flooder got at most its share: each worker keeps 256 of its connections.
    let open = |v: &[TcpStream]| {
        v.iter()
            .filter(|t| {
                t.set_nonblocking(true).unwrap();
                let mut b = [0u8; 1];
                matches!(t.peek(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
            })
            .count()
    };
    let still = open(&rtmp);
    eprintln!("flood: {still} idle RTMP sockets still open");
    assert!(
        still <= 2 * 256,
        "{still} sockets of one address stayed open"
    );
    drop((rtmp, slow, tls));

    // Afterwards the state is right: the stream is offline, a new one goes live, and no
    // worker died.
    let key2 = s.key("add", "after");
    let _p2 = Publisher::start(&key2.url(), 20);
    s.wait_live("after", true);
    assert!(!s.is_live("flood"));
    assert!(s.crashes().is_empty(), "{:?}", s.crashes());
}

#[test]
fn a_hundred_players_behind_one_address_all_keep_playing() {
    // A household, an office, a carrier's NAT: 100 players, one address (127.0.0.1), each
    // doing what a player does for 15 s: the playlist, then every segment it has not had,
    // then wait for the next segment (2 s).
    let s = Server::start(Options::default());
    let key = s.key("add", "nat");
    let _p = Publisher::start(&key.url(), 60);
    s.wait_live("nat", true);
    let playlist = s.url("/live/nat/index.m3u8");
    wait_for("the playlist", Duration::from_secs(20), || {
        http_get(&playlist).ok().filter(|r| r.status == 200)
    });
    let base = s.url("/live/nat/");
    // They press play within two seconds of each other, and start, as hls.js does, three
    // segments from the live edge.
    let players: Vec<_> = (0..100u64)
        .map(|i| {
            let (playlist, base) = (playlist.clone(), base.clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(i * 20));
                let client = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .unwrap();
                let get = |url: &str| {
                    client.get(url).send().map(|r| {
                        let status = r.status().as_u16();
                        let _ = r.bytes();
                        status
                    })
                };
                let (mut statuses, mut seen) = (Vec::new(), std::collections::HashSet::new());
                let until = Instant::now() + Duration::from_secs(15);
                while Instant::now() < until {
                    let text = client
                        .get(&playlist)
                        .send()
                        .map(|r| (r.status().as_u16(), r.text().unwrap_or_default()));
                    let Ok((status, text)) = text else {
                        statuses.push(0);
                        continue;
                    };
                    statuses.push(status);
                    let segs: Vec<&str> = text.lines().filter(|l| l.ends_with(".ts")).collect();
                    if seen.is_empty() {
                        let older = segs.len().saturating_sub(3);
                        seen.extend(segs[..older].iter().map(|s| s.to_string()));
                    }
                    for seg in segs {
                        if seen.insert(seg.to_string()) {
                            statuses.push(get(&format!("{base}{seg}")).unwrap_or(0));
                        }
                    }
                    std::thread::sleep(Duration::from_secs(2));
                }
                statuses
            })
        })
        .collect();
    let all: Vec<u16> = players
        .into_iter()
        .flat_map(|p| p.join().unwrap())
        .collect();
    let refused = all.iter().filter(|&&s| s == 429).count();
    let failed = all.iter().filter(|&&s| s != 200).count();
    eprintln!(
        "100 players: {} requests, {refused} refused, {failed} not 200",
        all.len()
    );
    assert!(all.len() >= 100 * 7, "{} requests", all.len());
    assert_eq!(failed, 0, "{refused} of {} refused", all.len());
}
