//! Configuration: the bridge's runtime knobs, agents, and models.

use std::{path::PathBuf, time::Duration};

use serde::Serialize;

use crate::{
    error::{Error, Result},
    hooks::Hooks,
    policies::{PolicyRule, PolicySet, READ_ONLY_BUILTINS},
    rpc::DEFAULT_MAX_MESSAGE_SIZE,
    sdk_config::{
        BudgetConfig, Capabilities, CompactionConfig, InlineSkill, McpServer, RetryConfig,
        Subagent, SystemInstructions,
    },
    tools::{Tool, ToolRegistry},
    worker::{PythonConfig, SetupEvent, SetupProgress},
};

/// Env var holding the chat timeout in seconds (default 120), as in the seed.
pub const ENV_CHAT_TIMEOUT: &str = "AGI_CHAT_TIMEOUT_SECS";
/// Default chat timeout.
pub const DEFAULT_CHAT_TIMEOUT: Duration = Duration::from_secs(120);

/// The chat timeout from [`ENV_CHAT_TIMEOUT`]; an invalid value warns and falls back to 120 s.
#[must_use]
pub fn default_chat_timeout() -> Duration {
    chat_timeout_from(std::env::var(ENV_CHAT_TIMEOUT).ok().as_deref())
}

/// Parses a chat timeout in seconds; `None` or an invalid value (with a warning) gives 120 s.
#[must_use]
pub fn chat_timeout_from(value: Option<&str>) -> Duration {
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

/// Settings for a [`crate::Bridge`].
#[derive(Clone)]
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
    /// Deadline for one chat turn (default from `AGI_CHAT_TIMEOUT_SECS`, else 120 s).
    pub chat_timeout: Duration,
    /// Deadline for other operations (default: chat timeout + 2 min, as in the seed).
    pub operation_timeout: Duration,
    /// Accept a `google-antigravity` other than the tested pin.
    pub allow_sdk_mismatch: bool,
    /// Extra environment variables for workers.
    pub worker_env: Vec<(String, String)>,
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
    pub restart: crate::supervisor::RestartPolicy,
    /// When the default pool's workers are recycled (default: never).
    pub recycle: crate::pool::RecyclePolicy,
    /// Further named worker pools (see [`BridgeConfig::pool`]).
    pub pools: Vec<crate::pool::PoolConfig>,
    /// Enables the worker's failure-injection method. For the bridge's own tests.
    #[doc(hidden)]
    pub debug_methods: bool,
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
            worker_env: Vec::new(),
            setup_progress: None,
            channel_capacity: 1024,
            workers: 1,
            max_agents_per_worker: None,
            inter_agent_delay: Duration::ZERO,
            restart: crate::supervisor::RestartPolicy::default(),
            recycle: crate::pool::RecyclePolicy::default(),
            pools: Vec::new(),
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
    /// [`crate::pool::DEFAULT_POOL`].
    #[must_use]
    pub fn pool(mut self, pool: crate::pool::PoolConfig) -> Self {
        self.pools.push(pool);
        self
    }

    /// The default pool plus the named ones, each with the bridge's settings filled in.
    pub(crate) fn resolved_pools(&self) -> Result<Vec<crate::pool::PoolConfig>> {
        let default = crate::pool::PoolConfig {
            name: crate::pool::DEFAULT_POOL.to_owned(),
            workers: self.workers,
            max_agents_per_worker: self.max_agents_per_worker,
            python: Some(self.python.clone()),
            env: Vec::new(),
            restart: Some(self.restart.clone()),
            recycle: self.recycle.clone(),
        };
        let mut pools = vec![default];
        for pool in &self.pools {
            if pool.name.is_empty() || pools.iter().any(|p| p.name == pool.name) {
                return Err(Error::InvalidConfig {
                    message: format!(
                        "pool names must be unique and non-empty ({:?} is the default pool's)",
                        crate::pool::DEFAULT_POOL
                    ),
                });
            }
            let mut pool = pool.clone();
            pool.python.get_or_insert_with(|| self.python.clone());
            pool.restart.get_or_insert_with(|| self.restart.clone());
            pools.push(pool);
        }
        Ok(pools)
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
}

/// Which model an agent talks to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ModelConfig {
    /// The Gemini API.
    Gemini {
        /// API key (the SDK also reads `GEMINI_API_KEY`).
        #[serde(skip_serializing_if = "Option::is_none")]
        api_key: Option<String>,
        /// Model name; the SDK's default when `None`.
        #[serde(skip_serializing_if = "Option::is_none")]
        model: Option<String>,
    },
    /// Vertex AI.
    Vertex {
        /// Google Cloud project.
        #[serde(skip_serializing_if = "Option::is_none")]
        project: Option<String>,
        /// Region.
        #[serde(skip_serializing_if = "Option::is_none")]
        location: Option<String>,
        /// Express-mode API key.
        #[serde(skip_serializing_if = "Option::is_none")]
        api_key: Option<String>,
        /// Model name.
        #[serde(skip_serializing_if = "Option::is_none")]
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

impl ModelConfig {
    /// Gemini with the key from `GEMINI_API_KEY`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the variable is not set.
    pub fn gemini_from_env() -> Result<Self> {
        let key = std::env::var("GEMINI_API_KEY").map_err(|_| Error::InvalidConfig {
            message: "GEMINI_API_KEY is not set".into(),
        })?;
        Ok(Self::Gemini {
            api_key: Some(key),
            model: None,
        })
    }

    /// An OpenAI-compatible server.
    pub fn openai_compatible(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self::OpenaiCompatible {
            base_url: base_url.into(),
            model: model.into(),
        }
    }

    /// The key that quota backoff is tracked under: the API key, else the endpoint.
    #[must_use]
    pub fn quota_key(&self) -> String {
        match self {
            Self::Gemini { api_key, .. } => {
                format!("gemini:{}", api_key.as_deref().unwrap_or("env"))
            }
            Self::Vertex {
                api_key, project, ..
            } => format!(
                "vertex:{}",
                api_key.as_deref().or(project.as_deref()).unwrap_or("env")
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
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
    pub model: ModelConfig,
    /// System instructions (appended to the SDK's prompt, replacing it, or templated).
    pub system_instructions: Option<SystemInstructions>,
    /// SDK built-in tools to expose (SDK names, e.g. `view_file`). Empty by default: no file
    /// writes or commands unless asked for.
    pub builtin_tools: Vec<String>,
    /// Workspace directories (default: the SDK's, i.e. the worker's cwd).
    pub workspaces: Vec<PathBuf>,
    /// Autonomous (default), interactive or minimal.
    pub behavior: AgentBehavior,
    /// Rust tools.
    pub tools: ToolRegistry,
    /// Lifecycle hooks.
    pub hooks: Hooks,
    /// Resume (or create) this conversation instead of starting a new one. At least 32 of
    /// `[a-zA-Z0-9-]` (the SDK's rule).
    pub conversation_id: Option<String>,
    /// Further capabilities (disabled tools, subagents, `run_command`, output truncation).
    pub capabilities: Capabilities,
    has_mcp: bool,
    /// A JSON schema for structured output (see [`AgentConfig::response_schema`]).
    pub response_schema: Option<serde_json::Value>,
    /// Further SDK config fields as JSON, validated by the SDK (e.g. `compaction_config`,
    /// `budget_config`, `retry_config`); see [`AgentConfig::sdk_option`].
    pub sdk_options: Option<serde_json::Value>,
    /// Tool-call policies. With none, every tool is allowed, unless write built-ins are
    /// enabled: then the agent is refused (the SDK's safety rule) unless a
    /// `pre_tool_call_decide` hook decides.
    pub policies: PolicySet,
    /// The worker pool to run on (default: [`crate::pool::DEFAULT_POOL`]).
    pub pool: Option<String>,
    problems: Vec<String>,
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
            problems: Vec::new(),
        }
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

    /// Adds a Rust tool (e.g. a `#[llm_tool]` struct or an [`crate::tools::FnTool`]). A
    /// duplicate name is reported by [`crate::Bridge::create_agent`].
    #[must_use]
    pub fn tool(mut self, tool: impl Tool) -> Self {
        if let Err(e) = self.tools.register(tool) {
            self.problems.push(e.to_string());
        }
        self
    }

    /// Applies a timeout to every tool call that has none of its own.
    #[must_use]
    pub fn tool_timeout(mut self, timeout: Duration) -> Self {
        self.tools.set_default_timeout(Some(timeout));
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
        self.response_schema = Some(crate::tools::schema_for::<T>());
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

    /// Checks the configuration before it is sent to a worker.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the problem.
    pub fn validate(&self) -> Result<()> {
        if let Some(problem) = self.problems.first() {
            return Err(Error::InvalidConfig {
                message: problem.clone(),
            });
        }
        let writes: Vec<&str> = self
            .builtin_tools
            .iter()
            .map(String::as_str)
            .filter(|t| !READ_ONLY_BUILTINS.contains(t))
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
