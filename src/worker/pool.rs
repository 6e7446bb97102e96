//! Worker pools: named groups of supervised workers with their own settings, least-loaded
//! placement, and recycling (a worker is drained and replaced after N turns or above an RSS
//! ceiling).
//!
//! A bridge always has the pool [`DEFAULT_POOL`], built from the top-level [`BridgeConfig`]
//! fields; [`BridgeConfig::pool`] adds more. An agent picks its pool with
//! [`crate::AgentConfig::pool`].
//!
//! [`BridgeConfig`]: crate::BridgeConfig
//! [`BridgeConfig::pool`]: crate::BridgeConfig::pool

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{OwnedRwLockReadGuard, RwLock};

use secrecy::SecretString;

use super::child_env::EnvVars;
use crate::{
    error::{Error, Result},
    worker::{
        PythonConfig,
        live_set::LiveSet,
        memory,
        router::Router,
        supervisor::{RestartPolicy, Supervisor},
    },
};

/// The name of the pool built from the top-level [`crate::BridgeConfig`] fields.
pub const DEFAULT_POOL: &str = "default";

/// When a worker is recycled: drained (its running turns and calls finish, new ones wait),
/// replaced by a fresh process, and its agents re-opened there on their next use with their
/// conversation. Recycling bounds the growth of a long-lived Python process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecyclePolicy {
    /// Recycle after this many turns on one worker process.
    pub after_turns: Option<u64>,
    /// Recycle once the worker process's resident memory exceeds this many bytes (checked at
    /// the end of each turn; Linux only). The agents' harnesses are not counted: they are
    /// separate processes, restarted with the agent anyway.
    pub max_rss_bytes: Option<u64>,
}

impl RecyclePolicy {
    /// Recycle after `turns` turns on one worker process.
    #[must_use]
    pub const fn after_turns(mut self, turns: u64) -> Self {
        self.after_turns = Some(turns);
        self
    }

    /// Recycle once the worker process's resident memory exceeds `bytes`.
    #[must_use]
    pub const fn above_rss(mut self, bytes: u64) -> Self {
        self.max_rss_bytes = Some(bytes);
        self
    }
}

/// A named pool of workers with its own interpreter, environment (API keys), size, limits and
/// supervision. Unset fields inherit the bridge's.
///
/// ```
/// use agy_bridge::{BridgeConfig, PoolConfig};
///
/// let config = BridgeConfig::default().pool(
///     PoolConfig::new("batch")
///         .workers(4)
///         .max_agents_per_worker(8)
///         .gemini_api_key("key-for-batch-jobs")
///         .recycle_after_turns(500),
/// );
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PoolConfig {
    /// The pool's name, used by [`crate::AgentConfig::pool`].
    pub name: String,
    /// Number of worker processes (default 1).
    pub workers: usize,
    /// At most this many agents per worker (default: no limit).
    pub max_agents_per_worker: Option<usize>,
    /// The interpreter or managed venv (default: the bridge's).
    pub python: Option<PythonConfig>,
    /// Environment variables for this pool's workers, on top of the bridge's `worker_env`.
    pub env: EnvVars,
    /// The Gemini API key of agents of this pool created without one.
    pub gemini_api_key: Option<SecretString>,
    /// Restart budget, heartbeat and warm spare (default: the bridge's).
    pub restart: Option<RestartPolicy>,
    /// When workers are recycled (default: never).
    pub recycle: RecyclePolicy,
    /// At most this many agents of the pool live at once (default: no limit); see
    /// [`PoolConfig::max_live_agents`].
    pub max_live_agents: Option<usize>,
    /// Agents of the pool idle this long hibernate (default: never); see
    /// [`PoolConfig::hibernate_after`].
    pub hibernate_after: Option<Duration>,
    /// Harnesses each worker keeps started ahead (default: the bridge's); see
    /// [`crate::BridgeConfig::prestarted_harnesses`].
    pub prestarted_harnesses: Option<usize>,
    /// Conversations one `localharness` serves (default: the default pool's); see
    /// [`PoolConfig::conversations_per_harness`].
    pub conversations_per_harness: Option<usize>,
}

