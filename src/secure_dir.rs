//! Owner-only directories and lock files, and the checks that refuse a directory another user
//! could have written to.
//!
//! The cache directory holds the interpreter the bridge executes and the data directory holds
//! conversations, so a directory someone else can write is a directory whose contents cannot be
//! trusted: a planted `venvs/<key>/bin/python` would run as the user. Directories the bridge
//! creates are `0700`; an existing one is accepted only when it is owned by the current user and
//! not writable by group or others (it is tightened to `0700` if it is merely readable), and only
//! when no ancestor could be swapped by another user (every ancestor owned by the user or root,
//! and not writable by others unless sticky, as `/tmp` is).

use std::{
    fs::{DirBuilder, File, OpenOptions},
    os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use crate::error::{Error, Result};

const GROUP_OR_OTHER_WRITE: u32 = 0o022;
const GROUP_OR_OTHER_ANY: u32 = 0o077;
const STICKY: u32 = 0o1000;

fn insecure(path: &Path, problem: impl Into<String>) -> Error {
    Error::InsecurePath {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Creates `dir` (and missing parents) with mode `0700`, or checks an existing one: it must be a
/// directory owned by the current user, not writable by group or others, below ancestors no
/// other user can swap. A directory that is only readable by others is tightened to `0700`.
///
/// # Errors
/// [`Error::InsecurePath`] naming the directory and what is wrong with it, or [`Error::Io`].
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| insecure(dir, format!("cannot create it: {e}")))?;
    let meta = std::fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(insecure(dir, "it is not a directory"));
    }
    if meta.uid() != euid() {
        return Err(insecure(
            dir,
            format!(
                "it is owned by uid {}, not by you (uid {}); another user controls what it holds",
                meta.uid(),
                euid()
            ),
        ));
    }
    let mode = meta.permissions().mode();
    if mode & GROUP_OR_OTHER_WRITE != 0 {
        return Err(insecure(
            dir,
            format!(
                "it is writable by group or others (mode {:o}), so its contents cannot be \
                 trusted; remove it, or check its contents and `chmod 700` it",
                mode & 0o7777
            ),
        ));
    }
    if mode & GROUP_OR_OTHER_ANY != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    check_ancestors(&dir.canonicalize()?)
}

/// Every ancestor of `dir` must be owned by the user or root, and not writable by others unless
/// it is sticky (like `/tmp`): otherwise its owner could rename `dir` away and put their own in
/// its place.
fn check_ancestors(dir: &Path) -> Result<()> {
    let me = euid();
    for ancestor in dir.ancestors().skip(1) {
        let meta = std::fs::metadata(ancestor)?;
        let mode = meta.permissions().mode();
        if meta.uid() != me && meta.uid() != 0 {
            return Err(insecure(
                dir,
                format!(
                    "its parent {} is owned by uid {}, who could replace it",
                    ancestor.display(),
                    meta.uid()
                ),
            ));
        }
        if mode & GROUP_OR_OTHER_WRITE != 0 && mode & STICKY == 0 {
            return Err(insecure(
                dir,
                format!(
                    "its parent {} is writable by group or others (mode {:o}) without the \
                     sticky bit, so another user could replace it",
                    ancestor.display(),
                    mode & 0o7777
                ),
            ));
        }
    }
    Ok(())
}

/// Opens (creating `0600` if needed) a lock file without following a symlink and without
/// truncating anything: a link planted in its place fails the open instead of redirecting it.
///
/// # Errors
/// [`Error::InsecurePath`] when the path is a symlink or cannot be opened.
pub(crate) fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            let why = if e.raw_os_error() == Some(libc::ELOOP) {
                "it is a symbolic link (refused: a lock is never opened through a link)".to_owned()
            } else {
                format!("cannot open the lock file: {e}")
            };
            insecure(path, why)
        })
}

/// Writes `bytes` to a new owner-only file at `path`, replacing it atomically (write, fsync,
/// rename).
///
/// # Errors
/// Any I/O error.
pub(crate) fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp: PathBuf = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn new_directories_are_owner_only_and_readable_ones_are_tightened() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        ensure_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);
        let open = root.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&open).unwrap();
        assert_eq!(mode(&open), 0o700);
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let shared = root.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = ensure_private_dir(&shared).unwrap_err();
        assert!(
            matches!(&err, Error::InsecurePath { problem, .. } if problem.contains("writable")),
            "{err}"
        );
        // Below it, nothing is trusted either: its owner could swap the child.
        let child = shared.join("child");
        std::fs::create_dir(&child).unwrap();
        std::fs::set_permissions(&child, std::fs::Permissions::from_mode(0o700)).unwrap();
        let err = ensure_private_dir(&child).unwrap_err();
        assert!(err.to_string().contains("its parent"), "{err}");
    }

    #[test]
    fn a_lock_symlink_is_refused_and_its_target_untouched() {
        let root = tempfile::tempdir().unwrap();
        let victim = root.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let lock = root.path().join("x.lock");
        std::os::unix::fs::symlink(&victim, &lock).unwrap();
        let err = open_lock_file(&lock).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        // A regular lock file keeps its contents too (no truncation).
        let plain = root.path().join("y.lock");
        std::fs::write(&plain, "pid 1").unwrap();
        drop(open_lock_file(&plain).unwrap());
        assert_eq!(std::fs::read_to_string(&plain).unwrap(), "pid 1");
    }
}
