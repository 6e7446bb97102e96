//! [`AgentConfig`]: how an agent is set up, its validation, and its wire spec.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use secrecy::SecretString;
use serde::Serialize;

use super::ModelConfig;
use crate::{
    agent::{
        hooks::Hooks,
        policies::{PolicyRule, PolicySet},
        tools::{Tool, ToolRegistry},
    },
    error::{Error, Result},
    gateway::ModelRetry,
    protocol::wire::{AgentBehavior, AgentSpec, ContinuationMode, ModelOptionsSpec, WireSecret},
    sdk_config::{
        ApiRetry, BudgetConfig, BuiltinTool, Capabilities, CompactionConfig, GeminiOptions,
        InlineSkill, LiteRtOptions, McpServer, RetryConfig, Subagent, SystemInstructions,
        ThinkingLevel, Trigger,
    },
    store::ConversationDirs,
    worker::child_env::EnvVars,
};

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
    /// How the model gateway retries this agent's failed model calls.
    pub(crate) model_retry: ModelRetry,
    /// Model options (Gemini's, the endpoint, an image model, LiteRT's).
    model_options: ModelOptions,
    /// Triggers: turns the agent starts on its own.
    pub(crate) triggers: Vec<Trigger>,
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
            model_retry: ModelRetry::default(),
            model_options: ModelOptions::default(),
            triggers: Vec::new(),
            problems: Vec::new(),
        }
    }

    /// Gemini's model options for a Gemini or Vertex AI agent: thinking level, service tier,
    /// the longest answer.
    ///
    /// ```
    /// use agy_bridge::{AgentConfig, ModelConfig};
    /// use agy_bridge::sdk_config::{GeminiOptions, ThinkingLevel};
    ///
    /// let config = AgentConfig::new(ModelConfig::gemini("key").with_model("gemini-3.8-flash"))
    ///     .gemini_options(GeminiOptions {
    ///         thinking_level: Some(ThinkingLevel::Low),
    ///         max_output_tokens: Some(8192),
    ///         ..GeminiOptions::default()
    ///     })
    ///     // Through a company proxy that wants its own credentials:
    ///     .model_endpoint("https://llm-proxy.internal.example.com/gemini")
    ///     .model_header("x-proxy-token", "…");
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn gemini_options(mut self, options: GeminiOptions) -> Self {
        self.model_options.gemini = Some(options);
        self
    }

    /// Sends a Gemini or Vertex AI agent's model calls to `base_url` instead of Google's
    /// endpoint (a proxy, an API gateway, a regional endpoint).
    #[must_use]
    pub fn model_endpoint(mut self, base_url: impl Into<String>) -> Self {
        self.model_options.base_url = Some(base_url.into());
        self
    }

    /// Adds an HTTP header to a Gemini or Vertex AI agent's model calls (e.g. a proxy's
    /// credentials: the value is kept secret).
    #[must_use]
    pub fn model_header(mut self, name: impl Into<String>, value: impl Into<SecretString>) -> Self {
        self.model_options.headers.set(name, value);
        self
    }

    /// The model a Gemini or Vertex AI agent generates images with (the SDK's
    /// `ModelType.IMAGE` target), on the same endpoint as its text model.
    #[must_use]
    pub fn image_model(mut self, name: impl Into<String>) -> Self {
        self.model_options.image_model = Some(name.into());
        self
    }

    /// A LiteRT agent's settings beside its model file (backends, cache, port, download).
    #[must_use]
    pub fn litert_options(mut self, options: LiteRtOptions) -> Self {
        self.model_options.litert = Some(options);
        self
    }

    /// Sets an environment variable for this agent's harness and the commands it runs (e.g. a
    /// token an MCP server needs). Nothing else of this process's environment reaches them
    /// beyond the worker's allow-list.
    #[must_use]
    pub fn env(mut self, name: impl Into<String>, value: impl Into<SecretString>) -> Self {
        self.env.set(name, value);
        self
    }

    /// Runs the agent on the named pool (see [`BridgeConfig::pool`](crate::BridgeConfig::pool)).
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

    /// The SDK's `.lightweight()` preset: the minimal software-engineering built-ins
    /// (`run_command`, `view_file`, `create_file`, `edit_file`), minimal behaviour and prompt,
    /// no subagents, and compaction at 65,536 tokens unless compaction is configured. Those
    /// tools write, so the agent needs a policy (as for any write tool).
    #[must_use]
    pub fn lightweight(mut self) -> Self {
        for tool in ["run_command", "view_file", "create_file", "edit_file"] {
            if !self.builtin_tools.iter().any(|t| t == tool) {
                self.builtin_tools.push(tool.to_owned());
            }
        }
        self.behavior = AgentBehavior::Minimal;
        self.capabilities.enable_subagents = Some(false);
        let compaction_set = self
            .sdk_options
            .as_ref()
            .is_some_and(|o| o.get("compaction_config").is_some());
        if compaction_set {
            self
        } else {
            self.compaction(CompactionConfig {
                token_threshold: Some(65_536),
            })
        }
    }

    /// The SDK's `.eval()` preset, the product-neutral set-up for benchmarks and evaluation
    /// suites: every default built-in but image generation (unless built-ins were chosen),
    /// no subagents, `run_command` with daemons, an `allow_all` policy unless policies are
    /// set, API retries without limit (1 s first pause) unless retries are set, and for Gemini
    /// and Vertex AI models thinking at [`ThinkingLevel::High`] unless a level is set. (The
    /// SDK refuses its thinking default on other models; here they keep theirs.)
    #[must_use]
    pub fn eval(mut self) -> Self {
        if self.builtin_tools.is_empty() && self.capabilities.disabled_tools.is_empty() {
            self.capabilities.disabled_tools = vec![BuiltinTool::GenerateImage];
        }
        self.capabilities.enable_subagents = Some(false);
        let mut run_command = self.capabilities.run_command.take().unwrap_or_default();
        run_command.enable_daemons = true;
        self.capabilities.run_command = Some(run_command);
        if self.policies.is_empty() {
            self.policies.push(PolicyRule::allow_all());
        }
        if matches!(model_kind(&self.model), ModelKind::Google) {
            let options = self
                .model_options
                .gemini
                .get_or_insert_with(GeminiOptions::default);
            options.thinking_level.get_or_insert(ThinkingLevel::High);
        }
        let retries_set = self
            .sdk_options
            .as_ref()
            .is_some_and(|o| o.get("retry_config").is_some());
        if retries_set {
            self
        } else {
            self.retry(RetryConfig {
                api_retry: Some(ApiRetry {
                    max_retries: Some(u32::MAX),
                    initial_sleep_duration_ms: Some(1000),
                    ..ApiRetry::default()
                }),
                ..RetryConfig::default()
            })
        }
    }

    /// Adds a trigger: the agent starts turns on its own while it is live (see [`Trigger`]).
    #[must_use]
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        if let Trigger::Every { interval_secs, .. } = &trigger
            && !(interval_secs.is_finite() && *interval_secs > 0.0)
        {
            self.problems.push(Error::InvalidConfig {
                message: "a trigger's interval must be longer than zero".into(),
            });
        }
        self.triggers.push(trigger);
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

    /// How the model gateway retries this agent's model calls that failed before anything
    /// reached the agent (OpenAI-compatible models; see [`ModelRetry`] for the defaults, which
    /// are the official clients').
    #[must_use]
    pub fn model_retry(mut self, retry: ModelRetry) -> Self {
        self.model_retry = retry;
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

    /// Adds several policy rules, e.g. one of the SDK's presets:
    /// `.policies(PolicyRule::confirm_run_command())`.
    #[must_use]
    pub fn policies(mut self, rules: impl IntoIterator<Item = PolicyRule>) -> Self {
        for rule in rules {
            self.policies.push(rule);
        }
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
            model_options: self.model_options.wire(),
            triggers: self
                .triggers
                .iter()
                .filter_map(|t| serde_json::to_value(t).ok())
                .collect(),
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
        self.model_options.check(&self.model)?;
        let writes: Vec<&str> = self
            .builtin_tools
            .iter()
            .map(String::as_str)
            .filter(|t| !crate::protocol::READ_ONLY_BUILTINS.contains(t))
            .collect();
        let unguarded = self.policies.is_empty() && !self.hooks.has("pre_tool_call_decide");
        // MCP servers however they were given: `mcp_server` or the raw `sdk_option`.
        let has_mcp = self.has_mcp
            || self
                .sdk_options
                .as_ref()
                .and_then(|o| o.get("mcp_servers"))
                .is_some_and(|servers| {
                    !servers.is_null() && servers.as_array().is_none_or(|a| !a.is_empty())
                });
        if unguarded && (!writes.is_empty() || has_mcp) {
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
        let pool = crate::worker::pool::PoolConfig::new("p")
            .gemini_api_key(KEY)
            .env("OTHER", KEY);
        let bridge = crate::config::BridgeConfig::default()
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
    fn mcp_servers_need_a_policy_however_they_are_given() {
        let model = || ModelConfig::openai_compatible("http://127.0.0.1:1/v1", "m");
        let server = serde_json::json!([{"name": "files", "command": "mcp-files"}]);
        for config in [
            AgentConfig::new(model()).mcp_server(McpServer::stdio("files", "mcp-files")),
            AgentConfig::new(model()).sdk_option("mcp_servers", server.clone()),
        ] {
            let err = config.validate().unwrap_err();
            assert!(err.to_string().contains("MCP servers"), "{err}");
            config
                .policy(PolicyRule::allow_all())
                .validate()
                .expect("with a policy");
        }
        AgentConfig::new(model())
            .sdk_option("mcp_servers", serde_json::json!([]))
            .validate()
            .expect("no servers, no policy needed");
    }
}

/// What [`AgentConfig`]'s model option methods set.
#[derive(Debug, Clone, Default)]
struct ModelOptions {
    gemini: Option<GeminiOptions>,
    base_url: Option<String>,
    headers: EnvVars,
    image_model: Option<String>,
    litert: Option<LiteRtOptions>,
}

/// What kind of model options apply.
enum ModelKind {
    Google,
    LiteRt,
    Other,
}

fn model_kind(model: &ModelConfig) -> ModelKind {
    match model {
        ModelConfig::Gemini { .. } | ModelConfig::Vertex { .. } => ModelKind::Google,
        ModelConfig::LiteRt { .. } => ModelKind::LiteRt,
        _ => ModelKind::Other,
    }
}

impl ModelOptions {
    /// Refuses options the agent's kind of model has no use for.
    fn check(&self, model: &ModelConfig) -> Result<()> {
        let google = matches!(
            model,
            ModelConfig::Gemini { .. } | ModelConfig::Vertex { .. }
        );
        let for_google = [
            ("gemini_options", self.gemini.is_some()),
            ("model_endpoint", self.base_url.is_some()),
            ("model_header", !self.headers.is_empty()),
            ("image_model", self.image_model.is_some()),
        ];
        if let Some((name, _)) = for_google.iter().find(|(_, set)| *set && !google) {
            return Err(Error::InvalidConfig {
                message: format!(
                    "{name} applies to Gemini and Vertex AI models, not to {}",
                    model.describe()
                ),
            });
        }
        if self.litert.is_some() && !matches!(model_kind(model), ModelKind::LiteRt) {
            return Err(Error::InvalidConfig {
                message: format!(
                    "litert_options applies to LiteRT models, not to {}",
                    model.describe()
                ),
            });
        }
        Ok(())
    }

    fn wire(&self) -> Option<ModelOptionsSpec> {
        let spec = ModelOptionsSpec {
            gemini: self
                .gemini
                .as_ref()
                .and_then(|g| serde_json::to_value(g).ok()),
            base_url: self.base_url.clone(),
            http_headers: self
                .headers
                .exposed()
                .map(|(name, value)| (name.to_owned(), WireSecret(value.to_owned())))
                .collect(),
            image_model: self.image_model.clone(),
            litert: self
                .litert
                .as_ref()
                .and_then(|l| serde_json::to_value(l).ok()),
        };
        let empty = spec.gemini.is_none()
            && spec.base_url.is_none()
            && spec.http_headers.is_empty()
            && spec.image_model.is_none()
            && spec.litert.is_none();
        (!empty).then_some(spec)
    }
}
