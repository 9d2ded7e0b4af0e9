//! Where the built pieces under test are: the release folder, the `streamedge` binary and
//! the nginx module.

use std::path::{Path, PathBuf};

/// The workspace's release build folder (override with `STREAMEDGE_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("STREAMEDGE_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release"))
}

pub fn streamedge_bin() -> PathBuf {
    target_dir().join("streamedge")
}

pub fn module_path() -> PathBuf {
    target_dir().join("libngx_http_streamedge_module.so")
}

/// Every file below `dir`, as paths relative to it ("720p/seg_000.m4s"), sorted; none when
/// `dir` is missing.
pub fn relative_files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
