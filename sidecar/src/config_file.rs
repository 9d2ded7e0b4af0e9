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
    ("ports", "bind", "Address nginx listens on for all three ports.", None),
    ("ports", "http", "Plain HTTP (router: 80 -> this).", None),
    ("ports", "https", "HTTPS: player, HLS, API (router: 443 -> this).", None),
    ("ports", "rtmp", "RTMP ingest from OBS (router: 1935 -> this).", None),
    ("ports", "icecast", "Icecast source clients (Mixxx, butt, liquidsoap) publish audio here, mount /NAME, the stream key as password (router: 8000 -> this); 0: off.", None),
    ("ports", "internal", "Loopback-only port (127.0.0.1) for nginx-rtmp's callbacks, the sidecar's checks and stub_status; never mapped.", None),
    ("ports", "public_https", "The HTTPS port the internet sees, if the router maps another to `https`. Default: `https`.", Some("443")),
    ("ports", "redirect_to_https", "Send HTTP visitors to HTTPS (never ACME challenges) once acme.domains has a certificate.", None),
    ("publish", "ban_attempts", "Wrong stream keys from one address that ban it; 0: no bans.", None),
    ("publish", "ban_window", "Within how long those attempts count.", None),
    ("publish", "ban_time", "How long a ban lasts.", None),
    ("acme", "domains", "Names of the HTTPS certificate, stored under the first; `*.example.org` needs DNS-01; empty: a self-signed one.", None),
    ("acme", "email", "Contact address for the certificate authority. Default: none.", Some("\"you@example.org\"")),
    ("acme", "directory", "\"letsencrypt\", \"letsencrypt-staging\" or a CA's directory URL.", None),
    ("acme", "ca_root", "A PEM root to trust for a private CA's HTTPS. Default: none.", Some("\"/etc/ssl/my-ca.pem\"")),
    ("acme", "renew_check", "How often the certificate is looked at.", None),
    ("acme", "eab_kid", "External account binding key id, for CAs that require one. Default: none.", Some("\"kid\"")),
    ("acme", "eab_hmac_key", "External account binding HMAC key (base64url). Default: none.", Some("\"…\"")),
    ("acme", "challenge", "\"http-01\" (files on port 80), \"dns-01\" (TXT records through the IONOS DNS API with the [ddns] key; no port, wildcards) or \"auto\" (HTTP-01 when a self-check from outside reaches port 80, else DNS-01).", None),
    ("acme", "nameservers", "DNS servers asked for a zone's name servers and, for auto's self-check, the names' addresses (\"1.1.1.1:53\"); a zone whose name servers cannot be found is watched here; empty: the system's.", None),
    ("acme", "propagation_timeout", "How long DNS-01 waits for the zone's name servers to answer the TXT records.", None),
    ("acme", "self_check_port", "The port auto's self-check asks on each name: the CA's HTTP-01 port.", None),
    ("ddns", "provider", "Dynamic DNS provider: \"ionos\".", None),
    ("ddns", "mode", "\"dyndns\" (one update URL; run `streamedge ddns setup` once) or \"records\" (A/AAAA records through the DNS API).", None),
    ("ddns", "api_key", "The IONOS API key (`prefix.secret`); better in api_key_file. Default: none.", Some("\"prefix.secret\"")),
    ("ddns", "api_key_file", "A file (mode 0600) holding the API key. Default: none.", Some("\"ionos-api.key\"")),
    ("ddns", "api_base", "The IONOS API.", None),
    ("ddns", "domains", "Names that follow this home's address (at least one).", Some("[\"home.example.org\"]")),
    ("ddns", "edge_domains", "Public names that point at the edges' addresses (records mode), while domains follow this home.", Some("[\"tv.example.org\"]")),
    ("ddns", "edges", "The edges' addresses, IPv4 and IPv6, for edge_domains.", Some("[\"203.0.113.7\", \"2001:db8::7\"]")),
    ("ddns", "ipv4", "Keep A records.", None),
    ("ddns", "ipv6", "Keep AAAA records.", None),
    ("ddns", "ip_sources_v4", "Services that echo the public IPv4 address; two must agree.", None),
    ("ddns", "ip_sources_v6", "The same for IPv6.", None),
    ("ddns", "nameservers", "DNS servers asked what the names resolve to (\"1.1.1.1:53\"); empty: the system's.", None),
    ("ddns", "interval", "How often the address is checked.", None),
    ("ddns", "cooldown", "After an update, how long DNS gets to show it.", None),
    ("ddns", "requests_per_minute", "IONOS's limit, never exceeded.", None),
    ("ddns", "ttl", "TTL of records in records mode.", None),
    ("live", "transcode", "\"on\": while a stream is live, one ffmpeg makes an adaptive-bitrate ladder beside the source rendition, and /live/NAME/ plays it; \"off\": the source only.", None),
    ("live", "fragment", "Length of a live segment (nginx-rtmp's hls_fragment and the ladder's): shorter means less delay, when the publisher sends a keyframe at least this often (OBS: Keyframe Interval).", None),
    ("live", "ladder", "Heights of the encoded rungs; only those below the source's are made.", None),
    ("live", "ladders", "Other ladders for some stream names.", Some("{ alice = [480] }")),
    ("live", "record", "\"on\": every live stream is recorded into the library (private until published); \"off\": only names with `streamedge keys record NAME on`.", None),
    ("live", "record_grace", "A publisher back within this long continues the same recording; then it becomes a library item.", None),
    ("live", "feed", "Loopback address nginx-rtmp pushes each live stream to (RTMP), so the ladder starts from the publish, not from nginx-rtmp's first HLS fragment.", None),
    ("live", "record_min_free_mb", "Free space, MiB, below which recordings pause with a log line, so they never fill the disk.", None),
    ("restream", "grace", "A publisher back within this long finds its restreams still connected; meanwhile the destinations get the slate.", None),
    ("restream", "slate", "The \"be right back\" picture (PNG or JPEG) destinations get while the publisher is away. Default: a generated one.", Some("\"brb.png\"")),
    ("restream", "ca_file", "PEM certificates trusted for rtmps:// destinations beside the system's. Default: none.", Some("\"/etc/ssl/my-ca.pem\"")),
    ("fetch", "concurrency", "Fetch jobs that run at once; the rest queue.", None),
    ("fetch", "allow_private_addresses", "Allow fetch and job webhook URLs on this machine, its LAN or link-local addresses.", None),
    ("fetch", "min_free_mb", "Free space data_dir keeps, MiB: new jobs are refused (507) with less, and a running job is stopped (its tools ended, its scratch removed) when it falls below.", None),
    ("fetch", "webhook", "URL that receives each job's final JSON (POST); yours, so it may be on your LAN. Default: none.", Some("\"https://example.org/hook\"")),
    ("fetch", "ytdlp", "The yt-dlp to run. Default: the project's virtual environment, else PATH.", Some("\"/opt/streamedge/venv/bin/yt-dlp\"")),
    ("telegram", "token_file", "A file (mode 0600) holding the bot's token from @BotFather; never logged.", Some("\"telegram-bot.token\"")),
    ("telegram", "allow", "Telegram user ids that may use the bot (it tells others their id as it refuses them).", Some("[123456789]")),
    ("telegram", "api_base", "The Telegram Bot API's address.", None),
    ("telegram", "poll_timeout", "How long one long-polling `getUpdates` waits for messages.", None),
    ("telegram", "progress_every", "A job's progress message is edited at most this often.", None),
    ("telegram", "link_ttl", "How long the links the bot gives for private items and streams work.", None),
    ("library", "storage", "Where items are kept: \"local\" (DATA/vod) or \"s3\" (an S3-compatible bucket: Garage, MinIO, AWS; each item uploaded once complete, its meta.json last, and served from there by nginx, on the origin and on edges with the same settings).", None),
    ("library", "endpoint", "The bucket's store, a scheme, host and port (\"http://127.0.0.1:3900\"); path-style requests.", Some("\"http://127.0.0.1:3900\"")),
    ("library", "region", "The store's region (Garage: \"garage\").", None),
    ("library", "bucket", "The bucket; it needs no public access.", Some("\"library\"")),
    ("library", "credentials_file", "A file (mode 0600) with the bucket's key: aws_access_key_id and aws_secret_access_key lines. Default: none.", Some("\"s3.credentials\"")),
    ("edge", "origin", "This server is an edge, a cache in front of the home server at this URL (https://home.example.org).", Some("\"https://home.example.org\"")),
    ("edge", "cache_max_mb", "The most the edge's cache of segments and library files holds, MiB (live playlists have a small cache of their own).", None),
    ("edge", "shield", "Other edges use this one as their origin: it answers them private content when they show their credential, and the home uplink carries each segment once.", None),
    ("edge", "origin_ca", "A PEM file of the CAs to trust for the origin's HTTPS (a private CA's certificate); unset: the system's. Default: none.", Some("\"origin-ca.pem\"")),
    ("edge", "nameservers", "DNS servers asked for the origin's addresses (\"1.1.1.1:53\"); empty: the system's.", None),
    ("edge", "resolve_every", "How often the origin's name is looked up again: when the home's address changes, nginx is reloaded with the new one.", None),
    ("api", "listen", "The sidecar's control API, on loopback; nginx proxies /api/ to it.", None),
    ("nginx", "supervise", "`streamedge run` starts nginx and keeps it running.", None),
    ("nginx", "binary", "The nginx to run.", None),
    ("nginx", "prefix", "nginx's prefix: logs, pid file, temporary files.", None),
    ("nginx", "conf", "The nginx.conf streamedge renders (do not edit it: edit this file).", None),
    ("nginx", "module", "The streamedge nginx module.", None),
    ("nginx", "rtmp_module", "nginx-rtmp.", None),
    ("nginx", "web_root", "The web player's files.", None),
    ("nginx", "user", "User of nginx's workers when it starts as root; unset: \"www-data\".", Some("\"www-data\"")),
    ("nginx", "worker_processes", "nginx's worker processes: a number, or \"auto\" for one per core.", None),
];

