//! [`Bridge`]: owns a worker process and routes its traffic to agents.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    agent::{Agent, AgentSeed, create_on},
    config::{AgentConfig, BridgeConfig},
    error::{Error, Result},
    protocol::{self, WorkerInfo, methods},
    quota::QuotaRegistry,
    router::{AgentState, Router},
    rpc::Handler,
    supervisor::Supervisor,
    worker::{StartupTimings, WorkerOptions, venv},
};

impl BridgeInner {
    /// The least-loaded worker that is below the per-worker agent cap.
    fn place(&self) -> Result<Arc<Slot>> {
        let cap = self.config.max_agents_per_worker.unwrap_or(usize::MAX);
        self.slots
            .iter()
            .filter(|s| s.router.agent_count() < cap)
            .min_by_key(|s| s.router.agent_count())
            .cloned()
            .ok_or_else(|| Error::Capacity {
                message: format!(
                    "all {} workers host {cap} agents (max_agents_per_worker)",
                    self.slots.len()
                ),
            })
    }

    /// Spaces turn starts by the configured inter-agent delay.
    pub(crate) async fn pace_turn(&self) {
        let delay = self.config.inter_agent_delay;
        if delay.is_zero() {
            return;
        }
        let mut last = self.last_turn_start.lock().await;
        if let Some(at) = *last {
            tokio::time::sleep_until((at + delay).into()).await;
        }
        *last = Some(Instant::now());
    }
}

/// One worker of the bridge: its supervisor and the router for its inbound traffic. Each slot
/// has its own router, so a worker can only call back for agents placed on it.
pub(crate) struct Slot {
    pub(crate) supervisor: Arc<Supervisor>,
    pub(crate) router: Arc<Router>,
}

impl Slot {
    fn stats(&self) -> BridgeStats {
        let worker = self.supervisor.current();
        BridgeStats {
            worker_pid: worker.process.pid(),
            generation: worker.generation,
            restarts: self.supervisor.restarts(),
            worker_alive: !worker.process.peer().is_closed(),
            agents: self.router.agent_count(),
            spare_pid: self.supervisor.spare_pid(),
        }
    }
}

pub(crate) struct BridgeInner {
    /// The workers (one supervised slot each); agents are placed on the least-loaded one.
    pub(crate) slots: Vec<Arc<Slot>>,
    pub(crate) config: BridgeConfig,
    pub(crate) data_dir: PathBuf,
    pub(crate) quota: QuotaRegistry,
    next_agent: AtomicU64,
    pub(crate) next_turn: AtomicU64,
    /// When the last turn was started (for [`BridgeConfig::inter_agent_delay`]).
    last_turn_start: tokio::sync::Mutex<Option<Instant>>,
}

/// A snapshot of a bridge's worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeStats {
    /// Pid (and process group) of the current worker.
    pub worker_pid: u32,
    /// 1 for the first worker, +1 for each replacement.
    pub generation: u64,
    /// Replacements so far.
    pub restarts: u64,
    /// Whether the current worker's connection is open.
    pub worker_alive: bool,
    /// Live agents.
    pub agents: usize,
    /// Pid of the warm spare worker, when one is ready.
    pub spare_pid: Option<u32>,
}

/// The entry point: starts a Python worker (creating the managed venv on first use) and creates
/// agents on it.
///
/// ```no_run
/// # async fn demo() -> agy_bridge::Result<()> {
/// use agy_bridge::{AgentConfig, Bridge, BridgeConfig, ModelConfig};
/// use futures::StreamExt;
///
/// let bridge = Bridge::start(BridgeConfig::default()).await?;
/// let agent = bridge
///     .create_agent(AgentConfig::new(ModelConfig::gemini_from_env()?))
///     .await?;
/// let mut reply = agent.chat("Say hello").await?;
/// while let Some(event) = reply.next().await {
///     println!("{event:?}");
/// }
/// let outcome = reply.finish().await?;
/// println!("{}", outcome.text);
/// agent.close().await?;
/// bridge.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Bridge {
    inner: Arc<BridgeInner>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("workers", &self.inner.slots.len())
            .field("data_dir", &self.inner.data_dir)
            .finish_non_exhaustive()
    }
}

