//! A conversation's state as one compressed blob, and back.
//!
//! The state is the harness's SQLite database `<save_dir>/<id>.db` (WAL mode) and its
//! app-data directory `<app_data_dir>/brain/<id>/`. The database is copied with SQLite's
//! online backup API, which reads a consistent state even while the harness has the database
//! open and is writing to it (the copy runs in one step under a read transaction, so it sees
//! the last committed transaction, WAL included). The copy and the app-data files go into a
//! gzip-compressed tar archive, checksummed with SHA-256.
//!
//! Restoring unpacks into a staging directory first and checks the database
//! (`PRAGMA integrity_check`); only then are the local files replaced. A truncated or corrupt
//! snapshot fails with [`Error::CorruptSnapshot`] and leaves the local copy untouched.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ConversationDirs;
use crate::{
    error::{Error, Result},
    secure_dir,
};

/// The archive's name for the database.
const DB_ENTRY: &str = "conversation.db";
/// The archive's directory for the app-data files.
const BRAIN_ENTRY: &str = "brain";

/// A conversation's compressed state.
pub(crate) struct Snapshot {
    pub(crate) compressed: Vec<u8>,
    /// Bytes before compression.
    pub(crate) raw_size: u64,
    pub(crate) sha256: [u8; 32],
}

fn db_path(dirs: &ConversationDirs, id: &str) -> PathBuf {
    dirs.save_dir.join(format!("{id}.db"))
}

fn brain_path(dirs: &ConversationDirs, id: &str) -> PathBuf {
    dirs.app_data_dir.join("brain").join(id)
}

fn version_marker(dirs: &ConversationDirs, id: &str) -> PathBuf {
    dirs.save_dir.join(format!("{id}.version"))
}

/// A private scratch directory under the data directory (same filesystem: renames are
/// atomic).
fn scratch(dirs: &ConversationDirs, what: &str, id: &str) -> Result<PathBuf> {
    let dir = dirs
        .scratch
        .join(format!("{what}-{id}-{}", uuid::Uuid::new_v4().simple()));
    secure_dir::ensure_private_dir(&dir)?;
    Ok(dir)
}

