//! What every process the sidecar runs costs: CPU seconds (user + system, its threads and the
//! children it waited for), peak resident memory, wall time and, for ffmpeg, its speed (media
//! seconds per second), sampled from `/proc` about every second while it runs and once more
//! as it exits. One table for the daemon: the status, the API and `/metrics` read it; a
//! [`Tally`] adds up the processes of one piece of work (a fetch job's probe, download,
//! transcode and poster) for its record.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Ended processes the table remembers, newest last.
const KEEP_ENDED: usize = 32;

/// What a process cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub cpu_seconds: f64,
    pub peak_memory_bytes: u64,
    /// Media seconds per second of wall time, as ffmpeg reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
    /// Wall time.
    pub seconds: f64,
}

impl Cost {
    /// Two processes of one step one after the other (a download tried again): CPU and
    /// time add up, the peak is the larger, the speed the later one's.
    pub fn then(self, later: Cost) -> Cost {
        Cost {
            cpu_seconds: self.cpu_seconds + later.cpu_seconds,
            peak_memory_bytes: self.peak_memory_bytes.max(later.peak_memory_bytes),
            speed: later.speed.or(self.speed),
            seconds: self.seconds + later.seconds,
        }
    }

    /// "12.3 CPU s, peak 150 MiB, 8.1x real time".
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{:.1} CPU s, peak {} MiB",
            self.cpu_seconds,
            self.peak_memory_bytes / (1024 * 1024)
        );
        if let Some(x) = self.speed {
            s += &format!(", {x:.2}x real time");
        }
        s
    }
}

/// Who a process works for: what it does ("ladder", "thumbnail", "recording", "probe",
/// "download", "transcode", "poster", "still") and on what (a stream name, a job or item id).
#[derive(Debug, Clone, Default)]
pub struct Role {
    pub role: &'static str,
    pub subject: String,
    /// Where its cost is added up when it ends.
    pub tally: Option<Tally>,
}

impl Role {
    pub fn new(role: &'static str, subject: impl Into<String>) -> Role {
        Role {
            role,
            subject: subject.into(),
            tally: None,
        }
    }

    pub fn tallied(mut self, tally: &Tally) -> Role {
        self.tally = Some(tally.clone());
        self
    }
}

/// The costs of one piece of work's processes, by role.
pub type Costs = BTreeMap<String, Cost>;

/// Adds a process's cost to those of its role.
pub fn add(costs: &mut Costs, role: &str, cost: Cost) {
    let sum = costs.get(role).copied().map_or(cost, |c| c.then(cost));
    costs.insert(role.to_string(), sum);
}

/// `costs` with those of the running processes in `running` added.
pub fn with_running(mut costs: Costs, running: Costs) -> Costs {
    for (role, cost) in running {
        add(&mut costs, &role, cost);
    }
    costs
}

/// Hears the cost of each process of one piece of work as it ends (a fetch job writes it
/// into its record).
#[derive(Clone)]
pub struct Tally(Arc<dyn Fn(&'static str, Cost) + Send + Sync>);

impl Tally {
    pub fn new(f: impl Fn(&'static str, Cost) + Send + Sync + 'static) -> Tally {
        Tally(Arc::new(f))
    }
}

impl std::fmt::Debug for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tally")
    }
}

/// A process in the table.
#[derive(Debug, Clone, Serialize)]
pub struct Process {
    pub role: &'static str,
    pub subject: String,
    pub program: String,
    pub pid: u32,
    /// RFC 3339.
    pub started: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    /// "done", "failed" or "stopped", once it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<&'static str>,
    pub cost: Cost,
}

/// What the processes of one role have cost in all, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Totals {
    pub running: u64,
    pub ended: u64,
    /// Of the ended and the running ones.
    pub cpu_seconds: f64,
    /// The largest peak among the running ones.
    pub peak_memory_bytes: u64,
}

/// The table as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub running: Vec<Process>,
    /// Newest first.
    pub ended: Vec<Process>,
    pub totals: BTreeMap<&'static str, Totals>,
}

#[derive(Default)]
struct Table {
    next: u64,
    running: BTreeMap<u64, Process>,
    ended: VecDeque<Process>,
    /// Ended processes, by role: count and CPU seconds.
    spent: BTreeMap<&'static str, (u64, f64)>,
}

static TABLE: LazyLock<Mutex<Table>> = LazyLock::new(Default::default);

fn table() -> std::sync::MutexGuard<'static, Table> {
    TABLE.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn snapshot() -> Snapshot {
    let t = table();
    let mut totals: BTreeMap<&'static str, Totals> = BTreeMap::new();
    for (role, (ended, cpu)) in &t.spent {
        let e = totals.entry(role).or_default();
        e.ended = *ended;
        e.cpu_seconds += cpu;
    }
    for p in t.running.values() {
        let e = totals.entry(p.role).or_default();
        e.running += 1;
        e.cpu_seconds += p.cost.cpu_seconds;
        e.peak_memory_bytes = e.peak_memory_bytes.max(p.cost.peak_memory_bytes);
    }
    Snapshot {
        running: t.running.values().cloned().collect(),
        ended: t.ended.iter().rev().cloned().collect(),
        totals,
    }
}

/// What the running processes working on `subject` have cost so far, by role.
pub fn running_for(subject: &str) -> Costs {
    let mut out = Costs::new();
    for p in table().running.values().filter(|p| p.subject == subject) {
        add(&mut out, p.role, p.cost);
    }
    out
}

/// Watches one process from its start to its end.
pub struct Meter {
    id: u64,
    pid: u32,
    role: Role,
    start: Instant,
    cost: Cost,
}

