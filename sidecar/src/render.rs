//! Renders nginx's configuration from `streamedge.toml` and the templates in `nginx-conf/`,
//! and prepares what that configuration points at (folders, a placeholder certificate).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::config::Config;
use crate::fsutil::{ensure_dir, write_atomic, Owner};

const NGINX_CONF: &str = include_str!("../../nginx-conf/nginx.conf.in");
const SITE_CONF: &str = include_str!("../../nginx-conf/site.conf.in");

/// Fills `{{name}}` placeholders; a placeholder without a value is an error, not a blank.
pub fn fill(template: &str, values: &[(&str, String)]) -> Result<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            bail!("unclosed placeholder in template");
        };
        let name = after[..end].trim();
        let Some((_, value)) = values.iter().find(|(k, _)| *k == name) else {
            bail!("template placeholder {{{{{name}}}}} has no value");
        };
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The user nginx workers run as, when nginx starts as root; `None` when it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerUser {
    pub name: String,
    pub owner: Owner,
}

/// Decides the worker user: the configured one (default `www-data`) if it can reach the data
/// directory; otherwise root, with a warning, since workers must read keys and write HLS.
pub fn worker_user(config: &Config) -> Result<Option<WorkerUser>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    let wanted = config
        .nginx
        .user
        .clone()
        .unwrap_or_else(|| "www-data".into());
    let user = nix::unistd::User::from_name(&wanted)
        .with_context(|| format!("cannot look up user \"{wanted}\""))?;
    let Some(user) = user else {
        bail!("nginx.user \"{wanted}\" does not exist on this machine");
    };
    let owner = Owner {
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    };
    if let Some(blocked) = unreachable_ancestor(&config.data_dir, owner) {
        tracing::warn!(
            "nginx workers run as root: user \"{wanted}\" cannot enter {}; \
             choose a data_dir outside it to run them unprivileged",
            blocked.display()
        );
        return Ok(Some(WorkerUser {
            name: "root".into(),
            owner: Owner { uid: 0, gid: 0 },
        }));
    }
    Ok(Some(WorkerUser {
        name: wanted,
        owner,
    }))
}

/// The first existing folder above `path` that `owner` may not enter.
fn unreachable_ancestor(path: &Path, owner: Owner) -> Option<PathBuf> {
    path.ancestors().skip(1).find_map(|dir| {
        let m = std::fs::metadata(dir).ok()?;
        let mode = m.mode();
        let can = if m.uid() == owner.uid {
            mode & 0o100 != 0
        } else if m.gid() == owner.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        (!can).then(|| dir.to_path_buf())
    })
}

/// Paths of the placeholder certificate nginx uses until a real one exists.
pub fn placeholder_cert(config: &Config) -> (PathBuf, PathBuf) {
    let dir = config.data_dir.join("certs/placeholder");
    (dir.join("fullchain.pem"), dir.join("privkey.pem"))
}

/// Writes a self-signed certificate for `public_host` so HTTPS always starts.
fn ensure_placeholder_cert(config: &Config) -> Result<()> {
    let (cert_path, key_path) = placeholder_cert(config);
    if cert_path.exists() && key_path.exists() {
        return Ok(());
    }
    let names = vec![config.public_host.clone(), "localhost".to_string()];
    let cert = rcgen::generate_simple_self_signed(names)
        .context("cannot make a placeholder certificate")?;
    let dir = cert_path.parent().expect("has a parent");
    ensure_dir(dir, 0o700, None)?;
    write_atomic(
        &key_path,
        cert.signing_key.serialize_pem().as_bytes(),
        0o600,
        None,
    )?;
    write_atomic(&cert_path, cert.cert.pem().as_bytes(), 0o644, None)?;
    Ok(())
}

/// Creates the data directory layout of ARCHITECTURE.md and nginx's own folders.
pub fn prepare_dirs(config: &Config, user: Option<&WorkerUser>) -> Result<()> {
    let owner = user.map(|u| u.owner);
    let data = &config.data_dir;
    ensure_dir(data, 0o755, None)?;
    // Written by nginx workers (HLS) or read by them (library, keys): owned by the worker user.
    for sub in ["live", "vod"] {
        ensure_dir(&data.join(sub), 0o755, owner)?;
    }
    // Read by nginx's master only, which runs as the sidecar's user.
    ensure_dir(&data.join("certs"), 0o755, None)?;
    // The sidecar's own: scratch space, job records, DNS state.
    for sub in [".work", "jobs", "ddns"] {
        ensure_dir(&data.join(sub), 0o700, None)?;
    }
    // ACME: the account stays private, but nginx's workers must reach the challenge files.
    ensure_dir(&data.join("acme"), 0o711, None)?;
    ensure_dir(
        &data.join("acme/challenge/.well-known/acme-challenge"),
        0o755,
        None,
    )?;
    for sub in ["acme/challenge", "acme/challenge/.well-known"] {
        ensure_dir(&data.join(sub), 0o755, None)?;
    }
    let prefix = &config.nginx.prefix;
    ensure_dir(prefix, 0o755, None)?;
    ensure_dir(&prefix.join("logs"), 0o755, None)?;
    ensure_dir(&prefix.join("tmp"), 0o700, owner)?;
    if let Some(dir) = config.nginx.conf.parent() {
        ensure_dir(dir, 0o755, None)?;
    }
    crate::sign::ensure_secrets(config)?;
    crate::api::ensure_token(config)?;
    ensure_placeholder_cert(config)?;
    crate::certs::ensure_placeholder(config)
}

