//! Keeps a bridge's worker alive: replaces a crashed worker on next use (within a restart
//! budget, with backoff), and kills a hung one found by the heartbeat.
//!
//! Restarts are lazy: a crash fails the requests in flight (`Error::WorkerCrashed`), and the
//! next request starts a new worker, on which the agent re-opens its conversation. Nothing
//! restarts a worker that was shut down on purpose.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use parking_lot::{Mutex, RwLock};

use crate::{
    error::{Error, Result},
    protocol::methods::WorkerPing,
    rpc::Handler,
    worker::{WorkerOptions, WorkerProcess},
};

/// When and how often a crashed worker is replaced, and how a hung one is detected.
///
/// ```
/// use std::time::Duration;
/// use agy_bridge::{BridgeConfig, RestartPolicy};
///
/// let config = BridgeConfig::default().restart(
///     RestartPolicy::default()
///         .warm_spare(true) // crash-to-ready in milliseconds instead of ~1 s
///         .heartbeat_timeout(Duration::from_secs(5)),
/// );
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RestartPolicy {
    /// At most this many restarts within [`RestartPolicy::window`].
    pub max_restarts: u32,
    /// The sliding window for the restart budget.
    pub window: Duration,
    /// Backoff before the second restart in a window (doubling after that, capped at 5 s, and
    /// scaled by a random factor in [0.5, 1) so that workers do not restart in lockstep).
    /// Applied only when the dead worker crashed within [`RestartPolicy::stable_after`] of its
    /// start: a crash storm, not a worker that ran fine for a while.
    pub backoff: Duration,
    /// A worker that lived this long counts as a stable start (no backoff after its crash).
    pub stable_after: Duration,
    /// How often the worker is pinged; `None` disables the heartbeat.
    pub heartbeat_interval: Option<Duration>,
    /// A ping not answered within this time marks the worker hung: it is killed.
    pub heartbeat_timeout: Duration,
    /// Keep one extra worker started and initialized, so a crashed worker is replaced without
    /// paying interpreter start and SDK import (about 1 s) on the critical path. Costs one idle
    /// worker process (~60 MiB).
    pub warm_spare: bool,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            window: Duration::from_secs(60),
            backoff: Duration::from_millis(100),
            stable_after: Duration::from_secs(10),
            heartbeat_interval: Some(Duration::from_secs(5)),
            heartbeat_timeout: Duration::from_secs(15),
            warm_spare: false,
        }
    }
}

impl RestartPolicy {
    /// At most `n` restarts within [`RestartPolicy::window`].
    #[must_use]
    pub const fn max_restarts(mut self, n: u32) -> Self {
        self.max_restarts = n;
        self
    }

    /// The sliding window of the restart budget.
    #[must_use]
    pub const fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// The backoff before the second restart in a window (doubling after that).
    #[must_use]
    pub const fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long a worker must live to count as a stable start.
    #[must_use]
    pub const fn stable_after(mut self, after: Duration) -> Self {
        self.stable_after = after;
        self
    }

    /// How often the worker is pinged; `None` disables the heartbeat.
    #[must_use]
    pub const fn heartbeat_interval(mut self, interval: Option<Duration>) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// How long a ping may go unanswered before the worker is killed as hung.
    #[must_use]
    pub const fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.heartbeat_timeout = timeout;
        self
    }

    /// Keeps a started, initialized spare worker (~60 MiB) for fast replacement.
    #[must_use]
    pub const fn warm_spare(mut self, warm: bool) -> Self {
        self.warm_spare = warm;
        self
    }
}

/// One worker generation.
pub(crate) struct Worker {
    pub(crate) process: WorkerProcess,
    pub(crate) generation: u64,
    started: Instant,
}

pub(crate) struct Supervisor {
    slot: RwLock<Arc<Worker>>,
    options: WorkerOptions,
    handler: Arc<dyn Handler>,
    policy: RestartPolicy,
    restarts: tokio::sync::Mutex<VecDeque<Instant>>,
    total_restarts: AtomicU64,
    stopped: AtomicBool,
    /// A started, initialized worker waiting to replace the current one.
    spare: tokio::sync::Mutex<Option<WorkerProcess>>,
    /// A start failure that retrying cannot fix (see [`is_deterministic`]): returned at once
    /// instead of spending the restart budget on it.
    fatal: Mutex<Option<Error>>,
    /// Why the last worker ended or failed to start, for [`Error::RestartBudgetExhausted`];
    /// empty while the current worker is the latest event.
    last_failure: Mutex<String>,
}

