//! `GET /metrics` (Prometheus text format): what nginx's limit zones counted, who is live and
//! how each ladder keeps up, what the sidecar's processes cost, how long the certificates
//! have left and how dynamic DNS fares. Served on the control API's loopback port, which
//! nginx does not proxy, and as `/api/metrics` with the API token.

use anyhow::Result;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::config::Config;

type FloatGauge = Gauge<f64, AtomicU64>;
type FloatCounter = Counter<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ZoneLabel {
    zone: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabel {
    stream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabel {
    role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DomainLabel {
    domain: String,
}

/// Adds a family of metrics to `registry` and returns it to be filled.
fn family<L, M>(registry: &mut Registry, name: &str, help: &str) -> Family<L, M>
where
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
    M: prometheus_client::metrics::TypedMetric
        + prometheus_client::encoding::EncodeMetric
        + Default
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let f = Family::<L, M>::default();
    registry.register(name, help, f.clone());
    f
}

/// Everything, read now: a fresh registry per scrape (the figures live elsewhere: nginx's
/// shared memory, the process table, files).
pub async fn render(config: &Config, live: &crate::live::Board) -> Result<String> {
    let mut r = Registry::default();

    let nginx_up = Gauge::<i64>::default();
    r.register(
        "streamedge_nginx_up",
        "Whether nginx answers on its internal port",
        nginx_up.clone(),
    );
    let requests: Family<ZoneLabel, Counter> = family(
        &mut r,
        "streamedge_limit_requests",
        "Requests a limit zone checked",
    );
    let refused: Family<ZoneLabel, Counter> = family(
        &mut r,
        "streamedge_limit_refused",
        "Requests a limit zone refused (over the rate or banned)",
    );
    let bans: Family<ZoneLabel, Counter> =
        family(&mut r, "streamedge_limit_bans", "Bans a limit zone started");
    let failures: Family<ZoneLabel, Counter> = family(
        &mut r,
        "streamedge_limit_failures",
        "Refusals by others that count towards a ban (wrong stream keys)",
    );
    if let Ok(zones) = crate::nginx::limits(config).await {
        nginx_up.set(1);
        for z in zones {
            let l = ZoneLabel { zone: z.zone };
            requests.get_or_create(&l).inc_by(z.requests);
            refused.get_or_create(&l).inc_by(z.refused);
            bans.get_or_create(&l).inc_by(z.bans);
            failures.get_or_create(&l).inc_by(z.failures);
        }
    }

    let live_streams = Gauge::<i64>::default();
    r.register(
        "streamedge_live_streams",
        "Streams live now (playable)",
        live_streams.clone(),
    );
    if let Ok(streams) = crate::nginx::streams_all(config).await {
        live_streams.set(streams.iter().filter(|s| s.live).count() as i64);
    }
    let speed: Family<StreamLabel, FloatGauge> = family(
        &mut r,
        "streamedge_live_ladder_speed",
        "Media seconds a live ladder writes per second (below 1: falling behind)",
    );
    let rungs: Family<StreamLabel, Gauge> = family(
        &mut r,
        "streamedge_live_ladder_rungs",
        "Encoded rungs of a live ladder",
    );
    let dropped: Family<StreamLabel, Gauge> = family(
        &mut r,
        "streamedge_live_ladder_dropped_rungs",
        "Rungs a live ladder dropped for being too slow",
    );
    for (name, s) in live.snapshot() {
        let l = StreamLabel { stream: name };
        if let Some(x) = s.speed {
            speed.get_or_create(&l).set(x);
        }
        rungs.get_or_create(&l).set(s.rungs.len() as i64);
        dropped.get_or_create(&l).set(s.dropped.len() as i64);
    }

    let running: Family<RoleLabel, Gauge> = family(
        &mut r,
        "streamedge_processes_running",
        "Processes the sidecar runs now, by role (ladder, recording, download, transcode...)",
    );
    let ended: Family<RoleLabel, Counter> = family(
        &mut r,
        "streamedge_processes_ended",
        "Processes that ended, by role",
    );
    let cpu: Family<RoleLabel, FloatCounter> = family(
        &mut r,
        "streamedge_process_cpu_seconds",
        "CPU seconds of the sidecar's processes, by role, ended and running",
    );
    let peak: Family<RoleLabel, Gauge> = family(
        &mut r,
        "streamedge_process_peak_memory_bytes",
        "Largest peak resident memory among the running processes of a role",
    );
    for (role, t) in crate::costs::snapshot().totals {
        let l = RoleLabel { role: role.into() };
        running.get_or_create(&l).set(t.running as i64);
        ended.get_or_create(&l).inc_by(t.ended);
        cpu.get_or_create(&l).inc_by(t.cpu_seconds);
        peak.get_or_create(&l).set(t.peak_memory_bytes as i64);
    }

    let days: Family<DomainLabel, FloatGauge> = family(
        &mut r,
        "streamedge_certificate_days_left",
        "Days until the served certificate of a domain expires",
    );
    if let Some(s) = crate::certs::settings(config) {
        for d in &s.domains {
            if let Ok(Some(c)) = s.store().current(d) {
                let left = match c.not_after.duration_since(std::time::SystemTime::now()) {
                    Ok(left) => left.as_secs_f64(),
                    Err(past) => -past.duration().as_secs_f64(),
                };
                days.get_or_create(&DomainLabel { domain: d.clone() })
                    .set((left / 86_400.0 * 100.0).round() / 100.0);
            }
        }
    }

    if let Ok(d) = crate::ddns::status(config) {
        let ok = Gauge::<i64>::default();
        r.register(
            "streamedge_ddns_ok",
            "Whether dynamic DNS is without error (no failed check, no backoff)",
            ok.clone(),
        );
        ok.set(i64::from(d.error.is_none() && d.failures == 0));
        let failures = Gauge::<i64>::default();
        r.register(
            "streamedge_ddns_failures",
            "Dynamic DNS checks failed in a row",
            failures.clone(),
        );
        failures.set(i64::from(d.failures));
        let in_sync: Family<DomainLabel, Gauge> = family(
            &mut r,
            "streamedge_ddns_in_sync",
            "Whether DNS answered the home's current address for a name at the last check",
        );
        let families: Vec<_> = [&d.ipv4, &d.ipv6].into_iter().flatten().collect();
        for (i, name) in d.domains.iter().enumerate() {
            // `dns` holds, per name in order, the addresses DNS answered, space-separated.
            let synced = !families.is_empty()
                && families.iter().all(|f| {
                    f.address.is_some_and(|a| {
                        let a = a.to_string();
                        f.dns.get(i).is_some_and(|s| s.split(' ').any(|x| x == a))
                    })
                });
            in_sync
                .get_or_create(&DomainLabel {
                    domain: name.clone(),
                })
                .set(i64::from(synced));
        }
    }

    let mut out = String::new();
    encode(&mut out, &r)?;
    Ok(out)
}
