//! Where conversations live beyond one process: the conversation store, and the lease that
//! makes a conversation active in at most one bridge at a time.
//!
//! - [`StoreConfig::local`] (the default): the bridge's data directory, nothing else. Leases are
//!   file locks in `<data_dir>/leases`, so bridges sharing a data directory (processes on one
//!   host) never activate one conversation twice; a holder that dies releases its lock at once.
//! - `StoreConfig::postgres` (feature `postgres`): conversations in PostgreSQL, so any
//!   replica can continue any conversation. The state (the harness's SQLite database and its
//!   app-data files) is saved as a compressed snapshot after every completed turn, when an
//!   agent hibernates and when it closes, and restored into the local data directory before the
//!   harness resumes it. Leases are rows with a holder, an expiry and a fencing token: a holder
//!   renews its lease while the agent is live; one that died loses it at expiry; one whose
//!   lease was taken over can never save over newer state.

mod dirs;
mod local;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
pub(crate) mod snapshot;

use std::{
    path::Path,
    time::{Duration, SystemTime},
};

use crate::error::{Error, Result};

pub(crate) use dirs::ConversationDirs;

pub(crate) use local::LocalStore;
#[cfg(feature = "postgres")]
pub(crate) use postgres::PostgresStore;

/// Which conversation store a bridge uses.
///
/// ```
/// use agy_bridge::{BridgeConfig, StoreConfig};
///
/// let local = BridgeConfig::default().store(StoreConfig::local());
/// # #[cfg(feature = "postgres")]
/// let shared = BridgeConfig::default().store(
///     StoreConfig::postgres("postgres://agy@db.internal/agents").schema("agy_bridge"),
/// );
/// # let _ = local;
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub enum StoreConfig {
    /// The bridge's data directory only (the default; no database needed).
    #[default]
    Local,
    /// A PostgreSQL database shared by every replica (feature `postgres`).
    #[cfg(feature = "postgres")]
    Postgres {
        /// The connection URL (`postgres://user:password@host:port/database`); secret.
        url: secrecy::SecretString,
        /// The schema holding the bridge's tables (created and migrated by the bridge).
        schema: String,
    },
}

impl StoreConfig {
    /// The data directory only.
    #[must_use]
    pub const fn local() -> Self {
        Self::Local
    }

    /// PostgreSQL at `url`, in the schema `agy_bridge`.
    #[cfg(feature = "postgres")]
    pub fn postgres(url: impl Into<secrecy::SecretString>) -> Self {
        Self::Postgres {
            url: url.into(),
            schema: "agy_bridge".into(),
        }
    }

    /// Uses `schema` for the bridge's tables (PostgreSQL; ignored by the local store).
    #[must_use]
    pub fn schema(self, name: impl Into<String>) -> Self {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres { url, .. } => Self::Postgres {
                url,
                schema: name.into(),
            },
            other => {
                let _ = name.into();
                other
            }
        }
    }
}

/// A stored conversation, as [`crate::Bridge::list_conversations`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConversationInfo {
    /// The conversation id.
    pub id: String,
    /// The saved snapshot version (PostgreSQL; `None` locally).
    pub version: Option<u64>,
    /// Who holds the conversation's lease, if anyone (PostgreSQL).
    pub holder: Option<String>,
    /// Until when (PostgreSQL).
    pub lease_until: Option<SystemTime>,
    /// Last change.
    pub updated: Option<SystemTime>,
    /// Size of the stored state in bytes (compressed, for PostgreSQL).
    pub size_bytes: Option<u64>,
}

/// Leases: how long one lasts without renewal, and how long an activation waits for a busy
/// conversation.
#[derive(Debug, Clone)]
pub(crate) struct LeaseSettings {
    pub(crate) holder: String,
    pub(crate) ttl: Duration,
    pub(crate) wait: Duration,
}

/// The store a bridge runs with.
pub(crate) enum Store {
    Local(LocalStore),
    #[cfg(feature = "postgres")]
    Postgres(PostgresStore),
}

/// A conversation's lease, held while its agent is live.
pub(crate) struct Lease {
    pub(crate) conversation_id: String,
    /// Bumped at every acquisition; a save with an older one is refused.
    pub(crate) fence: u64,
    /// The snapshot version the store holds (0: none yet).
    pub(crate) stored_version: u64,
    /// The local store's lock (released when dropped).
    _lock: Option<std::fs::File>,
}

impl Lease {
    /// The same lease without the local lock (for renewals in the background).
    pub(crate) fn reference(&self) -> Self {
        Self {
            conversation_id: self.conversation_id.clone(),
            fence: self.fence,
            stored_version: self.stored_version,
            _lock: None,
        }
    }
}

impl Store {
    /// Shares a quota hit on an API key (its digest) with every bridge on the store.
    #[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
    pub(crate) async fn quota_hit(&self, key: &str, wait: std::time::Duration) -> Result<()> {
        match self {
            Self::Local(_) => Ok(()),
            #[cfg(feature = "postgres")]
            Self::Postgres(pg) => pg.quota_hit(key, wait).await,
        }
    }

    /// How long bridges on the store must leave the key (its digest) alone.
    #[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
    pub(crate) async fn quota_wait(&self, key: &str) -> Result<std::time::Duration> {
        match self {
            Self::Local(_) => Ok(std::time::Duration::ZERO),
            #[cfg(feature = "postgres")]
            Self::Postgres(pg) => pg.quota_wait(key).await,
        }
    }

    /// Opens the configured store (creating or migrating the PostgreSQL schema).
    pub(crate) async fn open(
        config: &StoreConfig,
        dirs: &ConversationDirs,
        data_dir: &Path,
    ) -> Result<Self> {
        match config {
            StoreConfig::Local => Ok(Self::Local(LocalStore::open(dirs, data_dir)?)),
            #[cfg(feature = "postgres")]
            StoreConfig::Postgres { url, schema } => {
                Ok(Self::Postgres(PostgresStore::open(url, schema).await?))
            }
        }
    }