const SECTIONS: &[&str] = &[
    "", "ports", "publish", "acme", "ddns", "live", "restream", "fetch", "library", "telegram",
    "edge", "api", "nginx",
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

/// Every section's defaults, as `config.rs` defines them: the only place they are written.
fn defaults() -> toml::Table {
    use crate::config::{
        Acme, Api, Ddns, Edge, Fetch, Library, Live, Nginx, Ports, Publish, Restream, Telegram,
    };
    fn table<T: serde::Serialize>(v: T) -> toml::Value {
        toml::Value::Table(toml::Table::try_from(v).expect("the defaults serialize"))
    }
    toml::Table::from_iter([
        ("ports".to_string(), table(Ports::default())),
        ("publish".to_string(), table(Publish::default())),
        ("acme".to_string(), table(Acme::default())),
        ("ddns".to_string(), table(Ddns::default())),
        ("live".to_string(), table(Live::default())),
        ("restream".to_string(), table(Restream::default())),
        ("fetch".to_string(), table(Fetch::default())),
        ("library".to_string(), table(Library::default())),
        ("telegram".to_string(), table(Telegram::default())),
        ("edge".to_string(), table(Edge::default())),
        ("api".to_string(), table(Api::default())),
        ("nginx".to_string(), table(Nginx::default())),
    ])
}

/// Options a section needs set: their empty defaults are no defaults to show.
const REQUIRED: &[(&str, &str)] = &[
    ("ddns", "domains"),
    ("telegram", "allow"),
    ("edge", "origin"),
    ("library", "endpoint"),
    ("library", "bucket"),
];

/// Sections that are off unless written, and how to turn each on.
const OPTIONAL: &[(&str, &str)] = &[
    ("ddns", "`streamedge init --ddns-ionos` writes it"),
    ("telegram", "docs/telegram.md"),
    ("edge", "`streamedge init --edge --origin URL` writes it"),
];

/// The default of `section.key`, if it has one (options without one are unset).
fn default_of<'a>(defaults: &'a toml::Table, section: &str, key: &str) -> Option<&'a toml::Value> {
    if REQUIRED.contains(&(section, key)) {
        return None;
    }
    defaults.get(section)?.as_table()?.get(key)
}