/// Descriptors each nginx worker opens at most, and connections it takes: what the system
/// lets this process (and so the nginx it starts) have, up to 65,536 descriptors, with two
/// per connection (a proxied request holds two sockets).
fn descriptor_limits() -> (u64, u64) {
    use nix::sys::resource::{getrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024));
    let files = hard.clamp(1024, 65_536);
    (files, (files / 2).min(16_384))
}

/// Renders `nginx.conf` and `site.conf` next to it.
pub fn write_nginx_conf(config: &Config, user: Option<&WorkerUser>) -> Result<()> {
    let (nginx, site) = render_nginx_conf(config, user)?;
    let conf_dir = config.nginx.conf.parent().unwrap_or(Path::new("/"));
    write_atomic(&conf_dir.join("site.conf"), site.as_bytes(), 0o644, None)?;
    write_atomic(&config.nginx.conf, nginx.as_bytes(), 0o644, None)
}

/// nginx.conf and site.conf as text, without writing them (so tests can read every value).
pub(crate) fn render_nginx_conf(
    config: &Config,
    user: Option<&WorkerUser>,
) -> Result<(String, String)> {
    let values = nginx_values(config, user);
    Ok((fill(NGINX_CONF, &values)?, fill(SITE_CONF, &values)?))
}

/// Every placeholder's value, from the configuration (checked by `Config::load`).
pub(crate) fn nginx_values(
    config: &Config,
    user: Option<&WorkerUser>,
) -> Vec<(&'static str, String)> {
    let listen = |port: u16| match config.ports.bind.as_str() {
        "0.0.0.0" => port.to_string(),
        b if b.contains(':') => format!("[{b}]:{port}"),
        b => format!("{b}:{port}"),
    };
    let (cert, key) = crate::certs::nginx_pair(config);
    let (files, connections) = descriptor_limits();
    let conf_dir = config.nginx.conf.parent().unwrap_or(Path::new("/"));
    vec![
        (
            "rtmp_module",
            config.nginx.rtmp_module.display().to_string(),
        ),
        (
            "streamedge_module",
            config.nginx.module.display().to_string(),
        ),
        (
            "user",
            match user {
                Some(u) => format!("user {};", u.name),
                None => "# nginx was not started as root: workers run as the same user.".into(),
            },
        ),
        ("worker_processes", config.nginx.worker_processes.clone()),
        ("worker_rlimit_nofile", files.to_string()),
        ("worker_connections", connections.to_string()),
        ("publish_ban", config.publish.ban_parameters()),
        ("prefix", config.nginx.prefix.display().to_string()),
        ("conf_dir", conf_dir.display().to_string()),
        ("data_dir", config.data_dir.display().to_string()),
        ("http_listen", listen(config.ports.http)),
        ("https_listen", listen(config.ports.https)),
        ("rtmp_listen", listen(config.ports.rtmp)),
        (
            "internal_listen",
            format!("127.0.0.1:{}", config.ports.internal),
        ),
        ("internal_port", config.ports.internal.to_string()),
        ("api_listen", config.api.listen.clone()),
        ("web_root", config.nginx.web_root.display().to_string()),
        (
            "redirect_to_https",
            u8::from(config.ports.redirect_to_https && config.acme.enabled()).to_string(),
        ),
        (
            "https_port_suffix",
            match config.ports.public_https.unwrap_or(config.ports.https) {
                443 => String::new(),
                p => format!(":{p}"),
            },
        ),
        ("ssl_certificate", cert.display().to_string()),
        ("secrets_file", config.secrets_file().display().to_string()),
        ("ssl_certificate_key", key.display().to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_every_placeholder_or_says_which_is_missing() {
        let v = [("a", "1".to_string()), ("b", "two".to_string())];
        assert_eq!(fill("x {{a}} y {{ b }}{{a}}", &v).unwrap(), "x 1 y two1");
        let e = fill("{{c}}", &v).unwrap_err().to_string();
        assert_eq!(e, "template placeholder {{c}} has no value");
        assert!(fill("{{a", &v).is_err());
    }

    #[test]
    fn shipped_templates_have_no_unknown_placeholders() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("streamedge.toml");
        std::fs::write(&p, "data_dir = \"data\"\npublic_host = \"localhost\"\n").unwrap();
        let config = Config::load(&p).unwrap();
        write_nginx_conf(&config, None).unwrap();
        let text = std::fs::read_to_string(&config.nginx.conf).unwrap();
        assert!(!text.contains("{{"));
        assert!(text.contains(&format!("streamedge_data {};", config.data_dir.display())));
        assert!(text.contains("error_log") && text.contains("notice;"));
    }

    #[test]
    fn finds_folders_a_user_cannot_enter() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let closed = dir.path().join("closed");
        std::fs::create_dir_all(closed.join("data")).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
        let stranger = Owner {
            uid: 54321,
            gid: 54321,
        };
        assert_eq!(
            unreachable_ancestor(&closed.join("data"), stranger),
            Some(closed.clone())
        );
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(unreachable_ancestor(&closed.join("data"), stranger), None);
    }
}
