//! Running yt-dlp and ffmpeg: an argument vector (never a shell), a process group of their
//! own (they start helpers), killed with the sidecar, stopped on request (SIGINT, then
//! SIGKILL after a grace period), stdout read line by line for progress, and the end of
//! stderr kept to say why a run failed.

use std::collections::VecDeque;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

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

/// Runs `cmd`, calling `on_line` for each line of its stdout, until it exits or `cancel`
/// fires.
pub async fn run(
    mut cmd: Command,
    what: &str,
    cancel: &CancellationToken,
    mut on_line: impl FnMut(&str),
) -> Result<Exit> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: between fork and exec only async-signal-safe calls: prctl(2).
    unsafe {
        cmd.pre_exec(|| {
            // If the sidecar dies, the tool dies too, rather than writing on into a scratch
            // folder the restarted sidecar is about to clean.
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().with_context(|| format!("cannot run {what}"))?;
    // The group has the child's pid (process_group(0)). Never 0: killpg(0) would be our own.
    let pgid = child
        .id()
        .map(|p| Pid::from_raw(p as i32))
        .context("the tool exited before it could be watched")?;
    let mut stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
    let stderr = tokio::spawn(tail(child.stderr.take().expect("piped")));

    let mut stdout_open = true;
    let status = loop {
        tokio::select! {
            line = stdout.next_line(), if stdout_open => match line {
                Ok(Some(l)) => on_line(&l),
                _ => stdout_open = false,
            },
            status = child.wait() => break Some(status.with_context(|| format!("cannot wait for {what}"))?),
            _ = cancel.cancelled() => break None,
        }
    };
    let Some(status) = status else {
        let _ = killpg(pgid, Signal::SIGINT);
        if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
            let _ = killpg(pgid, Signal::SIGKILL);
            let _ = child.wait().await;
        }
        // Helpers the tool started may outlive it by a moment: none may go on writing.
        let _ = killpg(pgid, Signal::SIGKILL);
        return Ok(Exit::Cancelled);
    };
    // A helper left behind in the group (yt-dlp's ffmpeg) goes with its parent.
    let _ = killpg(pgid, Signal::SIGKILL);
    // What the tool wrote before it exited is still to be read.
    while stdout_open {
        match stdout.next_line().await {
            Ok(Some(l)) => on_line(&l),
            _ => stdout_open = false,
        }
    }
    let stderr = stderr.await.unwrap_or_default();
    Ok(if status.success() {
        Exit::Success
    } else {
        Exit::Failed(stderr)
    })
}

/// The last lines of a stream.
async fn tail(r: impl AsyncRead + Unpin) -> String {
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
        let exit = run(c, "sh", &CancellationToken::new(), |l| {
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

    #[tokio::test]
    async fn cancel_stops_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("late");
        let mut c = Command::new("sh");
        // A child of the tool that would write after 2 s unless the group is stopped.
        c.arg("-c").arg(format!(
            "(sleep 2; touch {}) & echo started; wait",
            marker.display()
        ));
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        let exit = run(c, "sh", &cancel, move |_| trigger.cancel())
            .await
            .unwrap();
        assert!(matches!(exit, Exit::Cancelled));
        std::thread::sleep(Duration::from_millis(2500));
        assert!(!marker.exists(), "a helper of the cancelled tool went on");
    }
}
