//! A real S3 server on loopback: `s3s-fs` (installed by `make deps-test`), which checks
//! Signature V4, multipart uploads and ranges, storing bucket `library` as a folder. And a
//! valve in front of it, to stop the traffic at a chosen request or cut it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::paths::relative_files;
use crate::ports::free_port;
use crate::wait::wait_for;

pub const S3_ACCESS_KEY: &str = "streamedge-test";
pub const S3_SECRET_KEY: &str = "s3cr3t-0f-the-test-bucket";
pub const S3_BUCKET: &str = "library";

pub struct S3Store {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

fn s3s_fs() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .unwrap_or_default();
    let installed = home.join("bin/s3s-fs");
    if installed.exists() {
        installed
    } else {
        PathBuf::from("s3s-fs")
    }
}

impl S3Store {
    pub fn start() -> S3Store {
        let dir = tempfile::Builder::new().prefix("s3-").tempdir().unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        std::fs::create_dir(dir.path().join("root").join(S3_BUCKET)).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("s3s-fs.log")).unwrap();
        let child = Command::new(s3s_fs())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(dir.path().join("root"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start s3s-fs (make deps-test installs it)");
        wait_for("s3s-fs to listen", Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        S3Store { dir, port, child }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Object `key` of the bucket, as s3s-fs keeps it.
    pub fn object(&self, key: &str) -> PathBuf {
        self.dir.path().join("root").join(S3_BUCKET).join(key)
    }

    /// Every object key below `prefix` ("public/ID"), sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        relative_files(&self.object(prefix))
            .into_iter()
            // s3s-fs's own bookkeeping beside the objects.
            .filter(|k| !k.contains(".s3s") && !k.starts_with('.'))
            .map(|k| format!("{prefix}/{k}"))
            .collect()
    }

    /// A credentials file (mode 0600) for the bucket, at `path`.
    pub fn write_credentials(path: &Path) {
        std::fs::write(
            path,
            format!("[default]\naws_access_key_id = {S3_ACCESS_KEY}\naws_secret_access_key = {S3_SECRET_KEY}\n"),
        )
        .unwrap();
        let mut perms = std::fs::metadata(path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
        std::fs::set_permissions(path, perms).unwrap();
    }
}

impl Drop for S3Store {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP relay to a loopback port that can hold everything from the first request whose
/// bytes hold a chosen pattern on (`hold_at`), or refuse every connection (`cut`).
pub struct Valve {
    pub port: u16,
    state: Arc<ValveState>,
}

#[derive(Default)]
struct ValveState {
    pattern: Mutex<Option<Vec<u8>>>,
    held: AtomicBool,
    cut: AtomicBool,
    stop: AtomicBool,
}

impl Valve {
    pub fn start(to: u16) -> Valve {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(ValveState::default());
        let s = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = conn else { continue };
                if s.cut.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let st = s.clone();
                std::thread::spawn(move || pump(client, server, Some(st)));
                std::thread::spawn(move || pump(s2, c2, None));
            }
        });
        Valve { port, state }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// From the first client bytes holding `pattern` on, nothing more goes through.
    pub fn hold_at(&self, pattern: &str) {
        *self.state.pattern.lock().unwrap() = Some(pattern.as_bytes().to_vec());
    }

    /// Whether it holds traffic now.
    pub fn holding(&self) -> bool {
        self.state.held.load(Ordering::SeqCst)
    }

    /// Lets everything through again (held connections stay stuck: their peers time out).
    pub fn open(&self) {
        *self.state.pattern.lock().unwrap() = None;
        self.state.held.store(false, Ordering::SeqCst);
        self.state.cut.store(false, Ordering::SeqCst);
    }

    /// Refuses new connections.
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
    }
}

impl Drop for Valve {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Copies `from` to `to`; with `watch`, stops for good (holding the rest) once the valve
/// holds or the pattern shows up.
fn pump(mut from: TcpStream, mut to: TcpStream, watch: Option<Arc<ValveState>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(s) = &watch {
            let hit = s
                .pattern
                .lock()
                .unwrap()
                .as_ref()
                .is_some_and(|p| buf[..n].windows(p.len()).any(|w| w == p.as_slice()));
            if hit {
                s.held.store(true, Ordering::SeqCst);
            }
            if s.held.load(Ordering::SeqCst) {
                // Held: the request never arrives; the connection stays open, silent.
                while !s.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(100));
                }
                return;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}
