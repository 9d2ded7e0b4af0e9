//! A restream destination: a bare Debian nginx with nginx-rtmp on a free loopback port,
//! recording every stream it receives to `rec/NAME.flv` (appending across reconnects), and
//! optionally RTMPS in front of it (nginx's stream module with `ssl`, a certificate for
//! `localhost` from a CA of the test's own).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::ports::free_port;
use crate::wait::wait_for;

pub struct RtmpSink {
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The RTMPS port, if it has one.
    pub tls_port: Option<u16>,
    child: Option<Child>,
}

impl RtmpSink {
    /// Plain RTMP.
    pub fn start() -> RtmpSink {
        RtmpSink::new(false)
    }

    /// RTMP and, in front of it, RTMPS; [`RtmpSink::ca`] is the CA to trust.
    pub fn start_tls() -> RtmpSink {
        RtmpSink::new(true)
    }

    fn new(tls: bool) -> RtmpSink {
        let dir = tempfile::Builder::new()
            .prefix("streamedge-sink-")
            .tempdir()
            .unwrap();
        for d in ["logs", "rec"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        // Workers run as nobody when the tests run as root: they write the recordings.
        std::fs::set_permissions(
            dir.path().join("rec"),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        if tls {
            let ca_key = rcgen::KeyPair::generate().unwrap();
            let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            ca_params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "streamedge sink CA");
            let ca = ca_params.self_signed(&ca_key).unwrap();
            let issuer = rcgen::Issuer::new(ca_params, ca_key);
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
                .unwrap()
                .signed_by(&key, &issuer)
                .unwrap();
            std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
            std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
            std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        }
        let mut sink = RtmpSink {
            dir,
            port: free_port(),
            tls_port: tls.then(free_port),
            child: None,
        };
        sink.run();
        sink
    }

    /// Starts nginx on the sink's ports (again, after [`RtmpSink::kill`]).
    pub fn run(&mut self) {
        let d = self.dir.path();
        let mut conf = format!(
            "daemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/logs/nginx.pid;\n\
             error_log {d}/logs/error.log info;\n\
             load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n",
            d = d.display()
        );
        if self.tls_port.is_some() {
            conf += "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n";
        }
        conf += &format!(
            "events {{}}\nrtmp {{\n  server {{\n    listen 127.0.0.1:{port};\n    application dest {{\n      \
             live on;\n      record all;\n      record_path {d}/rec;\n      record_append on;\n    }}\n  }}\n}}\n",
            port = self.port,
            d = d.display()
        );
        if let Some(tls) = self.tls_port {
            conf += &format!(
                "stream {{\n  server {{\n    listen 127.0.0.1:{tls} ssl;\n    ssl_certificate {d}/cert.pem;\n    \
                 ssl_certificate_key {d}/key.pem;\n    proxy_pass 127.0.0.1:{port};\n  }}\n}}\n",
                port = self.port,
                d = d.display()
            );
        }
        std::fs::write(d.join("nginx.conf"), conf).unwrap();
        let child = Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start nginx");
        self.child = Some(child);
        let port = self.port;
        wait_for("the RTMP sink to listen", Duration::from_secs(10), || {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "the sink's nginx exited ({status}): {}",
                    std::fs::read_to_string(d.join("logs/error.log")).unwrap_or_default()
                );
            }
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
    }

    /// Kills nginx, master and workers, at once (a destination that goes away).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::killpg(Pid::from_raw(c.id() as i32), Signal::SIGKILL);
            let _ = c.wait();
        }
    }

    /// `rtmp://127.0.0.1:PORT/dest/KEY`.
    pub fn url(&self, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/dest/{key}", self.port)
    }

    /// `rtmps://localhost:PORT/dest/KEY`.
    pub fn tls_url(&self, key: &str) -> String {
        format!(
            "rtmps://localhost:{}/dest/{key}",
            self.tls_port.expect("a TLS sink")
        )
    }

    /// The CA that issued the RTMPS certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The recording of what stream `key` received.
    pub fn recording(&self, key: &str) -> PathBuf {
        self.dir.path().join("rec").join(format!("{key}.flv"))
    }

    /// Bytes received for stream `key` so far.
    pub fn bytes(&self, key: &str) -> u64 {
        std::fs::metadata(self.recording(key))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// The streams (codec types) ffprobe finds in what `key` received.
    pub fn received_streams(&self, key: &str) -> Vec<String> {
        probe(&self.recording(key))
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default()
    }
}

fn probe(file: &Path) -> Vec<String> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,width,height",
        ])
        .args(["-of", "csv=p=0"])
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

impl Drop for RtmpSink {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
        }
        self.kill();
    }
}

impl RtmpSink {
    /// How many RTMP connections nginx-rtmp has taken for application `dest` (its info log).
    pub fn connections(&self) -> usize {
        self.error_log().matches("connect: app='dest'").count()
    }
}
