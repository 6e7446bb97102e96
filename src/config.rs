//! Configuration: the bridge's runtime knobs, agents, and models.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::{
    error::{Error, Result},
    hooks::Hooks,
    policies::{PolicyRule, PolicySet},
    protocol::wire::{AgentSpec, ContinuationMode, ModelSpec, WireSecret},
    rpc::DEFAULT_MAX_MESSAGE_SIZE,
    sdk_config::{
        BudgetConfig, Capabilities, CompactionConfig, InlineSkill, McpServer, RetryConfig,
        Subagent, SystemInstructions,
    },
    tools::{Tool, ToolRegistry},
    worker::{PythonConfig, SetupEvent, SetupProgress},
};

/// Environment variables whose values may be secret (tokens, keys): `Debug` shows the names
/// only, and the values are kept as [`SecretString`]s.
///
/// ```
/// use agy_bridge::EnvVars;
///
/// let mut env = EnvVars::default();
/// env.set("MCP_TOKEN", "t0k3n");
/// assert_eq!(format!("{env:?}"), r#"EnvVars(["MCP_TOKEN"])"#);
/// ```
#[derive(Clone, Default)]
pub struct EnvVars(Vec<(String, SecretString)>);

impl EnvVars {
    /// Sets `name` (replacing an earlier value).
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<SecretString>) {
        let name = name.into();
        self.0.retain(|(n, _)| *n != name);
        self.0.push((name, value.into()));
    }

    /// The variable names, in the order they were set.
    #[must_use]
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Whether no variable is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `(name, value)` pairs with the values exposed, for the child process that needs them.
    pub(crate) fn exposed(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.expose_secret()))
    }

    /// `other`'s variables set over these.
    pub(crate) fn merged(&self, other: &Self) -> Self {
        let mut out = self.clone();
        for (name, value) in &other.0 {
            out.set(name.clone(), value.clone());
        }
        out
    }
}

impl std::fmt::Debug for EnvVars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("EnvVars").field(&self.names()).finish()
    }
}

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

/// The data directory used when [`BridgeConfig::data_dir`] is not set: `agy-bridge` under the
/// user's local data directory (e.g. `~/.local/share/agy-bridge`).
#[must_use]
pub fn default_data_dir() -> PathBuf {
    dirs::data_local_dir().map_or_else(
        || std::env::temp_dir().join("agy-bridge-data"),
        |d| d.join("agy-bridge"),
    )
}

/// Where a bridge keeps conversations: the harness's database directory, its application
/// data, and the `$HOME` its processes get.
#[derive(Debug, Clone)]
pub(crate) struct ConversationDirs {
    pub(crate) save_dir: PathBuf,
    pub(crate) app_data_dir: PathBuf,
    pub(crate) harness_home: PathBuf,
    /// Scratch space for snapshots (same filesystem, so renames into place are atomic).
    pub(crate) scratch: PathBuf,
}

impl ConversationDirs {
    pub(crate) fn under(data_dir: &std::path::Path) -> Self {
        Self {
            save_dir: data_dir.join("conversations"),
            app_data_dir: data_dir.join("app-data"),
            harness_home: data_dir.join("harness-home"),
            scratch: data_dir.join("tmp"),
        }
    }

    /// The environment every agent's harness gets (before the agent's own variables); the
    /// harnesses a worker pre-starts get the same.
    pub(crate) fn harness_env(&self) -> BTreeMap<String, String> {
        // The harness rewrites a 16 MB helper under $HOME at every start; keep it in ours.
        BTreeMap::from([("HOME".to_owned(), self.harness_home.display().to_string())])
    }

