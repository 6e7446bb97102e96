//! [`Bridge`]: owns the worker pools and creates agents on them.

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
    pool::{DEFAULT_POOL, Pool, PoolConfig, Slot, WorkerStats},
    protocol::{self, WorkerInfo, methods},
    quota::QuotaRegistry,
    router::{AgentState, Router},
    rpc::Handler,
    supervisor::Supervisor,
    worker::{StartupTimings, WorkerOptions, venv},
};

impl BridgeInner {
    /// The pool called `name` (the default pool for `None`).
    fn pool(&self, name: Option<&str>) -> Result<&Pool> {
        let name = name.unwrap_or(DEFAULT_POOL);
        self.pools
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::InvalidConfig {
                message: format!(
                    "no worker pool named {name:?} (pools: {})",
                    self.pools
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }

    /// The first worker of the default pool.
    fn first_slot(&self) -> &Arc<Slot> {
        &self.pools[0].slots[0]
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

pub(crate) struct BridgeInner {
    /// The worker pools, the default pool first.
    pools: Vec<Pool>,
    pub(crate) config: BridgeConfig,
    pub(crate) data_dir: PathBuf,
    pub(crate) quota: QuotaRegistry,
    next_agent: AtomicU64,
    pub(crate) next_turn: AtomicU64,
    /// When the last turn was started (for [`BridgeConfig::inter_agent_delay`]).
    last_turn_start: tokio::sync::Mutex<Option<Instant>>,
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
            .field(
                "pools",
                &self
                    .inner
                    .pools
                    .iter()
                    .map(|p| (p.name.as_str(), p.slots.len()))
                    .collect::<Vec<_>>(),
            )
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
        let data_dir = config
            .data_dir
            .clone()
            .unwrap_or_else(crate::config::default_data_dir);
        // Conversations and harness files: owner-only, in a directory no one else controls.
        crate::secure_dir::ensure_private_dir(&data_dir)?;
        for sub in ["conversations", "app-data", "harness-home"] {
            crate::secure_dir::ensure_private_dir(&data_dir.join(sub))?;
        }
        let pools = futures::future::try_join_all(
            config
                .resolved_pools()?
                .into_iter()
                .map(|pool| start_pool(&config, pool)),
        )
        .await?;
        Ok(Self {
            inner: Arc::new(BridgeInner {
                pools,
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
        let pool = self.inner.pool(config.pool.as_deref())?;
        let model = config.model.resolved(pool.gemini_api_key.as_ref())?;
        // The harness rewrites a 16 MB helper under $HOME at every start; keep it in ours.
        let mut env = serde_json::Map::new();
        env.insert(
            "HOME".into(),
            json!(self.inner.data_dir.join("harness-home")),
        );
        for (name, value) in config.env.exposed() {
            env.insert(name.to_owned(), json!(value));
        }
        let mut wire = json!({
            "model": model.to_wire(),
            "conversation_id": conversation_id,
            "save_dir": save_dir,
            "app_data_dir": app_data_dir,
            "session_continuation_mode": "create_or_resume",
            "enabled_tools": config.builtin_tools,
            "agent_behavior": config.behavior,
            "env": env,
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
        let quota_key = model.quota_key();
        let quota = self.inner.quota.state_for_key(&quota_key);
        let slot = pool.place()?;
        let _gate = slot.enter().await;
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
        self.inner
            .first_slot()
            .supervisor
            .current()
            .process
            .info()
            .clone()
    }

    /// How long the current worker's start-up phases took.
    #[must_use]
    pub fn startup_timings(&self) -> StartupTimings {
        self.inner
            .first_slot()
            .supervisor
            .current()
            .process
            .timings()
    }

    /// [`WorkerStats`] of the default pool's first worker.
    #[must_use]
    pub fn stats(&self) -> WorkerStats {
        self.inner.first_slot().stats()
    }

    /// [`WorkerStats`] for every worker of every pool, the default pool first.
    #[must_use]
    pub fn worker_stats(&self) -> Vec<WorkerStats> {
        self.inner
            .pools
            .iter()
            .flat_map(|p| p.slots.iter().map(|s| s.stats()))
            .collect()
    }

    /// The names of the bridge's pools, the default pool first.
    #[must_use]
    pub fn pools(&self) -> Vec<&str> {
        self.inner.pools.iter().map(|p| p.name.as_str()).collect()
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
        let worker = self.inner.first_slot().supervisor.live().await?;
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
        self.inner
            .first_slot()
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
        self.inner
            .first_slot()
            .supervisor
            .current()
            .process
            .stderr_tail()
    }

    /// Stops the worker gracefully (agents closed, then the process group ended). Bounded by
    /// the shutdown timeout plus a few seconds for signals.
    pub async fn shutdown(self) {
        let slots = self.inner.pools.iter().flat_map(|p| p.slots.iter());
        futures::future::join_all(slots.map(|s| s.supervisor.shutdown())).await;
    }

    /// Kills the worker's process group at once (SIGKILL). In-flight calls fail with
    /// [`Error::WorkerCrashed`].
    #[doc(hidden)]
    pub fn kill_worker(&self) {
        self.inner.first_slot().supervisor.current().process.kill();
    }
}

/// Prepares `pool`'s interpreter and starts its workers.
async fn start_pool(config: &BridgeConfig, pool: PoolConfig) -> Result<Pool> {
    let python = pool.python.clone().unwrap_or_else(|| config.python.clone());
    let env = venv::ensure(python, config.setup_progress.clone()).await?;
    let mut options = WorkerOptions::new(env);
    options.max_message_size = config.max_message_size;
    options.write_queue = config.channel_capacity;
    options.startup_timeout = config.startup_timeout;
    options.shutdown_grace = config.shutdown_timeout;
    options.allow_sdk_mismatch = config.allow_sdk_mismatch;
    options.debug_methods = config.debug_methods;
    options.extra_env = config.worker_env.merged(&pool.env);
    let restart = pool
        .restart
        .clone()
        .unwrap_or_else(|| config.restart.clone());
    let starts = (0..pool.workers.max(1)).map(|_| {
        let router = Arc::new(Router::default());
        let options = options.clone();
        let restart = restart.clone();
        let (name, recycle) = (pool.name.clone(), pool.recycle.clone());
        async move {
            let supervisor =
                Supervisor::start(options, Arc::clone(&router) as Arc<dyn Handler>, restart)
                    .await?;
            Ok::<_, Error>(Arc::new(Slot::new(name, supervisor, router, recycle)))
        }
    });
    let slots = futures::future::try_join_all(starts).await?;
    Ok(Pool::new(
        pool.name,
        slots,
        pool.max_agents_per_worker,
        pool.gemini_api_key,
    ))
}
