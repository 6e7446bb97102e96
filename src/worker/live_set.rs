//! Which agents of a pool are live (hold a `localharness`), and the cap on them
//! (`PoolConfig::max_live_agents`): an activation that would exceed it first hibernates the
//! least-recently-used idle agent; when every live agent is busy it waits for one to become
//! idle. Nothing fails for want of room.

use std::{
    sync::{Arc, Weak},
    time::Instant,
};

use futures::future::BoxFuture;
use parking_lot::Mutex;

use crate::error::Result;

/// An agent as the live set sees it.
pub(crate) trait Member: Send + Sync {
    /// When it was last used (an activation, a call or a turn ending).
    fn last_used(&self) -> Instant;
    /// Hibernates it if it is idle; `Ok(false)` when it is busy (or not live).
    fn try_hibernate(self: Arc<Self>) -> BoxFuture<'static, Result<bool>>;
    /// Whether it has been idle for longer than its hibernation delay.
    fn idle_expired(&self) -> bool;
    /// Hibernates it once its uses in progress end (draining a bridge).
    fn drain(self: Arc<Self>) -> BoxFuture<'static, Result<()>>;
}

/// The live agents of one pool, and every agent of it (for the hibernated count).
#[derive(Default)]
pub(crate) struct LiveSet {
    cap: Option<usize>,
    live: Mutex<Vec<Weak<dyn Member>>>,
    all: Mutex<Vec<Weak<dyn Member>>>,
    /// Signalled when an agent becomes idle or leaves the live set.
    changed: tokio::sync::Notify,
}

fn same(a: &Weak<dyn Member>, b: &Arc<dyn Member>) -> bool {
    std::ptr::addr_eq(a.as_ptr(), Arc::as_ptr(b))
}

impl LiveSet {
    pub(crate) fn new(cap: Option<usize>) -> Self {
        Self {
            cap,
            ..Self::default()
        }
    }

    /// Counts a new agent of the pool.
    pub(crate) fn register(&self, member: &Arc<dyn Member>) {
        let mut all = self.all.lock();
        all.retain(|m| m.strong_count() > 0);
        all.push(Arc::downgrade(member));
    }

    /// Makes room for `member` and counts it live: hibernates the least-recently-used idle
    /// agents while the pool is at its cap, and waits for one to become idle when none is.
    pub(crate) async fn admit(&self, member: &Arc<dyn Member>) -> Result<()> {
        loop {
            let changed = self.changed.notified();
            let others = {
                let mut live = self.live.lock();
                live.retain(|m| m.strong_count() > 0);
                if live.iter().any(|m| same(m, member)) {
                    return Ok(());
                }
                if self.cap.is_none_or(|cap| live.len() < cap) {
                    live.push(Arc::downgrade(member));
                    return Ok(());
                }
                let mut others: Vec<Arc<dyn Member>> =
                    live.iter().filter_map(Weak::upgrade).collect();
                others.sort_by_key(|m| m.last_used());
                others
            };
            let mut freed = false;
            for other in others {
                if Arc::clone(&other).try_hibernate().await? {
                    freed = true;
                    break;
                }
            }
            if !freed {
                tracing::debug!("every live agent is busy; waiting for one to become idle");
                changed.await;
            }
        }
    }

    /// Takes `member` out of the live set.
    pub(crate) fn remove(&self, member: &Arc<dyn Member>) {
        self.live
            .lock()
            .retain(|m| m.strong_count() > 0 && !same(m, member));
        self.changed.notify_waiters();
    }

    /// Tells waiting activations that an agent became idle.
    pub(crate) fn became_idle(&self) {
        self.changed.notify_waiters();
    }

    /// Live agents whose hibernation delay has passed.
    pub(crate) fn expired(&self) -> Vec<Arc<dyn Member>> {
        self.live
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .filter(|m| m.idle_expired())
            .collect()
    }

    /// Every agent of the pool, live or not.
    pub(crate) fn members(&self) -> Vec<Arc<dyn Member>> {
        self.all.lock().iter().filter_map(Weak::upgrade).collect()
    }

    /// `(live, all)` agents of the pool.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let live = self
            .live
            .lock()
            .iter()
            .filter(|m| m.strong_count() > 0)
            .count();
        let all = self
            .all
            .lock()
            .iter()
            .filter(|m| m.strong_count() > 0)
            .count();
        (live, all)
    }
}