/// The whole file.
pub fn render(config: &Config) -> String {
    let table = toml::Table::try_from(config).expect("a configuration always serializes");
    // Sections that are off are shown with their defaults, commented out.
    let defaults = defaults();
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
                None => {
                    let how = OPTIONAL
                        .iter()
                        .find(|o| o.0 == *section)
                        .map_or("", |o| o.1);
                    out.push_str(&format!("# [{section}]  (off; {how})\n"))
                }
            }
        }
        for (_, key, text, example) in DOCS.iter().filter(|d| d.0 == *section) {
            match default_of(&defaults, section, key) {
                Some(d) => comment(&mut out, &format!("{text} Default {d}."), ""),
                None => comment(&mut out, text, ""),
            }
            let default = OPTIONAL
                .iter()
                .any(|o| o.0 == *section)
                .then(|| default_of(&defaults, section, key))
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

    /// Defaults are written once, in `config.rs`: the file's comments take them from there,
    /// and docs/configuration.md says the same (each default cell that is one literal).
    #[test]
    fn defaults_are_written_once() {
        let defaults = defaults();
        for (section, key, text, _) in DOCS {
            if default_of(&defaults, section, key).is_some() {
                assert!(
                    !text.contains("Default"),
                    "{section}.{key} repeats its default"
                );
            }
        }
        let reference = include_str!("../../docs/configuration.md");
        let (mut checked, mut wrong) = (0, Vec::new());
        for row in reference.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = row.split(" | ").collect();
            let keys: Vec<&str> = cells[0].trim_start_matches("| ").split(", ").collect();
            let values: Vec<&str> = cells[1].split(", ").collect();
            for (i, key) in keys.iter().enumerate() {
                let Some((section, key)) = key.trim_matches('`').split_once('.') else {
                    continue;
                };
                let (Some(d), Some(cell)) = (default_of(&defaults, section, key), values.get(i))
                else {
                    continue;
                };
                // A cell such as `8080` or `"10m"`, possibly followed by words in brackets.
                let Some(literal) = cell
                    .strip_prefix('`')
                    .and_then(|c| c.split_once('`'))
                    .map(|(l, _)| l)
                else {
                    continue;
                };
                if d.is_array() && literal != "[]" {
                    continue;
                }
                if literal != d.to_string() {
                    wrong.push(format!("{section}.{key}: `{literal}`, not `{d}`"));
                }
                checked += 1;
            }
        }
        assert!(wrong.is_empty(), "docs/configuration.md: {wrong:#?}");
        assert!(checked >= 25, "only {checked} defaults compared");
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
