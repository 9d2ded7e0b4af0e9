//! Certificates on disk: `CERTS/<domain>/fullchain.pem` and `privkey.pem`, where
//! `CERTS/<domain>` is a symlink to a version folder `CERTS/.versions/<domain>/<stamp>/`.
//!
//! A new pair is written whole into a fresh version folder (files fsynced, key 0600), then
//! the symlink is replaced by rename: nginx, reading the two files through the link, sees the
//! old pair or the new pair, never a certificate with another certificate's key, even if the
//! process dies half way. The previous version is kept as the backup; older ones are removed.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::prelude::*;

use streamedge_formats::layout::cert_folder;

use crate::Error;

/// What streamedge needs to know about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// Hex serial number.
    pub serial: String,
    pub names: Vec<String>,
    /// The leaf certificate, DER.
    pub der: Vec<u8>,
}

fn to_time(t: ASN1Time) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(t.timestamp().max(0) as u64)
}

/// Reads the first certificate of a PEM chain.
pub fn parse_leaf(pem: &[u8]) -> Result<CertInfo, Error> {
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(pem).map_err(|e| Error::Certificate(e.to_string()))?;
    let (_, cert) =
        X509Certificate::from_der(&pem.contents).map_err(|e| Error::Certificate(e.to_string()))?;
    let names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(CertInfo {
        not_before: to_time(cert.validity().not_before),
        not_after: to_time(cert.validity().not_after),
        serial: cert.raw_serial_as_string().replace(':', ""),
        names,
        der: pem.contents.clone(),
    })
}

/// The certificate folders of one data directory.
#[derive(Debug, Clone)]
pub struct Store {
    certs: PathBuf,
}

impl Store {
    pub fn new(certs_dir: impl Into<PathBuf>) -> Self {
        Store {
            certs: certs_dir.into(),
        }
    }

    /// `CERTS/<domain>`: what nginx's configuration names (a wildcard's folder is
    /// `_wildcard.<base>`, see [`cert_folder`]).
    pub fn live_dir(&self, domain: &str) -> PathBuf {
        self.certs.join(cert_folder(domain))
    }

    fn versions(&self, domain: &str) -> PathBuf {
        self.certs.join(".versions").join(cert_folder(domain))
    }

    /// The certificate in service for `domain`, if any.
    pub fn current(&self, domain: &str) -> Result<Option<CertInfo>, Error> {
        let path = self.live_dir(domain).join("fullchain.pem");
        match fs::read(&path) {
            Ok(pem) => parse_leaf(&pem).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    /// Points `CERTS/<domain>` at `target` (a folder holding a pair) if nothing is there yet:
    /// nginx can start with a placeholder before the first certificate.
    pub fn ensure_placeholder(&self, domain: &str, target: &Path) -> Result<(), Error> {
        let live = self.live_dir(domain);
        if fs::symlink_metadata(&live).is_ok() {
            return Ok(());
        }
        self.flip(domain, target)
    }

    fn flip(&self, domain: &str, target: &Path) -> Result<(), Error> {
        let live = self.live_dir(domain);
        let tmp = self.certs.join(format!(
            ".{}.link.{}",
            cert_folder(domain),
            std::process::id()
        ));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp).map_err(|e| Error::io(&tmp, e))?;
        fs::rename(&tmp, &live).map_err(|e| Error::io(&live, e))?;
        sync_dir(&self.certs)
    }

    /// Puts a new pair in service, atomically, keeping the previous one as the backup.
    pub fn install(&self, domain: &str, chain_pem: &str, key_pem: &str) -> Result<CertInfo, Error> {
        let info = parse_leaf(chain_pem.as_bytes())?;
        let versions = self.versions(domain);
        fs::create_dir_all(&versions).map_err(|e| Error::io(&versions, e))?;
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let dir = versions.join(format!("{}-{}", stamp.as_secs(), info.serial));
        fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io(&dir, e))?;
        write_synced(&dir.join("privkey.pem"), key_pem.as_bytes(), 0o600)?;
        write_synced(&dir.join("fullchain.pem"), chain_pem.as_bytes(), 0o644)?;
        sync_dir(&dir)?;
        sync_dir(&versions)?;
        let previous = fs::read_link(self.live_dir(domain)).ok();
        self.flip(domain, &dir)?;
        self.prune(domain, &dir, previous.as_deref());
        Ok(info)
    }