    /// Whether state is saved away from the data directory (and so must be restored).
    pub(crate) const fn keeps_snapshots(&self) -> bool {
        match self {
            Self::Local(_) => false,
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => true,
        }
    }

    /// Whether leases expire and must be renewed while held.
    pub(crate) const fn leases_expire(&self) -> bool {
        self.keeps_snapshots()
    }

    /// Whether the store knows `id`.
    pub(crate) async fn exists(&self, id: &str) -> Result<bool> {
        match self {
            Self::Local(store) => Ok(store.exists(id)),
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => store.exists(id).await,
        }
    }

    /// Takes the lease on `id`, waiting up to `settings.wait` while another bridge holds it.
    ///
    /// # Errors
    /// [`Error::ConversationBusy`] when it stays busy; [`Error::Store`].
    pub(crate) async fn acquire(&self, id: &str, settings: &LeaseSettings) -> Result<Lease> {
        let deadline = tokio::time::Instant::now() + settings.wait;
        let mut pause = Duration::from_millis(20);
        let mut waited = false;
        loop {
            let attempt = match self {
                Self::Local(store) => store.try_acquire(id, &settings.holder)?,
                #[cfg(feature = "postgres")]
                Self::Postgres(store) => store.try_acquire(id, settings).await?,
            };
            match attempt {
                Ok(lease) => {
                    crate::metrics::lease("acquired");
                    return Ok(lease);
                }
                Err(busy) if tokio::time::Instant::now() >= deadline => return Err(busy),
                Err(_) => {
                    if !waited {
                        waited = true;
                        crate::metrics::lease("waited");
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
            }
        }
    }

    /// Extends a held lease.
    ///
    /// # Errors
    /// [`Error::LeaseLost`] when another bridge took it over; [`Error::Store`].
    pub(crate) async fn renew(&self, lease: &Lease, settings: &LeaseSettings) -> Result<()> {
        match self {
            Self::Local(_) => {
                let _ = (lease, settings);
                Ok(())
            }
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => store
                .renew(lease, settings)
                .await
                .inspect_err(count_lost_lease),
        }
    }

    /// Gives a lease back (the local store's lock goes with the value).
    pub(crate) async fn release(&self, lease: Lease, settings: &LeaseSettings) -> Result<()> {
        match self {
            Self::Local(_) => {
                let _ = settings;
                drop(lease);
                Ok(())
            }
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => store.release(&lease, settings).await,
        }
    }

    /// Saves `snapshot` as the conversation's next version, if `lease` is still the current
    /// one; returns the new version.
    ///
    /// # Errors
    /// [`Error::LeaseLost`] for a stale holder; [`Error::Store`].
    #[cfg(feature = "postgres")]
    pub(crate) async fn save(
        &self,
        lease: &Lease,
        settings: &LeaseSettings,
        snapshot: &snapshot::Snapshot,
    ) -> Result<u64> {
        match self {
            Self::Local(_) => Ok(lease.stored_version),
            Self::Postgres(store) => store
                .save(lease, settings, snapshot)
                .await
                .inspect_err(count_lost_lease),
        }
    }

    /// The stored snapshot of `id` if its version is newer than `local_version`.
    ///
    /// # Errors
    /// [`Error::CorruptSnapshot`] when it fails its checksum; [`Error::Store`].
    #[cfg(feature = "postgres")]
    pub(crate) async fn load_newer(
        &self,
        id: &str,
        local_version: u64,
    ) -> Result<Option<(u64, Vec<u8>)>> {
        match self {
            Self::Local(_) => Ok(None),
            Self::Postgres(store) => store.load_newer(id, local_version).await,
        }
    }

    /// Every conversation the store knows.
    pub(crate) async fn list(&self) -> Result<Vec<ConversationInfo>> {
        match self {
            Self::Local(store) => store.list(),
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => store.list().await,
        }
    }

    /// Forgets `id` (its lease must be held).
    pub(crate) async fn delete(&self, lease: &Lease, settings: &LeaseSettings) -> Result<()> {
        match self {
            Self::Local(_) => {
                let _ = (lease, settings);
                Ok(())
            }
            #[cfg(feature = "postgres")]
            Self::Postgres(store) => store.delete(lease, settings).await,
        }
    }
}

/// Checks a conversation id before it names files or rows: at least 32 of `[a-zA-Z0-9-]` (the
/// SDK's rule).
///
/// # Errors
/// [`Error::InvalidConfig`].
pub(crate) fn check_conversation_id(id: &str) -> Result<()> {
    if id.len() < 32 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(Error::InvalidConfig {
            message: format!(
                "conversation_id {id:?} must be at least 32 characters of [a-zA-Z0-9-]"
            ),
        });
    }
    Ok(())
}

/// A holder name for this process: host, pid and a random suffix.
pub(crate) fn default_holder() -> String {
    let mut host = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer we own.
    let ok = unsafe { libc::gethostname(host.as_mut_ptr().cast(), host.len()) } == 0;
    let host = if ok {
        let end = host.iter().position(|b| *b == 0).unwrap_or(host.len());
        String::from_utf8_lossy(&host[..end]).into_owned()
    } else {
        "unknown-host".into()
    };
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
    format!("{host}:{}:{suffix}", std::process::id())
}

/// Counts a lease another bridge took over.
#[cfg(feature = "postgres")]
fn count_lost_lease(error: &Error) {
    if matches!(error, Error::LeaseLost { .. }) {
        crate::metrics::lease("lost");
    }
}
