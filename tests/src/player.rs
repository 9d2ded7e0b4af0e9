//! A live HLS player that behaves as browsers' players do (hls.js's defaults), for tests of
//! what viewers would see: it starts three segments behind the live edge, reloads the
//! playlist a target duration after the last reload when that brought something new (half of
//! one when not), fetches each new segment once and in order on one keep-alive connection,
//! and keeps a playback clock, so a segment that comes after its time to play is a stall.

use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::Url;

/// A segment as it arrived.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Its URI as the playlist named it.
    pub uri: String,
    /// Its length, from the playlist (`#EXTINF`).
    pub seconds: f64,
    /// When it arrived, in seconds since the player began.
    pub at: f64,
    /// How long it took to fetch.
    pub took: Duration,
    pub bytes: usize,
}

impl Fetched {
    /// Its fetch time over its length: below 1, it came faster than it plays.
    pub fn pace(&self) -> f64 {
        self.took.as_secs_f64() / self.seconds
    }
}

/// What one player saw.
#[derive(Debug)]
pub struct Watched {
    /// When it began.
    pub began: Instant,
    pub segments: Vec<Fetched>,
    /// Requests that failed or were not answered 200, with what happened.
    pub failures: Vec<String>,
    /// Each time the picture would have stood still: when it started again and for how
    /// long, in seconds.
    pub stalls: Vec<(f64, f64)>,
    pub playlists: usize,
}

impl Watched {
    /// When `segment` was asked for and when it arrived.
    pub fn fetched(&self, segment: &Fetched) -> (Instant, Instant) {
        let arrived = self.began + Duration::from_secs_f64(segment.at);
        (arrived - segment.took, arrived)
    }

    pub fn bytes(&self) -> usize {
        self.segments.iter().map(|s| s.bytes).sum()
    }
}

struct Playlist {
    target: f64,
    sequence: u64,
    segments: Vec<(f64, String)>,
}

fn parse(text: &str) -> Result<Playlist, String> {
    let mut p = Playlist {
        target: 0.0,
        sequence: 0,
        segments: Vec::new(),
    };
    let mut length = None;
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            p.target = v.parse().map_err(|_| format!("bad target duration {v}"))?;
        } else if let Some(v) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            p.sequence = v.parse().map_err(|_| format!("bad media sequence {v}"))?;
        } else if let Some(v) = line.strip_prefix("#EXTINF:") {
            let v = v.split(',').next().unwrap_or_default();
            length = Some(v.parse().map_err(|_| format!("bad #EXTINF {v}"))?);
        } else if !line.is_empty() && !line.starts_with('#') {
            let seconds = length
                .take()
                .ok_or_else(|| format!("{line} without #EXTINF"))?;
            p.segments.push((seconds, line.to_string()));
        }
    }
    if !text.starts_with("#EXTM3U") || p.target <= 0.0 {
        return Err(format!("not a media playlist: {text:.200}"));
    }
    Ok(p)
}

/// Plays the live media playlist at `url` for `time`.
pub fn play_live(url: &str, time: Duration) -> Watched {
    let begun = Instant::now();
    let mut w = Watched {
        began: begun,
        segments: Vec::new(),
        failures: Vec::new(),
        stalls: Vec::new(),
        playlists: 0,
    };
    let client = Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("an HTTP client");
    let base = Url::parse(url).expect("a playlist URL");
    let end = begun + time;
    let mut next: Option<u64> = None;
    // Playback: it starts with the first segment; `clock` is when media time 0 plays.
    let mut clock: Option<Instant> = None;
    let mut buffered = 0.0f64;
    let get = |w: &mut Watched, url: &Url| -> Option<Vec<u8>> {
        match client.get(url.clone()).send().and_then(|r| {
            let status = r.status();
            r.bytes().map(|b| (status, b))
        }) {
            Ok((s, body)) if s.is_success() => Some(body.to_vec()),
            Ok((s, _)) => {
                w.failures.push(format!("{s} for {}", url.path()));
                None
            }
            Err(e) => {
                w.failures.push(format!("{}: {e}", url.path()));
                None
            }
        }
    };
    while Instant::now() < end {
        let asked = Instant::now();
        w.playlists += 1;
        let Some(body) = get(&mut w, &base) else {
            std::thread::sleep(Duration::from_secs(1));
            continue;
        };
        let p = match parse(&String::from_utf8_lossy(&body)) {
            Ok(p) => p,
            Err(e) => {
                w.failures.push(e);
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let last = p.sequence + p.segments.len() as u64;
        let from = *next.get_or_insert(last.saturating_sub(3).max(p.sequence));
        if from < p.sequence {
            w.failures.push(format!(
                "fell behind: segment {from} is gone ({})",
                p.sequence
            ));
        }
        let mut new = false;
        for seq in from.max(p.sequence)..last {
            if Instant::now() >= end {
                break;
            }
            let (seconds, uri) = &p.segments[(seq - p.sequence) as usize];
            let Ok(at) = base.join(uri) else {
                w.failures.push(format!("bad URI {uri}"));
                continue;
            };
            let started = Instant::now();
            let Some(body) = get(&mut w, &at) else {
                continue;
            };
            let arrived = Instant::now();
            let playing = clock.get_or_insert(arrived);
            let position = arrived.duration_since(*playing).as_secs_f64();
            if position > buffered {
                // It came after its turn: the picture stood still meanwhile.
                w.stalls.push((since(begun), position - buffered));
                *playing += Duration::from_secs_f64(position - buffered);
            }
            buffered += seconds;
            w.segments.push(Fetched {
                uri: uri.clone(),
                seconds: *seconds,
                at: since(begun),
                took: arrived - started,
                bytes: body.len(),
            });
            new = true;
        }
        next = Some(last.max(from));
        // As hls.js, the next reload is timed from this one's request, not from when the
        // segments it brought arrived.
        let wait = if new { p.target } else { p.target / 2.0 };
        let due = (asked + Duration::from_secs_f64(wait)).min(end);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
    }
    // Still playing at the end, or standing still for want of the next segment.
    if let Some(playing) = clock {
        let position = playing.elapsed().as_secs_f64();
        if position > buffered + 0.5 {
            w.stalls.push((since(begun), position - buffered));
        }
    }
    w
}

fn since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playlists_are_read_as_players_read_them() {
        let p = parse(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-MEDIA-SEQUENCE:7\n#EXT-X-TARGETDURATION:4\n\
             #EXTINF:4.000,\n1700000000.ts\n#EXTINF:3.960,\n1700000004.ts\n",
        )
        .unwrap();
        assert_eq!((p.target, p.sequence), (4.0, 7));
        assert_eq!(p.segments[1], (3.96, "1700000004.ts".to_string()));
        assert!(parse("<html>").is_err());
        assert!(parse("#EXTM3U\n#EXT-X-TARGETDURATION:4\nx.ts\n").is_err());
    }
}
