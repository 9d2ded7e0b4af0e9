//! The `streamedge.toml` that `init` writes: every option, with what it does and its
//! default, so the file is its own reference. Options left unset appear commented out.

use crate::config::Config;

/// (section, key, what it does, example for an unset option).
type Doc = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
);

const DOCS: &[Doc] = &[
    ("", "data_dir", "Data shared with nginx: keys, live HLS, the library, certificates, job records.", None),
    ("", "public_host", "The name or address publishers and viewers use; shown in OBS settings and links.", None),
    ("ports", "bind", "Address nginx listens on for all three ports. Default \"0.0.0.0\".", None),
    ("ports", "http", "Plain HTTP (router: 80 -> this). Default 8080.", None),
    ("ports", "https", "HTTPS: player, HLS, API (router: 443 -> this). Default 4433.", None),
    ("ports", "rtmp", "RTMP ingest from OBS (router: 1935 -> this). Default 1935.", None),
    ("ports", "internal", "Loopback-only port (127.0.0.1) for nginx-rtmp's callbacks, the sidecar's checks and stub_status; never mapped. Default 8088.", None),
    ("ports", "public_https", "The HTTPS port the internet sees, if the router maps another to `https`. Default: `https`.", Some("443")),
    ("ports", "redirect_to_https", "Send HTTP visitors to HTTPS (never ACME challenges) once acme.domains has a certificate. Default true.", None),
    ("publish", "ban_attempts", "Wrong stream keys from one address that ban it; 0: no bans. Default 5.", None),
    ("publish", "ban_window", "Within how long those attempts count. Default \"10m\".", None),
    ("publish", "ban_time", "How long a ban lasts. Default \"15m\".", None),
    ("acme", "domains", "Names of the HTTPS certificate (ACME HTTP-01); empty: a self-signed one. Default [].", None),
    ("acme", "email", "Contact address for the certificate authority. Default: none.", Some("\"you@example.org\"")),
    ("acme", "directory", "\"letsencrypt\", \"letsencrypt-staging\" or a CA's directory URL. Default \"letsencrypt\".", None),
    ("acme", "ca_root", "A PEM root to trust for a private CA's HTTPS. Default: none.", Some("\"/etc/ssl/my-ca.pem\"")),
    ("acme", "renew_check", "How often the certificate is looked at. Default \"12h\".", None),
    ("acme", "eab_kid", "External account binding key id, for CAs that require one. Default: none.", Some("\"kid\"")),
    ("acme", "eab_hmac_key", "External account binding HMAC key (base64url). Default: none.", Some("\"…\"")),
    ("ddns", "provider", "Dynamic DNS provider: \"ionos\".", None),
    ("ddns", "mode", "\"dyndns\" (one update URL; run `streamedge ddns setup` once) or \"records\" (A/AAAA records through the DNS API). Default \"dyndns\".", None),
    ("ddns", "api_key", "The IONOS API key (`prefix.secret`); better in api_key_file. Default: none.", Some("\"prefix.secret\"")),
    ("ddns", "api_key_file", "A file (mode 0600) holding the API key. Default: none.", Some("\"ionos-api.key\"")),
    ("ddns", "api_base", "The IONOS API. Default \"https://api.hosting.ionos.com\".", None),
    ("ddns", "domains", "Names that follow this home's address.", None),
    ("ddns", "ipv4", "Keep A records. Default true.", None),
    ("ddns", "ipv6", "Keep AAAA records. Default false.", None),
    ("ddns", "ip_sources_v4", "Services that echo the public IPv4 address; two must agree.", None),
    ("ddns", "ip_sources_v6", "The same for IPv6.", None),
    ("ddns", "nameservers", "DNS servers asked what the names resolve to (\"1.1.1.1:53\"); empty: the system's. Default [].", None),
    ("ddns", "interval", "How often the address is checked. Default \"1m\".", None),
    ("ddns", "cooldown", "After an update, how long DNS gets to show it. Default \"10m\".", None),
    ("ddns", "requests_per_minute", "IONOS's limit, never exceeded. Default 2.", None),
    ("ddns", "ttl", "TTL of records in records mode. Default 60.", None),
    ("fetch", "concurrency", "Fetch jobs that run at once; the rest queue. Default 1.", None),
    ("fetch", "allow_private_addresses", "Allow fetch and job webhook URLs on this machine, its LAN or link-local addresses. Default false.", None),
    ("fetch", "min_free_mb", "Free space data_dir keeps, MiB: new jobs are refused (507) with less, and a running job is stopped (its tools ended, its scratch removed) when it falls below. Default 1024.", None),
    ("fetch", "webhook", "URL that receives each job's final JSON (POST); yours, so it may be on your LAN. Default: none.", Some("\"https://example.org/hook\"")),
    ("fetch", "ytdlp", "The yt-dlp to run. Default: the project's virtual environment, else PATH.", Some("\"/opt/streamedge/venv/bin/yt-dlp\"")),
    ("api", "listen", "The sidecar's control API, on loopback; nginx proxies /api/ to it. Default \"127.0.0.1:8089\".", None),
    ("nginx", "supervise", "`streamedge run` starts nginx and keeps it running. Default true.", None),
    ("nginx", "binary", "Default \"/usr/sbin/nginx\".", None),
    ("nginx", "prefix", "nginx's prefix: logs, pid file, temporary files. Default: this folder.", None),
    ("nginx", "conf", "The nginx.conf streamedge renders (do not edit it: edit this file). Default \"nginx.conf\".", None),
    ("nginx", "module", "The streamedge nginx module.", None),
    ("nginx", "rtmp_module", "nginx-rtmp. Default \"/usr/lib/nginx/modules/ngx_rtmp_module.so\".", None),
    ("nginx", "web_root", "The web player's files.", None),
    ("nginx", "user", "User of nginx's workers when it starts as root. Default \"www-data\".", Some("\"www-data\"")),
    ("nginx", "worker_processes", "Default \"auto\".", None),
];