    /// Every directory, for creating them.
    pub(crate) fn all(&self) -> [&std::path::Path; 4] {
        [
            &self.save_dir,
            &self.app_data_dir,
            &self.harness_home,
            &self.scratch,
        ]
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
/// assert_eq!(config.workers, 2);
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
    /// Number of worker processes; agents go to the least-loaded one (default 1).
    pub workers: usize,
    /// At most this many agents per worker (default: no limit); `create_agent` fails with
    /// [`Error::Capacity`] when every worker is full.
    pub max_agents_per_worker: Option<usize>,
    /// Restart budget, heartbeat and warm spare of the default pool's workers.
    pub restart: crate::worker::supervisor::RestartPolicy,
    /// When the default pool's workers are recycled (default: never).
    pub recycle: crate::worker::pool::RecyclePolicy,
    /// Further named worker pools (see [`BridgeConfig::pool`]).
    pub pools: Vec<crate::worker::pool::PoolConfig>,
    /// At most this many agents of the default pool live at once (see
    /// [`crate::PoolConfig::max_live_agents`]).
    pub max_live_agents: Option<usize>,
    /// Agents of the default pool idle this long hibernate (default: never).
    pub hibernate_after: Option<Duration>,
    /// `localharness` processes each worker keeps started for agents still to come (default
    /// 1); see [`BridgeConfig::prestarted_harnesses`].
    pub prestarted_harnesses: usize,
    /// Where conversations live beyond this process (default: the data directory only).
    pub store: crate::store::StoreConfig,
    /// How long a conversation's lease lasts without renewal (default 30 s). A bridge that
    /// dies holds its conversations this long at most; live agents renew every third of it.
    pub lease_ttl: Duration,
    /// How long opening a conversation (or a turn on a hibernated agent) waits while another
    /// bridge has it active, before [`Error::ConversationBusy`] (default 10 s).
    pub lease_wait: Duration,
    /// This bridge's name in leases (default: host, pid and a random suffix; on Kubernetes the
    /// pod name is a good choice).
    pub holder: Option<String>,
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
            workers: 1,
            max_agents_per_worker: None,
            inter_agent_delay: Duration::ZERO,
            restart: crate::worker::supervisor::RestartPolicy::default(),
            recycle: crate::worker::pool::RecyclePolicy::default(),
            pools: Vec::new(),
            max_live_agents: None,
            hibernate_after: None,
            prestarted_harnesses: 1,
            store: crate::store::StoreConfig::default(),
            lease_ttl: Duration::from_secs(30),
            lease_wait: Duration::from_secs(10),
            holder: None,
            debug_methods: false,
        }
    }
}

impl BridgeConfig {
    /// Runs `n` worker processes (agents are placed on the least-loaded one).
    #[must_use]
    pub const fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Adds a named worker pool with its own settings; agents choose it with
    /// [`AgentConfig::pool`]. The top-level fields configure the pool named
    /// [`crate::worker::pool::DEFAULT_POOL`].
    #[must_use]
    pub fn pool(mut self, pool: crate::worker::pool::PoolConfig) -> Self {
        self.pools.push(pool);
        self
    }

