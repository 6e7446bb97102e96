//! Quota backoff per API key (the seed's `QuotaRegistry` / `QuotaState`).
//!
//! A 429 / `RESOURCE_EXHAUSTED` from the model records a hit with its retry-after (or an
//! exponential backoff with jitter when none is given); later turns for the same key wait until
//! then; a successful model call clears it, other operations do not. `chat` itself never
//! retries: the caller (or [`crate::Agent::chat_with_retry`]) owns retries, and the SDK's OpenAI
//! path makes none, so nothing is retried twice.
//!
//! With a PostgreSQL store, a hit is also recorded in the store and every bridge on it reads
//! the key's backoff before a turn (`agent::wait_for_quota`, `agent::settle_quota`), so one
//! replica's 429 backs the key off in all of them.

use parking_lot::Mutex;
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

const BASE_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Backoff state of one API key.
#[derive(Debug, Default)]
pub struct QuotaState {
    /// The key's digest (never the key), as bridges sharing a store know it.
    key: String,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    blocked_until: Option<Instant>,
    hits: u32,
}

impl QuotaState {
    fn inner(&self) -> parking_lot::MutexGuard<'_, Inner> {
        self.inner.lock()
    }

    /// Waits until the key may be used again (returns at once when it is not blocked).
    pub async fn wait_for_quota(&self) {
        let until = self.inner().blocked_until;
        if let Some(until) = until {
            tokio::time::sleep_until(until.into()).await;
        }
    }

    /// How long a turn would wait now.
    #[must_use]
    pub fn remaining(&self) -> Duration {
        self.inner().blocked_until.map_or(Duration::ZERO, |u| {
            u.saturating_duration_since(Instant::now())
        })
    }

    /// Records a quota hit; returns the wait it imposes.
    pub fn record_hit(&self, retry_after: Option<Duration>) -> Duration {
        let mut inner = self.inner();
        inner.hits = inner.hits.saturating_add(1);
        let wait = retry_after.unwrap_or_else(|| {
            let exp = BASE_BACKOFF
                .saturating_mul(1 << (inner.hits - 1).min(6))
                .min(MAX_BACKOFF);
            exp + jitter()
        });
        let until = Instant::now() + wait;
        inner.blocked_until = Some(inner.blocked_until.map_or(until, |u| u.max(until)));
        tracing::warn!(
            wait_ms = wait.as_millis(),
            hits = inner.hits,
            "model quota exhausted; backing off"
        );
        wait
    }

    /// The key's digest this state belongs to.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Blocks the key for `wait` from now (a backoff another bridge recorded), unless it is
    /// blocked longer already.
    pub fn block_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut inner = self.inner();
        inner.blocked_until = Some(inner.blocked_until.map_or(until, |u| u.max(until)));
    }

    /// Clears the backoff after a successful model call.
    pub fn record_success(&self) {
        let mut inner = self.inner();
        inner.hits = 0;
        inner.blocked_until = None;
    }
}

/// 500–2000 ms, spread by the clock's nanoseconds (no RNG dependency needed for this).
fn jitter() -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    Duration::from_millis(500 + u64::from(nanos % 1500))
}

/// One [`QuotaState`] per API key.
#[derive(Debug, Default, Clone)]
pub struct QuotaRegistry {
    states: Arc<Mutex<HashMap<String, Arc<QuotaState>>>>,
}

impl QuotaRegistry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The state for `key` (created on first use).
    #[must_use]
    pub fn state_for_key(&self, key: &str) -> Arc<QuotaState> {
        let mut states = self.states.lock();
        Arc::clone(states.entry(key.to_owned()).or_insert_with(|| {
            Arc::new(QuotaState {
                key: key.to_owned(),
                inner: Mutex::default(),
            })
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn hits_block_and_success_clears() {
        let state = QuotaState::default();
        assert_eq!(state.remaining(), Duration::ZERO);
        state.record_hit(Some(Duration::from_secs(5)));
        assert!(state.remaining() > Duration::from_secs(4));
        let started = tokio::time::Instant::now();
        state.wait_for_quota().await;
        assert!(started.elapsed() >= Duration::from_secs(4));
        state.record_success();
        assert_eq!(state.remaining(), Duration::ZERO);
    }

    #[test]
    fn backoff_without_retry_after_grows() {
        let state = QuotaState::default();
        let first = state.record_hit(None);
        let second = state.record_hit(None);
        let third = state.record_hit(None);
        assert!(first >= Duration::from_millis(1500) && first <= Duration::from_millis(3000));
        assert!(third > second || third >= Duration::from_secs(4));
    }

    #[test]
    fn keys_are_independent() {
        let reg = QuotaRegistry::new();
        reg.state_for_key("a")
            .record_hit(Some(Duration::from_secs(9)));
        assert!(reg.state_for_key("b").remaining().is_zero());
        assert!(!reg.state_for_key("a").remaining().is_zero());
    }
}