/// The store version the local files correspond to (0: never restored or saved).
pub(crate) fn local_version(dirs: &ConversationDirs, id: &str) -> u64 {
    std::fs::read_to_string(version_marker(dirs, id))
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Records that the local files are the store's `version`.
pub(crate) fn set_local_version(dirs: &ConversationDirs, id: &str, version: u64) -> Result<()> {
    secure_dir::write_private_file(&version_marker(dirs, id), version.to_string().as_bytes())?;
    Ok(())
}

/// Takes a consistent snapshot of conversation `id`, the harness running or not.
pub(crate) fn take(dirs: &ConversationDirs, id: &str) -> Result<Snapshot> {
    let work = scratch(dirs, "snapshot", id)?;
    let result = take_in(dirs, id, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn take_in(dirs: &ConversationDirs, id: &str, work: &Path) -> Result<Snapshot> {
    let copy = work.join(DB_ENTRY);
    let source = db_path(dirs, id);
    if !source.is_file() {
        return Err(Error::UnknownConversation {
            conversation_id: id.to_owned(),
        });
    }
    backup_database(&source, &copy).map_err(|e| Error::Store {
        message: format!("copying the database of conversation {id}: {e}"),
    })?;
    let mut raw_size = std::fs::metadata(&copy)?.len();
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut archive = tar::Builder::new(encoder);
    archive.mode(tar::HeaderMode::Deterministic);
    archive.follow_symlinks(false);
    archive.append_path_with_name(&copy, DB_ENTRY)?;
    let brain = brain_path(dirs, id);
    if brain.is_dir() {
        raw_size += dir_size(&brain);
        archive.append_dir_all(BRAIN_ENTRY, &brain)?;
    }
    let compressed = archive.into_inner()?.finish()?;
    Ok(Snapshot {
        sha256: Sha256::digest(&compressed).into(),
        compressed,
        raw_size,
    })
}

/// Copies a live SQLite database consistently (online backup, all pages in one step).
fn backup_database(source: &Path, target: &Path) -> rusqlite::Result<()> {
    use rusqlite::{Connection, OpenFlags, backup::Backup};
    let from = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    from.busy_timeout(std::time::Duration::from_secs(10))?;
    let mut to = Connection::open(target)?;
    let backup = Backup::new(&from, &mut to)?;
    // All pages in one step: one read transaction, so one consistent state.
    for _ in 0..500 {
        match backup.step(-1)? {
            rusqlite::backup::StepResult::Done => return Ok(()),
            // A writer holds a lock for a moment: try again.
            _ => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    Err(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
        Some("the database stayed locked for 10 s".into()),
    ))
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Replaces the local files of conversation `id` with `compressed` (the store's `version`),
/// after checking it: the local copy is untouched unless the snapshot is sound.
pub(crate) fn restore(
    dirs: &ConversationDirs,
    id: &str,
    version: u64,
    compressed: &[u8],
) -> Result<()> {
    let work = scratch(dirs, "restore", id)?;
    let result = restore_in(dirs, id, version, compressed, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn restore_in(
    dirs: &ConversationDirs,
    id: &str,
    version: u64,
    compressed: &[u8],
    work: &Path,
) -> Result<()> {
    let corrupt = |reason: String| Error::CorruptSnapshot {
        conversation_id: id.to_owned(),
        version,
        reason,
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(compressed));
    let entries = archive
        .entries()
        .map_err(|e| corrupt(format!("not an archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| corrupt(format!("unreadable entry: {e}")))?;
        // unpack_in refuses paths that would land outside `work` (`..`, absolute paths).
        let inside = entry
            .unpack_in(work)
            .map_err(|e| corrupt(format!("cannot unpack: {e}")))?;
        if !inside {
            return Err(corrupt("an entry points outside the conversation".into()));
        }
    }
    let staged_db = work.join(DB_ENTRY);
    if !staged_db.is_file() {
        return Err(corrupt("it holds no database".into()));
    }
    check_database(&staged_db).map_err(|e| corrupt(format!("its database is damaged: {e}")))?;

    // Sound: replace the local files.
    let db = db_path(dirs, id);
    for stale in ["db-wal", "db-shm"] {
        match std::fs::remove_file(dirs.save_dir.join(format!("{id}.{stale}"))) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    std::fs::rename(&staged_db, &db)?;
    let brain = brain_path(dirs, id);
    let staged_brain = work.join(BRAIN_ENTRY);
    if staged_brain.is_dir() {
        secure_dir::ensure_private_dir(&dirs.app_data_dir.join("brain"))?;
        let old = work.join("previous-brain");
        if brain.exists() {
            std::fs::rename(&brain, &old)?;
        }
        std::fs::rename(&staged_brain, &brain)?;
    }
    set_local_version(dirs, id, version)
}

fn check_database(path: &Path) -> std::result::Result<(), String> {
    let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
    let verdict: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .map_err(|e| e.to_string())?;
    if verdict == "ok" {
        Ok(())
    } else {
        Err(verdict)
    }
}

/// Writes `snapshot` to `out` (for tests and tools).
#[cfg(test)]
fn write_to(snapshot: &Snapshot, mut out: impl std::io::Write) -> std::io::Result<()> {
    out.write_all(&snapshot.compressed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(root: &Path) -> ConversationDirs {
        let dirs = ConversationDirs::under(root);
        for dir in dirs.all() {
            secure_dir::ensure_private_dir(dir).unwrap();
        }
        dirs
    }

    const ID: &str = "0123456789abcdef0123456789abcdef";

    /// A WAL database with `rows` rows, left open (as the harness keeps it).
    fn live_database(dirs: &ConversationDirs, rows: u32) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(db_path(dirs, ID)).unwrap();
        conn.pragma_update(None, "journal_mode", "wal").unwrap();
        conn.execute(
            "CREATE TABLE IF NOT EXISTS steps (n INTEGER, text TEXT)",
            [],
        )
        .unwrap();
        for n in 0..rows {
            conn.execute(
                "INSERT INTO steps VALUES (?1, ?2)",
                rusqlite::params![n, "x".repeat(200)],
            )
            .unwrap();
        }
        conn
    }

    fn rows(path: &Path) -> u32 {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row("SELECT count(*) FROM steps", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_snapshot_of_a_live_database_holds_every_committed_row() {
        let root = tempfile::tempdir().unwrap();
        let dirs = dirs(root.path());
        let live = live_database(&dirs, 500);
        // Committed rows still in the WAL (no checkpoint yet) are part of the snapshot.
        assert!(dirs.save_dir.join(format!("{ID}.db-wal")).exists());
        std::fs::create_dir_all(brain_path(&dirs, ID).join("logs")).unwrap();
        std::fs::write(brain_path(&dirs, ID).join("logs/transcript.jsonl"), "{}\n").unwrap();
        let snapshot = take(&dirs, ID).unwrap();
        assert!(snapshot.raw_size > 100_000);
        assert!((snapshot.compressed.len() as u64) < snapshot.raw_size);
        let mut sink = Vec::new();
        write_to(&snapshot, &mut sink).unwrap();
        assert_eq!(Sha256::digest(&sink).as_slice(), snapshot.sha256);

        // Elsewhere (another replica): restored whole.
        let other_root = tempfile::tempdir().unwrap();
        let other = super::tests::dirs(other_root.path());
        restore(&other, ID, 3, &snapshot.compressed).unwrap();
        assert_eq!(rows(&db_path(&other, ID)), 500);
        assert_eq!(
            std::fs::read_to_string(brain_path(&other, ID).join("logs/transcript.jsonl")).unwrap(),
            "{}\n"
        );
        assert_eq!(local_version(&other, ID), 3);
        drop(live);
    }

    #[test]
    fn a_truncated_or_corrupt_snapshot_is_refused_and_the_local_copy_untouched() {
        let root = tempfile::tempdir().unwrap();
        let dirs = dirs(root.path());
        let live = live_database(&dirs, 50);
        let snapshot = take(&dirs, ID).unwrap();
        drop(live);
        let before = std::fs::read(db_path(&dirs, ID)).unwrap();
        let truncated = &snapshot.compressed[..snapshot.compressed.len() / 2];
        let mut flipped = snapshot.compressed.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0xff;
        for (what, bytes) in [
            ("truncated", truncated),
            ("flipped", &flipped[..]),
            ("empty", &[][..]),
        ] {
            let err = restore(&dirs, ID, 9, bytes).unwrap_err();
            assert!(
                matches!(&err, Error::CorruptSnapshot { conversation_id, .. } if conversation_id == ID),
                "{what}: {err}"
            );
            assert_eq!(std::fs::read(db_path(&dirs, ID)).unwrap(), before, "{what}");
            assert_eq!(local_version(&dirs, ID), 0, "{what}");
        }
    }
}
