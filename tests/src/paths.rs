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
