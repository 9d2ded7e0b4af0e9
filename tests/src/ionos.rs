//! A stand-in for the IONOS DNS API and IP echo services that DNS updates talk to.

use std::time::{Duration, Instant};

use crate::ports::{respond_json, tiny_server};

/// One request a stand-in received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub url: String,
    pub api_key: Option<String>,
    pub body: String,
}

/// What the stand-in answers and remembers.
#[derive(Debug, Default)]
pub struct StandinState {
    /// IP echo answers by path (`/v4/a` ...): status and body.
    pub echo: std::collections::HashMap<String, (u16, String)>,
    /// An echo answer that changes: after this many requests to the path, this body.
    pub echo_then: std::collections::HashMap<String, (usize, String)>,
    /// Requests each echo path has had.
    pub echo_hits: std::collections::HashMap<String, usize>,
    /// IONOS zones: (id, name), and records: (id, zone id, name, type, content).
    pub zones: Vec<(String, String)>,
    pub records: Vec<(String, String, String, String, String)>,
    /// The key IONOS accepts.
    pub api_key: String,
    /// Where the stand-in listens, for the update URL it hands out.
    pub port: u16,
    /// Answers for the next IONOS calls, instead of the real ones: (status, body).
    pub fail_next: Vec<(u16, String)>,
    /// Every IONOS request (echo requests are not kept).
    pub seen: Vec<Seen>,
    /// Times of IONOS requests, to check the quota: 2 a minute, as documented, unless a test
    /// configures the client for more.
    pub request_times: Vec<Instant>,
    pub quota: usize,
    pub quota_exceeded: bool,
    /// challtestsrv management URLs that get every TXT record the stand-in holds, so a CA
    /// validating DNS-01 there sees exactly what IONOS was told.
    pub txt_to: Vec<String>,
    /// Ids handed out so far.
    pub next_id: usize,
}

/// Local stand-ins for the services streamedge's DNS updates talk to: IP echo services and
/// the IONOS DNS API, following IONOS's documented contract (X-API-Key, JSON bodies, error
/// arrays of {code, message}, a DynDNS update URL, at most 2 requests a minute).
pub struct Standin {
    pub port: u16,
    pub state: std::sync::Arc<std::sync::Mutex<StandinState>>,
}