    /// The default pool plus the named ones, each with the bridge's settings filled in.
    pub(crate) fn resolved_pools(&self) -> Result<Vec<crate::worker::pool::PoolConfig>> {
        let mut default = crate::worker::pool::PoolConfig::new(crate::worker::pool::DEFAULT_POOL)
            .workers(self.workers)
            .python(self.python.clone())
            .restart(self.restart.clone());
        default.max_agents_per_worker = self.max_agents_per_worker;
        default.recycle = self.recycle.clone();
        default.max_live_agents = self.max_live_agents;
        default.hibernate_after = self.hibernate_after;
        default.prestarted_harnesses = Some(self.prestarted_harnesses);
        let mut pools = vec![default];
        for pool in &self.pools {
            if pool.name.is_empty() || pools.iter().any(|p| p.name == pool.name) {
                return Err(Error::InvalidConfig {
                    message: format!(
                        "pool names must be unique and non-empty ({:?} is the default pool's)",
                        crate::worker::pool::DEFAULT_POOL
                    ),
                });
            }
            let mut pool = pool.clone();
            pool.python.get_or_insert_with(|| self.python.clone());
            pool.restart.get_or_insert_with(|| self.restart.clone());
            pool.prestarted_harnesses
                .get_or_insert(self.prestarted_harnesses);
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
        self.max_agents_per_worker = Some(n);
        self
    }

    /// Restart budget, heartbeat and warm spare of the default pool's workers.
    #[must_use]
    pub fn restart(mut self, policy: crate::RestartPolicy) -> Self {
        self.restart = policy;
        self
    }

    /// When the default pool's workers are recycled.
    #[must_use]
    pub const fn recycle(mut self, policy: crate::RecyclePolicy) -> Self {
        self.recycle = policy;
        self
    }

    /// Keeps at most `n` agents of the default pool live (see
    /// [`crate::PoolConfig::max_live_agents`]).
    #[must_use]
    pub const fn max_live_agents(mut self, n: usize) -> Self {
        self.max_live_agents = Some(n);
        self
    }

    /// Hibernates agents of the default pool idle for `after` (an agent's own
    /// [`AgentConfig::hibernate_after`] wins).
    #[must_use]
    pub const fn hibernate_after(mut self, after: Duration) -> Self {
        self.hibernate_after = Some(after);
        self
    }

    /// Keeps `n` `localharness` processes started ahead in each worker of the default pool
    /// (default 1; 0 turns it off). An agent start or resume then skips the harness's own
    /// start-up (~80–100 ms) and only hands the conversation to a harness that is already
    /// running; a replacement starts in the background. A spare is used by agents whose
    /// harness environment is the bridge's default (no [`AgentConfig::env`]); others start
    /// their own. Each spare costs an idle harness's memory (about 50 MiB here), appears in
    /// [`crate::WorkerStats::spare_harness_pids`] and ends with its worker.
    #[must_use]
    pub const fn prestarted_harnesses(mut self, n: usize) -> Self {
        self.prestarted_harnesses = n;
        self
    }

    /// Keeps conversations in `store` (see [`crate::StoreConfig`]).
    #[must_use]
    pub fn store(mut self, store: crate::store::StoreConfig) -> Self {
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

/// Which model an agent talks to.
///
/// API keys are [`SecretString`]s: `Debug` prints `[REDACTED]`, and they reach the worker only
/// inside the agent's configuration, never through the environment.
///
/// ```
/// use agy_bridge::ModelConfig;
///
/// let gemini = ModelConfig::gemini("my-api-key").with_model("gemini-2.5-flash");
/// assert!(!format!("{gemini:?}").contains("my-api-key"));
/// let local = ModelConfig::openai_compatible("http://127.0.0.1:11434/v1", "llama3");
/// # let _ = local;
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ModelConfig {
    /// The Gemini API.
    Gemini {
        /// API key; `None` takes the pool's ([`crate::PoolConfig::gemini_api_key`]) or, failing
        /// that, `GEMINI_API_KEY` of this process when the agent is created.
        api_key: Option<SecretString>,
        /// Model name; the SDK's default when `None`.
        model: Option<String>,
    },
    /// Vertex AI.
    Vertex {
        /// Google Cloud project.
        project: Option<String>,
        /// Region.
        location: Option<String>,
        /// Express-mode API key (without one, the harness uses application-default
        /// credentials, `GOOGLE_APPLICATION_CREDENTIALS`).
        api_key: Option<SecretString>,
        /// Model name.
        model: Option<String>,
    },
    /// A local LiteRT model file, run by the harness.
    LiteRt {
        /// Path of the model file.
        model_path: PathBuf,
    },
    /// Any server with an OpenAI-compatible `/chat/completions` (Ollama, vLLM, LM Studio, the
    /// crate's `ScriptedModel`). The SDK sends no API key on this path.
    OpenaiCompatible {
        /// e.g. `http://127.0.0.1:11434/v1`.
        base_url: String,
        /// Model name as the server knows it.
        model: String,
    },
}

/// The environment variable a Gemini agent without a key of its own takes its key from.
pub const ENV_GEMINI_API_KEY: &str = "GEMINI_API_KEY";

impl ModelConfig {
    /// Gemini with this API key.
    pub fn gemini(api_key: impl Into<SecretString>) -> Self {
        Self::Gemini {
            api_key: Some(api_key.into()),
            model: None,
        }
    }

    /// Gemini with the key from `GEMINI_API_KEY`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the variable is not set.
    pub fn gemini_from_env() -> Result<Self> {
        let key = std::env::var(ENV_GEMINI_API_KEY).map_err(|_| Error::InvalidConfig {
            message: format!("{ENV_GEMINI_API_KEY} is not set"),
        })?;
        Ok(Self::gemini(key))
    }

    /// Vertex AI in `project` and `location`, with application-default credentials.
    pub fn vertex(project: impl Into<String>, location: impl Into<String>) -> Self {
        Self::Vertex {
            project: Some(project.into()),
            location: Some(location.into()),
            api_key: None,
            model: None,
        }
    }

    /// An OpenAI-compatible server.
    pub fn openai_compatible(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self::OpenaiCompatible {
            base_url: base_url.into(),
            model: model.into(),
        }
    }

    /// The same model configuration with another model name (Gemini, Vertex and
    /// OpenAI-compatible servers; a LiteRT model is its file).
    #[must_use]
    pub fn with_model(mut self, name: impl Into<String>) -> Self {
        match &mut self {
            Self::Gemini { model, .. } | Self::Vertex { model, .. } => *model = Some(name.into()),
            Self::OpenaiCompatible { model, .. } => *model = name.into(),
            Self::LiteRt { .. } => {}
        }
        self
    }

    /// Fills in a Gemini key that was left to the environment: the pool's key, else
    /// `GEMINI_API_KEY` of this process.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when there is none.
    pub(crate) fn resolved(&self, pool_key: Option<&SecretString>) -> Result<Self> {
        match self {
            Self::Gemini {
                api_key: None,
                model,
            } => {
                let key = match pool_key {
                    Some(key) => key.clone(),
                    None => std::env::var(ENV_GEMINI_API_KEY)
                        .map(SecretString::from)
                        .map_err(|_| Error::InvalidConfig {
                            message: format!(
                                "no Gemini API key: pass one (ModelConfig::gemini), set one for \
                                 the pool (PoolConfig::gemini_api_key), or set \
                                 {ENV_GEMINI_API_KEY}"
                            ),
                        })?,
                };
                Ok(Self::Gemini {
                    api_key: Some(key),
                    model: model.clone(),
                })
            }
            other => Ok(other.clone()),
        }
    }

    /// The model as the worker reads it, keys included (the only place they are exposed).
    pub(crate) fn to_wire(&self) -> ModelSpec {
        let key =
            |k: &Option<SecretString>| k.as_ref().map(|k| WireSecret(k.expose_secret().to_owned()));
        match self {
            Self::Gemini { api_key, model } => ModelSpec::Gemini {
                api_key: key(api_key),
                model: model.clone(),
            },
            Self::Vertex {
                project,
                location,
                api_key,
                model,
            } => ModelSpec::Vertex {
                project: project.clone(),
                location: location.clone(),
                api_key: key(api_key),
                model: model.clone(),
            },
            Self::LiteRt { model_path } => ModelSpec::LiteRt {
                model_path: model_path.clone(),
            },
            Self::OpenaiCompatible { base_url, model } => ModelSpec::OpenaiCompatible {
                base_url: base_url.clone(),
                model: model.clone(),
            },
        }
    }

    /// The key that quota backoff is tracked under: a digest of the API key (never the key
    /// itself, which would show in `Debug` output and logs), else the project or endpoint.
    #[must_use]
    pub fn quota_key(&self) -> String {
        let digest = |k: &SecretString| {
            use sha2::{Digest, Sha256};
            let hash = Sha256::digest(k.expose_secret().as_bytes());
            format!("key-sha256:{}", crate::worker::embedded::hex(&hash[..8]))
        };
        match self {
            Self::Gemini { api_key, .. } => {
                format!(
                    "gemini:{}",
                    api_key.as_ref().map_or_else(|| "env".into(), digest)
                )
            }
            Self::Vertex {
                api_key, project, ..
            } => format!(
                "vertex:{}",
                api_key
                    .as_ref()
                    .map(digest)
                    .or_else(|| project.clone())
                    .unwrap_or_else(|| "env".into())
            ),
            Self::OpenaiCompatible { base_url, .. } => format!("openai:{base_url}"),
            Self::LiteRt { model_path } => format!("litert:{}", model_path.display()),
        }
    }

    /// A short human-readable name, e.g. for the CLI.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Gemini { model, .. } => {
                format!(
                    "Gemini ({})",
                    model.as_deref().unwrap_or("SDK default model")
                )
            }
            Self::Vertex { model, .. } => {
                format!(
                    "Vertex AI ({})",
                    model.as_deref().unwrap_or("SDK default model")
                )
            }
            Self::OpenaiCompatible { base_url, model } => format!("{model} at {base_url}"),
            Self::LiteRt { model_path } => format!("LiteRT ({})", model_path.display()),
        }
    }
}

