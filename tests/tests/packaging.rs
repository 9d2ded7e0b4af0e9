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
