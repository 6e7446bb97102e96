//! [`Bridge`]: owns the worker pools and creates agents on them.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

#[cfg(feature = "testing")]
use serde_json::Value;

use crate::{
    agent::{
        Agent,
        callbacks::AgentState,
        context::AgentContext,
        life::{AgentCore, AgentParts},
    },
    config::{AgentConfig, BridgeConfig, ModelConfig},
    error::{Error, Result},
    gateway::Gateway,
    protocol::{methods::WorkerPing, wire::WorkerInfo},
    quota::QuotaRegistry,
    rpc::Handler,
    store::{self, ConversationDirs, ConversationInfo, LeaseSettings, Store},
    worker::{
        HarnessPrestart, StartupTimings, WorkerOptions,
        pool::{DEFAULT_POOL, Pool, PoolConfig, PoolStats, Slot, WorkerStats},
        router::Router,
        supervisor::Supervisor,
        venv,
    },
};

/// How often idle agents are checked against their hibernation delay.
const SWEEP_EVERY: Duration = Duration::from_millis(250);

struct BridgeInner {
    /// The worker pools, the default pool first.
    pools: Vec<Arc<Pool>>,
    config: BridgeConfig,
    data_dir: PathBuf,
    quota: QuotaRegistry,
    agents: Arc<AgentContext>,
    next_agent: AtomicU64,
    /// Where OpenAI-compatible model calls go through (see `gateway`), unless turned off.
    gateway: Option<Arc<Gateway>>,
}

