//! Property tests: `streamedge.toml` of any text never panics, and no configuration it
//! accepts can put nginx syntax into nginx.conf through a value.

use std::path::Path;

use proptest::prelude::*;

use crate::config::Config;
use crate::fsutil::Owner;
use crate::library::transcode::{parse_probe, Meta};
use crate::nginx::render::{fill, nginx_values, render_nginx_conf};
use crate::workers::WorkerUser;

/// What ends a directive, opens or closes a block, starts a comment or a variable.
const SYNTAX: [char; 6] = [';', '{', '}', '\n', '$', '#'];

/// Strings that are good values, near misses, and injection attempts.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "auto",
            "4",
            "0",
            "01",
            "1025",
            "www-data",
            "-x",
            "127.0.0.1:8089",
            "[::1]:8089",
            "0.0.0.0",
            "::",
            "10m",
            "1h30m",
            "15m",
            "data",
            "/var/lib/streamedge",
            "example.org",
            "a.example.org",
            "letsencrypt",
            "12h",
        ])
        .prop_map(str::to_string),
        prop::sample::select(vec![
            "1; error_log /tmp/x debug",
            "x}",
            "{",
            "$host",
            "a\nb",
            "# c",
            "data dir",
            "d;",
            "10m;",
            "1 2",
            "127.0.0.1:80;",
            "a\"b",
            "a\\b",
            "\u{0}",
            "é",
        ])
        .prop_map(str::to_string),
        "[a-z0-9./:_ ;{}$#\n-]{0,16}",
    ]
}

/// A `streamedge.toml` setting some of the values nginx.conf is made from.
fn config_text() -> impl Strategy<Value = String> {
    let keys = [
        ("", "data_dir"),
        ("", "public_host"),
        ("ports", "bind"),
        ("publish", "ban_window"),
        ("publish", "ban_time"),
        ("api", "listen"),
        ("nginx", "prefix"),
        ("nginx", "conf"),
        ("nginx", "module"),
        ("nginx", "rtmp_module"),
        ("nginx", "web_root"),
        ("nginx", "user"),
        ("nginx", "worker_processes"),
    ];
    (
        proptest::collection::vec(proptest::option::weighted(0.15, value()), keys.len()),
        proptest::collection::vec(proptest::option::weighted(0.3, any::<u16>()), 5),
        proptest::option::weighted(0.2, any::<u32>()),
        proptest::option::weighted(0.2, proptest::collection::vec(value(), 0..2)),
    )
        .prop_map(move |(values, ports, attempts, domains)| {
            let mut t = toml::Table::new();
            t.insert("data_dir".into(), "data".into());
            t.insert("public_host".into(), "localhost".into());
            for ((section, key), v) in keys.iter().zip(values) {
                let Some(v) = v else { continue };
                let table = match *section {
                    "" => &mut t,
                    s => t
                        .entry(s)
                        .or_insert_with(|| toml::Table::new().into())
                        .as_table_mut()
                        .unwrap(),
                };
                table.insert(key.to_string(), v.into());
            }
            let ports_table = t
                .entry("ports")
                .or_insert_with(|| toml::Table::new().into())
                .as_table_mut()
                .unwrap();
            for (key, p) in ["http", "https", "rtmp", "internal", "public_https"]
                .iter()
                .zip(ports)
            {
                if let Some(p) = p {
                    ports_table.insert(key.to_string(), i64::from(p).into());
                }
            }
            if let Some(n) = attempts {
                let publish = t
                    .entry("publish")
                    .or_insert_with(|| toml::Table::new().into())
                    .as_table_mut()
                    .unwrap();
                publish.insert("ban_attempts".into(), i64::from(n).into());
            }
            if let Some(d) = domains {
                let acme = t
                    .entry("acme")
                    .or_insert_with(|| toml::Table::new().into())
                    .as_table_mut()
                    .unwrap();
                acme.insert("domains".into(), d.into());
            }
            toml::to_string(&t).unwrap()
        })
}

fn load(dir: &Path, text: &str) -> anyhow::Result<Config> {
    let p = dir.join("streamedge.toml");
    std::fs::write(&p, text).unwrap();
    Config::load(&p)
}

fn syntax_count(text: &str) -> [usize; 6] {
    SYNTAX.map(|c| text.matches(c).count())
}

fn worker(config: &Config) -> Option<WorkerUser> {
    config.nginx.user.clone().map(|name| WorkerUser {
        name,
        owner: Owner { uid: 1, gid: 1 },
    })
}

proptest! {
    #[test]
    fn configuration_of_any_text_never_panics(text in any::<String>()) {
        let dir = tempfile::tempdir().unwrap();
        let _ = load(dir.path(), &text);
    }
}

