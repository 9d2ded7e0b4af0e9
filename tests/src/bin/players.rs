//! Simulated HLS players for the benchmarks (bench/players.sh): each one does what a live
//! player does, on its own keep-alive connection: fetch the playlist, fetch every segment
//! it has not had yet (starting three from the live edge, as hls.js does), then wait for
//! the next segment. Players come from many loopback source addresses, as viewers come
//! from many homes. Bounded: a fixed number of players for a fixed time, then a summary.
//!
//! With `PLAYER_SESSIONS=1` each player sends its own `X-Playback-Session-Id`, as Apple's
//! players and the web page do; without, all players of one address look alike (one
//! user agent), as VLCs behind one router do.
//!
//! In a network namespace of a benchmark's own (bench/edges.sh) the URL may name an address
//! there, and `PLAYER_SOURCES_FROM=10.202.3.0` says where the source addresses begin.
//!
//! players URL PLAYERS SECONDS [SOURCES]

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

#[derive(Default)]
struct Totals {
    requests: AtomicU64,
    not_ok: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    connects: AtomicU64,
    bytes: AtomicU64,
    segment_ms: Mutex<Vec<f64>>,
}

struct Target {
    addr: SocketAddr,
    host: String,
    dir: String,
    playlist: String,
}

/// One keep-alive connection from one source address.
struct Conn {
    io: Option<BufReader<TcpStream>>,
    source: Ipv4Addr,
    /// The header line naming this player's session, if it sends one.
    session: String,
}

impl Conn {
    async fn get(&mut self, t: &Target, path: &str, totals: &Totals) -> Option<(u16, Vec<u8>)> {
        for _ in 0..2 {
            if self.io.is_none() {
                let socket = TcpSocket::new_v4().ok()?;
                socket.bind(SocketAddr::from((self.source, 0))).ok()?;
                let stream = socket.connect(t.addr).await.ok()?;
                totals.connects.fetch_add(1, Ordering::Relaxed);
                self.io = Some(BufReader::new(stream));
            }
            match self.exchange(t, path).await {
                Ok(answer) => return Some(answer),
                // The server closed a keep-alive connection: once more on a new one.
                Err(_) => self.io = None,
            }
        }
        None
    }

    async fn exchange(&mut self, t: &Target, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
        let io = self.io.as_mut().expect("connected");
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: players\r\n{}\r\n",
            t.host, self.session
        );
        io.get_mut().write_all(req.as_bytes()).await?;
        let mut line = String::new();
        if io.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let (mut len, mut close) = (0usize, false);
        loop {
            line.clear();
            io.read_line(&mut line).await?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let lower = l.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            } else if lower == "connection: close" {
                close = true;
            }
        }
        let mut body = vec![0u8; len];
        io.read_exact(&mut body).await?;
        if close {
            self.io = None;
        }
        Ok((status, body))
    }
}