/// How autonomously the agent works (the SDK's `AgentBehavior`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AgentBehavior {
    /// Solve the task end to end without asking (the SDK default).
    #[default]
    Autonomous,
    /// Ask the user when unsure; needed for the `ask_question` built-in tool.
    Interactive,
    /// Minimal tools and prompt.
    Minimal,
}

/// How an agent is set up.
///
/// ```
/// use agy_bridge::{AgentConfig, BuiltinTool, ModelConfig, PolicyRule};
///
/// let config = AgentConfig::new(ModelConfig::openai_compatible("http://127.0.0.1:11434/v1", "llama3"))
///     .system_instructions("You are a careful code reviewer.")
///     .builtin_tool(BuiltinTool::ViewFile)
///     .builtin_tool(BuiltinTool::ListDirectory)
///     .workspace("/srv/repo")
///     .policy(PolicyRule::allow_all())
///     .pool("default");
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The model.
    pub(crate) model: ModelConfig,
    /// System instructions (appended to the SDK's prompt, replacing it, or templated).
    pub(crate) system_instructions: Option<SystemInstructions>,
    /// SDK built-in tools to expose (SDK names, e.g. `view_file`). Empty by default: no file
    /// writes or commands unless asked for.
    pub(crate) builtin_tools: Vec<String>,
    /// Workspace directories (default: the SDK's, i.e. the worker's cwd).
    pub(crate) workspaces: Vec<PathBuf>,
    /// Autonomous (default), interactive or minimal.
    pub(crate) behavior: AgentBehavior,
    /// Rust tools.
    pub(crate) tools: ToolRegistry,
    /// Lifecycle hooks.
    pub(crate) hooks: Hooks,
    /// Resume (or create) this conversation instead of starting a new one. At least 32 of
    /// `[a-zA-Z0-9-]` (the SDK's rule).
    pub(crate) conversation_id: Option<String>,
    /// Further capabilities (disabled tools, subagents, `run_command`, output truncation).
    pub(crate) capabilities: Capabilities,
    has_mcp: bool,
    /// A JSON schema for structured output (see [`AgentConfig::response_schema`]).
    pub(crate) response_schema: Option<serde_json::Value>,
    /// Further SDK config fields as JSON, validated by the SDK (e.g. `compaction_config`,
    /// `budget_config`, `retry_config`); see [`AgentConfig::sdk_option`].
    pub(crate) sdk_options: Option<serde_json::Value>,
    /// Tool-call policies. With none, every tool is allowed, unless write built-ins are
    /// enabled: then the agent is refused (the SDK's safety rule) unless a
    /// `pre_tool_call_decide` hook decides.
    pub(crate) policies: PolicySet,
    /// The worker pool to run on (default: [`crate::worker::pool::DEFAULT_POOL`]).
    pub(crate) pool: Option<String>,
    /// Environment variables for this agent's harness (and the commands it runs), on top of
    /// its worker's.
    pub(crate) env: EnvVars,
    /// How long an `ask_user` handler may take before the call is denied.
    pub(crate) confirmation_timeout: Option<Duration>,
    /// Idle this long, the agent hibernates (default: its pool's).
    pub(crate) hibernate_after: Option<Duration>,
    /// Problems found while building (a bad tool), reported by `create_agent`.
    problems: Vec<Error>,
}

