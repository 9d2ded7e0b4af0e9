//! The Dockerfile cannot be built on these machines (no Docker engine): what can be checked
//! is that it is a thin wrapper over the tested make targets, that everything it copies exists
//! after `make build`, and that it declares what a user of the image relies on.

use std::path::Path;

fn dockerfile() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Dockerfile")).unwrap()
}

#[test]
fn every_copied_path_exists_after_make_build() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let text = dockerfile();
    let copies: Vec<&str> = text.lines().filter(|l| l.starts_with("COPY ")).collect();
    assert!(copies.len() >= 3, "{copies:?}");
    for line in copies {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (from_build, src) = match words.as_slice() {
            ["COPY", "--from=build", src, _dest] => (true, *src),
            ["COPY", ".", "."] => continue,
            ["COPY", src, _dest] => (false, *src),
            _ => panic!("unexpected COPY line: {line}"),
        };
        // yt-dlp's venv: made by `make deps` where the Dockerfile's ENV says.
        if src == "/opt/streamedge/venv" {
            assert!(text.contains("ENV STREAMEDGE_VENV=/opt/streamedge/venv"));
            let deps = std::fs::read_to_string(root.join("scripts/deps.sh")).unwrap();
            assert!(deps.contains("venv=\"${STREAMEDGE_VENV:-$root/.venv}\""));
            continue;
        }
        // The build stage works in /src, a copy of this checkout after `make build`.
        let rel = if from_build {
            src.strip_prefix("/src/")
                .expect("build paths are under /src")
        } else {
            src
        };
        assert!(root.join(rel).exists(), "{line}: {rel} does not exist");
    }
}

#[test]
fn the_image_builds_with_the_make_targets_and_declares_its_interface() {
    let text = dockerfile();
    assert!(
        text.contains("FROM rust:1-bookworm AS build"),
        "the module must be built on bookworm"
    );
    assert!(text.contains("RUN make deps && make build"));
    assert!(text.contains("FROM debian:bookworm-slim"));
    assert!(text.contains("EXPOSE 8080 4433 1935"));
    assert!(text.contains("VOLUME /data"));
    assert!(text.contains("HEALTHCHECK") && text.contains("\"streamedge\", \"status\""));
    assert!(text.contains("USER streamedge"));
}

#[test]
fn the_entrypoint_is_valid_shell() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/docker-entrypoint.sh");
    let out = std::process::Command::new("sh")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `make install` staged into a folder (DESTDIR) puts every file where the systemd unit and
/// `init` expect it; `make uninstall` removes them all again.
#[test]
fn install_and_uninstall_stage_and_remove_every_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dest = tempfile::tempdir().unwrap();
    let run = |action: &str| {
        let out = std::process::Command::new("bash")
            .arg(root.join("scripts/install.sh"))
            .arg(action)
            .env("DESTDIR", dest.path())
            .env("SKIP_VENV", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run("install");
    let files = [
        "usr/local/bin/streamedge",
        "usr/lib/nginx/modules/ngx_http_streamedge_module.so",
        "usr/share/streamedge/web/index.html",
        "usr/share/streamedge/web/hls.min.js",
        "etc/systemd/system/streamedge.service",
        "usr/share/doc/streamedge/README.md",
    ];
    for f in files {
        assert!(dest.path().join(f).is_file(), "{f} is not installed");
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = |f: &str| {
        std::fs::metadata(dest.path().join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("usr/local/bin/streamedge"), 0o755);
    assert_eq!(mode("usr/share/streamedge/web/app.js"), 0o644);
    let unit =
        std::fs::read_to_string(dest.path().join("etc/systemd/system/streamedge.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/streamedge run"));
    assert!(unit.contains("Environment=STREAMEDGE_CONFIG=/etc/streamedge/streamedge.toml"));
    assert!(unit.contains("WantedBy=multi-user.target"));
    // Staged: no configuration is written into the real /etc.
    assert!(!dest.path().join("etc/streamedge").exists());
    run("uninstall");
    for f in files {
        assert!(!dest.path().join(f).exists(), "{f} survived uninstall");
    }
}