impl PoolConfig {
    /// A pool of one worker named `name`, otherwise inheriting the bridge's settings.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            workers: 1,
            max_agents_per_worker: None,
            python: None,
            env: EnvVars::default(),
            gemini_api_key: None,
            restart: None,
            recycle: RecyclePolicy::default(),
            max_live_agents: None,
            hibernate_after: None,
            prestarted_harnesses: None,
            conversations_per_harness: None,
        }
    }

    /// Lets up to `n` conversations share one `localharness` process (1: a harness per
    /// agent). A harness costs ~155 MiB and each extra conversation on it ~2 MiB, so sharing
    /// is what lets a machine hold many live agents. Agents share only with agents of the same
    /// launch (same [`crate::AgentConfig::env`]); a harness that dies fails the turns in flight
    /// on it, and every agent on it re-opens its conversation on another harness at its next
    /// turn. Used only with the pinned SDK ([`crate::SDK_VERSION`]); otherwise each agent has
    /// its own harness ([`crate::WorkerInfo::conversations_per_harness`] says which).
    #[must_use]
    pub const fn conversations_per_harness(mut self, n: usize) -> Self {
        self.conversations_per_harness = Some(n);
        self
    }

    /// Keeps `n` harnesses started ahead in each of this pool's workers (see
    /// [`crate::BridgeConfig::prestarted_harnesses`]).
    #[must_use]
    pub const fn prestarted_harnesses(mut self, n: usize) -> Self {
        self.prestarted_harnesses = Some(n);
        self
    }

    /// Keeps at most `n` agents of this pool live (each live agent holds a ~190 MiB
    /// `localharness`): activating one more first hibernates the least-recently-used idle
    /// agent, and waits for one to become idle when all are busy. Nothing fails for want of
    /// room.
    #[must_use]
    pub const fn max_live_agents(mut self, n: usize) -> Self {
        self.max_live_agents = Some(n);
        self
    }

    /// Hibernates agents of this pool idle for `after` (an agent's own
    /// [`crate::AgentConfig::hibernate_after`] wins).
    #[must_use]
    pub const fn hibernate_after(mut self, after: Duration) -> Self {
        self.hibernate_after = Some(after);
        self
    }

    /// Runs `n` workers.
    #[must_use]
    pub const fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Caps the agents per worker.
    #[must_use]
    pub const fn max_agents_per_worker(mut self, n: usize) -> Self {
        self.max_agents_per_worker = Some(n);
        self
    }

    /// Uses another interpreter or venv cache for this pool.
    #[must_use]
    pub fn python(mut self, python: PythonConfig) -> Self {
        self.python = Some(python);
        self
    }

    /// Sets an environment variable for this pool's workers (and their harnesses and the
    /// commands agents run: do not put secrets here that the model must not see).
    #[must_use]
    pub fn env(mut self, key: impl Into<String>, value: impl Into<SecretString>) -> Self {
        self.env.set(key, value);
        self
    }

    /// The Gemini API key for agents of this pool created without one
    /// ([`crate::ModelConfig::Gemini`] with `api_key: None`). It travels in each agent's
    /// configuration, not in the worker's environment, so commands the agent runs cannot read
    /// it.
    #[must_use]
    pub fn gemini_api_key(mut self, key: impl Into<SecretString>) -> Self {
        self.gemini_api_key = Some(key.into());
        self
    }

    /// Restart budget, heartbeat and warm spare for this pool.
    #[must_use]
    pub fn restart(mut self, policy: RestartPolicy) -> Self {
        self.restart = Some(policy);
        self
    }

    /// Recycles each worker after `turns` turns.
    #[must_use]
    pub const fn recycle_after_turns(mut self, turns: u64) -> Self {
        self.recycle.after_turns = Some(turns);
        self
    }

    /// Recycles a worker whose process grows beyond `bytes` of resident memory.
    #[must_use]
    pub const fn recycle_above_rss(mut self, bytes: u64) -> Self {
        self.recycle.max_rss_bytes = Some(bytes);
        self
    }
}

