//! Free loopback ports for the servers a test starts, and tiny_http servers on them.

use std::net::TcpListener;

/// A port nobody listens on right now, below the kernel's ephemeral range (32768 and up on
/// Linux), so no outgoing connection of this or another test takes it before the server
/// binds it; each test process walks its own stretch of ports, never handing one out twice.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 10_000 + (std::process::id() % 40) as u16 * 500;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = base + n % 500;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
        assert!(n < 5_000, "no free port found");
    }
}

/// A tiny_http server on a free loopback port. tiny_http binds without SO_REUSEADDR: a port
/// with old connections in TIME_WAIT is refused, so another is tried.
pub(crate) fn tiny_server(what: &str) -> (u16, tiny_http::Server) {
    (0..20)
        .find_map(|_| {
            let port = free_port();
            tiny_http::Server::http(("127.0.0.1", port))
                .ok()
                .map(|s| (port, s))
        })
        .unwrap_or_else(|| panic!("start {what}"))
}

/// Answers a stand-in's request with a JSON body, as the APIs it stands in for do.
pub(crate) fn respond_json(req: tiny_http::Request, status: u16, body: String) {
    let resp = tiny_http::Response::from_string(body)
        .with_status_code(status)
        .with_header(
            "Content-Type: application/json"
                .parse::<tiny_http::Header>()
                .expect("a valid header"),
        );
    let _ = req.respond(resp);
}