impl BridgeInner {
    /// The pool called `name` (the default pool for `None`).
    fn pool(&self, name: Option<&str>) -> Result<&Arc<Pool>> {
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
    /// [`Error::VenvSetup`], [`Error::Spawn`], [`Error::VersionMismatch`],
    /// [`Error::InsecurePath`] for a cache or data directory another user could write, or the
    /// worker's start-up failure with its stderr.
    pub async fn start(config: BridgeConfig) -> Result<Self> {
        let data_dir = config
            .data_dir
            .clone()
            .unwrap_or_else(crate::config::default_data_dir);
        // Conversations and harness files: owner-only, in a directory no one else controls.
        crate::secure_dir::ensure_private_dir(&data_dir)?;
        let dirs = ConversationDirs::under(&data_dir);
        for dir in dirs.all() {
            crate::secure_dir::ensure_private_dir(dir)?;
        }
        let store = Arc::new(Store::open(&config.store, &dirs, &data_dir).await?);
        let pools = futures::future::try_join_all(
            config
                .resolved_pools()?
                .into_iter()
                .map(|pool| start_pool(&config, &dirs, pool)),
        )
        .await?;
        let lease = LeaseSettings {
            holder: config.holder.clone().unwrap_or_else(store::default_holder),
            ttl: config.lease_ttl,
            wait: config.lease_wait,
        };
        let agents = Arc::new(AgentContext::new(
            config.chat_timeout,
            config.operation_timeout,
            config.inter_agent_delay,
            store,
            lease,
            dirs,
            config.prices.clone(),
        ));
        let gateway = if config.model_gateway {
            Some(Gateway::start().await.map_err(|e| Error::InvalidConfig {
                message: format!("the model gateway cannot start: {e}"),
            })?)
        } else {
            None
        };
        let inner = Arc::new(BridgeInner {
            pools,
            config,
            data_dir,
            quota: QuotaRegistry::new(),
            agents,
            next_agent: AtomicU64::new(1),
            gateway,
        });
        tokio::spawn(sweep(Arc::downgrade(&inner)));
        Ok(Self { inner })
    }

    /// Starts an agent on a worker of its pool (the least-loaded one), creating its
    /// conversation, or continuing it when [`AgentConfig::conversation_id`] names one that
    /// exists.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the bridge or the SDK rejects the configuration,
    /// [`Error::ConversationBusy`] when another bridge has that conversation active,
    /// [`Error::Capacity`] when the pool is full, or a worker or store error.
    pub async fn create_agent(&self, config: AgentConfig) -> Result<Agent> {
        config.validate()?;
        let conversation_id = config
            .conversation_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        self.start_agent(config, conversation_id).await
    }

    /// Re-attaches the conversation `conversation_id`, created earlier in this process, before
    /// a restart, or by another replica sharing the store, with the tools, hooks and policies of
    /// `config` (which are not stored). The conversation continues with its whole history.
    ///
    /// ```no_run
    /// # async fn demo(bridge: agy_bridge::Bridge, config: agy_bridge::AgentConfig, id: String) -> agy_bridge::Result<()> {
    /// let agent = bridge.open_agent(&id, config).await?;
    /// let outcome = agent.chat("Where were we?").await?.finish().await?;
    /// # let _ = outcome; Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::UnknownConversation`]; [`Error::ConversationBusy`] when another bridge (or
    /// another agent of this one) has it active for longer than the lease wait;
    /// [`Error::CorruptSnapshot`]; what [`Bridge::create_agent`] fails with.
    pub async fn open_agent(&self, conversation_id: &str, config: AgentConfig) -> Result<Agent> {
        store::check_conversation_id(conversation_id)?;
        config.validate()?;
        let context = &self.inner.agents;
        let known = context.store.exists(conversation_id).await?
            || context
                .dirs
                .save_dir
                .join(format!("{conversation_id}.db"))
                .is_file();
        if !known {
            return Err(Error::UnknownConversation {
                conversation_id: conversation_id.to_owned(),
            });
        }
        self.start_agent(config, conversation_id.to_owned()).await
    }

    async fn start_agent(&self, config: AgentConfig, conversation_id: String) -> Result<Agent> {
        let seq = self.inner.next_agent.fetch_add(1, Ordering::Relaxed);
        let agent_id = format!("agent-{seq}");
        let pool = self.inner.pool(config.pool.as_deref())?;
        let model = config.model.resolved(pool.gemini_api_key.as_ref())?;
        // Quota is tracked under the real endpoint, not the gateway's route to it.
        let quota = self.inner.quota.state_for_key(&model.quota_key());
        let (model, route) = match (&self.inner.gateway, &model) {
            (
                Some(gateway),
                ModelConfig::OpenaiCompatible {
                    base_url,
                    model: name,
                },
            ) => {
                let (via, route) =
                    gateway.route(&agent_id, (base_url, name), config.model_retry.clone());
                (
                    ModelConfig::openai_compatible(via, name.clone()),
                    Some(route),
                )
            }
            _ => (model, None),
        };
        let spec = config.spec(&model, &conversation_id, &self.inner.agents.dirs);
        // An agent with triggers does not hibernate for being idle (its triggers would stop),
        // unless it asks to itself.
        let pool_idle = pool.hibernate_after.filter(|_| config.triggers.is_empty());
        let hibernate_after = config.hibernate_after.or(pool_idle);
        let callbacks = Arc::new(AgentState::new(
            agent_id.clone(),
            conversation_id.clone(),
            config.tools,
            config.hooks,
            config.policies,
            config.confirmation_timeout,
        ));
        let parts = AgentParts {
            id: agent_id,
            conversation_id,
            callbacks,
            spec,
            hibernate_after,
            route,
        };
        let core = AgentCore::new(parts, Arc::clone(&self.inner.agents), Arc::clone(pool));
        // The first activation: the lease, the newest state, a worker, the harness.
        drop(core.use_live().await?);
        Ok(Agent::new(core, quota))
    }

    /// The conversations the store knows (for the local store: those in the data directory),
    /// most recently changed first.
    ///
    /// # Errors
    /// A store error.
    pub async fn list_conversations(&self) -> Result<Vec<ConversationInfo>> {
        self.inner.agents.store.list().await
    }

    /// Deletes a conversation for good: its stored state and its local files.
    ///
    /// # Errors
    /// [`Error::ConversationBusy`] while an agent (here or in another bridge) has it active;
    /// a store error; a file that could not be removed.
    pub async fn delete_conversation(&self, conversation_id: &str) -> Result<()> {
        store::check_conversation_id(conversation_id)?;
        self.inner
            .agents
            .delete_conversation(conversation_id, "delete_conversation")
            .await
    }

    /// Live and hibernated agents per pool, the default pool first.
    #[must_use]
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        self.inner.pools.iter().map(|p| p.agent_stats()).collect()
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
            .call::<WorkerPing>(&None, self.inner.config.operation_timeout)
            .await?;
        Ok(started.elapsed())
    }

    /// Sends a raw request to the default pool's first worker (failure injection, benchmarks).
    /// For the bridge's own tests: behind the `testing` feature.
    ///
    /// # Errors
    /// Whatever the worker answers with, or [`Error::Timeout`] after the operation timeout.
    #[cfg(feature = "testing")]
    pub async fn call_raw(&self, method: &str, params: Value) -> Result<Value> {
        let worker = self.inner.first_slot().supervisor.live().await?;
        worker
            .process
            .peer()
            .call(method, params, self.inner.config.operation_timeout)
            .await
            .map_err(crate::protocol::errors::from_call)
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

    /// Hibernates every agent (once its running turn ends): each conversation is saved and its
    /// lease released, so other replicas can take it over at once. What a rolling deploy does
    /// before stopping a replica; the agents stay usable (their next call activates them).
    ///
    /// # Errors
    /// The first failure (an agent that could not be saved keeps its lease until it expires).
    pub async fn drain(&self) -> Result<()> {
        let members = self.inner.pools.iter().flat_map(|p| p.live.members());
        let drained = futures::future::join_all(members.map(|m| m.drain())).await;
        drained.into_iter().collect()
    }

    /// Drains the bridge (see [`Bridge::drain`], bounded by the shutdown timeout), then stops
    /// the workers gracefully (sessions closed, then the process groups ended).
    pub async fn shutdown(self) {
        match tokio::time::timeout(self.inner.config.shutdown_timeout, self.drain()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("draining before shutdown: {e}"),
            Err(_) => tracing::warn!("agents were still busy at shutdown; stopping anyway"),
        }
        let slots = self.inner.pools.iter().flat_map(|p| p.slots.iter());
        futures::future::join_all(slots.map(|s| s.supervisor.shutdown())).await;
    }

    /// The model gateway's loopback address, when it runs. For the bridge's own tests (a probe
    /// that it refuses requests without its secret): behind the `testing` feature.
    #[cfg(feature = "testing")]
    #[must_use]
    pub fn model_gateway_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.gateway.as_ref().map(|g| g.addr())
    }

