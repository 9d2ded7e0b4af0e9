//! A bare nginx with the built module, for directives outside the generated configuration.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::http::http_get;
use crate::netns::Netns;
use crate::paths::module_path;
use crate::ports::free_port;
use crate::wait::wait_for;

/// A bare nginx with the streamedge module and a given `http` block, on free loopback ports,
/// two workers: for tests of directives outside the generated configuration.
pub struct Nginx {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl Nginx {
    /// Starts nginx; `{port}` in `http` is replaced by its port.
    pub fn start(http: &str) -> Nginx {
        Nginx::start_with(http, None)
    }

    /// Starts nginx inside network namespace `netns` (see [`Netns`]); `{port}` as above.
    /// Requests must then come from inside the namespace too.
    pub fn start_in(netns: &Netns, http: &str) -> Nginx {
        Nginx::start_with(http, Some(netns))
    }

    fn start_with(http: &str, netns: Option<&Netns>) -> Nginx {
        let dir = tempfile::Builder::new()
            .prefix("streamedge-nginx-")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        let port = free_port();
        write_conf(dir.path(), port, http);
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.name, "/usr/sbin/nginx"]);
                c
            }
            None => Command::new("/usr/sbin/nginx"),
        };
        let child = cmd
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let mut n = Nginx { dir, port, child };
        wait_for("nginx to answer", Duration::from_secs(10), || {
            if let Some(status) = n.child.try_wait().unwrap() {
                panic!("nginx exited ({status}): {}", n.error_log());
            }
            match netns {
                Some(ns) => ns.curl(None, &format!("http://[::1]:{}/", n.port)).ok(),
                None => http_get(&n.url("/")).ok().map(|r| r.status),
            }
        });
        n
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default()
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/access.log")).unwrap_or_default()
    }

    /// Writes a new `http` block and reloads; returns whether nginx accepted it (it keeps the
    /// old configuration otherwise). Waits until the old workers are gone.
    pub fn reload(&self, http: &str) -> bool {
        write_conf(self.dir.path(), self.port, http);
        let before = self.error_log().matches("gracefully shutting down").count();
        let ok = Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(self.dir.path())
            .arg("-c")
            .arg(self.dir.path().join("nginx.conf"))
            .args(["-s", "reload"])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "nginx -s reload could not signal nginx");
        wait_for("the reload to finish", Duration::from_secs(10), || {
            let log = self.error_log();
            if log.contains("[emerg]") && log.rfind("reconfiguring") < log.rfind("[emerg]") {
                return Some(false);
            }
            (log.matches("gracefully shutting down").count() >= before + 2).then_some(true)
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- nginx error log ---\n{}", self.error_log());
        }
    }
}

/// Writes a bare nginx configuration around `http` into `dir`.
fn write_conf(dir: &Path, port: u16, http: &str) {
    let d = dir.display();
    let text = format!(
        "load_module {module};\ndaemon off;\nworker_processes 2;\npid {d}/nginx.pid;\n\
         error_log {d}/logs/error.log info;\nevents {{}}\nhttp {{\n\
         client_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\nfastcgi_temp_path {d}/fastcgi;\n\
         uwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
         log_format limits '$pid $status $streamedge_limit_result';\n\
         access_log {d}/logs/access.log limits;\n{http}\n}}\n",
        module = module_path().display(),
        http = http.replace("{port}", &port.to_string()),
    );
    std::fs::write(dir.join("nginx.conf"), text).unwrap();
}
