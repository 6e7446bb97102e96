//! What an agent needs from the bridge that created it: deadlines, turn numbering and pacing,
//! and the conversation store with its leases. A value of its own, so `Agent` does not depend
//! on `Bridge`.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use parking_lot::Mutex;

use crate::{
    error::{Error, Result},
    pricing::PriceTable,
    store::ConversationDirs,
    store::{Lease, LeaseSettings, Store},
};

/// Shared by every agent of one bridge.
pub(crate) struct AgentContext {
    /// Deadline of one turn.
    pub(crate) chat_timeout: Duration,
    /// Deadline of every other call.
    pub(crate) operation_timeout: Duration,
    /// Minimum time between two turn starts (zero: none).
    inter_agent_delay: Duration,
    next_turn: AtomicU64,
    last_turn_start: tokio::sync::Mutex<Option<Instant>>,
    pub(crate) store: Arc<Store>,
    pub(crate) lease: LeaseSettings,
    pub(crate) dirs: ConversationDirs,
    /// Conversations active in this bridge, and the agent holding each (one at a time).
    active: Mutex<HashMap<String, String>>,
    /// Model prices, for the outcomes' cost estimates.
    pub(crate) prices: PriceTable,
}

impl AgentContext {
    pub(crate) fn new(
        chat_timeout: Duration,
        operation_timeout: Duration,
        inter_agent_delay: Duration,
        store: Arc<Store>,
        lease: LeaseSettings,
        dirs: ConversationDirs,
        prices: PriceTable,
    ) -> Self {
        Self {
            chat_timeout,
            operation_timeout,
            inter_agent_delay,
            next_turn: AtomicU64::new(1),
            last_turn_start: tokio::sync::Mutex::new(None),
            store,
            lease,
            dirs,
            active: Mutex::new(HashMap::new()),
            prices,
        }
    }

    /// A turn number, unique within the bridge (it routes the turn's streamed events).
    pub(crate) fn next_turn(&self) -> u64 {
        self.next_turn.fetch_add(1, Ordering::Relaxed)
    }

    /// Spaces turn starts by the configured inter-agent delay.
    pub(crate) async fn pace_turn(&self) {
        if self.inter_agent_delay.is_zero() {
            return;
        }
        let mut last = self.last_turn_start.lock().await;
        if let Some(at) = *last {
            tokio::time::sleep_until((at + self.inter_agent_delay).into()).await;
        }
        *last = Some(Instant::now());
    }

    /// Takes the lease on `conversation_id` for agent `agent_id`: no other agent of this
    /// bridge may have it, and no other bridge (waiting up to the lease wait).
    ///
    /// # Errors
    /// [`Error::ConversationBusy`]; [`Error::Store`].
    pub(crate) async fn claim(&self, conversation_id: &str, agent_id: &str) -> Result<Lease> {
        {
            let mut active = self.active.lock();
            if let Some(other) = active.get(conversation_id).filter(|a| *a != agent_id) {
                return Err(Error::ConversationBusy {
                    conversation_id: conversation_id.to_owned(),
                    holder: format!("{} ({other})", self.lease.holder),
                    until: None,
                });
            }
            active.insert(conversation_id.to_owned(), agent_id.to_owned());
        }
        self.store
            .acquire(conversation_id, &self.lease)
            .await
            .inspect_err(|_| {
                self.active.lock().remove(conversation_id);
            })
    }

    /// Gives the lease back (a failure is logged: the lease then expires on its own).
    pub(crate) async fn release(&self, lease: Lease, conversation_id: &str) {
        if let Err(e) = self.store.release(lease, &self.lease).await {
            tracing::warn!(conversation = %conversation_id, "releasing the lease failed (it will expire): {e}");
        }
        self.active.lock().remove(conversation_id);
    }

    /// Renews `lease` every third of its lifetime until aborted; sets `lost` if another
    /// bridge took it over. `None` when leases do not expire (the local store).
    pub(crate) fn renew_in_background(
        self: &Arc<Self>,
        lease: &Lease,
        lost: Arc<AtomicBool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        if !self.store.leases_expire() {
            return None;
        }
        let context = Arc::clone(self);
        let copy = lease.reference();
        Some(tokio::spawn(async move {
            let period = context.lease.ttl / 3;
            loop {
                tokio::time::sleep(period).await;
                match context.store.renew(&copy, &context.lease).await {
                    Ok(()) => {}
                    Err(Error::LeaseLost { .. }) => {
                        lost.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(conversation = %copy.conversation_id, "renewing the lease failed: {e}");
                    }
                }
            }
        }))
    }