proptest! {
    // Most generated files are refused: more cases, so that about a hundred are accepted.
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn accepted_values_put_no_nginx_syntax_into_nginx_conf(text in config_text()) {
        let dir = tempfile::tempdir().unwrap();
        let Ok(config) = load(dir.path(), &text) else { return Ok(()) };
        let user = worker(&config);
        for (name, v) in nginx_values(&config, user.as_ref()) {
            // The `user` line is ours: `user NAME;`; the name is what came from the file.
            let v = match name {
                "user" => user.as_ref().map_or(String::new(), |u| u.name.clone()),
                _ => v,
            };
            prop_assert!(!v.contains(SYNTAX), "{name} = {v:?} from\n{text}");
        }
        // The rendered files have exactly the structure of the default configuration's.
        let base = load(dir.path(), "data_dir = \"data\"\npublic_host = \"localhost\"\n").unwrap();
        let mut base_nginx = base.nginx.clone();
        base_nginx.user = config.nginx.user.clone();
        let base = Config { nginx: base_nginx, ..base };
        let (nginx, site) = render_nginx_conf(&config, user.as_ref()).unwrap();
        let (want_nginx, want_site) = render_nginx_conf(&base, user.as_ref()).unwrap();
        prop_assert_eq!(syntax_count(&nginx), syntax_count(&want_nginx), "{}", text);
        prop_assert_eq!(syntax_count(&site), syntax_count(&want_site), "{}", text);
    }
}

proptest! {
    #[test]
    fn fill_of_any_template_never_panics(template in any::<String>(), v in any::<String>()) {
        let _ = fill(&template, &[("a", v)]);
    }

    #[test]
    fn fill_puts_each_value_where_its_placeholder_was(
        parts in proptest::collection::vec(("[^{}]{0,12}", prop::sample::select(vec!["a", "b"])), 0..8),
        tail in "[^{}]{0,12}",
        a in any::<String>(),
        b in any::<String>(),
    ) {
        let values = [("a", a.clone()), ("b", b.clone())];
        let template: String = parts.iter().map(|(lit, k)| format!("{lit}{{{{ {k} }}}}")).collect::<String>() + &tail;
        let want: String = parts
            .iter()
            .map(|(lit, k)| format!("{lit}{}", if *k == "a" { &a } else { &b }))
            .collect::<String>()
            + &tail;
        prop_assert_eq!(fill(&template, &values).unwrap(), want);
    }
}

proptest! {
    #[test]
    fn probes_of_any_output_give_numbers_meta_json_can_hold(
        duration in prop_oneof!["[0-9.e+-]{0,8}", "(inf|-inf|NaN|infinity|1e400|-0)", any::<String>()],
        rate in prop_oneof!["[0-9]{1,5}/[0-9]{1,5}", "(inf|NaN|1e400)/1", any::<String>()],
        private in any::<bool>(),
        title in any::<String>(),
    ) {
        let json = serde_json::json!({
            "streams": [{"codec_type": "video", "avg_frame_rate": rate}],
            "format": {"duration": duration},
        });
        let p = parse_probe(&json.to_string()).unwrap();
        prop_assert!(p.duration.is_finite() && p.duration >= 0.0);
        prop_assert!(p.fps.is_none_or(|f| f.is_finite() && f > 0.0));
        // meta.json as the library writes it reads back whole, and nginx reads its privacy.
        let meta = Meta {
            id: "x1".into(),
            title,
            description: String::new(),
            source: String::new(),
            kind: "video".into(),
            duration: p.duration,
            codecs: vec![],
            source_size: 0,
            source_resolution: None,
            renditions: vec!["720p".into()],
            poster: None,
            thumbnails: vec![],
            download: None,
            created: String::new(),
            private,
        };
        let text = serde_json::to_string_pretty(&meta).unwrap() + "\n";
        let back: Meta = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(serde_json::to_string(&back).unwrap(), serde_json::to_string(&meta).unwrap());
        let access = streamedge_formats::library::Access::parse(&text).unwrap();
        prop_assert_eq!(access.private, private);
    }

    #[test]
    fn probes_of_any_text_never_panic(text in any::<String>()) {
        let _ = parse_probe(&text);
    }
}

/// The case proptest found in CI: serde_json's fast float parser read "1e-23" back one unit
/// off, so meta.json did not hold what was written. `float_roundtrip` makes it exact.
#[test]
fn durations_read_back_from_json_exactly() {
    for d in [
        1e-23_f64,
        0.1 + 0.2,
        5e-324,
        1.7976931348623157e308,
        3599.999999,
    ] {
        let back: f64 = serde_json::from_str(&serde_json::to_string(&d).unwrap()).unwrap();
        assert_eq!(back.to_bits(), d.to_bits(), "{d}");
    }
}