async fn player(
    t: Arc<Target>,
    totals: Arc<Totals>,
    source: Ipv4Addr,
    session: String,
    until: Instant,
) {
    let mut conn = Conn {
        io: None,
        source,
        session,
    };
    let mut seen: HashSet<String> = HashSet::new();
    let mut first = true;
    while Instant::now() < until {
        let tick = Instant::now();
        let got = conn.get(&t, &t.playlist, &totals).await;
        totals.requests.fetch_add(1, Ordering::Relaxed);
        let Some((status, body)) = got else {
            totals.failed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        if status != 200 {
            count_status(&totals, status);
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        let segs: Vec<&str> = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        if first {
            let older = segs.len().saturating_sub(3);
            seen.extend(segs[..older].iter().map(|s| s.to_string()));
            first = false;
        }
        for seg in segs {
            if !seen.insert(seg.to_string()) {
                continue;
            }
            let start = Instant::now();
            let got = conn.get(&t, &format!("{}{seg}", t.dir), &totals).await;
            totals.requests.fetch_add(1, Ordering::Relaxed);
            match got {
                Some((200, body)) => {
                    totals.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
                    let ms = start.elapsed().as_secs_f64() * 1000.0;
                    totals.segment_ms.lock().unwrap().push(ms);
                }
                Some((status, _)) => count_status(&totals, status),
                None => {
                    totals.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // The next look at the playlist: one segment duration after this one.
        tokio::time::sleep_until((tick + Duration::from_secs(2)).into()).await;
    }
}

fn count_status(totals: &Totals, status: u16) {
    totals.not_ok.fetch_add(1, Ordering::Relaxed);
    if status == 429 {
        totals.refused.fetch_add(1, Ordering::Relaxed);
    }
}

/// Whether this process runs in a network namespace made with `ip netns` (one of
/// /run/netns), where nothing it reaches is anyone else's.
fn in_a_namespace_of_its_own() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(own) = std::fs::metadata("/proc/self/ns/net") else {
        return false;
    };
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::metadata(e.path()).ok())
        .any(|m| m.dev() == own.dev() && m.ino() == own.ino())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: players URL PLAYERS SECONDS [SOURCES]");
        std::process::exit(2);
    }
    let url = reqwest::Url::parse(&args[1]).expect("a URL");
    let players: usize = args[2].parse().expect("a number of players");
    let secs: u64 = args[3].parse().expect("seconds");
    let sources: usize = args
        .get(4)
        .map(|s| s.parse().expect("sources"))
        .unwrap_or(100);
    let host = url.host_str().expect("a host").to_string();
    let ip: Ipv4Addr = host.parse().expect("an IPv4 address");
    assert!(
        ip.is_loopback() || in_a_namespace_of_its_own(),
        "players only ever contact loopback addresses, or any inside a network namespace"
    );
    let sources_from: Ipv4Addr = std::env::var("PLAYER_SOURCES_FROM")
        .map(|a| a.parse().expect("PLAYER_SOURCES_FROM: an IPv4 address"))
        .unwrap_or(Ipv4Addr::new(127, 0, 1, 0));
    let path = url.path().to_string();
    let t = Arc::new(Target {
        addr: SocketAddr::from((ip, url.port().unwrap_or(80))),
        host,
        dir: path[..=path.rfind('/').unwrap()].to_string(),
        playlist: path,
    });
    let totals = Arc::new(Totals::default());
    let sessions = std::env::var("PLAYER_SESSIONS").is_ok_and(|v| v == "1");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    rt.block_on(async {
        let until = Instant::now() + Duration::from_secs(secs);
        let mut tasks = Vec::with_capacity(players);
        for i in 0..players {
            // 127.0.1.1, 127.0.1.2, ...: one "home" per source address.
            let n = (i % sources) as u32 + 1;
            let source = Ipv4Addr::from(u32::from(sources_from) + n);
            let (t, totals) = (t.clone(), totals.clone());
            let session = if sessions {
                format!("X-Playback-Session-Id: player-{i}\r\n")
            } else {
                String::new()
            };
            // Players press play over the first two seconds.
            let delay = Duration::from_millis((i as u64 * 2000) / players.max(1) as u64);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                player(t, totals, source, session, until).await;
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    });
    let mut ms = totals.segment_ms.lock().unwrap().clone();
    ms.sort_by(f64::total_cmp);
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "players={players} secs={secs} requests={} not_200={} refused_429={} failed={} connects={} \
         segments={} mbit_s={:.1} segment_p50_ms={:.1} segment_p99_ms={:.1} segment_max_ms={:.1}",
        totals.requests.load(Ordering::Relaxed),
        totals.not_ok.load(Ordering::Relaxed),
        totals.refused.load(Ordering::Relaxed),
        totals.failed.load(Ordering::Relaxed),
        totals.connects.load(Ordering::Relaxed),
        ms.len(),
        totals.bytes.load(Ordering::Relaxed) as f64 * 8.0 / elapsed / 1e6,
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        percentile(&ms, 1.0),
    );
}
