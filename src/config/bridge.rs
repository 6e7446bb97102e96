//! [`BridgeConfig`]: the bridge's runtime knobs and its default pool.

use std::{path::PathBuf, time::Duration};

use secrecy::SecretString;

use crate::{
    error::{Error, Result},
    pricing::PriceTable,
    rpc::DEFAULT_MAX_MESSAGE_SIZE,
    store::StoreConfig,
    worker::{
        PythonConfig, SetupEvent, SetupProgress,
        child_env::EnvVars,
        pool::{DEFAULT_POOL, PoolConfig, RecyclePolicy},
        supervisor::RestartPolicy,
    },
};

/// How many conversations share one `localharness` unless configured (see
/// [`PoolConfig::conversations_per_harness`]).
pub const DEFAULT_CONVERSATIONS_PER_HARNESS: usize = 64;

/// Env var holding the default chat timeout in seconds (default 120).
pub const ENV_CHAT_TIMEOUT: &str = "AGY_BRIDGE_CHAT_TIMEOUT_SECS";
/// The seed's name for [`ENV_CHAT_TIMEOUT`], still read when that one is not set.
pub const ENV_CHAT_TIMEOUT_ALIAS: &str = "AGI_CHAT_TIMEOUT_SECS";
/// Default chat timeout.
const DEFAULT_CHAT_TIMEOUT: Duration = Duration::from_secs(120);

/// The chat timeout from [`ENV_CHAT_TIMEOUT`] (or its alias); an invalid value warns and falls
/// back to 120 s.
fn default_chat_timeout() -> Duration {
    let value = std::env::var(ENV_CHAT_TIMEOUT)
        .or_else(|_| std::env::var(ENV_CHAT_TIMEOUT_ALIAS))
        .ok();
    chat_timeout_from(value.as_deref())
}

/// Parses a chat timeout in seconds; `None` or an invalid value (with a warning) gives 120 s.
fn chat_timeout_from(value: Option<&str>) -> Duration {
    let Some(value) = value else {
        return DEFAULT_CHAT_TIMEOUT;
    };
    match value.trim().parse::<u64>() {
        Ok(secs) if secs > 0 => Duration::from_secs(secs),
        Ok(_) => {
            tracing::warn!(value, "{ENV_CHAT_TIMEOUT} must be positive; using 120 s");
            DEFAULT_CHAT_TIMEOUT
        }
        Err(e) => {
            tracing::warn!(value, error = %e, "invalid {ENV_CHAT_TIMEOUT}; using 120 s");
            DEFAULT_CHAT_TIMEOUT
        }
    }
}