/// A started pool.
pub(crate) struct Pool {
    pub(crate) name: String,
    pub(crate) slots: Vec<Arc<Slot>>,
    max_agents_per_worker: Option<usize>,
    /// The key of Gemini agents created without one.
    pub(crate) gemini_api_key: Option<SecretString>,
    /// The pool's live agents, under its cap.
    pub(crate) live: LiveSet,
    /// The pool's default hibernation delay.
    pub(crate) hibernate_after: Option<Duration>,
}

impl Pool {
    pub(crate) fn new(config: PoolConfig, slots: Vec<Arc<Slot>>) -> Self {
        Self {
            name: config.name,
            slots,
            max_agents_per_worker: config.max_agents_per_worker,
            gemini_api_key: config.gemini_api_key,
            live: LiveSet::new(config.max_live_agents),
            hibernate_after: config.hibernate_after,
        }
    }

    /// Live and hibernated agents of the pool.
    pub(crate) fn agent_stats(&self) -> PoolStats {
        let (live, all) = self.live.counts();
        PoolStats {
            pool: self.name.clone(),
            live_agents: live,
            hibernated_agents: all.saturating_sub(live),
        }
    }

    /// The least-loaded worker below the per-worker agent cap, preferring workers that are
    /// not being recycled.
    pub(crate) fn place(&self) -> Result<Arc<Slot>> {
        let cap = self.max_agents_per_worker.unwrap_or(usize::MAX);
        self.slots
            .iter()
            .filter(|s| s.router.agent_count() < cap)
            .min_by_key(|s| (s.draining.load(Ordering::SeqCst), s.router.agent_count()))
            .cloned()
            .ok_or_else(|| Error::Capacity {
                message: format!(
                    "all {} workers of pool {:?} host {cap} agents (max_agents_per_worker)",
                    self.slots.len(),
                    self.name
                ),
            })
    }
}

/// One worker of a pool: its supervisor, the router for its inbound traffic (so a worker can
/// only call back for agents placed on it), and its recycling state.
pub(crate) struct Slot {
    pub(crate) pool: String,
    pub(crate) supervisor: Arc<Supervisor>,
    pub(crate) router: Arc<Router>,
    recycle: RecyclePolicy,
    /// Turns and calls hold it shared; recycling takes it exclusively, so it waits for them
    /// to finish and new ones wait for the replacement.
    gate: Arc<RwLock<()>>,
    /// Turns on the current worker process.
    turns: AtomicU64,
    /// Set (synchronously, when a turn ends over the limit) until the replacement is current;
    /// turns and calls starting meanwhile wait for it.
    draining: AtomicBool,
    drained: tokio::sync::Notify,
    recycles: AtomicU64,
}

impl Slot {
    pub(crate) fn new(
        pool: String,
        supervisor: Arc<Supervisor>,
        router: Arc<Router>,
        recycle: RecyclePolicy,
    ) -> Self {
        Self {
            pool,
            supervisor,
            router,
            recycle,
            gate: Arc::new(RwLock::new(())),
            turns: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            drained: tokio::sync::Notify::new(),
            recycles: AtomicU64::new(0),
        }
    }

    /// Holds off recycling while the returned guard lives (a turn or a call in progress).
    pub(crate) async fn enter(&self) -> OwnedRwLockReadGuard<()> {
        loop {
            let drained = self.drained.notified();
            if !self.is_draining() {
                break;
            }
            drained.await;
        }
        Arc::clone(&self.gate).read_owned().await
    }

    /// Whether the worker waits to be recycled.
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Counts a finished turn and starts recycling when the policy says so.
    pub(crate) fn turn_ended(self: &Arc<Self>) {
        let turns = self.turns.fetch_add(1, Ordering::SeqCst) + 1;
        let by_turns = self.recycle.after_turns.is_some_and(|n| turns >= n);
        let by_rss = self.recycle.max_rss_bytes.is_some_and(|max| {
            memory::rss_bytes(self.supervisor.current().process.pid()).is_some_and(|rss| rss > max)
        });
        if by_turns || by_rss {
            self.start_recycle(if by_turns {
                "turn limit"
            } else {
                "RSS ceiling"
            });
        }
    }