    /// Removes versions other than the current one and the one it replaced (including
    /// folders a killed process left half written).
    fn prune(&self, domain: &str, current: &Path, previous: Option<&Path>) {
        let Ok(entries) = fs::read_dir(self.versions(domain)) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p != current && Some(p.as_path()) != previous {
                let _ = fs::remove_dir_all(&p);
            }
        }
    }
}

fn write_synced(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let mut f = File::options()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(name: &str) -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    #[test]
    fn install_flips_whole_pairs_and_keeps_one_backup() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert_eq!(store.current("a.test").unwrap(), None);
        let placeholder = dir.path().join("placeholder");
        fs::create_dir(&placeholder).unwrap();
        let (c0, k0) = self_signed("placeholder");
        fs::write(placeholder.join("fullchain.pem"), &c0).unwrap();
        fs::write(placeholder.join("privkey.pem"), &k0).unwrap();
        store.ensure_placeholder("a.test", &placeholder).unwrap();
        assert_eq!(
            store.current("a.test").unwrap().unwrap().names,
            ["placeholder"]
        );

        let mut served = Vec::new();
        for _ in 0..3 {
            let (c, k) = self_signed("a.test");
            let info = store.install("a.test", &c, &k).unwrap();
            let live = store.live_dir("a.test");
            assert_eq!(fs::read_to_string(live.join("fullchain.pem")).unwrap(), c);
            assert_eq!(fs::read_to_string(live.join("privkey.pem")).unwrap(), k);
            let mode = fs::metadata(live.join("privkey.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            assert_eq!(
                store.current("a.test").unwrap().unwrap().serial,
                info.serial
            );
            served.push(info.serial);
            std::thread::sleep(Duration::from_millis(1100));
        }
        // The current version and its predecessor remain.
        assert_eq!(fs::read_dir(store.versions("a.test")).unwrap().count(), 2);
        // The placeholder itself was never touched.
        assert_eq!(
            fs::read_to_string(placeholder.join("fullchain.pem")).unwrap(),
            c0
        );
        // A second ensure_placeholder does not undo a real certificate.
        store.ensure_placeholder("a.test", &placeholder).unwrap();
        assert_eq!(store.current("a.test").unwrap().unwrap().serial, served[2]);
    }

    #[test]
    fn a_half_written_version_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let (c, k) = self_signed("b.test");
        let info = store.install("b.test", &c, &k).unwrap();
        // What a process killed mid-write leaves: a version folder with one file, no flip.
        let stray = store.versions("b.test").join("9999999999-dead");
        fs::create_dir_all(&stray).unwrap();
        fs::write(stray.join("privkey.pem"), "partial").unwrap();
        assert_eq!(
            store.current("b.test").unwrap().unwrap().serial,
            info.serial
        );
        assert_eq!(
            fs::read_to_string(store.live_dir("b.test").join("privkey.pem")).unwrap(),
            k
        );
        // The next install clears it away.
        std::thread::sleep(Duration::from_millis(1100));
        let (c2, k2) = self_signed("b.test");
        store.install("b.test", &c2, &k2).unwrap();
        assert!(!stray.exists());
    }

    #[test]
    fn a_wildcard_lives_in_a_folder_without_a_star() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let (c, k) = self_signed("*.w.test");
        store.install("*.w.test", &c, &k).unwrap();
        assert!(dir.path().join("_wildcard.w.test/fullchain.pem").exists());
        assert_eq!(
            store.current("*.w.test").unwrap().unwrap().names,
            ["*.w.test"]
        );
    }

    #[test]
    fn parses_names_and_dates() {
        let (c, _) = self_signed("c.test");
        let info = parse_leaf(c.as_bytes()).unwrap();
        assert_eq!(info.names, ["c.test"]);
        assert!(info.not_after > info.not_before);
        assert!(parse_leaf(b"not a certificate").is_err());
    }
}