impl AgentConfig {
    /// An agent for `model` with no tools.
    #[must_use]
    pub fn new(model: ModelConfig) -> Self {
        Self {
            model,
            system_instructions: None,
            builtin_tools: Vec::new(),
            workspaces: Vec::new(),
            behavior: AgentBehavior::default(),
            tools: ToolRegistry::new(),
            hooks: Hooks::new(),
            policies: PolicySet::new(),
            conversation_id: None,
            capabilities: Capabilities::default(),
            has_mcp: false,
            response_schema: None,
            sdk_options: None,
            pool: None,
            env: EnvVars::default(),
            confirmation_timeout: None,
            hibernate_after: None,
            problems: Vec::new(),
        }
    }

    /// Sets an environment variable for this agent's harness and the commands it runs (e.g. a
    /// token an MCP server needs). Nothing else of this process's environment reaches them
    /// beyond the worker's allow-list.
    #[must_use]
    pub fn env(mut self, name: impl Into<String>, value: impl Into<SecretString>) -> Self {
        self.env.set(name, value);
        self
    }

    /// Runs the agent on the named pool (see [`BridgeConfig::pool`]).
    #[must_use]
    pub fn pool(mut self, name: impl Into<String>) -> Self {
        self.pool = Some(name.into());
        self
    }

