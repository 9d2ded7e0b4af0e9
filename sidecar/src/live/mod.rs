//! The live pipeline: what the sidecar runs beside a stream while it is live. It learns who
//! is live from the module's registry (nginx's internal `/api/streams/all`, twice a second)
//! and never sits between nginx and a viewer: nginx-rtmp's source rendition plays whether or
//! not anything here runs.
//!
//! Per live stream: a thumbnail (`thumbnail`) and, with `live.transcode = "on"`, the
//! adaptive-bitrate ladder (`ladder`), one ffmpeg.

pub mod ladder;
pub mod thumbnail;

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

/// Keeps the pipeline running for every live stream, for as long as `streamedge run` runs.
pub async fn run_loop(config: Config) {
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
                    let task = tokio::spawn(stream(config.clone(), name.clone(), stop.clone()));
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

/// What runs for one live stream until `stop` fires.
async fn stream(config: Config, name: String, stop: CancellationToken) {
    let dir = config.layout().live().join(&name);
    let thumbnail = thumbnail::keep(&dir, &name, &stop);
    if config.live.transcode == Switch::On {
        tokio::join!(thumbnail, ladder::supervise(&config, &name, &stop));
    } else {
        thumbnail.await;
    }
}
