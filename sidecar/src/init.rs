//! `streamedge init`: a complete, working configuration folder in one command.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::{Config, Nginx, Ports};
use crate::fsutil::write_atomic;
use crate::nginx::render;

/// Options of `streamedge init`, all with home-server defaults.
#[derive(Debug, Clone, clap::Args)]
pub struct InitArgs {
    /// Folder to write the configuration into.
    #[arg(long)]
    pub dir: PathBuf,
    #[arg(long, default_value_t = Ports::default().http)]
    pub http_port: u16,
    #[arg(long, default_value_t = Ports::default().https)]
    pub https_port: u16,
    #[arg(long, default_value_t = Ports::default().rtmp)]
    pub rtmp_port: u16,
    /// Icecast source clients (DJ software) publish audio here; 0: off.
    #[arg(long, default_value_t = Ports::default().icecast)]
    pub icecast_port: u16,
    /// nginx's loopback-only port for this machine's own requests (callbacks, checks).
    #[arg(long, default_value_t = Ports::default().internal)]
    pub internal_port: u16,
    /// Address nginx listens on.
    #[arg(long, default_value_t = Ports::default().bind)]
    pub bind: String,
    /// Data directory [default: DIR/data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The public domain name of this server: HTTPS gets a certificate for it by ACME.
    #[arg(long)]
    pub domain: Option<String>,
    /// Keep the domain's DNS record pointing at this home's address through IONOS (needs
    /// --domain; put the API key, `prefix.secret`, into ionos-api.key next to the
    /// configuration, then run `streamedge ddns setup`).
    #[arg(long, requires = "domain")]
    pub ddns_ionos: bool,
    /// The HTTPS port the internet sees, when the router maps it to --https-port
    /// [default: 443 with --domain, else --https-port].
    #[arg(long)]
    pub public_https_port: Option<u16>,
    /// Contact address for the certificate authority.
    #[arg(long)]
    pub email: Option<String>,
    /// Host name or address shown to publishers and viewers [default: the domain, else this
    /// machine's LAN address].
    #[arg(long)]
    pub host: Option<String>,
    /// The built streamedge nginx module [default: next to this program, else nginx's
    /// modules folder].
    #[arg(long)]
    pub module: Option<PathBuf>,
    #[arg(long, default_value_os_t = Nginx::default().binary)]
    pub nginx: PathBuf,
    /// nginx's prefix: its logs, pid file and temporary files [default: DIR].
    #[arg(long)]
    pub nginx_prefix: Option<PathBuf>,
    #[arg(long, default_value_t = Nginx::default().worker_processes)]
    pub worker_processes: String,
    /// Make this server an edge: a cache in front of the home server at --origin, serving
    /// its viewers (copy the origin's DATA/sign.keys into this server's DATA before `run`).
    #[arg(long, requires = "origin")]
    pub edge: bool,
    /// The home server an edge caches: https://home.example.org.
    #[arg(long, requires = "edge")]
    pub origin: Option<String>,
    /// Make this edge a shield: other edges use it as their --origin, and the home uplink
    /// carries each segment to it alone.
    #[arg(long, requires = "edge")]
    pub shield: bool,
    /// Replace an existing configuration (keys and data are kept).
    #[arg(long)]
    pub force: bool,
}

/// Where `--ddns-ionos` expects the IONOS API key, next to the configuration.
pub const IONOS_KEY_FILE: &str = "ionos-api.key";

/// The web player: assembled next to this program by `make build`, else installed.
fn default_web_root() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("web")))
        .filter(|p| p.join("index.html").exists())
        .unwrap_or_else(|| Nginx::default().web_root)
}

fn default_module() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("libngx_http_streamedge_module.so")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| Nginx::default().module)
}

/// This machine's first private IPv4 address, what another device on the LAN would use.
fn lan_address() -> Option<String> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|ifa| {
        let v4 = ifa.address?.as_sockaddr_in()?.ip();
        (v4.is_private()).then(|| v4.to_string())
    })
}

/// Makes a path absolute, or relative to `dir` when it lies inside it (movable folders).
fn store_path(dir: &Path, p: &Path) -> PathBuf {
    p.strip_prefix(dir)
        .map(|r| {
            if r.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                r.to_path_buf()
            }
        })
        .unwrap_or_else(|_| p.to_path_buf())
}

pub fn init(args: &InitArgs) -> Result<Config> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let dir = std::path::absolute(&args.dir)?;
    let path = dir.join("streamedge.toml");
    if path.exists() && !args.force {
        bail!(
            "{} already exists (use --force to replace it; keys and data are kept)",
            path.display()
        );
    }
    let data_dir = match &args.data_dir {
        Some(d) => std::path::absolute(d)?,
        None => dir.join("data"),
    };
    let public_host = args
        .host
        .clone()
        .or_else(|| args.domain.clone())
        .or_else(lan_address)
        .unwrap_or_else(|| "localhost".into());
    let module = match &args.module {
        Some(m) => std::path::absolute(m)?,
        None => default_module(),
    };
    let stored = Config {
        data_dir: store_path(&dir, &data_dir),
        public_host,
        ports: Ports {
            bind: args.bind.clone(),
            http: args.http_port,
            https: args.https_port,
            rtmp: args.rtmp_port,
            // An edge takes no sources: they publish to the origin.
            icecast: if args.edge { 0 } else { args.icecast_port },
            internal: args.internal_port,
            public_https: args.public_https_port.or(args.domain.as_ref().map(|_| 443)),
            ..Ports::default()
        },
        publish: Default::default(),
        ddns: args.ddns_ionos.then(|| crate::config::Ddns {
            domains: args.domain.iter().cloned().collect(),
            api_key_file: Some(IONOS_KEY_FILE.into()),
            ..Default::default()
        }),
        live: Default::default(),
        restream: Default::default(),
        fetch: Default::default(),
        library: Default::default(),
        telegram: None,
        edge: args.edge.then(|| crate::config::Edge {
            origin: args.origin.clone().unwrap_or_default(),
            shield: args.shield,
            ..Default::default()
        }),
        api: Default::default(),
        acme: crate::config::Acme {
            domains: args.domain.iter().cloned().collect(),
            email: args.email.clone(),
            ..Default::default()
        },
        nginx: Nginx {
            binary: args.nginx.clone(),
            prefix: match &args.nginx_prefix {
                Some(p) => store_path(&dir, &std::path::absolute(p)?),
                None => ".".into(),
            },
            conf: "nginx.conf".into(),
            module,
            web_root: default_web_root(),
            worker_processes: args.worker_processes.clone(),
            ..Nginx::default()
        },
    };
    // Write, then read back: the file is checked exactly as `run` will check it.
    write_atomic(
        &path,
        crate::config_file::render(&stored).as_bytes(),
        0o644,
        None,
    )?;
    let config = Config::load(&path)?;
    let user = crate::workers::worker_user(&config)?;
    crate::setup::prepare(&config, user.as_ref())?;
    render::write_nginx_conf(&config, user.as_ref())?;
    Ok(config)
}