/// Settings for a [`crate::Bridge`]. Build it from [`BridgeConfig::default`] with the builder
/// methods (the fields can be read, and new ones may be added in any release).
///
/// ```
/// use std::time::Duration;
/// use agy_bridge::{BridgeConfig, RestartPolicy};
///
/// let config = BridgeConfig::default()
///     .workers(2)
///     .chat_timeout(Duration::from_secs(60))
///     .restart(RestartPolicy::default().warm_spare(true));
/// assert_eq!(config.default_pool.workers, 2);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct BridgeConfig {
    /// Where the Python interpreter comes from.
    pub python: PythonConfig,
    /// Where conversations and harness files live (default: the user data dir).
    pub data_dir: Option<PathBuf>,
    /// Largest JSON-RPC message in either direction (default 64 MiB).
    pub max_message_size: usize,
    /// Deadline for a worker to start and import the SDK.
    pub startup_timeout: Duration,
    /// Deadline for a graceful worker stop before it is killed.
    pub shutdown_timeout: Duration,
    /// Deadline for one chat turn (default from `AGY_BRIDGE_CHAT_TIMEOUT_SECS` or its alias
    /// `AGI_CHAT_TIMEOUT_SECS`, else 120 s).
    pub chat_timeout: Duration,
    /// Deadline for other operations (default: chat timeout + 2 min, as in the seed).
    pub operation_timeout: Duration,
    /// Accept a `google-antigravity` other than the tested pin.
    pub allow_sdk_mismatch: bool,
    /// Environment variables for every worker, on top of the allow-listed ones it inherits
    /// (see `docs/security.md`); set with [`BridgeConfig::worker_env`].
    pub worker_env: EnvVars,
    /// Receives venv set-up progress (first run only).
    pub setup_progress: Option<SetupProgress>,
    /// Capacity of the queue of messages waiting to be written to the worker (the seed's
    /// `channel_capacity`). Senders wait when it is full.
    pub channel_capacity: usize,
    /// Minimum time between two turns started through this bridge, to avoid request bursts
    /// (the seed's `inter_agent_delay`). Default zero: quota backoff handles 429s per key.
    pub inter_agent_delay: Duration,
    /// The default pool ([`DEFAULT_POOL`]): its workers, caps, restart and recycle policies,
    /// hibernation and prestarted harnesses. Named pools ([`BridgeConfig::pool`]) take its
    /// interpreter, restart policy and prestarted-harness count where they set none. The
    /// builder methods below (`workers`, `restart`, `max_live_agents`, ...) set its fields.
    pub default_pool: PoolConfig,
    /// Further named worker pools (see [`BridgeConfig::pool`]).
    pub pools: Vec<PoolConfig>,
    /// Where conversations live beyond this process (default: the data directory only).
    pub store: StoreConfig,
    /// How long a conversation's lease lasts without renewal (default 30 s). A bridge that
    /// dies holds its conversations this long at most; live agents renew every third of it.
    pub lease_ttl: Duration,
    /// How long opening a conversation (or a turn on a hibernated agent) waits while another
    /// bridge has it active, before [`Error::ConversationBusy`] (default 10 s).
    pub lease_wait: Duration,
    /// This bridge's name in leases (default: host, pid and a random suffix; on Kubernetes the
    /// pod name is a good choice).
    pub holder: Option<String>,
    /// Whether OpenAI-compatible model calls go through the model gateway (default: yes).
    pub model_gateway: bool,
    /// Model prices for cost estimates (default: none); see [`BridgeConfig::prices`].
    pub prices: PriceTable,
    /// Tracing in the workers (default: off); see [`BridgeConfig::tracing`].
    #[cfg(feature = "otel")]
    pub tracing: Option<WorkerTracing>,
    /// Enables the worker's failure-injection method (the bridge's own tests).
    pub(crate) debug_methods: bool,
}

