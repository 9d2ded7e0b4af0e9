//! Running yt-dlp and ffmpeg: an argument vector (never a shell), a process group of their
//! own (they start helpers), killed with the sidecar, stopped on request (SIGINT, then
//! SIGKILL after a grace period), stdout read line by line for progress, and the end of
//! stderr kept to say why a run failed.

use std::collections::VecDeque;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::signal::{
    killpg, sigaction, sigprocmask, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal,
};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio_util::sync::CancellationToken;

use crate::costs::Meter;
pub use crate::costs::{Cost, Role};

/// How long a tool gets to stop after SIGINT before SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// Lines of stderr kept for the error message.
const TAIL: usize = 20;

/// How a run ended.
#[derive(Debug)]
pub enum Exit {
    Success,
    /// Failed: the last lines of stderr.
    Failed(String),
    Cancelled,
}

/// Runs `cmd` for `role`, calling `on_line` for each line of its stdout, until it exits or
/// `cancel` fires.
pub async fn run(
    cmd: Command,
    role: Role,
    cancel: &CancellationToken,
    on_line: impl FnMut(&str),
) -> Result<Exit> {
    Ok(run_watched(cmd, role, cancel, drop, on_line).await?.0)
}

/// [`run`], calling `on_start` once the process runs with its stdin (what it reads there; for
/// a tool that reads nothing, dropping it is the end of its input), and returning what it
/// cost (which the table of [`crate::costs`] shows while it runs).
pub async fn run_watched(
    mut cmd: Command,
    role: Role,
    cancel: &CancellationToken,
    on_start: impl FnOnce(ChildStdin),
    mut on_line: impl FnMut(&str),
) -> Result<(Exit, Cost)> {
    let program = std::path::Path::new(cmd.as_std().get_program())
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let what = program.as_str();
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // If the sidecar dies, the tool dies too, rather than writing on into a scratch folder
    // the restarted sidecar is about to clean.
    prepare(&mut cmd, Signal::SIGKILL);
    let mut child = cmd.spawn().with_context(|| format!("cannot run {what}"))?;
    // The group has the child's pid (process_group(0)). Never 0: killpg(0) would be our own.
    let pgid = child
        .id()
        .map(|p| Pid::from_raw(p as i32))
        .context("the tool exited before it could be watched")?;
    let (role_name, subject) = (role.role, role.subject.clone());
    let mut meter = Meter::start(role, what, pgid.as_raw() as u32);
    on_start(child.stdin.take().expect("piped"));
    let mut stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
    let stderr = tokio::spawn(tail(child.stderr.take().expect("piped")));
    // /proc every 100 ms for the first two seconds, then every second: a short run's peak
    // memory is seen only while it runs (an exited process has no memory figures left).
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u32;

    let mut stdout_open = true;
    let status = loop {
        tokio::select! {
            // Output first: its end comes as the process exits, when /proc still has its
            // final CPU time (it is not reaped until `wait`).
            biased;
            line = stdout.next_line(), if stdout_open => match line {
                Ok(Some(l)) => {
                    meter.line(&l);
                    on_line(&l);
                }
                _ => {
                    stdout_open = false;
                    meter.sample();
                }
            },
            status = child.wait() => break Some(status.with_context(|| format!("cannot wait for {what}"))?),
            _ = cancel.cancelled() => break None,
            _ = tick.tick() => {
                ticks += 1;
                if ticks <= 20 || ticks % 10 == 0 {
                    meter.sample();
                }
            }
        }
    };
    let Some(status) = status else {
        meter.sample();
        stop_group(&mut child, pgid, Signal::SIGINT, GRACE).await;
        let cost = meter.finish("stopped");
        spent(what, role_name, &subject, "stopped", &cost);
        return Ok((Exit::Cancelled, cost));
    };
    // A helper left behind in the group (yt-dlp's ffmpeg) goes with its parent.
    let _ = killpg(pgid, Signal::SIGKILL);
    // What the tool wrote before it exited is still to be read.
    while stdout_open {
        match stdout.next_line().await {
            Ok(Some(l)) => {
                meter.line(&l);
                on_line(&l);
            }
            _ => stdout_open = false,
        }
    }
    let stderr = stderr.await.unwrap_or_default();
    let (exit, outcome) = if status.success() {
        (Exit::Success, "done")
    } else {
        (Exit::Failed(stderr), "failed")
    };
    let cost = meter.finish(outcome);
    spent(what, role_name, &subject, outcome, &cost);
    Ok((exit, cost))
}

/// A log line for each process that cost something worth knowing (a thumbnail's fraction
/// of a CPU second is not).
fn spent(program: &str, role: &str, subject: &str, outcome: &str, cost: &Cost) {
    if cost.cpu_seconds >= 1.0 {
        tracing::info!(
            "{program} ({role} \"{subject}\") {outcome}: {} over {:.1} s",
            cost.describe(),
            cost.seconds
        );
    }
}

/// Stops a program that leads its own process group: `polite` to the group (or to the
/// leader alone for SIGTERM, which nginx's master passes on to its workers), SIGKILL to the
/// group if it is not gone within `grace`, and SIGKILL to the group in any case, so no
/// helper or worker outlives it. Returns whether the polite signal was enough.
pub async fn stop_group(
    child: &mut tokio::process::Child,
    pgid: Pid,
    polite: Signal,
    grace: Duration,
) -> bool {
    let _ = match polite {
        Signal::SIGTERM => nix::sys::signal::kill(pgid, polite),
        _ => killpg(pgid, polite),
    };
    let in_time = tokio::time::timeout(grace, child.wait()).await.is_ok();
    if !in_time {
        let _ = killpg(pgid, Signal::SIGKILL);
        let _ = child.wait().await;
    }
    // Helpers the program started may outlive it by a moment: none may go on writing.
    let _ = killpg(pgid, Signal::SIGKILL);
    in_time
}