impl Standin {
    pub fn start(api_key: &str) -> Standin {
        let (port, server) = tiny_server("the stand-in");
        let state = std::sync::Arc::new(std::sync::Mutex::new(StandinState {
            api_key: api_key.to_string(),
            port,
            quota: 2,
            ..Default::default()
        }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for mut req in server.incoming_requests() {
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                let (status, text) = answer(&shared, &req, body);
                respond_json(req, status, text);
            }
        });
        Standin { port, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn set_echo(&self, path: &str, status: u16, body: &str) {
        self.state
            .lock()
            .unwrap()
            .echo
            .insert(path.into(), (status, body.into()));
    }

    /// Echo `first` for `after` requests to `path`, then `then`: an address that changes.
    pub fn set_echo_change(&self, path: &str, first: &str, after: usize, then: &str) {
        let mut s = self.state.lock().unwrap();
        s.echo.insert(path.into(), (200, first.into()));
        s.echo_then.insert(path.into(), (after, then.into()));
    }

    /// The TXT records held: (name, content as IONOS gives it back, quoted).
    pub fn txt_records(&self) -> Vec<(String, String)> {
        self.state
            .lock()
            .unwrap()
            .records
            .iter()
            .filter(|r| r.3 == "TXT")
            .map(|r| (r.2.clone(), r.4.clone()))
            .collect()
    }

    /// IONOS requests seen so far.
    pub fn calls(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}

fn answer(
    state: &std::sync::Mutex<StandinState>,
    req: &tiny_http::Request,
    body: String,
) -> (u16, String) {
    let mut s = state.lock().unwrap();
    let url = req.url().to_string();
    let path = url.split('?').next().unwrap_or("").to_string();
    if let Some((status, text)) = s.echo.get(&path).cloned() {
        let hits = s.echo_hits.entry(path.clone()).or_default();
        *hits += 1;
        let hits = *hits;
        return match s.echo_then.get(&path) {
            Some((after, then)) if hits > *after => (status, then.clone()),
            _ => (status, text),
        };
    }
    // The stand-in's own endpoint, not IONOS's: how many IONOS requests it has had.
    if path == "/_calls" {
        return (200, s.seen.len().to_string());
    }
    let key = req
        .headers()
        .iter()
        .find(|h| h.field.equiv("X-API-Key"))
        .map(|h| h.value.to_string());
    s.seen.push(Seen {
        method: req.method().to_string(),
        url: url.clone(),
        api_key: key.clone(),
        body: body.clone(),
    });
    let now = Instant::now();
    s.request_times
        .retain(|t| now.duration_since(*t) < Duration::from_secs(60));
    s.request_times.push(now);
    if s.request_times.len() > s.quota {
        s.quota_exceeded = true;
        return (
            429,
            r#"[{"code":"TOO_MANY_REQUESTS","message":"Rate limit exceeded"}]"#.into(),
        );
    }
    if !s.fail_next.is_empty() {
        return s.fail_next.remove(0);
    }
    let method = req.method().to_string();
    // The update URL carries its own secret and needs no key.
    if path == "/dyndns-update" {
        return if url.contains("q=secret-update-token") {
            (200, String::new())
        } else {
            (
                401,
                r#"[{"code":"UNAUTHORIZED","message":"invalid update token"}]"#.into(),
            )
        };
    }
    if key.as_deref() != Some(s.api_key.as_str()) {
        return (401, r#"[{"code":"UNAUTHORIZED","message":"The customer is not authorized to do this operation."}]"#.into());
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), parts.as_slice()) {
        ("POST", ["dns", "v1", "dyndns"]) => {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            if !v["domains"].is_array() {
                return (
                    400,
                    r#"[{"code":"INVALID_DATA","message":"domains is required"}]"#.into(),
                );
            }
            let update = format!(
                "http://127.0.0.1:{}/dyndns-update?q=secret-update-token",
                s.port
            );
            (200, serde_json::json!({"bulkId": "bulk-1", "updateUrl": update, "domains": v["domains"], "description": v["description"]}).to_string())
        }
        ("DELETE", ["dns", "v1", "dyndns", bulk]) => {
            if *bulk == "bulk-1" {
                (200, String::new())
            } else {
                (404, "[]".into())
            }
        }
        ("GET", ["dns", "v1", "zones"]) => {
            let zones: Vec<_> = s
                .zones
                .iter()
                .map(|(id, name)| serde_json::json!({"id": id, "name": name, "type": "NATIVE"}))
                .collect();
            (200, serde_json::Value::from(zones).to_string())
        }
        ("GET", ["dns", "v1", "zones", zone]) => {
            let records: Vec<_> = s
                .records
                .iter()
                .filter(|r| r.1 == *zone)
                .map(|r| serde_json::json!({"id": r.0, "name": r.2, "type": r.3, "content": r.4, "ttl": 60, "prio": 0, "disabled": false}))
                .collect();
            (
                200,
                serde_json::json!({"id": zone, "name": "zone", "records": records}).to_string(),
            )
        }
        ("PUT", ["dns", "v1", "zones", zone, "records", id]) => {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let (zone, id) = (zone.to_string(), id.to_string());
            match (
                v["content"].as_str(),
                s.records.iter_mut().find(|r| r.0 == id && r.1 == zone),
            ) {
                (Some(c), Some(r)) => {
                    r.4 = c.to_string();
                    (200, String::new())
                }
                _ => (
                    404,
                    r#"[{"code":"NOT_FOUND","message":"record not found"}]"#.into(),
                ),
            }
        }
        ("POST", ["dns", "v1", "zones", zone, "records"]) => {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let zone = zone.to_string();
            let mut created = Vec::new();
            for r in v.as_array().cloned().unwrap_or_default() {
                s.next_id += 1;
                let id = format!("rec-{}", s.next_id);
                let (name, kind) = (
                    r["name"].as_str().unwrap_or("").to_string(),
                    r["type"].as_str().unwrap_or("").to_string(),
                );
                let mut content = r["content"].as_str().unwrap_or("").to_string();
                if kind == "TXT" {
                    for m in &s.txt_to {
                        crate::dns::set_txt(m, &name, &content);
                    }
                    // IONOS keeps TXT content in quotes, and answers with them.
                    content = format!("\"{content}\"");
                }
                created.push(serde_json::json!({"id": id, "name": name, "type": kind, "content": content, "ttl": r["ttl"], "prio": 0, "disabled": false}));
                s.records.push((id, zone.clone(), name, kind, content));
            }
            (201, serde_json::Value::from(created).to_string())
        }
        ("DELETE", ["dns", "v1", "zones", zone, "records", id]) => {
            let (zone, id) = (zone.to_string(), id.to_string());
            let Some(i) = s.records.iter().position(|r| r.0 == id && r.1 == zone) else {
                return (
                    404,
                    r#"[{"code":"NOT_FOUND","message":"record not found"}]"#.into(),
                );
            };
            let gone = s.records.remove(i);
            if gone.3 == "TXT" {
                // challtestsrv clears a name whole: the values left are set again.
                let left: Vec<String> = s
                    .records
                    .iter()
                    .filter(|r| r.3 == "TXT" && r.2 == gone.2)
                    .map(|r| r.4.trim_matches('"').to_string())
                    .collect();
                for m in &s.txt_to {
                    crate::dns::clear_txt(m, &gone.2);
                    for v in &left {
                        crate::dns::set_txt(m, &gone.2, v);
                    }
                }
            }
            (200, String::new())
        }
        _ => (
            404,
            r#"[{"code":"NOT_FOUND","message":"no such resource"}]"#.into(),
        ),
    }
}
