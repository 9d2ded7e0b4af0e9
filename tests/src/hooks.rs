//! A stand-in for a webhook's receiver: remembers what it was posted.

use crate::ports::tiny_server;

/// A webhook's receiver on loopback: answers 204 and remembers what it was sent (method,
/// path, body).
pub struct HookReceiver {
    pub url: String,
    pub port: u16,
    posted: std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>,
}

impl HookReceiver {
    pub fn start() -> HookReceiver {
        let (port, server) = tiny_server("the webhook receiver");
        let posted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = posted.clone();
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                seen.lock()
                    .unwrap()
                    .push((req.method().to_string(), req.url().to_string(), body));
                let _ = req.respond(tiny_http::Response::empty(204));
            }
        });
        HookReceiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            port,
            posted,
        }
    }

    /// What it was sent so far.
    pub fn posted(&self) -> Vec<(String, String, String)> {
        self.posted.lock().unwrap().clone()
    }
}