/// The last line of a program's stderr that says something, without the program's own
/// name (`streamedge: `); `None` when it said nothing.
pub fn last_words(tail: &str) -> Option<String> {
    tail.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().trim_start_matches("streamedge: ").to_string())
}

/// The path of this program, for the helpers it runs as itself (`streamedge push`).
pub fn own_binary() -> std::path::PathBuf {
    std::env::current_exe().unwrap_or_else(|_| std::path::PathBuf::from("streamedge"))
}

/// Sets up every program the sidecar starts: default signal dispositions and no blocked
/// signals, whatever streamedge inherited (started by a shell's `cmd &` it ignores SIGINT,
/// which exec passes on: yt-dlp would shrug off a cancel), and `on_parent_death` sent to it
/// if streamedge dies.
pub fn prepare(cmd: &mut Command, on_parent_death: Signal) {
    // SAFETY: between fork and exec only async-signal-safe calls run (sigaction(2) with
    // SIG_DFL, sigprocmask(2), prctl(2)); nothing allocates.
    unsafe {
        cmd.pre_exec(move || {
            let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
            for sig in Signal::iterator() {
                if !matches!(sig, Signal::SIGKILL | Signal::SIGSTOP) {
                    sigaction(sig, &default)?;
                }
            }
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
            nix::sys::prctl::set_pdeathsig(on_parent_death)?;
            Ok(())
        });
    }
}

/// The last lines of a stream.
pub(crate) async fn tail(r: impl AsyncRead + Unpin) -> String {
    let mut lines = BufReader::new(r).lines();
    let mut kept = VecDeque::with_capacity(TAIL);
    while let Ok(Some(l)) = lines.next_line().await {
        if kept.len() == TAIL {
            kept.pop_front();
        }
        kept.push_back(l);
    }
    Vec::from(kept).join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_lines_and_failure() {
        let mut c = Command::new("sh");
        c.args(["-c", "echo one; echo two; echo oops >&2; exit 3"]);
        let mut seen = Vec::new();
        let exit = run(c, Role::new("test", "sh"), &CancellationToken::new(), |l| {
            seen.push(l.to_string())
        })
        .await
        .unwrap();
        assert_eq!(seen, ["one", "two"]);
        assert!(
            matches!(exit, Exit::Failed(ref e) if e == "oops"),
            "{exit:?}"
        );
    }

    /// Polls `f` until it holds, or fails the test after a generous `timeout`.
    async fn eventually(what: &str, timeout: Duration, f: impl Fn() -> bool) {
        let start = std::time::Instant::now();
        while !f() {
            assert!(start.elapsed() < timeout, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Gone, or a zombie nobody reaped: either way it cannot write any more.
    fn dead(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true)
    }

    #[tokio::test]
    async fn cancel_stops_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut c = Command::new("sh");
        // A helper of the tool that writes for as long as it lives.
        c.arg("-c").arg(format!(
            "(while :; do echo . >> {}; sleep 0.05; done) & echo $!; wait",
            log.display()
        ));
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        let mut helper = String::new();
        let exit = run(c, Role::new("test", "sh"), &cancel, |l| {
            helper = l.to_string();
            trigger.cancel();
        })
        .await
        .unwrap();
        assert!(matches!(exit, Exit::Cancelled), "{exit:?}");
        eventually("the helper to die", Duration::from_secs(30), || {
            dead(&helper)
        })
        .await;
    }

    #[tokio::test]
    async fn tools_get_default_signals_and_stop_on_sigint() {
        // As a shell's `streamedge run &` starts it: SIGINT ignored (harmless in a test
        // process), and a signal blocked in the thread that spawns tools.
        // SAFETY: SIG_IGN installs no handler.
        unsafe {
            sigaction(
                Signal::SIGINT,
                &SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty()),
            )
            .unwrap();
        }
        let mut blocked = SigSet::empty();
        blocked.add(Signal::SIGUSR1);
        blocked.thread_block().unwrap();

        // What a tool starts with, in its own words.
        let mut c = Command::new("cat");
        c.arg("/proc/self/status");
        let mut status = Vec::new();
        let exit = run(
            c,
            Role::new("test", "cat"),
            &CancellationToken::new(),
            |l| status.push(l.to_string()),
        )
        .await
        .unwrap();
        assert!(matches!(exit, Exit::Success), "{exit:?}");
        let mask = |field: &str| {
            let line = status.iter().find(|l| l.starts_with(field)).unwrap();
            u64::from_str_radix(line[field.len()..].trim(), 16).unwrap()
        };
        let bit = |sig: Signal| 1u64 << (sig as i32 - 1);
        assert_eq!(mask("SigIgn:") & bit(Signal::SIGINT), 0, "{status:?}");
        assert_eq!(mask("SigBlk:"), 0, "{status:?}");

        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("interrupted");
        let mut c = Command::new("sh");
        // A shell cannot trap a signal that was ignored when it started: the trap runs only
        // if SIGINT reached it with its default disposition.
        c.arg("-c").arg(format!(
            "trap 'touch {}; exit 130' INT; echo ready; while :; do sleep 0.1; done",
            marker.display()
        ));
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        let exit = run(c, Role::new("test", "sh"), &cancel, |_| trigger.cancel())
            .await
            .unwrap();
        assert!(matches!(exit, Exit::Cancelled), "{exit:?}");
        // SIGINT stopped it, not the SIGKILL that follows after GRACE (which runs no trap).
        assert!(marker.exists(), "the tool's SIGINT trap did not run");
        blocked.thread_unblock().unwrap();
    }
}
