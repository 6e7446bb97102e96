//! `agy-bridge gc`: removes what no current configuration uses and reports what it frees.
//!
//! - venvs and worker packages built for another Python or earlier worker sources, and
//!   half-built venvs (never one whose build lock another process holds);
//! - conversation files left without their database (a crash during `Agent::delete`): SQLite
//!   `-wal`/`-shm` files and the harness's `brain/<id>` directories;
//! - with `--older-than DAYS`, whole conversations not touched for that long.

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use agy_bridge::{PythonConfig, setup as venv};

use super::{disk_usage, human_size};

/// What `gc` was asked for.
pub(crate) struct GcOptions {
    /// The data directory (default: the bridge's default).
    pub data_dir: Option<PathBuf>,
    /// Also remove conversations idle for longer than this.
    pub older_than: Option<Duration>,
    /// Only report.
    pub dry_run: bool,
}

/// Runs `gc`.
pub(crate) fn run(options: &GcOptions) -> agy_bridge::Result<()> {
    let data = options
        .data_dir
        .clone()
        .unwrap_or_else(agy_bridge::default_data_dir);
    let mut doomed = venv::stale_entries(&PythonConfig::default())?;
    doomed.extend(conversation_garbage(&data, options.older_than));
    let mut freed = 0;
    for path in &doomed {
        let size = disk_usage(path);
        let verb = if options.dry_run {
            "would remove"
        } else {
            "removed"
        };
        if !options.dry_run {
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(path)
            } else {
                std::fs::remove_file(path)
            };
            if let Err(e) = removed {
                tell!("could not remove {}: {e}", path.display());
                continue;
            }
        }
        freed += size;
        say!("{verb} {} ({})", path.display(), human_size(size));
    }
    let total = if options.dry_run {
        "would free"
    } else {
        "freed"
    };
    say!("{total} {} in {} entries", human_size(freed), doomed.len());
    Ok(())
}

/// Orphaned conversation files under `data`, plus whole conversations idle for longer than
/// `older_than`.
fn conversation_garbage(data: &Path, older_than: Option<Duration>) -> Vec<PathBuf> {
    let conversations = data.join("conversations");
    let brain = data.join("app-data").join("brain");
    let has_db = |id: &str| conversations.join(format!("{id}.db")).exists();
    let mut out = Vec::new();
    for path in entries(&conversations) {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if let Some(id) = name
            .strip_suffix(".db-wal")
            .or_else(|| name.strip_suffix(".db-shm"))
            && !has_db(id)
        {
            out.push(path);
        }
    }
    for path in entries(&brain) {
        let id = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !has_db(id) {
            out.push(path);
        }
    }
    if let Some(age) = older_than {
        let cutoff = SystemTime::now()
            .checked_sub(age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        for db in entries(&conversations) {
            let Some(id) = db
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".db"))
            else {
                continue;
            };
            let files: Vec<PathBuf> = ["db", "db-wal", "db-shm"]
                .iter()
                .map(|ext| conversations.join(format!("{id}.{ext}")))
                .chain([brain.join(id)])
                .filter(|p| p.exists())
                .collect();
            let newest = files.iter().filter_map(|p| modified(p)).max();
            if newest.is_some_and(|t| t < cutoff) {
                for file in files {
                    if !out.contains(&file) {
                        out.push(file);
                    }
                }
            }
        }
    }
    out.sort();
    out
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_orphans_and_keeps_live_conversations() {
        let data = tempfile::tempdir().unwrap();
        let conv = data.path().join("conversations");
        let brain = data.path().join("app-data").join("brain");
        std::fs::create_dir_all(&conv).unwrap();
        for id in ["live", "gone"] {
            std::fs::create_dir_all(brain.join(id)).unwrap();
        }
        for file in ["live.db", "live.db-wal", "gone.db-wal", "gone.db-shm"] {
            std::fs::write(conv.join(file), b"x").unwrap();
        }
        let found = conversation_garbage(data.path(), None);
        assert_eq!(
            found,
            [
                brain.join("gone"),
                conv.join("gone.db-shm"),
                conv.join("gone.db-wal")
            ]
        );
        // Everything is older than "zero seconds ago": the live conversation goes too.
        let all = conversation_garbage(data.path(), Some(Duration::ZERO));
        assert!(all.contains(&conv.join("live.db")) && all.contains(&brain.join("live")));
        assert_eq!(all.len(), 6);
    }
}