impl Supervisor {
    pub(crate) async fn start(
        options: WorkerOptions,
        handler: Arc<dyn Handler>,
        policy: RestartPolicy,
    ) -> Result<Arc<Self>> {
        let process = WorkerProcess::spawn(&options, Arc::clone(&handler)).await?;
        let worker = Arc::new(Worker {
            process,
            generation: 1,
            started: Instant::now(),
        });
        let supervisor = Arc::new(Self {
            slot: RwLock::new(Arc::clone(&worker)),
            options,
            handler,
            policy,
            restarts: tokio::sync::Mutex::new(VecDeque::new()),
            total_restarts: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            spare: tokio::sync::Mutex::new(None),
            fatal: Mutex::new(None),
            last_failure: Mutex::new(String::new()),
        });
        supervisor.watch(&worker);
        supervisor.refill_spare();
        Ok(supervisor)
    }

    /// The current worker, alive or not.
    pub(crate) fn current(&self) -> Arc<Worker> {
        Arc::clone(&self.slot.read())
    }

    /// Pid of the warm spare, if one is ready.
    pub(crate) fn spare_pid(&self) -> Option<u32> {
        let spare = self.spare.try_lock().ok()?;
        spare
            .as_ref()
            .filter(|s| !s.peer().is_closed())
            .map(WorkerProcess::pid)
    }

    /// Restarts since the bridge started.
    pub(crate) fn restarts(&self) -> u64 {
        self.total_restarts.load(Ordering::Relaxed)
    }