const SECTIONS: &[&str] = &[
    "", "ports", "publish", "acme", "ddns", "fetch", "api", "nginx",
];

fn comment(out: &mut String, text: &str, indent: &str) {
    // Wrapped at about 90 columns, as the rest of the file.
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.len() + word.len() > 86 {
            out.push_str(&format!("{indent}# {line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&format!("{indent}# {line}\n"));
}

/// The whole file.
pub fn render(config: &Config) -> String {
    let table = toml::Table::try_from(config).expect("a configuration always serializes");
    // Sections that are off are shown with their defaults, commented out.
    let ddns_defaults =
        toml::Table::try_from(crate::config::Ddns::default()).expect("the defaults serialize");
    let mut out = String::from(
        "# streamedge configuration. `streamedge run` renders nginx.conf from this file:\n\
         # change settings here, not there. Relative paths are relative to this file's folder.\n",
    );
    for section in SECTIONS {
        let values = match *section {
            "" => Some(&table),
            s => table.get(s).and_then(|v| v.as_table()),
        };
        out.push('\n');
        if !section.is_empty() {
            match values {
                Some(_) => out.push_str(&format!("[{section}]\n")),
                None => out.push_str(&format!(
                    "# [{section}]  (off; `streamedge init --ddns-ionos` writes it)\n"
                )),
            }
        }
        for (_, key, text, example) in DOCS.iter().filter(|d| d.0 == *section) {
            comment(&mut out, text, "");
            let default = (*section == "ddns")
                .then(|| ddns_defaults.get(*key))
                .flatten();
            match (values.and_then(|t| t.get(*key)), default) {
                (Some(v), _) if !(section.is_empty() && v.is_table()) => {
                    out.push_str(&format!("{key} = {v}\n"))
                }
                (_, Some(d)) if values.is_none() => out.push_str(&format!("# {key} = {d}\n")),
                _ => out.push_str(&format!("# {key} = {}\n", example.unwrap_or("…"))),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/configuration.md has a row for every option.
    #[test]
    fn the_reference_lists_every_option() {
        let reference = include_str!("../../docs/configuration.md");
        for (section, key, _, _) in DOCS {
            let name = if section.is_empty() {
                key.to_string()
            } else {
                format!("{section}.{key}")
            };
            assert!(
                reference.contains(&format!("`{name}`")),
                "docs/configuration.md does not describe {name}"
            );
        }
    }

    /// Every option of the configuration is documented, and the file reads back as written.
    #[test]
    fn documents_every_option_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("streamedge.toml");
        std::fs::write(
            &p,
            "data_dir = \"d\"\npublic_host = \"h\"\n[ddns]\ndomains = [\"a.example\"]\napi_key = \"p.s\"\n",
        )
        .unwrap();
        let mut c = Config::load(&p).unwrap();
        c.acme.email = Some("a@b.c".into());
        c.acme.ca_root = Some("/x".into());
        c.acme.eab_kid = Some("k".into());
        c.acme.eab_hmac_key = Some("aGk".into());
        c.fetch.webhook = Some("https://h/".into());
        c.fetch.ytdlp = Some("/y".into());
        c.nginx.user = Some("u".into());
        c.ports.public_https = Some(443);
        c.ddns.as_mut().unwrap().api_key_file = Some("/k".into());
        let table = toml::Table::try_from(&c).unwrap();
        for (section, value) in &table {
            match value.as_table() {
                Some(t) => {
                    for key in t.keys() {
                        assert!(
                            DOCS.iter().any(|d| d.0 == section && d.1 == key),
                            "[{section}] {key} is not documented"
                        );
                    }
                }
                None => assert!(DOCS.iter().any(|d| d.0.is_empty() && d.1 == section)),
            }
        }
        let text = render(&c);
        std::fs::write(&p, &text).unwrap();
        let back = Config::load(&p).unwrap();
        assert_eq!(back.fetch.webhook.as_deref(), Some("https://h/"));
        assert_eq!(back.ports.public_https, Some(443));
        assert!(text.contains(
            "# Fetch jobs that run at once; the rest queue. Default 1.\nconcurrency = 1\n"
        ));

        // Unset options and sections stay visible, commented out.
        let plain = Config::load(&{
            std::fs::write(&p, "data_dir = \"d\"\npublic_host = \"h\"\n").unwrap();
            p.clone()
        })
        .unwrap();
        let text = render(&plain);
        assert!(
            text.contains("# webhook = \"https://example.org/hook\"\n"),
            "{text}"
        );
        assert!(text.contains("# [ddns]"));
        std::fs::write(&p, &text).unwrap();
        assert!(Config::load(&p).unwrap().ddns.is_none());
    }
}