impl Bridge {
    /// Prepares the Python environment (first run: creates the venv) and starts a worker.
    ///
    /// # Errors
    /// [`Error::VenvSetup`], [`Error::Spawn`], [`Error::VersionMismatch`], or the worker's
    /// start-up failure with its stderr.
    pub async fn start(config: BridgeConfig) -> Result<Self> {
        // Like the seed: settings such as GEMINI_API_KEY may come from a .env file.
        if let Err(e) = dotenvy::dotenv()
            && !e.not_found()
        {
            tracing::warn!("could not load .env: {e}");
        }
        let env = venv::ensure(config.python.clone(), config.setup_progress.clone()).await?;
        let data_dir = config
            .data_dir
            .clone()
            .or_else(|| dirs::data_local_dir().map(|d| d.join("agy-bridge")))
            .unwrap_or_else(|| std::env::temp_dir().join("agy-bridge-data"));
        for sub in ["conversations", "app-data", "harness-home"] {
            std::fs::create_dir_all(data_dir.join(sub))?;
        }
        let mut options = WorkerOptions::new(env);
        options.max_message_size = config.max_message_size;
        options.write_queue = config.channel_capacity;
        options.startup_timeout = config.startup_timeout;
        options.shutdown_grace = config.shutdown_timeout;
        options.allow_sdk_mismatch = config.allow_sdk_mismatch;
        options.debug_methods = config.debug_methods;
        options.extra_env.clone_from(&config.worker_env);
        let starts = (0..config.workers.max(1)).map(|_| {
            let router = Arc::new(Router::default());
            let options = options.clone();
            let policy = config.restart.clone();
            async move {
                let supervisor =
                    Supervisor::start(options, Arc::clone(&router) as Arc<dyn Handler>, policy)
                        .await?;
                Ok::<_, Error>(Arc::new(Slot { supervisor, router }))
            }
        });
        let slots = futures::future::try_join_all(starts).await?;
        Ok(Self {
            inner: Arc::new(BridgeInner {
                slots,
                config,
                data_dir,
                quota: QuotaRegistry::new(),
                next_agent: AtomicU64::new(1),
                next_turn: AtomicU64::new(1),
                last_turn_start: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// Starts an agent on the worker.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the SDK rejects the configuration, or a worker error.
    pub async fn create_agent(&self, config: AgentConfig) -> Result<Agent> {
        config.validate()?;
        let seq = self.inner.next_agent.fetch_add(1, Ordering::Relaxed);
        let agent_id = format!("agent-{seq}");
        let conversation_id = config
            .conversation_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let save_dir = self.inner.data_dir.join("conversations");
        let app_data_dir = self.inner.data_dir.join("app-data");
        let mut wire = json!({
            "model": config.model,
            "conversation_id": conversation_id,
            "save_dir": save_dir,
            "app_data_dir": app_data_dir,
            "session_continuation_mode": "create_or_resume",
            "enabled_tools": config.builtin_tools,
            "agent_behavior": config.behavior,
            // The harness rewrites a 16 MB helper under $HOME at every start; keep it in ours.
            "env": { "HOME": self.inner.data_dir.join("harness-home") },
        });
        if !config.tools.is_empty() {
            wire["tools"] = json!(config.tools.declarations());
        }
        if !config.hooks.points().is_empty() {
            wire["hooks"] = json!(config.hooks.points());
        }
        if !config.policies.is_empty() {
            let rules: Vec<Value> = config
                .policies
                .rules()
                .iter()
                .enumerate()
                .map(|(i, r)| r.wire(i))
                .collect();
            wire["policies"] = json!(rules);
        }
        if let Some(text) = &config.system_instructions {
            wire["system_instructions"] = json!(text);
        }
        let capabilities = serde_json::to_value(&config.capabilities).unwrap_or_default();
        if capabilities.as_object().is_some_and(|c| !c.is_empty()) {
            wire["capabilities_extra"] = capabilities;
        }
        if !config.workspaces.is_empty() {
            wire["workspaces"] = json!(config.workspaces);
        }
        if let Some(schema) = &config.response_schema {
            wire["response_schema"] = schema.clone();
        }
        if let Some(extra) = &config.sdk_options {
            wire["sdk_options"] = extra.clone();
        }
        let quota = self.inner.quota.state_for_key(&config.model.quota_key());
        let slot = self.inner.place()?;
        // Rust state first: the worker may call back while the agent starts.
        slot.router.add_agent(Arc::new(AgentState::new(
            agent_id.clone(),
            conversation_id.clone(),
            config.tools,
            config.hooks,
            config.policies,
        )));
        let worker = slot.supervisor.live().await?;
        let created = create_on(
            &worker,
            &agent_id,
            &wire,
            self.inner.config.operation_timeout,
        )
        .await
        .inspect_err(|_| slot.router.remove_agent(&agent_id))?;
        tracing::debug!(%agent_id, start_ms = created.start_ms, "agent started");
        Ok(Agent::new(
            AgentSeed {
                id: agent_id,
                conversation_id,
                save_dir,
                app_data_dir,
                harness_pid: created.harness_pid,
                wire,
                generation: worker.generation,
            },
            Arc::clone(&self.inner),
            slot,
            quota,
        ))
    }

    /// What the current worker reported at start-up (versions, pid, JSON backend, event loop).
    #[must_use]
    pub fn worker_info(&self) -> WorkerInfo {
        self.inner.slots[0]
            .supervisor
            .current()
            .process
            .info()
            .clone()
    }

    /// How long the current worker's start-up phases took.
    #[must_use]
    pub fn startup_timings(&self) -> StartupTimings {
        self.inner.slots[0].supervisor.current().process.timings()
    }

    /// Worker pid, generation (1 for the first worker, +1 per replacement), restarts, agents.
    #[must_use]
    pub fn stats(&self) -> BridgeStats {
        self.inner.slots[0].stats()
    }

    /// [`Bridge::stats`] for every worker of the bridge.
    #[must_use]
    pub fn worker_stats(&self) -> Vec<BridgeStats> {
        self.inner.slots.iter().map(|s| s.stats()).collect()
    }

    /// The data directory (conversations, harness files).
    #[must_use]
    pub fn data_dir(&self) -> &std::path::Path {
        &self.inner.data_dir
    }

    /// Round-trips a `worker/ping` and returns the time it took.
    ///
    /// # Errors
    /// A worker error or [`Error::Timeout`].
    pub async fn ping(&self) -> Result<Duration> {
        let worker = self.inner.slots[0].supervisor.live().await?;
        let started = Instant::now();
        worker
            .process
            .peer()
            .call_timeout(
                methods::WORKER_PING,
                Value::Null,
                self.inner.config.operation_timeout,
            )
            .await?;
        Ok(started.elapsed())
    }

    /// Sends a raw request to the worker (diagnostics, benchmarks, tests).
    ///
    /// # Errors
    /// Whatever the worker answers with.
    #[doc(hidden)]
    pub async fn call_raw(&self, method: &str, params: Value) -> Result<Value> {
        self.inner.slots[0]
            .supervisor
            .live()
            .await?
            .process
            .peer()
            .call(method, params)
            .await
            .map_err(protocol::refine_error)
    }

    /// The per-API-key quota backoff shared by this bridge's agents.
    #[must_use]
    pub fn quota(&self) -> &QuotaRegistry {
        &self.inner.quota
    }

    /// The worker's last stderr lines.
    #[must_use]
    pub fn worker_stderr_tail(&self) -> String {
        self.inner.slots[0]
            .supervisor
            .current()
            .process
            .stderr_tail()
    }

    /// Stops the worker gracefully (agents closed, then the process group ended). Bounded by
    /// the shutdown timeout plus a few seconds for signals.
    pub async fn shutdown(self) {
        futures::future::join_all(self.inner.slots.iter().map(|s| s.supervisor.shutdown())).await;
    }

    /// Kills the worker's process group at once (SIGKILL). In-flight calls fail with
    /// [`Error::WorkerCrashed`].
    #[doc(hidden)]
    pub fn kill_worker(&self) {
        self.inner.slots[0].supervisor.current().process.kill();
    }
}