    /// Appends `text` to the SDK's built-in system prompt.
    #[must_use]
    pub fn system_instructions(mut self, text: impl Into<String>) -> Self {
        self.system_instructions = Some(SystemInstructions::Append(text.into()));
        self
    }

    /// Sets the system instructions in any of the SDK's forms.
    #[must_use]
    pub fn system(mut self, instructions: SystemInstructions) -> Self {
        self.system_instructions = Some(instructions);
        self
    }

    /// Capabilities beyond the enabled tools and the behaviour.
    #[must_use]
    pub fn capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Context compaction (also the hard limit for one message).
    #[must_use]
    pub fn compaction(self, config: CompactionConfig) -> Self {
        self.typed_option("compaction_config", &config)
    }

    /// Turn budgets.
    #[must_use]
    pub fn budget(self, config: BudgetConfig) -> Self {
        self.typed_option("budget_config", &config)
    }

    /// The harness's model retries.
    #[must_use]
    pub fn retry(self, config: RetryConfig) -> Self {
        self.typed_option("retry_config", &config)
    }

    /// Adds an inline skill.
    #[must_use]
    pub fn inline_skill(self, skill: InlineSkill) -> Self {
        self.push_option("inline_skills", &skill)
    }

    /// Adds a directory of skills.
    #[must_use]
    pub fn skills_path(self, path: impl Into<PathBuf>) -> Self {
        self.push_option("skills_paths", &path.into())
    }

    /// Adds an MCP server (its tools need a policy, as write tools do).
    #[must_use]
    pub fn mcp_server(mut self, server: McpServer) -> Self {
        self.has_mcp = true;
        self.push_option("mcp_servers", &server)
    }

    /// Adds a subagent.
    #[must_use]
    pub fn subagent(self, subagent: Subagent) -> Self {
        self.push_option("subagents", &subagent)
    }

    fn typed_option(self, name: &str, value: &impl Serialize) -> Self {
        let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.sdk_option(name, value)
    }

    fn push_option(mut self, name: &str, value: &impl Serialize) -> Self {
        let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        let options = self
            .sdk_options
            .get_or_insert_with(|| serde_json::json!({}));
        match options
            .get_mut(name)
            .and_then(serde_json::Value::as_array_mut)
        {
            Some(list) => list.push(value),
            None => options[name] = serde_json::json!([value]),
        }
        self
    }

    /// Exposes an SDK built-in tool by its SDK name.
    #[must_use]
    pub fn builtin_tool(mut self, name: impl Into<String>) -> Self {
        self.builtin_tools.push(name.into());
        self
    }

    /// Sets the agent's behaviour.
    #[must_use]
    pub const fn behavior(mut self, behavior: AgentBehavior) -> Self {
        self.behavior = behavior;
        self
    }

    /// Adds a workspace directory.
    #[must_use]
    pub fn workspace(mut self, dir: impl Into<PathBuf>) -> Self {
        self.workspaces.push(dir.into());
        self
    }

    /// Adds a Rust tool (e.g. a `#[llm_tool]` struct or an [`crate::agent::tools::FnTool`]). A
    /// duplicate name is reported by [`crate::Bridge::create_agent`].
    #[must_use]
    pub fn tool(mut self, tool: impl Tool) -> Self {
        if let Err(e) = self.tools.register(tool) {
            self.problems.push(e);
        }
        self
    }

