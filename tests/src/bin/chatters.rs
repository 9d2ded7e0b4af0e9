//! Many viewers in one chat, for the benchmark (bench/chat.sh): CLIENTS WebSockets from many
//! loopback source addresses wait for the chat's hello; then one more sends MESSAGES
//! messages, a little over a second apart (the chat's own limit is one a second), each
//! carrying its send time, and every client notes when each arrives. Bounded: it ends a few
//! seconds after the last message, with one summary line. With a PID it also reports what
//! that server process's resident memory grew by per connected client.
//!
//! chatters URL CLIENTS MESSAGES SOURCES [PID]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros()
}

fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn connect(url: &str, addr: SocketAddr, source: Ipv4Addr) -> Option<Socket> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::from((source, 0))).ok()?;
    let tcp = socket.connect(addr).await.ok()?;
    let (mut ws, _) = tokio_tungstenite::client_async(url, tcp).await.ok()?;
    // The hello first: the client is in the room.
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains("\"hello\"") => return Some(ws),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: chatters URL CLIENTS MESSAGES SOURCES [PID]");
        std::process::exit(2);
    }
    let url = args[1].clone();
    let clients: usize = args[2].parse().expect("CLIENTS");
    let messages: usize = args[3].parse().expect("MESSAGES");
    let sources: u32 = args[4].parse().expect("SOURCES");
    let pid = args.get(5).cloned();
    let parsed = url::Url::parse(&url).expect("a ws:// URL");
    let addr: SocketAddr = format!(
        "{}:{}",
        parsed.host_str().expect("a host"),
        parsed.port().expect("a port")
    )
    .parse()
    .expect("an IP address and port");
    let source = move |i: usize| {
        Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 1, 1)) + (i as u32 % sources))
    };

    let before = pid.as_deref().and_then(rss_kib);
    let started = Instant::now();
    let mut joins = Vec::new();
    for i in 0..clients {
        let url = url.clone();
        let from = source(i);
        joins.push(tokio::spawn(async move { connect(&url, addr, from).await }));
    }
    let mut sockets = Vec::new();
    for j in joins {
        if let Some(ws) = j.await.unwrap() {
            sockets.push(ws);
        }
    }
    let connect_s = started.elapsed().as_secs_f64();
    let connected = sockets.len();
    // Let the server settle, then weigh it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = pid.as_deref().and_then(rss_kib);

    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let mut readers = Vec::new();
    for mut ws in sockets {
        let latencies = latencies.clone();
        readers.push(tokio::spawn(async move {
            let mut got = 0;
            while got < messages {
                let Ok(Some(Ok(m))) =
                    tokio::time::timeout(Duration::from_secs(15), ws.next()).await
                else {
                    break;
                };
                let Message::Text(t) = m else { continue };
                let Some(i) = t.find("sent=") else { continue };
                let sent: u128 = t[i + 5..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .unwrap_or(0);
                let ms = (now_us().saturating_sub(sent)) as f64 / 1000.0;
                latencies.lock().unwrap().push(ms);
                got += 1;
            }
            let _ = ws.close(None).await;
        }));
    }
    let mut sender = connect(&url, addr, Ipv4Addr::new(127, 0, 0, 1))
        .await
        .expect("the sender connects");
    for i in 0..messages {
        let text = format!("{{\"nick\":\"bench\",\"text\":\"m{i} sent={}\"}}", now_us());
        sender.send(Message::Text(text.into())).await.expect("send");
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    for r in readers {
        let _ = r.await;
    }
    let mut all = latencies.lock().unwrap().clone();
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let per_client = match (before, after) {
        (Some(b), Some(a)) if connected > 0 => {
            format!("{:.1}", a.saturating_sub(b) as f64 / connected as f64)
        }
        _ => "-".into(),
    };
    println!(
        "clients={clients} connected={connected} connect_s={connect_s:.2} delivered={}/{} p50_ms={:.1} p99_ms={:.1} max_ms={:.1} rss_kib_per_client={per_client}",
        all.len(),
        connected * messages,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or(f64::NAN),
    );
}
