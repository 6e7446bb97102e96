//! The PostgreSQL conversation store (feature `postgres`).
//!
//! Tables, in their own schema, created and migrated by the bridge (`schema_version` holds the
//! applied version; migrations run under an advisory lock, so replicas starting together
//! migrate once):
//!
//! - `conversations`: one row per conversation: its current snapshot `version`, and its lease
//!   (`holder`, `lease_until`, and the fencing token `fence`, bumped at every acquisition).
//! - `snapshots`: `(conversation_id, version)` → the compressed state, its size and SHA-256;
//!   the two newest versions are kept.
//! - `quota` (version 2): key digest → until when the model refused it for quota, so that
//!   every bridge on the store backs the key off, not only the one that was refused.
//!
//! All lease times are the database server's (`now()`), so replicas' clocks do not matter. A
//! save is accepted only from the current holder with the current fence, in the same
//! transaction that bumps the version: a holder whose lease expired and was taken over is
//! refused ([`Error::LeaseLost`]) and can never overwrite newer state.

use std::time::{Duration, SystemTime};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio_postgres::NoTls;

use super::{ConversationInfo, Lease, LeaseSettings, snapshot::Snapshot};
use crate::error::{Error, Result};

/// The schema this code reads and writes.
const SCHEMA_VERSION: i32 = 2;

pub(crate) struct PostgresStore {
    pool: Pool,
    schema: String,
}

fn store_error(e: impl std::fmt::Display) -> Error {
    Error::Store {
        message: e.to_string(),
    }
}

