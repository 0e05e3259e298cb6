//! Sharing one cache between processes: per-clip claims and the clean-up of killed writers'
//! temporary files.
//!
//! A clip is claimed by an exclusive, non-blocking `flock` on `CACHE/<tag>/.<key>.claim` (the
//! file holds `pid host` of the holder, for people). The kernel releases the lock when the
//! holder exits, `kill -9` included, so a dead process's claim is free at once and never needs
//! guessing; a live one's is never taken. The holder removes the file after the entry is in
//! place. (On NFS, Linux maps `flock` to POSIX byte-range locks, which NFSv4 shares between
//! machines.) On platforms without `flock` every claim succeeds: processes do not share work
//! there, and entries stay correct because each is renamed into place whole.

use std::path::{Path, PathBuf};

use crate::{Result, StoreError};

/// This machine's name (for claim files and messages).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Whether a process with this pid exists on this machine (`kill(pid, 0)`); `true` where that
/// cannot be asked, so that nothing of a possibly live process is removed.
pub fn pid_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        if pid == 0 || pid > i32::MAX as u32 {
            return false;
        }
        // SAFETY: signal 0 only checks that the process exists and may be signalled.
        let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// A held claim on one clip; dropping it releases the lock and removes the claim file.
#[derive(Debug)]
pub struct Claim {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl Drop for Claim {
    fn drop(&mut self) {
        // Remove while still holding the lock: a process that opened the old file and locks it
        // afterwards sees that the path no longer names its file and tries again.
        let _ = std::fs::remove_file(&self.path);
        self.file.take();
    }
}

/// Who holds a claim (as its file says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub text: String,
}

/// [`try_claim`] without creating the file when it is absent.
fn try_claim_quiet(path: &Path) -> Result<std::result::Result<Claim, Holder>> {
    if !path.exists() {
        return Ok(Err(Holder {
            text: String::new(),
        }));
    }
    try_claim(path)
}

/// Tries to claim a clip whose claim file is `path`: `Ok(Ok(claim))` when this process now
/// holds it, `Ok(Err(holder))` when a live process does.
pub fn try_claim(path: &Path) -> Result<std::result::Result<Claim, Holder>> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    loop {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(io)?;
        if !lock_exclusive(&file).map_err(io)? {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            return Ok(Err(Holder {
                text: text.trim().to_string(),
            }));
        }
        // The holder before us may have removed the file between our open and our lock: then
        // the lock is on an orphan and the path must be opened again.
        if !same_file(&file, path) {
            continue;
        }
        use std::io::{Seek, Write};
        let mut f = &file;
        f.set_len(0).map_err(io)?;
        f.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
        writeln!(f, "{} {}", std::process::id(), host_name()).map_err(io)?;
        return Ok(Ok(Claim {
            path: path.to_path_buf(),
            file: Some(file),
        }));
    }
}

#[cfg(unix)]
fn lock_exclusive(file: &std::fs::File) -> std::io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a file descriptor this function borrows.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

#[cfg(not(unix))]
fn lock_exclusive(_file: &std::fs::File) -> std::io::Result<bool> {
    Ok(true)
}

#[cfg(unix)]
fn same_file(file: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_file: &std::fs::File, path: &Path) -> bool {
    path.exists()
}

/// The pid in a temporary file's name `.<name>.tmp-<pid>`, if it is one.
fn temp_pid(name: &str) -> Option<u32> {
    if !name.starts_with('.') {
        return None;
    }
    let (_, pid) = name.rsplit_once(".tmp-")?;
    pid.parse().ok()
}

/// Removes what killed runs left in `dir`: temporary files (`.<name>.tmp-<pid>`) whose pid is
/// not a live process on this machine, and claim files no live process holds. A live process's
/// temporary file is never touched, nor one whose clip a live process (possibly on another
/// machine sharing the folder) has claimed. Returns the files removed.
pub fn clean_stale_temps(dir: &Path) -> Result<Vec<PathBuf>> {
    let read = std::fs::read_dir(dir).map_err(|source| StoreError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut removed = Vec::new();
    for e in read.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && name.ends_with(".claim") {
            // A claim file nobody holds: its holder was killed after writing the entry or
            // before; taken and removed under the lock, as a holder does.
            if let Ok(Ok(claim)) = try_claim_quiet(&e.path()) {
                drop(claim);
                removed.push(e.path());
            }
            continue;
        }
        let Some(pid) = temp_pid(&name) else {
            continue;
        };
        if pid == std::process::id() || pid_alive(pid) {
            continue;
        }
        // `.<key>.safetensors.tmp-<pid>` → claim `.<key>.claim`.
        let claimed_elsewhere = name
            .rsplit_once(".tmp-")
            .and_then(|(stem, _)| stem.strip_suffix(".safetensors"))
            .map(|stem| dir.join(format!("{stem}.claim")))
            .is_some_and(|claim| claim_is_held(&claim));
        if claimed_elsewhere {
            continue;
        }
        let path = e.path();
        if std::fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
    }
    removed.sort();
    Ok(removed)
}

/// Whether a live process holds the claim at `path` (probed by taking and dropping the lock
/// without writing).
fn claim_is_held(path: &Path) -> bool {
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    else {
        return false;
    };
    !matches!(lock_exclusive(&file), Ok(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_exclude_each_other_and_are_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".a.claim");
        let first = try_claim(&p).unwrap().unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with(&std::process::id().to_string()), "{text}");
        // flock locks belong to the open file description: a second open in this process
        // conflicts like another process would.
        let held = try_claim(&p).unwrap().unwrap_err();
        assert!(held.text.contains(&host_name()), "{held:?}");
        drop(first);
        assert!(!p.exists());
        let again = try_claim(&p).unwrap();
        assert!(again.is_ok());
    }

    #[test]
    fn only_dead_writers_temporary_files_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        // A pid far above any pid_max is never alive; this process is.
        let dead = dir.path().join(".x.safetensors.tmp-2147483000");
        let live = dir
            .path()
            .join(format!(".y.safetensors.tmp-{}", std::process::id()));
        let other = dir.path().join("z.safetensors");
        for p in [&dead, &live, &other] {
            std::fs::write(p, b"partial").unwrap();
        }
        assert_eq!(clean_stale_temps(dir.path()).unwrap(), vec![dead.clone()]);
        assert!(!dead.exists() && live.exists() && other.exists());
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(2_147_483_000));
    }
}
