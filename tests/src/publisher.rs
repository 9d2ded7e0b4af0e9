//! A stand-in for OBS: an ffmpeg process publishing a test pattern over RTMP.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::wait::wait_for;

/// A running ffmpeg publisher, stopped on drop.
pub struct Publisher(Child);

impl Publisher {
    /// Publishes a small test pattern with sound for `secs` seconds, in real time.
    pub fn start(url: &str, secs: u32) -> Publisher {
        Publisher::start_sized(url, secs, "160x120", 15)
    }

    /// The same in another frame size and rate, a keyframe every second.
    pub fn start_sized(url: &str, secs: u32, size: &str, fps: u32) -> Publisher {
        Publisher::spawn(url, secs, size, fps, true)
    }

    /// The same without sound, as some cameras publish.
    pub fn start_silent(url: &str, secs: u32, size: &str, fps: u32) -> Publisher {
        Publisher::spawn(url, secs, size, fps, false)
    }

    fn spawn(url: &str, secs: u32, size: &str, fps: u32, sound: bool) -> Publisher {
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
            .args([
                "-f",
                "lavfi",
                "-i",
                &format!("testsrc=size={size}:rate={fps}"),
            ]);
        if sound {
            cmd.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]);
        }
        let child = cmd
            .args(["-t", &secs.to_string()])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
                "-g",
                &fps.to_string(),
            ])
            .args([
                "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-f", "flv", url,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ffmpeg");
        Publisher(child)
    }

    /// A stream of about `kbit` kbit/s for `secs` seconds, as a camera at that bitrate sends:
    /// 640x360 at 25 fps, moving noise the encoder cannot make smaller than the rate it is
    /// given, a keyframe every second, 96 kbit/s of sound.
    pub fn start_bitrate(url: &str, secs: u32, kbit: u32) -> Publisher {
        let video = kbit.saturating_sub(96).max(100);
        let child = Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i"])
            .arg("testsrc2=size=640x360:rate=25,noise=alls=60:allf=t")
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
            .args(["-t", &secs.to_string()])
            .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25"])
            .arg("-b:v")
            .arg(format!("{video}k"))
            .arg("-minrate")
            .arg(format!("{video}k"))
            .arg("-maxrate")
            .arg(format!("{video}k"))
            .arg("-bufsize")
            .arg(format!("{video}k"))
            .args([
                "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", "-f", "flv", url,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ffmpeg");
        Publisher(child)
    }

    /// Waits for ffmpeg to end; returns whether it succeeded and what it printed.
    pub fn finish(mut self, timeout: Duration) -> (bool, String) {
        let status = wait_for("ffmpeg to end", timeout, || self.0.try_wait().unwrap());
        let mut err = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        (status.success(), err)
    }

    pub fn is_running(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