    /// Drains the worker and replaces it, in the background. Once at a time.
    fn start_recycle(self: &Arc<Self>, reason: &'static str) {
        if self.draining.swap(true, Ordering::SeqCst) {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let drained = Arc::clone(&this.gate).write_owned().await;
            let old_pid = this.supervisor.current().process.pid();
            let old = this.supervisor.recycle().await;
            if old.is_ok() {
                this.recycles.fetch_add(1, Ordering::Relaxed);
            }
            this.turns.store(0, Ordering::SeqCst);
            this.draining.store(false, Ordering::SeqCst);
            this.drained.notify_waiters();
            drop(drained);
            match old {
                Ok(old) => {
                    tracing::info!(pool = %this.pool, old_pid, reason, "recycled a worker");
                    old.process.shutdown().await;
                }
                Err(e) => tracing::warn!(pool = %this.pool, old_pid, "recycling failed: {e}"),
            }
        });
    }

    pub(crate) fn stats(&self) -> WorkerStats {
        let worker = self.supervisor.current();
        let pid = worker.process.pid();
        WorkerStats {
            pool: self.pool.clone(),
            worker_pid: pid,
            generation: worker.generation,
            restarts: self.supervisor.restarts(),
            recycles: self.recycles.load(Ordering::Relaxed),
            worker_alive: !worker.process.peer().is_closed(),
            draining: self.draining.load(Ordering::SeqCst),
            agents: self.router.agent_count(),
            in_flight: worker.process.peer().pending_requests(),
            turns: self.turns.load(Ordering::SeqCst),
            rss_bytes: memory::rss_bytes(pid),
            harness_rss_bytes: memory::group_rss_bytes_excluding_leader(pid),
            spare_pid: self.supervisor.spare_pid(),
            // Only those of the current process (a crashed worker's report is stale).
            spare_harness_pids: self
                .router
                .spare_harnesses(pid)
                .into_iter()
                .filter(|&harness| memory::process_group(harness) == Some(pid))
                .collect(),
            shared_harness_pids: self
                .router
                .shared_harnesses(pid)
                .into_iter()
                .filter(|&harness| memory::process_group(harness) == Some(pid))
                .collect(),
        }
    }
}

/// How many agents of a pool are live (with a harness) and hibernated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// The pool.
    pub pool: String,
    /// Agents with a live `localharness`.
    pub live_agents: usize,
    /// Agents hibernated (their conversation on disk or in the store).
    pub hibernated_agents: usize,
}

/// A snapshot of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// The pool it belongs to.
    pub pool: String,
    /// Pid (and process group) of the current worker process.
    pub worker_pid: u32,
    /// 1 for the first process, +1 for each replacement (after a crash or a recycle).
    pub generation: u64,
    /// Replacements after a crash or hang.
    pub restarts: u64,
    /// Replacements by the recycling policy.
    pub recycles: u64,
    /// Whether the current worker's connection is open.
    pub worker_alive: bool,
    /// Whether the worker is being drained for recycling.
    pub draining: bool,
    /// Live agents placed on this worker.
    pub agents: usize,
    /// Requests from Rust waiting for the worker's answer (turns, calls, heartbeat).
    pub in_flight: usize,
    /// Turns finished on the current worker process.
    pub turns: u64,
    /// Resident memory of the worker process (Linux).
    pub rss_bytes: Option<u64>,
    /// Resident memory of its agents' `localharness` processes together (Linux).
    pub harness_rss_bytes: Option<u64>,
    /// Pid of the warm spare worker, when one is ready.
    pub spare_pid: Option<u32>,
    /// Pids of the `localharness` processes the worker keeps started for agents still to come
    /// (see [`crate::BridgeConfig::prestarted_harnesses`]); their memory is in
    /// `harness_rss_bytes`.
    pub spare_harness_pids: Vec<u32>,
    /// Pids of the shared `localharness` processes serving this worker's agents now (see
    /// [`PoolConfig::conversations_per_harness`]); their memory is in `harness_rss_bytes`.
    pub shared_harness_pids: Vec<u32>,
}
