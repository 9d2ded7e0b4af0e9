//! The live pipeline: what the sidecar runs beside a stream while it is live. It learns who
//! is live from the module's registry (nginx's internal `/api/streams/all`, twice a second)
//! and never sits between nginx and a viewer: nginx-rtmp's source rendition plays whether or
//! not anything here runs.
//!
//! Today: the adaptive-bitrate ladder (`ladder`), one ffmpeg per live stream.

pub mod ladder;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Switch};

/// How often the registry is asked who is live.
const POLL: Duration = Duration::from_millis(500);

struct Running {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// Keeps one ladder running per live stream, for as long as `streamedge run` runs.
pub async fn run_loop(config: Config) {
    if config.live.transcode == Switch::Off {
        return;
    }
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut unreachable = false;
    loop {
        match crate::nginx::streams_all(&config).await {
            Ok(list) => {
                unreachable = false;
                let live: HashSet<String> = list
                    .into_iter()
                    .filter(|s| s.live)
                    .map(|s| s.name)
                    .collect();
                // A stream that ended is told to stop; its entry stays until it has cleaned
                // up, so a quick republish never has two ladders in one folder.
                running.retain(|name, r| {
                    if !live.contains(name) {
                        r.stop.cancel();
                    }
                    !r.task.is_finished()
                });
                for name in live {
                    if running.contains_key(&name) {
                        continue;
                    }
                    let stop = CancellationToken::new();
                    let task = tokio::spawn(ladder::supervise(
                        config.clone(),
                        name.clone(),
                        stop.clone(),
                    ));
                    running.insert(name, Running { stop, task });
                }
            }
            Err(e) if !unreachable => {
                unreachable = true;
                tracing::debug!("live pipeline: {e:#}");
            }
            Err(_) => {}
        }
        tokio::time::sleep(POLL).await;
    }
}