    /// Applies a timeout to every tool call that has none of its own.
    #[must_use]
    pub fn tool_timeout(mut self, timeout: Duration) -> Self {
        self.tools.set_default_timeout(Some(timeout));
        self
    }

    /// Denies a tool call whose `ask_user` handler has not answered within `limit` (default:
    /// no limit, a human may take their time). Either way, cancelling the turn (or its chat
    /// timeout) drops a pending question.
    #[must_use]
    pub const fn confirmation_timeout(mut self, limit: Duration) -> Self {
        self.confirmation_timeout = Some(limit);
        self
    }

    /// Hibernates the agent once it has been idle for `after`: its harness (~190 MiB) stops,
    /// its conversation is saved, and its next call (a turn, `history`, …) activates it again
    /// with the same handle and history (default: the pool's setting, else never).
    #[must_use]
    pub const fn hibernate_after(mut self, after: Duration) -> Self {
        self.hibernate_after = Some(after);
        self
    }

    /// Sets the hooks.
    #[must_use]
    pub fn hooks(mut self, hooks: Hooks) -> Self {
        self.hooks = hooks;
        self
    }

    /// Adds a policy rule.
    #[must_use]
    pub fn policy(mut self, rule: PolicyRule) -> Self {
        self.policies.push(rule);
        self
    }

    /// Continues the conversation with this id (e.g. [`crate::Agent::conversation_id`] of an
    /// earlier agent, even from another process), or starts it under this id.
    #[must_use]
    pub fn conversation_id(mut self, id: impl Into<String>) -> Self {
        self.conversation_id = Some(id.into());
        self
    }

    /// Asks the model for structured output shaped like `T`; read it with
    /// [`crate::Agent::structured_output`] or [`crate::ChatOutcome::structured_output`].
    #[must_use]
    pub fn response_schema<T: schemars::JsonSchema>(mut self) -> Self {
        self.response_schema = Some(crate::agent::tools::schema_for::<T>());
        self
    }

    /// Sets an SDK config field by its SDK name, e.g.
    /// `sdk_option("compaction_config", json!({"token_threshold": 4000}))` or
    /// `sdk_option("budget_config", json!({"max_model_calls": 3}))`. The SDK validates it; a
    /// bad value fails `create_agent` with [`Error::InvalidConfig`] naming the field.
    #[must_use]
    pub fn sdk_option(mut self, name: &str, value: serde_json::Value) -> Self {
        let options = self
            .sdk_options
            .get_or_insert_with(|| serde_json::json!({}));
        options[name] = value;
        self
    }

    /// The agent as the worker reads it, for `conversation_id` in `dirs`, talking to `model`
    /// (already resolved against its pool).
    pub(crate) fn spec(
        &self,
        model: &ModelConfig,
        conversation_id: &str,
        dirs: &ConversationDirs,
    ) -> AgentSpec {
        let mut env: BTreeMap<_, _> = dirs
            .harness_env()
            .into_iter()
            .map(|(name, value)| (name, WireSecret(value)))
            .collect();
        for (name, value) in self.env.exposed() {
            env.insert(name.to_owned(), WireSecret(value.to_owned()));
        }
        let capabilities = serde_json::to_value(&self.capabilities)
            .ok()
            .filter(|c| c.as_object().is_some_and(|c| !c.is_empty()));
        AgentSpec {
            model: model.to_wire(),
            conversation_id: conversation_id.to_owned(),
            save_dir: dirs.save_dir.clone(),
            app_data_dir: dirs.app_data_dir.clone(),
            session_continuation_mode: ContinuationMode::CreateOrResume,
            enabled_tools: self.builtin_tools.clone(),
            agent_behavior: self.behavior,
            env,
            tools: self.tools.declarations(),
            hooks: self
                .hooks
                .points()
                .iter()
                .map(|p| (*p).to_owned())
                .collect(),
            policies: (!self.policies.is_empty()).then(|| {
                self.policies
                    .rules()
                    .iter()
                    .enumerate()
                    .map(|(i, r)| r.wire(i))
                    .collect()
            }),
            system_instructions: self
                .system_instructions
                .as_ref()
                .and_then(|s| serde_json::to_value(s).ok()),
            capabilities_extra: capabilities,
            workspaces: self.workspaces.clone(),
            response_schema: self.response_schema.clone(),
            sdk_options: self.sdk_options.clone(),
        }
    }