impl std::fmt::Debug for BridgeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeConfig")
            .field("python", &self.python)
            .field("data_dir", &self.data_dir)
            .field("max_message_size", &self.max_message_size)
            .field("chat_timeout", &self.chat_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for BridgeConfig {
    fn default() -> Self {
        let chat_timeout = default_chat_timeout();
        Self {
            python: PythonConfig::default(),
            data_dir: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            startup_timeout: Duration::from_secs(120),
            shutdown_timeout: Duration::from_secs(10),
            chat_timeout,
            operation_timeout: chat_timeout + Duration::from_secs(120),
            allow_sdk_mismatch: false,
            worker_env: EnvVars::default(),
            setup_progress: None,
            channel_capacity: 1024,
            inter_agent_delay: Duration::ZERO,
            default_pool: PoolConfig::new(DEFAULT_POOL)
                .restart(RestartPolicy::default())
                .prestarted_harnesses(1),
            pools: Vec::new(),
            store: StoreConfig::default(),
            lease_ttl: Duration::from_secs(30),
            lease_wait: Duration::from_secs(10),
            holder: None,
            model_gateway: true,
            prices: PriceTable::new(),
            #[cfg(feature = "otel")]
            tracing: None,
            debug_methods: false,
        }
    }
}

impl BridgeConfig {
    /// Runs `n` worker processes (agents are placed on the least-loaded one).
    #[must_use]
    pub const fn workers(mut self, n: usize) -> Self {
        self.default_pool.workers = n;
        self
    }

    /// Adds a named worker pool with its own settings; agents choose it with
    /// [`crate::AgentConfig::pool`]. The top-level fields configure the pool named
    /// [`DEFAULT_POOL`].
    #[must_use]
    pub fn pool(mut self, pool: PoolConfig) -> Self {
        self.pools.push(pool);
        self
    }

    /// The default pool plus the named ones, each with the bridge's settings filled in.
    pub(crate) fn resolved_pools(&self) -> Result<Vec<PoolConfig>> {
        let mut default = self.default_pool.clone();
        default.name = DEFAULT_POOL.to_owned();
        let python = default
            .python
            .get_or_insert_with(|| self.python.clone())
            .clone();
        let restart = default
            .restart
            .get_or_insert_with(RestartPolicy::default)
            .clone();
        let prestarted = *default.prestarted_harnesses.get_or_insert(1);
        let per_harness = *default
            .conversations_per_harness
            .get_or_insert(DEFAULT_CONVERSATIONS_PER_HARNESS);
        let mut pools = vec![default];
        for pool in &self.pools {
            if pool.name.is_empty() || pools.iter().any(|p| p.name == pool.name) {
                return Err(Error::InvalidConfig {
                    message: format!(
                        "pool names must be unique and non-empty ({:?} is the default pool's)",
                        DEFAULT_POOL
                    ),
                });
            }
            let mut pool = pool.clone();
            pool.python.get_or_insert_with(|| python.clone());
            pool.restart.get_or_insert_with(|| restart.clone());
            pool.prestarted_harnesses.get_or_insert(prestarted);
            pool.conversations_per_harness.get_or_insert(per_harness);
            pools.push(pool);
        }
        Ok(pools)
    }

    /// Sets an environment variable for every worker (and so for every harness and every
    /// command an agent runs). Workers inherit only an allow-list of this process's
    /// environment; anything else they need is passed here or with [`crate::PoolConfig::env`].
    #[must_use]
    pub fn worker_env(mut self, name: impl Into<String>, value: impl Into<SecretString>) -> Self {
        self.worker_env.set(name, value);
        self
    }

    /// Sets the data directory.
    #[must_use]
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Sets the message size limit.
    #[must_use]
    pub const fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets the chat timeout (and the operation timeout to chat + 2 min).
    #[must_use]
    pub fn chat_timeout(mut self, timeout: Duration) -> Self {
        self.chat_timeout = timeout;
        self.operation_timeout = timeout + Duration::from_secs(120);
        self
    }

    /// Reports venv set-up progress to `f`.
    #[must_use]
    pub fn on_setup_progress(mut self, f: impl Fn(&SetupEvent) + Send + Sync + 'static) -> Self {
        self.setup_progress = Some(std::sync::Arc::new(f));
        self
    }

    /// Uses this ready interpreter instead of the managed venv.
    #[must_use]
    pub fn python(mut self, python: impl Into<PathBuf>) -> Self {
        self.python.python = Some(python.into());
        self
    }

    /// Keeps managed venvs under this directory.
    #[must_use]
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.python.cache_dir = Some(dir.into());
        self
    }

    /// Where the Python interpreter comes from, in full.
    #[must_use]
    pub fn python_config(mut self, python: PythonConfig) -> Self {
        self.python = python;
        self
    }

    /// Sets the deadline for a worker to start and import the SDK (default 120 s).
    #[must_use]
    pub const fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Sets the deadline for a graceful worker stop before it is killed (default 10 s).
    #[must_use]
    pub const fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Sets the deadline of calls other than turns (default: chat timeout + 2 min).
    #[must_use]
    pub const fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// Accepts a `google-antigravity` other than the tested pin ([`crate::SDK_VERSION`]).
    #[must_use]
    pub const fn allow_sdk_mismatch(mut self, allow: bool) -> Self {
        self.allow_sdk_mismatch = allow;
        self
    }

    /// Sets the capacity of the queue of messages waiting to be written to a worker.
    #[must_use]
    pub const fn channel_capacity(mut self, messages: usize) -> Self {
        self.channel_capacity = messages;
        self
    }

    /// Spaces turn starts by at least `delay` (default zero).
    #[must_use]
    pub const fn inter_agent_delay(mut self, delay: Duration) -> Self {
        self.inter_agent_delay = delay;
        self
    }

    /// Caps the agents per worker of the default pool.
    #[must_use]
    pub const fn max_agents_per_worker(mut self, n: usize) -> Self {
        self.default_pool.max_agents_per_worker = Some(n);
        self
    }

    /// Restart budget, heartbeat and warm spare of the default pool's workers.
    #[must_use]
    pub fn restart(mut self, policy: RestartPolicy) -> Self {
        self.default_pool.restart = Some(policy);
        self
    }

    /// When the default pool's workers are recycled.
    #[must_use]
    pub const fn recycle(mut self, policy: RecyclePolicy) -> Self {
        self.default_pool.recycle = policy;
        self
    }

    /// Keeps at most `n` agents of the default pool live (see
    /// [`crate::PoolConfig::max_live_agents`]).
    #[must_use]
    pub const fn max_live_agents(mut self, n: usize) -> Self {
        self.default_pool.max_live_agents = Some(n);
        self
    }

    /// Hibernates agents of the default pool idle for `after` (an agent's own
    /// [`crate::AgentConfig::hibernate_after`] wins).
    #[must_use]
    pub const fn hibernate_after(mut self, after: Duration) -> Self {
        self.default_pool.hibernate_after = Some(after);
        self
    }

    /// Keeps `n` `localharness` processes started ahead in each worker of the default pool
    /// (default 1; 0 turns it off). An agent start or resume then skips the harness's own
    /// start-up (~80–100 ms) and only hands the conversation to a harness that is already
    /// running; a replacement starts in the background. A spare is used by agents whose
    /// harness environment is the bridge's default (no [`AgentConfig::env`](crate::AgentConfig::env)); others start
    /// their own. Each spare costs an idle harness's memory (about 50 MiB here), appears in
    /// [`crate::WorkerStats::spare_harness_pids`] and ends with its worker.
    #[must_use]
    pub const fn prestarted_harnesses(mut self, n: usize) -> Self {
        self.default_pool.prestarted_harnesses = Some(n);
        self
    }

    /// Lets up to `n` conversations of the default pool share one `localharness` (see
    /// [`PoolConfig::conversations_per_harness`]; default
    /// [`DEFAULT_CONVERSATIONS_PER_HARNESS`]).
    #[must_use]
    pub const fn conversations_per_harness(mut self, n: usize) -> Self {
        self.default_pool.conversations_per_harness = Some(n);
        self
    }

    /// Keeps conversations in `store` (see [`crate::StoreConfig`]).
    #[must_use]
    pub fn store(mut self, store: StoreConfig) -> Self {
        self.store = store;
        self
    }

    /// Sets how long a lease lasts without renewal.
    #[must_use]
    pub const fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// Sets how long activation waits for a conversation another bridge has active.
    #[must_use]
    pub const fn lease_wait(mut self, wait: Duration) -> Self {
        self.lease_wait = wait;
        self
    }

    /// Sends OpenAI-compatible model calls through the bridge's model gateway (the default),
    /// which never lets a broken stream pass as a complete answer and retries what is safe to
    /// retry (see `docs/architecture.md`), or straight to the model server (`false`).
    #[must_use]
    pub const fn model_gateway(mut self, enabled: bool) -> Self {
        self.model_gateway = enabled;
        self
    }

    /// Traces turns inside the workers too (feature `otel`): each worker exports its spans
    /// (the SDK's turn, step and tool spans) over OTLP/HTTP as `tracing` says, and every turn
    /// carries the W3C trace context of its Rust span across the pipe, so the worker's spans
    /// and the Rust tools' spans join the Rust turn's trace (`docs/operations.md`, "Traces").
    /// The Rust side's spans are `tracing` spans: export them with `tracing-opentelemetry` in
    /// the application. The managed venv gets the OpenTelemetry packages (a venv of its own).
    #[cfg(feature = "otel")]
    #[must_use]
    pub fn tracing(mut self, tracing: WorkerTracing) -> Self {
        self.python.otel = true;
        self.tracing = Some(tracing);
        self
    }

    /// Prices models, so that turns report an estimated cost ([`crate::ChatOutcome::cost`],
    /// [`crate::ChatOutcome::conversation_cost`]) and the `metrics` feature records it.
    #[must_use]
    pub fn prices(mut self, prices: PriceTable) -> Self {
        self.prices = prices;
        self
    }

    /// Names this bridge in leases.
    #[must_use]
    pub fn holder(mut self, name: impl Into<String>) -> Self {
        self.holder = Some(name.into());
        self
    }

    /// Enables the worker's failure-injection method (`worker/debug`), for tests of the bridge
    /// itself.
    #[cfg(feature = "testing")]
    #[must_use]
    pub const fn debug_methods(mut self, enabled: bool) -> Self {
        self.debug_methods = enabled;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_timeout_parsing_falls_back_on_bad_values() {
        assert_eq!(chat_timeout_from(None), DEFAULT_CHAT_TIMEOUT);
        assert_eq!(chat_timeout_from(Some("30")), Duration::from_secs(30));
        assert_eq!(chat_timeout_from(Some(" 45 ")), Duration::from_secs(45));
        assert_eq!(chat_timeout_from(Some("soon")), DEFAULT_CHAT_TIMEOUT);
        assert_eq!(chat_timeout_from(Some("0")), DEFAULT_CHAT_TIMEOUT);
    }

    #[test]
    fn operation_timeout_is_chat_timeout_plus_two_minutes() {
        let config = BridgeConfig::default().chat_timeout(Duration::from_secs(10));
        assert_eq!(config.operation_timeout, Duration::from_secs(130));
        let default = BridgeConfig::default();
        assert_eq!(
            default.operation_timeout,
            default.chat_timeout + Duration::from_secs(120)
        );
    }

    #[test]
    fn the_default_pool_is_one_pool_config_whose_settings_named_pools_inherit() {
        let config = BridgeConfig::default()
            .workers(3)
            .max_live_agents(5)
            .prestarted_harnesses(2)
            .restart(RestartPolicy::default().warm_spare(true))
            .python("/opt/py/bin/python3")
            .pool(PoolConfig::new("gpu"))
            .pool(PoolConfig::new("small").prestarted_harnesses(0));
        let pools = config.resolved_pools().unwrap();
        let names: Vec<_> = pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, [DEFAULT_POOL, "gpu", "small"]);
        let (default, gpu, small) = (&pools[0], &pools[1], &pools[2]);
        assert_eq!((default.workers, default.max_live_agents), (3, Some(5)));
        assert_eq!((gpu.workers, gpu.max_live_agents), (1, None));
        assert_eq!(gpu.prestarted_harnesses, Some(2));
        assert_eq!(small.prestarted_harnesses, Some(0));
        assert_eq!(
            format!("{:?}", gpu.restart),
            format!("{:?}", default.restart)
        );
        assert_eq!(
            gpu.python.as_ref().and_then(|p| p.python.clone()),
            Some(PathBuf::from("/opt/py/bin/python3"))
        );

        let clash = BridgeConfig::default().pool(PoolConfig::new(DEFAULT_POOL));
        assert!(matches!(
            clash.resolved_pools(),
            Err(Error::InvalidConfig { .. })
        ));
    }
}