    /// A live worker: the current one, or a replacement if it has died.
    pub(crate) async fn live(self: &Arc<Self>) -> Result<Arc<Worker>> {
        let worker = self.current();
        if !worker.process.peer().is_closed() {
            return Ok(worker);
        }
        let mut restarts = self.restarts.lock().await;
        let worker = self.current();
        if !worker.process.peer().is_closed() {
            return Ok(worker); // replaced while we waited
        }
        if self.stopped.load(Ordering::SeqCst) {
            return Err(Error::WorkerStopped);
        }
        if let Some(fatal) = self.fatal.lock().clone() {
            return Err(fatal);
        }
        // The current worker's end, unless a failed start of its replacement came after it.
        if let Some(status) = worker.process.exit_status()
            && self.last_failure.lock().is_empty()
        {
            *self.last_failure.lock() = format!(
                "the worker exited ({})",
                crate::worker::process::describe_exit(status)
            );
        }
        let now = Instant::now();
        while restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.policy.window)
        {
            restarts.pop_front();
        }
        let recent = u32::try_from(restarts.len()).unwrap_or(u32::MAX);
        if recent >= self.policy.max_restarts {
            return Err(Error::RestartBudgetExhausted {
                restarts: recent,
                window: self.policy.window,
                last_failure: self.last_failure.lock().clone(),
            });
        }
        if recent > 0 && worker.started.elapsed() < self.policy.stable_after {
            let backoff = self
                .policy
                .backoff
                .saturating_mul(1 << (recent - 1).min(6))
                .min(Duration::from_secs(5));
            tokio::time::sleep(jittered(backoff)).await;
        }
        restarts.push_back(Instant::now());
        self.total_restarts.fetch_add(1, Ordering::Relaxed);
        crate::metrics::worker_restart();
        tracing::warn!(
            old_pid = worker.process.pid(),
            generation = worker.generation + 1,
            "replacing a dead worker"
        );
        let replacement = self.replace(&worker).await?;
        self.last_failure.lock().clear();
        Ok(replacement)
    }

    /// Replaces a healthy worker on purpose (recycling): the replacement (the warm spare when
    /// there is one) becomes current. Returns the old worker, which the caller (having drained
    /// it) stops gracefully: that closes its agents' sessions with their conversations
    /// persisted.
    pub(crate) async fn recycle(self: &Arc<Self>) -> Result<Arc<Worker>> {
        let restarts = self.restarts.lock().await;
        if self.stopped.load(Ordering::SeqCst) {
            return Err(Error::WorkerStopped);
        }
        let old = self.current();
        self.replace(&old).await?;
        drop(restarts);
        Ok(old)
    }

    /// Makes the warm spare (or a newly started worker) the generation after `old`: watched by
    /// the heartbeat, with a new spare on its way. The caller holds the restart lock.
    async fn replace(self: &Arc<Self>, old: &Worker) -> Result<Arc<Worker>> {
        let process = match self.take_spare().await {
            Some(spare) => spare,
            None => WorkerProcess::spawn(&self.options, Arc::clone(&self.handler))
                .await
                .inspect_err(|e| self.record_start_failure(e))?,
        };
        let replacement = Arc::new(Worker {
            process,
            generation: old.generation + 1,
            started: Instant::now(),
        });
        *self.slot.write() = Arc::clone(&replacement);
        self.watch(&replacement);
        self.refill_spare();
        Ok(replacement)
    }

    fn record_start_failure(&self, error: &Error) {
        *self.last_failure.lock() = first_line(&error.to_string());
        if is_deterministic(error) {
            tracing::error!("the worker cannot start, and retrying will not help: {error}");
            *self.fatal.lock() = Some(error.clone());
        }
    }

    /// The warm spare, if there is a healthy one.
    async fn take_spare(&self) -> Option<WorkerProcess> {
        let spare = self.spare.lock().await.take()?;
        if spare.peer().is_closed() {
            return None; // it died while waiting; its Drop kills what is left
        }
        Some(spare)
    }

    /// Starts a new warm spare in the background (when the policy asks for one).
    fn refill_spare(self: &Arc<Self>) {
        if !self.policy.warm_spare || self.stopped.load(Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let Some(this) = weak.upgrade() else { return };
            let mut slot = this.spare.lock().await;
            if slot.as_ref().is_some_and(|s| !s.peer().is_closed()) {
                return;
            }
            match WorkerProcess::spawn(&this.options, Arc::clone(&this.handler)).await {
                Ok(spare) if !this.stopped.load(Ordering::SeqCst) => *slot = Some(spare),
                Ok(_) => {}
                Err(e) => tracing::warn!("could not start a warm spare worker: {e}"),
            }
        });
    }

    /// Stops the worker for good: no restarts afterwards.
    pub(crate) async fn shutdown(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let spare = self.spare.lock().await.take();
        if let Some(spare) = spare {
            spare.shutdown().await;
        }
        self.current().process.shutdown().await;
    }

    /// Heartbeat: a worker whose event loop stops answering (blocked, SIGSTOPped) is killed,
    /// which fails its requests and lets the next request start a replacement.
    fn watch(&self, worker: &Arc<Worker>) {
        let Some(interval) = self.policy.heartbeat_interval else {
            return;
        };
        let timeout = self.policy.heartbeat_timeout;
        let weak: Weak<Worker> = Arc::downgrade(worker);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(worker) = weak.upgrade() else { return };
                if worker.process.peer().is_closed() {
                    return;
                }
                match worker.process.call::<WorkerPing>(&None, timeout).await {
                    Ok(_) => {}
                    Err(Error::Timeout { .. }) => {
                        let reason = format!(
                            "the worker did not answer its heartbeat within {timeout:?} (blocked or stopped)"
                        );
                        tracing::error!(pid = worker.process.pid(), "{reason}; killing it");
                        worker.process.kill_because(reason);
                        return;
                    }
                    Err(_) => return,
                }
            }
        });
    }
}

/// Whether a start failure would recur on every retry: the interpreter is missing or not
/// executable, or the worker or SDK version is not the expected one.
fn is_deterministic(error: &Error) -> bool {
    match error {
        Error::VersionMismatch { .. } => true,
        Error::Spawn { source, .. } => matches!(
            source.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
        ),
        _ => false,
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

/// `backoff` scaled by a random factor in [0.5, 1.0), so that workers crashing together (a bad
/// deploy, a shared dependency) do not restart in lockstep.
fn jittered(backoff: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded randomly per instance: enough entropy for jitter, no extra crate.
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    #[allow(clippy::cast_precision_loss)]
    let unit = (random >> 11) as f64 / (1u64 << 53) as f64;
    backoff.mul_f64(0.5 + unit / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_to_full_and_varies() {
        let base = Duration::from_millis(1000);
        let samples: Vec<Duration> = (0..64).map(|_| jittered(base)).collect();
        assert!(samples.iter().all(|d| *d >= base / 2 && *d < base));
        assert!(samples.iter().any(|d| *d != samples[0]), "no variation");
    }
}
