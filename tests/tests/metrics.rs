//! What the server says about itself: what each process it runs costs (the process table in
//! the API and `status`, a fetch job's record), and the Prometheus `/metrics` with nginx's
//! limit-zone counters, who is live and how the ladder keeps up.

use std::time::Duration;

use serde_json::{json, Value};
use streamedge_tests::*;

const LONG: Duration = Duration::from_secs(180);

fn processes(s: &Server) -> Value {
    let (status, v) = s.api("GET", "/api/processes", None, true);
    assert_eq!(status, 200, "{v}");
    v
}

fn find<'a>(list: &'a Value, role: &str, subject: &str) -> Option<&'a Value> {
    list.as_array()?
        .iter()
        .find(|p| p["role"] == role && p["subject"] == subject)
}

#[test]
fn processes_report_their_cost_and_metrics_tell_the_rest() {
    let media = MediaServer::start();
    let s = Server::start(Options {
        transcode: true,
        ..Options::default()
    });
    let key = s.key("add", "cam");
    // A publisher with a wrong key is refused, and counted.
    let wrong = format!("{}/cam?key=not-the-key", key.server_url);
    let (ok, _) = Publisher::start(&wrong, 5).finish(Duration::from_secs(30));
    assert!(!ok, "a wrong key published");
    let publisher = Publisher::start_sized(&key.url(), 120, "854x480", 30);

    // The ladder, in the process table while it runs, with what it costs so far.
    let ladder = wait_for("the ladder's cost", LONG, || {
        let p = find(&processes(&s)["running"], "ladder", "cam")?.clone();
        (p["cost"]["cpu_seconds"].as_f64()? > 1.0 && p["cost"]["speed"].as_f64()? > 0.0)
            .then_some(p)
    });
    assert_eq!(ladder["program"], "ffmpeg");
    assert!(ladder["pid"].as_u64().unwrap() > 1);
    assert!(
        ladder["cost"]["peak_memory_bytes"].as_u64().unwrap() > 10 << 20,
        "{ladder}"
    );
    assert!(
        ladder["cost"]["seconds"].as_f64().unwrap() > 0.5,
        "{ladder}"
    );
    // The owner's business.
    assert_eq!(s.api("GET", "/api/processes", None, false).0, 401);

    // A fetch job's record says what each step cost: yt-dlp's probe and download, ffmpeg's
    // transcode (with its speed) and poster.
    let id = s.submit(&json!({"url": media.url("/clip.mp4")}));
    let job = s.wait_job(&id, "the job to finish", LONG, |j| j["state"] == "done");
    for step in ["probe", "download", "transcode", "poster"] {
        let c = &job["cost"][step];
        assert!(c["cpu_seconds"].as_f64().unwrap() > 0.0, "{step}: {job}");
        assert!(
            c["peak_memory_bytes"].as_u64().unwrap() > 1 << 20,
            "{step}: {job}"
        );
    }
    assert!(
        job["cost"]["transcode"]["speed"].as_f64().unwrap() > 0.0,
        "{job}"
    );
    let record: Value = serde_json::from_str(&s.read(&format!("data/jobs/{id}.json"))).unwrap();
    assert_eq!(record["cost"], job["cost"], "the record keeps the costs");
    let ended = processes(&s)["ended"].clone();
    let transcode = find(&ended, "transcode", &id).expect("the transcode in the ended list");
    assert_eq!(transcode["outcome"], "done");

    // The metrics: on the API's loopback port only.
    let m = s.metrics();
    let value = |series: &str| metric(&m, series).unwrap_or_else(|| panic!("{series} in\n{m}"));
    assert_eq!(value("streamedge_nginx_up"), 1.0);
    assert_eq!(value("streamedge_live_streams"), 1.0);
    assert_eq!(value(r#"streamedge_processes_running{role="ladder"}"#), 1.0);
    assert!(value(r#"streamedge_process_cpu_seconds_total{role="ladder"}"#) > 1.0);
    assert!(value(r#"streamedge_process_cpu_seconds_total{role="transcode"}"#) > 0.0);
    assert!(value(r#"streamedge_processes_ended_total{role="download"}"#) >= 1.0);
    assert!(value(r#"streamedge_live_ladder_speed{stream="cam"}"#) > 0.0);
    assert_eq!(value(r#"streamedge_live_ladder_rungs{stream="cam"}"#), 1.0);
    // nginx's own counters, from the zones' shared memory: both publishers were checked,
    // the wrong key counted towards a ban; the API calls above went through zone "api".
    assert!(value(r#"streamedge_limit_requests_total{zone="publishers"}"#) >= 2.0);
    assert!(value(r#"streamedge_limit_failures_total{zone="publishers"}"#) >= 1.0);
    assert!(value(r#"streamedge_limit_requests_total{zone="api"}"#) >= 3.0);
    assert!(m.contains("# TYPE streamedge_limit_refused counter"), "{m}");
    // Not through nginx's public port; there only as /api/metrics with the token.
    assert_eq!(http_get(&s.url("/metrics")).unwrap().status, 404);
    assert_eq!(s.api("GET", "/api/metrics", None, false).0, 401);
    let through = reqwest::blocking::Client::new()
        .get(s.url("/api/metrics"))
        .bearer_auth(s.token())
        .send()
        .unwrap();
    assert_eq!(through.status(), 200);
    assert!(through
        .text()
        .unwrap()
        .contains("streamedge_live_streams 1"));

    // `status` shows the same table.
    let out = s.cli(&["status", "--json"]);
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        find(&st["processes"]["running"], "ladder", "cam").is_some(),
        "{st}"
    );
    let text = String::from_utf8_lossy(&s.cli(&["status"]).stdout).into_owned();
    assert!(text.contains("ladder cam: running"), "{text}");

    // When the stream ends, the ladder's process ends too, and keeps its figures.
    drop(publisher);
    let gone = wait_for("the ladder to end", LONG, || {
        find(&processes(&s)["ended"], "ladder", "cam").cloned()
    });
    assert_eq!(gone["outcome"], "stopped");
    assert!(
        gone["cost"]["cpu_seconds"].as_f64().unwrap() > 1.0,
        "{gone}"
    );
    let log = s.read("run.log");
    assert!(
        log.contains(&format!("ffmpeg (transcode \"{id}\") done: ")),
        "{log}"
    );
}
