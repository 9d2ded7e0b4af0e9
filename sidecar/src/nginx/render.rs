//! Renders nginx's configuration from `streamedge.toml` and the templates in `nginx-conf/`.
//! What the configuration points at (folders, secrets, a placeholder certificate) is made
//! by `setup`, for the commands that start a server.

use std::path::Path;

use anyhow::{bail, Result};

use crate::config::Config;
use crate::fsutil::write_atomic;
use crate::workers::WorkerUser;

const NGINX_CONF: &str = include_str!("../../../nginx-conf/nginx.conf.in");
const SITE_CONF: &str = include_str!("../../../nginx-conf/site.conf.in");
const EDGE_CONF: &str = include_str!("../../../nginx-conf/edge.conf.in");
const EDGE_SITE_CONF: &str = include_str!("../../../nginx-conf/edge-site.conf.in");
const BUCKET_CONF: &str = include_str!("../../../nginx-conf/bucket.conf.in");
const BUCKET_PROXY: &str = include_str!("../../../nginx-conf/bucket-proxy.conf.in");
const VOD_LOCAL: &str = include_str!("../../../nginx-conf/vod-local.conf.in");
const VOD_BUCKET: &str = include_str!("../../../nginx-conf/vod-bucket.conf.in");
const EDGE_VOD_ORIGIN: &str = include_str!("../../../nginx-conf/edge-vod-origin.conf.in");
const EDGE_VOD_BUCKET: &str = include_str!("../../../nginx-conf/edge-vod-bucket.conf.in");

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
    let mut values = nginx_values(config, user);
    let bucket = config.library.bucket()?;
    if let Some(b) = &bucket {
        let host = b.endpoint.host_str().unwrap_or_default();
        values.extend([
            (
                "bucket_endpoint",
                b.endpoint.as_str().trim_end_matches('/').to_string(),
            ),
            ("bucket_name", b.bucket.clone()),
            ("bucket_region", b.region.clone()),
            (
                "bucket_credentials",
                b.credentials_file.display().to_string(),
            ),
            ("bucket_address", b.address()),
            ("bucket_scheme", b.endpoint.scheme().to_string()),
            (
                "bucket_host",
                match b.endpoint.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host.to_string(),
                },
            ),
            (
                "bucket_tls_name",
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            ),
        ]);
        let proxy = fill(BUCKET_PROXY, &values)?;
        values.push(("bucket_proxy", proxy.trim_end().to_string()));
        values.push(("library_bucket", fill(BUCKET_CONF, &values)?));
    } else {
        values.push((
            "library_bucket",
            "    # The library is on this disk (library.storage = \"local\").\n".to_string(),
        ));
    }
    let Some(edge) = &config.edge else {
        let vod = fill(
            if bucket.is_some() {
                VOD_BUCKET
            } else {
                VOD_LOCAL
            },
            &values,
        )?;
        values.push(("vod_locations", vod));
        return Ok((fill(NGINX_CONF, &values)?, fill(SITE_CONF, &values)?));
    };
    let (scheme, address, name, host) = edge.origin_parts()?;
    let port = address
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or(443);
    values.extend([
        ("origin", edge.origin.clone()),
        ("edge_origin_scheme", scheme),
        (
            "edge_origin_servers",
            super::origin::servers(config, &address, port),
        ),
        (
            "edge_origin_ca",
            edge.origin_ca
                .as_ref()
                .map_or("/etc/ssl/certs/ca-certificates.crt".into(), |p| {
                    p.display().to_string()
                }),
        ),
        ("edge_origin_name", name),
        ("edge_origin_host", host),
        (
            "edge_cache_dir",
            config.nginx.prefix.join("cache").display().to_string(),
        ),
        ("edge_cache_max", format!("{}m", edge.cache_max_mb)),
        (
            "edge_role",
            if edge.shield { "shield" } else { "edge" }.to_string(),
        ),
        // A live playlist for a second: nginx counts whole seconds, so one to two, which is
        // no more than half a segment from live.fragment 4s on.
        ("edge_playlist_valid", "1s".to_string()),
    ]);
    let vod = if bucket.is_some() {
        EDGE_VOD_BUCKET
    } else {
        EDGE_VOD_ORIGIN
    };
    let vod = fill(vod, &values)?;
    values.push(("vod_locations", vod));
    Ok((fill(EDGE_CONF, &values)?, fill(EDGE_SITE_CONF, &values)?))
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
    let layout = config.layout();
    let (cert, key) = layout.served_cert(config.acme.domains.first().map(String::as_str));
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
        ("data_dir", layout.root().display().to_string()),
        ("live_dir", layout.live().display().to_string()),
        ("live_fragment", config.live.fragment.to_string()),
        ("live_feed", config.live.feed.to_string()),
        (
            "acme_challenge_root",
            layout.acme_challenge_root().display().to_string(),
        ),
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
        ("secrets_file", layout.secrets_file().display().to_string()),
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
        // The feed the ladder reads (live::feed::APP is "feed").
        assert!(text.contains("push rtmp://127.0.0.1:1936/feed;"));
    }
}