/// What a fenced statement that matched no row means: another bridge took the lease over.
fn lease_lost(lease: &Lease) -> Error {
    Error::LeaseLost {
        conversation_id: lease.conversation_id.clone(),
    }
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl PostgresStore {
    /// Connects and creates or migrates the schema.
    pub(crate) async fn open(url: &SecretString, schema: &str) -> Result<Self> {
        if schema.is_empty()
            || !schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(Error::InvalidConfig {
                message: format!("store schema {schema:?} must be [a-z0-9_]+"),
            });
        }
        let config: tokio_postgres::Config =
            url.expose_secret()
                .parse()
                .map_err(|e| Error::InvalidConfig {
                    message: format!("the PostgreSQL URL is invalid: {e}"),
                })?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(8)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(store_error)?;
        let store = Self {
            pool,
            schema: schema.to_owned(),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(store_error)
    }

    /// Creates the schema, or brings it to [`SCHEMA_VERSION`].
    async fn migrate(&self) -> Result<()> {
        let mut client = self.client().await?;
        let s = &self.schema;
        let tx = client.transaction().await.map_err(store_error)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('agy_bridge_migrate:' || $1::text))",
            &[&s],
        )
        .await
        .map_err(store_error)?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE IF NOT EXISTS {s}.schema_version (version integer NOT NULL);"
        ))
        .await
        .map_err(store_error)?;
        let current: i32 = tx
            .query_opt(&format!("SELECT version FROM {s}.schema_version"), &[])
            .await
            .map_err(store_error)?
            .map_or(0, |row| row.get(0));
        if current > SCHEMA_VERSION {
            return Err(Error::Store {
                message: format!(
                    "schema {s} is at version {current}, newer than this bridge's {SCHEMA_VERSION}: upgrade agy-bridge"
                ),
            });
        }
        if current < 1 {
            tx.batch_execute(&format!(
                "CREATE TABLE {s}.conversations (
                     id text PRIMARY KEY,
                     version bigint NOT NULL DEFAULT 0,
                     fence bigint NOT NULL DEFAULT 0,
                     holder text,
                     lease_until timestamptz,
                     created_at timestamptz NOT NULL DEFAULT now(),
                     updated_at timestamptz NOT NULL DEFAULT now()
                 );
                 CREATE TABLE {s}.snapshots (
                     conversation_id text NOT NULL REFERENCES {s}.conversations (id) ON DELETE CASCADE,
                     version bigint NOT NULL,
                     fence bigint NOT NULL,
                     holder text NOT NULL,
                     compressed bytea NOT NULL,
                     raw_size bigint NOT NULL,
                     sha256 bytea NOT NULL,
                     created_at timestamptz NOT NULL DEFAULT now(),
                     PRIMARY KEY (conversation_id, version)
                 );
                 DELETE FROM {s}.schema_version;
                 INSERT INTO {s}.schema_version VALUES (1);"
            ))
            .await
            .map_err(store_error)?;
        }
        if current < 2 {
            // Version 2: quota backoff shared by every bridge on the store, per key digest.
            tx.batch_execute(&format!(
                "CREATE TABLE {s}.quota (
                     key text PRIMARY KEY,
                     blocked_until timestamptz NOT NULL
                 );
                 DELETE FROM {s}.schema_version;
                 INSERT INTO {s}.schema_version VALUES (2);"
            ))
            .await
            .map_err(store_error)?;
        }
        tx.commit().await.map_err(store_error)
    }

    /// Records that the key (its digest) is blocked for `wait` from now, by the database's
    /// clock, unless it is blocked longer already.
    pub(crate) async fn quota_hit(&self, key: &str, wait: Duration) -> Result<()> {
        let s = &self.schema;
        self.client()
            .await?
            .execute(
                &format!(
                    "INSERT INTO {s}.quota (key, blocked_until)
                     VALUES ($1, now() + make_interval(secs => $2::float8))
                     ON CONFLICT (key) DO UPDATE
                     SET blocked_until = greatest({s}.quota.blocked_until, excluded.blocked_until)"
                ),
                &[&key, &wait.as_secs_f64()],
            )
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// How long the key (its digest) stays blocked, by the database's clock.
    pub(crate) async fn quota_wait(&self, key: &str) -> Result<Duration> {
        let s = &self.schema;
        let row = self
            .client()
            .await?
            .query_opt(
                &format!(
                    "SELECT extract(epoch FROM blocked_until - now())::float8
                     FROM {s}.quota WHERE key = $1 AND blocked_until > now()"
                ),
                &[&key],
            )
            .await
            .map_err(store_error)?;
        Ok(row.map_or(Duration::ZERO, |row| {
            Duration::try_from_secs_f64(row.get::<_, f64>(0)).unwrap_or(Duration::ZERO)
        }))
    }

    pub(crate) async fn exists(&self, id: &str) -> Result<bool> {
        let s = &self.schema;
        let row = self
            .client()
            .await?
            .query_opt(
                &format!("SELECT 1 FROM {s}.conversations WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(store_error)?;
        Ok(row.is_some())
    }

    /// One attempt at the lease: free, expired, or already ours.
    pub(crate) async fn try_acquire(
        &self,
        id: &str,
        settings: &LeaseSettings,
    ) -> Result<Result<Lease>> {
        let s = &self.schema;
        let client = self.client().await?;
        let granted = client
            .query_opt(
                &format!(
                    "INSERT INTO {s}.conversations AS c (id, holder, fence, lease_until)
                     VALUES ($1, $2, 1, now() + make_interval(secs => $3::float8))
                     ON CONFLICT (id) DO UPDATE
                        SET holder = EXCLUDED.holder, fence = c.fence + 1,
                            lease_until = EXCLUDED.lease_until, updated_at = now()
                      WHERE c.holder IS NULL OR c.lease_until < now() OR c.holder = EXCLUDED.holder
                     RETURNING fence, version"
                ),
                &[&id, &settings.holder, &seconds(settings.ttl)],
            )
            .await
            .map_err(store_error)?;
        if let Some(row) = granted {
            let (fence, version): (i64, i64) = (row.get(0), row.get(1));
            return Ok(Ok(Lease {
                conversation_id: id.to_owned(),
                fence: fence.unsigned_abs(),
                stored_version: version.unsigned_abs(),
                _lock: None,
            }));
        }
        let holder = client
            .query_opt(
                &format!("SELECT holder, lease_until FROM {s}.conversations WHERE id = $1"),
                &[&id],
            )
            .await
            .map_err(store_error)?;
        let (holder, until) = holder.map_or((None, None), |row| {
            (
                row.get::<_, Option<String>>(0),
                row.get::<_, Option<SystemTime>>(1),
            )
        });
        Ok(Err(Error::ConversationBusy {
            conversation_id: id.to_owned(),
            holder: holder.unwrap_or_default(),
            until,
        }))
    }

    pub(crate) async fn renew(&self, lease: &Lease, settings: &LeaseSettings) -> Result<()> {
        let s = &self.schema;
        let updated = self
            .client()
            .await?
            .execute(
                &format!(
                    "UPDATE {s}.conversations
                        SET lease_until = now() + make_interval(secs => $4::float8)
                      WHERE id = $1 AND holder = $2 AND fence = $3"
                ),
                &[
                    &lease.conversation_id,
                    &settings.holder,
                    &fence(lease),
                    &seconds(settings.ttl),
                ],
            )
            .await
            .map_err(store_error)?;
        if updated == 0 {
            return Err(lease_lost(lease));
        }
        Ok(())
    }

    pub(crate) async fn release(&self, lease: &Lease, settings: &LeaseSettings) -> Result<()> {
        let s = &self.schema;
        self.client()
            .await?
            .execute(
                &format!(
                    "UPDATE {s}.conversations SET holder = NULL, lease_until = NULL
                      WHERE id = $1 AND holder = $2 AND fence = $3"
                ),
                &[&lease.conversation_id, &settings.holder, &fence(lease)],
            )
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Saves the next version, fenced: only the current holder with the current fence.
    pub(crate) async fn save(
        &self,
        lease: &Lease,
        settings: &LeaseSettings,
        snapshot: &Snapshot,
    ) -> Result<u64> {
        let s = &self.schema;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(store_error)?;
        let bumped = tx
            .query_opt(
                &format!(
                    "UPDATE {s}.conversations SET version = version + 1, updated_at = now()
                      WHERE id = $1 AND holder = $2 AND fence = $3
                     RETURNING version"
                ),
                &[&lease.conversation_id, &settings.holder, &fence(lease)],
            )
            .await
            .map_err(store_error)?;
        let Some(row) = bumped else {
            return Err(lease_lost(lease));
        };
        let version: i64 = row.get(0);
        let raw_size = i64::try_from(snapshot.raw_size).unwrap_or(i64::MAX);
        tx.execute(
            &format!(
                "INSERT INTO {s}.snapshots
                    (conversation_id, version, fence, holder, compressed, raw_size, sha256)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ),
            &[
                &lease.conversation_id,
                &version,
                &fence(lease),
                &settings.holder,
                &snapshot.compressed,
                &raw_size,
                &snapshot.sha256.as_slice(),
            ],
        )
        .await
        .map_err(store_error)?;
        tx.execute(
            &format!(
                "DELETE FROM {s}.snapshots WHERE conversation_id = $1 AND version < $2::bigint - 1"
            ),
            &[&lease.conversation_id, &version],
        )
        .await
        .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(version.unsigned_abs())
    }

    /// The current snapshot when it is newer than `local_version`, checksum verified.
    pub(crate) async fn load_newer(
        &self,
        id: &str,
        local_version: u64,
    ) -> Result<Option<(u64, Vec<u8>)>> {
        let s = &self.schema;
        let row = self
            .client()
            .await?
            .query_opt(
                &format!(
                    "SELECT s.version, s.compressed, s.sha256
                       FROM {s}.conversations c
                       JOIN {s}.snapshots s ON s.conversation_id = c.id AND s.version = c.version
                      WHERE c.id = $1 AND c.version > $2"
                ),
                &[&id, &i64::try_from(local_version).unwrap_or(i64::MAX)],
            )
            .await
            .map_err(store_error)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (version, compressed, sha256): (i64, Vec<u8>, Vec<u8>) =
            (row.get(0), row.get(1), row.get(2));
        let version = version.unsigned_abs();
        if Sha256::digest(&compressed).as_slice() != sha256.as_slice() {
            return Err(Error::CorruptSnapshot {
                conversation_id: id.to_owned(),
                version,
                reason: "its checksum does not match (truncated or altered in the database)".into(),
            });
        }
        Ok(Some((version, compressed)))
    }

    pub(crate) async fn list(&self) -> Result<Vec<ConversationInfo>> {
        let s = &self.schema;
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT c.id, c.version, c.holder,
                            CASE WHEN c.lease_until > now() THEN c.lease_until END,
                            c.updated_at, length(s.compressed)
                       FROM {s}.conversations c
                       LEFT JOIN {s}.snapshots s ON s.conversation_id = c.id AND s.version = c.version
                      ORDER BY c.updated_at DESC, c.id"
                ),
                &[],
            )
            .await
            .map_err(store_error)?;
        Ok(rows
            .iter()
            .map(|row| {
                let until: Option<SystemTime> = row.get(3);
                ConversationInfo {
                    id: row.get(0),
                    version: Some(row.get::<_, i64>(1).unsigned_abs()),
                    holder: until.and(row.get(2)),
                    lease_until: until,
                    updated: row.get(4),
                    size_bytes: row
                        .get::<_, Option<i32>>(5)
                        .map(|n| n.unsigned_abs().into()),
                }
            })
            .collect())
    }

    pub(crate) async fn delete(&self, lease: &Lease, settings: &LeaseSettings) -> Result<()> {
        let s = &self.schema;
        let deleted = self
            .client()
            .await?
            .execute(
                &format!(
                    "DELETE FROM {s}.conversations WHERE id = $1 AND holder = $2 AND fence = $3"
                ),
                &[&lease.conversation_id, &settings.holder, &fence(lease)],
            )
            .await
            .map_err(store_error)?;
        if deleted == 0 {
            return Err(lease_lost(lease));
        }
        Ok(())
    }
}

fn fence(lease: &Lease) -> i64 {
    i64::try_from(lease.fence).unwrap_or(i64::MAX)
}