    /// Kills the default pool's first worker's process group at once (SIGKILL); in-flight calls
    /// fail with [`Error::WorkerCrashed`]. For the bridge's own tests: behind the `testing`
    /// feature.
    #[cfg(feature = "testing")]
    pub fn kill_worker(&self) {
        self.inner.first_slot().supervisor.current().process.kill();
    }
}

/// Prepares `pool`'s interpreter and starts its workers.
async fn start_pool(
    config: &BridgeConfig,
    dirs: &ConversationDirs,
    pool: PoolConfig,
) -> Result<Arc<Pool>> {
    let python = pool.python.clone().unwrap_or_else(|| config.python.clone());
    // A pool's own interpreter gets the tracing packages too.
    let python = python.clone().otel(python.otel || config.python.otel);
    let options = |env| worker_options(config, dirs, &pool, env);
    let ensure = venv::ensure(python.clone(), config.setup_progress.clone());
    // Start the workers on the venv used last time while `ensure` confirms it is still the
    // right one (it runs the base interpreter, ~0.1 s on a pyenv shim); keep them if it is.
    let env = match venv::remembered(&python) {
        Some(guess) => {
            let (env, started) = tokio::join!(ensure, start_slots(&pool, options(guess.clone())));
            match (env, started) {
                (Ok(env), Ok(slots)) if env.same_as(&guess) => {
                    return Ok(Arc::new(Pool::new(pool, slots)));
                }
                (env, Ok(slots)) => {
                    tracing::info!(
                        "stopping the workers started on the remembered venv: it is not the one configured now"
                    );
                    futures::future::join_all(slots.iter().map(|s| s.supervisor.shutdown())).await;
                    env?
                }
                (env, Err(e)) => {
                    tracing::info!("workers on the remembered venv did not start: {e}");
                    env?
                }
            }
        }
        None => ensure.await?,
    };
    let slots = start_slots(&pool, options(env)).await?;
    Ok(Arc::new(Pool::new(pool, slots)))
}

/// How `pool`'s workers are started on `env`.
fn worker_options(
    config: &BridgeConfig,
    dirs: &ConversationDirs,
    pool: &PoolConfig,
    env: venv::PythonEnv,
) -> WorkerOptions {
    let mut options = WorkerOptions::new(env);
    options.max_message_size = config.max_message_size;
    options.write_queue = config.channel_capacity;
    options.startup_timeout = config.startup_timeout;
    options.shutdown_grace = config.shutdown_timeout;
    options.allow_sdk_mismatch = config.allow_sdk_mismatch;
    options.debug_methods = config.debug_methods;
    options.extra_env = config.worker_env.merged(&pool.env);
    options.prestart = Some(HarnessPrestart {
        count: pool.prestarted_harnesses.unwrap_or(1),
        storage_directory: dirs.save_dir.clone(),
        env: dirs.harness_env(),
    });
    #[cfg(feature = "otel")]
    {
        options.otel = config
            .tracing
            .as_ref()
            .map(|t| crate::protocol::wire::OtelSettings {
                endpoint: t.endpoint.clone(),
                service_name: t.service_name.clone(),
            });
    }
    options.conversations_per_harness = pool
        .conversations_per_harness
        .unwrap_or(crate::config::DEFAULT_CONVERSATIONS_PER_HARNESS);
    options
}

/// Starts `pool`'s workers, each under its supervisor.
async fn start_slots(pool: &PoolConfig, options: WorkerOptions) -> Result<Vec<Arc<Slot>>> {
    let restart = pool.restart.clone().unwrap_or_default();
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
    futures::future::try_join_all(starts).await
}

/// Hibernates agents idle past their delay, until the bridge is gone.
async fn sweep(bridge: std::sync::Weak<BridgeInner>) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let Some(inner) = bridge.upgrade() else {
            return;
        };
        let expired: Vec<_> = inner.pools.iter().flat_map(|p| p.live.expired()).collect();
        drop(inner);
        for agent in expired {
            if let Err(e) = agent.try_hibernate().await {
                tracing::warn!("hibernating an idle agent: {e}");
            }
        }
    }
}
