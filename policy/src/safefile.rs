//! Reading small files from the data directory inside an nginx worker, safely: no symbolic
//! link is followed below the folder given (a link to `/etc/passwd` or to `keys.toml` is
//! refused), nothing but a regular file is read (a FIFO would block the worker in `open`, a
//! device such as `/dev/zero` would be read without end) and at most a given size is read.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use rustix::fs::{openat, Mode, OFlags, CWD};

use crate::filestamp::Stamp;

/// Opens the regular file `rel` ('/'-separated, relative) below the folder `base`, with no
/// symbolic link followed at any component of `rel`. `base` itself may be a link: that is
/// the administrator's choice, as with nginx's `disable_symlinks ... from=`.
pub fn open_below(base: &Path, rel: &str) -> io::Result<File> {
    let mut parts = rel.split('/').filter(|p| !p.is_empty()).peekable();
    let flags = OFlags::RDONLY | OFlags::CLOEXEC;
    let mut dir = openat(CWD, base, flags | OFlags::DIRECTORY, Mode::empty())?;
    while let Some(part) = parts.next() {
        if part == ".." || part == "." {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "dot component"));
        }
        let last = parts.peek().is_none();
        // NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
        let how = if last {
            flags | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY
        } else {
            flags | OFlags::NOFOLLOW | OFlags::DIRECTORY
        };
        let fd = openat(&dir, part, how, Mode::empty())?;
        if last {
            let file = File::from(fd);
            if !file.metadata()?.file_type().is_file() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a regular file",
                ));
            }
            return Ok(file);
        }
        dir = fd;
    }
    Err(io::Error::new(io::ErrorKind::InvalidInput, "empty path"))
}

/// Reads the regular file `rel` below `base` (see [`open_below`]) if it is at most `max`
/// bytes; returns its identity too, as read.
pub fn read_below(base: &Path, rel: &str, max: u64) -> io::Result<(Stamp, Vec<u8>)> {
    let file = open_below(base, rel)?;
    let meta = file.metadata()?;
    if meta.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // `take`: the file may grow between fstat and read.
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes"),
        ));
    }
    Ok((Stamp::of(&meta), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn reads_a_regular_file_below() {
        let d = dir();
        std::fs::create_dir_all(d.path().join("vod/a")).unwrap();
        std::fs::write(d.path().join("vod/a/meta.json"), b"{}").unwrap();
        let (_, bytes) = read_below(&d.path().join("vod"), "a/meta.json", 100).unwrap();
        assert_eq!(bytes, b"{}");
    }

    #[test]
    fn refuses_links_at_every_component() {
        let d = dir();
        let base = d.path().join("vod");
        std::fs::create_dir_all(base.join("real")).unwrap();
        std::fs::write(base.join("real/meta.json"), b"{}").unwrap();
        std::fs::write(d.path().join("keys.toml"), b"secret").unwrap();
        // A linked file, a linked folder, a link out of the tree.
        symlink(d.path().join("keys.toml"), base.join("real/evil.m3u8")).unwrap();
        symlink(base.join("real"), base.join("linked")).unwrap();
        symlink("../keys.toml", base.join("up.json")).unwrap();
        for rel in [
            "real/evil.m3u8",
            "linked/meta.json",
            "up.json",
            "../keys.toml",
        ] {
            assert!(read_below(&base, rel, 100).is_err(), "{rel}");
        }
        // The base itself may be a link.
        symlink(&base, d.path().join("vod-link")).unwrap();
        assert!(read_below(&d.path().join("vod-link"), "real/meta.json", 100).is_ok());
    }

    #[test]
    fn refuses_fifos_devices_folders_and_big_files() {
        let d = dir();
        let fifo = d.path().join("x.m3u8");
        rustix::fs::mkfifoat(CWD, &fifo, Mode::RUSR | Mode::WUSR).unwrap();
        // Returns at once (no writer ever comes) with an error.
        assert!(read_below(d.path(), "x.m3u8", 100).is_err());
        assert!(read_below(Path::new("/dev"), "zero", 100).is_err());
        std::fs::create_dir(d.path().join("sub")).unwrap();
        assert!(read_below(d.path(), "sub", 100).is_err());
        std::fs::write(d.path().join("big"), vec![b'x'; 101]).unwrap();
        assert!(read_below(d.path(), "big", 100).is_err());
        assert!(read_below(d.path(), "big", 101).is_ok());
        assert!(read_below(d.path(), "", 100).is_err());
    }
}