    /// Saves the conversation's state under `lease`; the store version, or 0 for the local
    /// store (whose state is the files themselves).
    pub(crate) async fn save(&self, conversation_id: &str, lease: &Lease) -> Result<u64> {
        #[cfg(feature = "postgres")]
        if self.store.keeps_snapshots() {
            use crate::store::snapshot;
            if !self
                .dirs
                .save_dir
                .join(format!("{conversation_id}.db"))
                .is_file()
            {
                return Ok(lease.stored_version); // nothing written yet
            }
            let started = Instant::now();
            let dirs = self.dirs.clone();
            let id = conversation_id.to_owned();
            let saved = async {
                let snapshot = tokio::task::spawn_blocking(move || snapshot::take(&dirs, &id))
                    .await
                    .map_err(|e| Error::Store {
                        message: format!("taking the snapshot: {e}"),
                    })??;
                let version = self.store.save(lease, &self.lease, &snapshot).await?;
                snapshot::set_local_version(&self.dirs, conversation_id, version)?;
                Ok::<_, Error>((version, snapshot))
            }
            .await;
            let (version, snapshot) = match saved {
                Ok(saved) => {
                    let bytes = saved.1.compressed.len() as u64;
                    crate::metrics::store_save("ok", started.elapsed(), Some(bytes));
                    saved
                }
                Err(e) => {
                    crate::metrics::store_save("failed", started.elapsed(), None);
                    return Err(e);
                }
            };
            tracing::debug!(
                target: "agy_bridge::store",
                conversation = %conversation_id,
                version,
                compressed_bytes = snapshot.compressed.len(),
                raw_bytes = snapshot.raw_size,
                elapsed_us = started.elapsed().as_micros(),
                "saved"
            );
            return Ok(version);
        }
        let _ = (conversation_id, lease);
        Ok(0)
    }

    /// Replaces the local state with the store's when the store holds a newer version.
    pub(crate) async fn restore_newer(&self, conversation_id: &str, lease: &Lease) -> Result<()> {
        #[cfg(feature = "postgres")]
        if self.store.keeps_snapshots() {
            use crate::store::snapshot;
            let local = snapshot::local_version(&self.dirs, conversation_id);
            if lease.stored_version <= local {
                return Ok(());
            }
            let Some((version, bytes)) = self.store.load_newer(conversation_id, local).await?
            else {
                return Ok(());
            };
            let dirs = self.dirs.clone();
            let id = conversation_id.to_owned();
            tokio::task::spawn_blocking(move || snapshot::restore(&dirs, &id, version, &bytes))
                .await
                .map_err(|e| Error::Store {
                    message: format!("restoring the snapshot: {e}"),
                })??;
            tracing::debug!(conversation = %conversation_id, version, "restored from the store");
            return Ok(());
        }
        let _ = (conversation_id, lease);
        Ok(())
    }
}

impl AgentContext {
    /// Deletes conversation `id` for good: its stored state and its local files. Its lease
    /// must be free (or held by `agent_id` of this bridge).
    ///
    /// # Errors
    /// [`Error::ConversationBusy`] while another agent or bridge has it; a store error; a file
    /// that could not be removed.
    pub(crate) async fn delete_conversation(&self, id: &str, agent_id: &str) -> Result<()> {
        let lease = self.claim(id, agent_id).await?;
        let deleted = self.store.delete(&lease, &self.lease).await;
        let removed = if deleted.is_ok() {
            self.remove_local_files(id)
        } else {
            Ok(())
        };
        self.release(lease, id).await;
        deleted.and(removed)
    }

    /// The files the harness (and the bridge) keep for one conversation.
    fn remove_local_files(&self, id: &str) -> Result<()> {
        let dirs = &self.dirs;
        let mut paths: Vec<std::path::PathBuf> = ["db", "db-wal", "db-shm", "version"]
            .iter()
            .map(|ext| dirs.save_dir.join(format!("{id}.{ext}")))
            .collect();
        paths.push(dirs.app_data_dir.join("brain").join(id));
        for path in paths {
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match removed {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}