    /// Checks the configuration before it is sent to a worker.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the problem.
    pub fn validate(&self) -> Result<()> {
        if let Some(problem) = self.problems.first() {
            return Err(problem.clone());
        }
        let writes: Vec<&str> = self
            .builtin_tools
            .iter()
            .map(String::as_str)
            .filter(|t| !crate::protocol::READ_ONLY_BUILTINS.contains(t))
            .collect();
        let unguarded = self.policies.is_empty() && !self.hooks.has("pre_tool_call_decide");
        if unguarded && (!writes.is_empty() || self.has_mcp) {
            let what = if writes.is_empty() {
                "MCP servers are".to_owned()
            } else {
                format!("write tools {writes:?} are")
            };
            return Err(Error::InvalidConfig {
                message: format!(
                    "{what} enabled without a safety policy: add \
                     .policy(PolicyRule::allow_all()) to approve every call, or \
                     .policy(PolicyRule::deny_all()).policy(PolicyRule::allow(\"tool\")) to \
                     allow only some"
                ),
            });
        }
        if !self.builtin_tools.is_empty() && !self.capabilities.disabled_tools.is_empty() {
            return Err(Error::InvalidConfig {
                message: "capabilities: enabled built-in tools and disabled_tools are mutually \
                          exclusive (the SDK's rule)"
                    .into(),
            });
        }
        if let Some(id) = &self.conversation_id
            && (id.len() < 32 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            return Err(Error::InvalidConfig {
                message: format!(
                    "conversation_id {id:?} must be at least 32 characters of [a-zA-Z0-9-]"
                ),
            });
        }
        if let Some(name) = self.builtin_tools.iter().find(|b| self.tools.contains(b)) {
            return Err(Error::InvalidConfig {
                message: format!("tool {name} is both a Rust tool and an SDK built-in"),
            });
        }
        Ok(())
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
    fn debug_output_never_shows_keys_or_environment_values() {
        const KEY: &str = "sk-live-0123456789";
        let model = ModelConfig::gemini(KEY);
        let agent = AgentConfig::new(model.clone()).env("MCP_TOKEN", KEY);
        let vertex = ModelConfig::Vertex {
            project: None,
            location: None,
            api_key: Some(KEY.into()),
            model: None,
        };
        let pool = crate::PoolConfig::new("p")
            .gemini_api_key(KEY)
            .env("OTHER", KEY);
        let bridge = BridgeConfig::default()
            .worker_env("X", KEY)
            .pool(pool.clone());
        let quota = crate::quota::QuotaRegistry::new();
        let _ = quota.state_for_key(&model.quota_key());
        let _ = quota.state_for_key(&vertex.quota_key());
        for shown in [
            format!("{model:?}"),
            format!("{agent:?}"),
            format!("{vertex:?}"),
            format!("{pool:?}"),
            format!("{bridge:?}"),
            format!("{quota:?}"),
        ] {
            assert!(!shown.contains(KEY), "{shown}");
        }
        assert!(format!("{agent:?}").contains("MCP_TOKEN"));
        // The wire form is the one place the key is exposed: the worker needs it.
        let wire = serde_json::to_value(model.to_wire()).unwrap();
        assert_eq!(wire["api_key"], KEY);
        assert!(!format!("{:?}", model.to_wire()).contains(KEY));
    }

    #[test]
    fn a_gemini_model_without_a_key_takes_the_pool_s() {
        let pool_key = SecretString::from("pool-key");
        let resolved = ModelConfig::Gemini {
            api_key: None,
            model: None,
        }
        .resolved(Some(&pool_key))
        .unwrap();
        let wire = serde_json::to_value(resolved.to_wire()).unwrap();
        assert_eq!(wire["api_key"], "pool-key");
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
}