/// Where the workers export their spans (feature `otel`; see [`BridgeConfig::tracing`]).
///
/// ```
/// use agy_bridge::{BridgeConfig, WorkerTracing};
///
/// let config = BridgeConfig::default()
///     .tracing(WorkerTracing::otlp("http://127.0.0.1:4318/v1/traces").service_name("billing-agents"));
/// # let _ = config;
/// ```
#[cfg(feature = "otel")]
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct WorkerTracing {
    /// The OTLP/HTTP traces endpoint, e.g. `http://collector:4318/v1/traces`. `None`: the
    /// standard `OTEL_EXPORTER_OTLP_*` variables of this process, which the workers then
    /// inherit (and keep from their harnesses and the commands agents run).
    pub endpoint: Option<String>,
    /// The `service.name` of the workers' spans (default `agy-worker`).
    pub service_name: Option<String>,
}

#[cfg(feature = "otel")]
impl WorkerTracing {
    /// Exports to this OTLP/HTTP traces endpoint.
    #[must_use]
    pub fn otlp(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: Some(endpoint.into()),
            service_name: None,
        }
    }

    /// Exports where the standard `OTEL_EXPORTER_OTLP_*` variables say.
    #[must_use]
    pub fn from_env() -> Self {
        Self::default()
    }

    /// Names the workers' service in their spans.
    #[must_use]
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }
}
