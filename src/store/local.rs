//! The local store: conversations are the files in the data directory, and a lease is an
//! exclusive lock on `<data_dir>/leases/<conversation_id>.lock` holding the holder's name. The
//! kernel releases the lock when its holder dies, so a crashed bridge never blocks a
//! conversation.

use std::{
    io::{Read, Seek, Write},
    path::{Path, PathBuf},
};

use fs4::fs_std::FileExt;

use super::{ConversationDirs, ConversationInfo, Lease};
use crate::{
    error::{Error, Result},
    secure_dir,
};

pub(crate) struct LocalStore {
    save_dir: PathBuf,
    leases: PathBuf,
}

impl LocalStore {
    pub(crate) fn open(dirs: &ConversationDirs, data_dir: &Path) -> Result<Self> {
        let leases = data_dir.join("leases");
        secure_dir::ensure_private_dir(&leases)?;
        Ok(Self {
            save_dir: dirs.save_dir.clone(),
            leases,
        })
    }

    pub(crate) fn exists(&self, id: &str) -> bool {
        self.save_dir.join(format!("{id}.db")).is_file()
    }

    /// One attempt: the lease, or the busy error naming the holder.
    pub(crate) fn try_acquire(&self, id: &str, holder: &str) -> Result<Result<Lease>> {
        let path = self.leases.join(format!("{id}.lock"));
        let mut file = secure_dir::open_lock_file(&path)?;
        if !file.try_lock_exclusive().unwrap_or(false) {
            let mut current = String::new();
            let _ = file.read_to_string(&mut current);
            return Ok(Err(Error::ConversationBusy {
                conversation_id: id.to_owned(),
                holder: current.trim().to_owned(),
                until: None,
            }));
        }
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(holder.as_bytes())?;
        Ok(Ok(Lease {
            conversation_id: id.to_owned(),
            fence: 0,
            stored_version: 0,
            _lock: Some(file),
        }))
    }

    pub(crate) fn list(&self) -> Result<Vec<ConversationInfo>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.save_dir)?.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "db") {
                continue;
            }
            let Some(id) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let meta = entry.metadata().ok();
            out.push(ConversationInfo {
                id: id.to_owned(),
                version: None,
                holder: None,
                lease_until: None,
                updated: meta.as_ref().and_then(|m| m.modified().ok()),
                size_bytes: meta.map(|m| m.len()),
            });
        }
        out.sort_by(|a, b| b.updated.cmp(&a.updated).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }
}
