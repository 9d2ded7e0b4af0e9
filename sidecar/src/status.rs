//! `streamedge status`: is nginx up, who is live, how many keys.

use anyhow::Result;
use serde::Serialize;
use streamedge_formats::streams::Stream;

use crate::config::Config;

#[derive(Debug, Serialize)]
pub struct Status {
    pub nginx: NginxStatus,
    pub streams: Vec<Stream>,
    /// Each live stream's ladder and what it costs (from the daemon; empty if it is not
    /// running).
    pub live: serde_json::Map<String, serde_json::Value>,
    /// Every process the sidecar runs and what it costs, recent ended ones and totals by
    /// role (from the daemon; null if it is not running).
    pub processes: serde_json::Value,
    pub keys: KeyCounts,
    /// The web player.
    pub web: String,
    /// The file holding the control API's token (the web page asks for it to fetch media).
    pub api_token_file: std::path::PathBuf,
    /// Problems a person should know about, such as a certificate about to expire.
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct NginxStatus {
    pub running: bool,
    pub pid: Option<i32>,
}

#[derive(Debug, Serialize)]
pub struct KeyCounts {
    pub active: usize,
    pub revoked: usize,
}

pub async fn gather(config: &Config) -> Result<Status> {
    let pid = crate::nginx::running_pid(config);
    let keys = crate::keys::load(&config.layout().keys_file())?;
    let active = keys
        .keys
        .iter()
        .filter(|k| k.state == streamedge_formats::keys::KeyState::Active)
        .count();
    let streams = match pid {
        Some(_) => crate::nginx::streams(config).await.unwrap_or_else(|e| {
            tracing::warn!("{e:#}");
            Vec::new()
        }),
        None => Vec::new(),
    };
    let (live, processes) = match crate::client::Client::new(config) {
        Ok(c) => {
            let live = match c.live().await {
                Ok(serde_json::Value::Object(m)) => m,
                _ => Default::default(),
            };
            (live, c.processes().await.unwrap_or_default())
        }
        Err(_) => Default::default(),
    };
    Ok(Status {
        live,
        processes,
        nginx: NginxStatus {
            running: pid.is_some(),
            pid,
        },
        streams,
        keys: KeyCounts {
            active,
            revoked: keys.keys.len() - active,
        },
        web: format!("{}/", config.watch_url()),
        api_token_file: config.layout().api_token_file(),
        warnings: crate::certs::expiry_warning(config).into_iter().collect(),
    })
}

pub fn describe(s: &Status) -> String {
    let mut out = match s.nginx.pid {
        Some(pid) => format!("nginx: running (pid {pid})\n"),
        None => "nginx: not running\n".to_string(),
    };
    let live: Vec<&Stream> = s.streams.iter().filter(|x| x.live).collect();
    if live.is_empty() {
        out.push_str("live: nobody\n");
    } else {
        for x in live {
            out.push_str(&format!(
                "live: {} since {}\n",
                x.name,
                x.since.as_deref().unwrap_or("?")
            ));
        }
    }
    for (name, l) in &s.live {
        let number = |k: &str| l[k].as_f64();
        let mut line = format!("ladder {name}: {}", l["state"].as_str().unwrap_or("?"));
        let rungs: Vec<&str> = l["rungs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str())
            .collect();
        if !rungs.is_empty() {
            line += &format!(", {}", rungs.join(" "));
        }
        if let Some(x) = number("speed") {
            line += &format!(" at {x:.2}x");
        }
        if let (Some(cpu), Some(mem)) = (number("cpu_seconds"), number("peak_memory_mib")) {
            line += &format!(", CPU {cpu:.1} s, peak {mem:.0} MiB");
        }
        if let Some(d) = l["dropped"].as_array().filter(|d| !d.is_empty()) {
            let d: Vec<&str> = d.iter().filter_map(|x| x.as_str()).collect();
            line += &format!(", dropped {}", d.join(", "));
        }
        if let Some(e) = l["last_error"].as_str() {
            line += &format!(" ({e})");
        }
        out.push_str(&line);
        out.push('\n');
    }
    // The ladders are above; the other running processes (downloads, transcodes,
    // recordings) and what they cost so far.
    for p in s.processes["running"].as_array().into_iter().flatten() {
        let role = p["role"].as_str().unwrap_or("?");
        if role == "ladder" {
            continue;
        }
        let c = &p["cost"];
        let mut line = format!(
            "{role} {}: {} (pid {}), CPU {:.1} s, peak {:.0} MiB",
            p["subject"].as_str().unwrap_or("?"),
            p["program"].as_str().unwrap_or("?"),
            p["pid"],
            c["cpu_seconds"].as_f64().unwrap_or(0.0),
            c["peak_memory_bytes"].as_f64().unwrap_or(0.0) / 1048576.0
        );
        if let Some(x) = c["speed"].as_f64() {
            line += &format!(" at {x:.2}x");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&format!(
        "keys: {} active, {} revoked\n",
        s.keys.active, s.keys.revoked
    ));
    out.push_str(&format!(
        "web: {} (fetching media needs the API token in {})\n",
        s.web,
        s.api_token_file.display()
    ));
    for w in &s.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}