impl Meter {
    pub fn start(role: Role, program: &str, pid: u32) -> Meter {
        let mut t = table();
        let id = t.next;
        t.next += 1;
        t.running.insert(
            id,
            Process {
                role: role.role,
                subject: role.subject.clone(),
                program: program.to_string(),
                pid,
                started: crate::clock::now_rfc3339(),
                ended: None,
                outcome: None,
                cost: Cost::default(),
            },
        );
        drop(t);
        let mut m = Meter {
            id,
            pid,
            role,
            start: Instant::now(),
            cost: Cost::default(),
        };
        m.sample();
        m
    }

    /// Reads `/proc` again. A process that has exited but is not yet reaped still shows its
    /// final CPU time (its memory figures are gone: the peak stays as last seen).
    pub fn sample(&mut self) {
        if let Some((cpu, peak)) = usage(self.pid) {
            self.cost.cpu_seconds = self.cost.cpu_seconds.max(cpu);
            if let Some(p) = peak {
                self.cost.peak_memory_bytes = self.cost.peak_memory_bytes.max(p);
            }
        }
        self.cost.seconds = self.start.elapsed().as_secs_f64();
        self.publish();
    }

    /// A line of the process's output: ffmpeg's `-progress` says `speed=1.23x`.
    pub fn line(&mut self, line: &str) {
        if let Some(x) = speed(line) {
            self.cost.speed = Some(x);
        }
    }

    fn publish(&self) {
        if let Some(p) = table().running.get_mut(&self.id) {
            p.cost = self.cost;
        }
    }

    /// The process ended: its last figures, moved to the ended list and the tally.
    pub fn finish(mut self, outcome: &'static str) -> Cost {
        self.sample();
        let cost = self.cost;
        let mut t = table();
        if let Some(mut p) = t.running.remove(&self.id) {
            p.cost = cost;
            p.ended = Some(crate::clock::now_rfc3339());
            p.outcome = Some(outcome);
            let spent = t.spent.entry(p.role).or_default();
            spent.0 += 1;
            spent.1 += cost.cpu_seconds;
            if t.ended.len() == KEEP_ENDED {
                t.ended.pop_front();
            }
            t.ended.push_back(p);
        }
        drop(t);
        if let Some(tally) = &self.role.tally {
            (tally.0)(self.role.role, cost);
        }
        cost
    }
}

/// CPU seconds (user + system of the process and of the children it waited for) and, while
/// it is not a zombie, its peak resident memory in bytes.
pub fn usage(pid: u32) -> Option<(f64, Option<u64>)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which may hold spaces, in parentheses.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let ticks = tick(11)? + tick(12)? + tick(13)? + tick(14)?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let peak = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024);
    Some((ticks as f64 / hz, peak))
}

/// `speed=1.23x` from ffmpeg's `-progress` output.
fn speed(line: &str) -> Option<f64> {
    let x: f64 = line
        .strip_prefix("speed=")?
        .trim()
        .strip_suffix('x')?
        .trim()
        .parse()
        .ok()?;
    (x.is_finite() && x > 0.0).then_some((x * 100.0).round() / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_a_running_process() {
        let (cpu, peak) = usage(std::process::id()).unwrap();
        assert!(cpu >= 0.0 && peak.unwrap() > 1024 * 1024, "{cpu} {peak:?}");
        assert_eq!(usage(u32::MAX), None);
        assert_eq!(speed("speed=1.23x"), Some(1.23));
        assert_eq!(speed("speed= 12.5x"), Some(12.5));
        assert_eq!(speed("speed=N/A"), None);
        assert_eq!(speed("speed=0x"), None);
        assert_eq!(speed("out_time_us=1"), None);
    }

    #[test]
    fn steps_add_up() {
        let a = Cost {
            cpu_seconds: 1.0,
            peak_memory_bytes: 10,
            speed: Some(2.0),
            seconds: 3.0,
        };
        let b = Cost {
            cpu_seconds: 0.5,
            peak_memory_bytes: 5,
            speed: None,
            seconds: 1.0,
        };
        assert_eq!(
            a.then(b),
            Cost {
                cpu_seconds: 1.5,
                peak_memory_bytes: 10,
                speed: Some(2.0),
                seconds: 4.0
            }
        );
        let mut costs = Costs::new();
        add(&mut costs, "download", a);
        add(&mut costs, "download", b);
        let running = Costs::from([("transcode".to_string(), b)]);
        let t = with_running(costs, running);
        assert_eq!(t["download"].cpu_seconds, 1.5);
        assert_eq!(t["transcode"], b);
    }

    #[test]
    fn the_table_follows_a_process() {
        let heard = Arc::new(Mutex::new(Costs::new()));
        let h = heard.clone();
        let tally = Tally::new(move |role, cost| add(&mut h.lock().unwrap(), role, cost));
        let role = Role::new("still", "test-item-1").tallied(&tally);
        let mut m = Meter::start(role, "self", std::process::id());
        m.line("speed=3.5x");
        m.sample();
        let running = running_for("test-item-1");
        assert!(running["still"].peak_memory_bytes > 0, "{running:?}");
        assert!(snapshot()
            .running
            .iter()
            .any(|p| p.subject == "test-item-1"));
        let cost = m.finish("done");
        assert_eq!(cost.speed, Some(3.5));
        assert!(running_for("test-item-1").is_empty());
        let s = snapshot();
        let ended = s.ended.iter().find(|p| p.subject == "test-item-1").unwrap();
        assert_eq!(ended.outcome, Some("done"));
        assert!(s.totals["still"].ended >= 1);
        assert_eq!(heard.lock().unwrap()["still"], cost);
    }
}
