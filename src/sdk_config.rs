//! Typed Rust versions of the SDK's configuration sections. Each serializes to the SDK's own
//! field names; the SDK validates them when the agent starts, and a rejected value fails
//! `create_agent` with [`crate::Error::InvalidConfig`] naming the field.

use std::{collections::BTreeMap, path::PathBuf};

use serde::Serialize;

/// An SDK built-in tool, by the SDK's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BuiltinTool {
    /// List a directory.
    ListDirectory,
    /// Search a directory.
    SearchDirectory,
    /// Find a file.
    FindFile,
    /// Read a file (read-only).
    ViewFile,
    /// Create a file (write).
    CreateFile,
    /// Edit a file (write).
    EditFile,
    /// Run a shell command (write).
    RunCommand,
    /// Ask the user a question (needs [`crate::AgentBehavior::Interactive`]).
    AskQuestion,
    /// Run a subagent.
    InvokeSubagent,
    /// Run a workflow.
    RunWorkflow,
    /// Generate an image.
    GenerateImage,
    /// Search the web.
    SearchWeb,
    /// Read a URL (read-only).
    ReadUrlContent,
    /// Schedule a later turn (read-only).
    Schedule,
    /// Finish with structured output (read-only).
    Finish,
}

impl BuiltinTool {
    /// The SDK's name, e.g. `view_file`.
    #[must_use]
    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Whether the tool only reads (the SDK's `BuiltinTools.read_only()`).
    #[must_use]
    pub fn is_read_only(self) -> bool {
        crate::protocol::READ_ONLY_BUILTINS.contains(&self.name().as_str())
    }
}

impl From<BuiltinTool> for String {
    fn from(tool: BuiltinTool) -> Self {
        tool.name()
    }
}

/// System instructions: appended to the SDK's built-in prompt, replacing it, or templated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum SystemInstructions {
    /// Appended to the SDK's built-in Antigravity prompt.
    Append(String),
    /// Replaces the built-in prompt (the SDK's `CustomSystemInstructions`).
    Custom {
        /// The whole system prompt.
        text: String,
    },
    /// The SDK's `TemplatedSystemInstructions`: an identity plus titled sections, appended.
    Templated {
        /// Who the agent is.
        identity: String,
        /// Further sections.
        sections: Vec<InstructionSection>,
    },
}

impl From<&str> for SystemInstructions {
    fn from(text: &str) -> Self {
        Self::Append(text.to_owned())
    }
}

impl From<String> for SystemInstructions {
    fn from(text: String) -> Self {
        Self::Append(text)
    }
}

/// A titled section of templated system instructions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstructionSection {
    /// Section title.
    pub title: String,
    /// Section text.
    pub content: String,
}

/// `run_command` settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunCommandConfig {
    /// Allow background daemons.
    pub enable_daemons: bool,
    /// Per-command timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
    /// Run commands in the SDK's sandbox.
    pub enable_sandbox: bool,
}

/// Capabilities beyond the enabled tools and behaviour (see [`crate::AgentConfig`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Capabilities {
    /// Built-ins to hide; with this set, every other default built-in is exposed (the SDK
    /// forbids setting both lists).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disabled_tools: Vec<BuiltinTool>,
    /// Allow subagents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_subagents: Option<bool>,
    /// How deep subagents may nest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_subagent_depth: Option<u32>,
    /// `run_command` settings.
    #[serde(skip_serializing_if = "Option::is_none", rename = "run_command_config")]
    pub run_command: Option<RunCommandConfig>,
    /// Truncate tool output for the model to this many tokens.
    #[serde(
        skip_serializing_if = "Option::is_none",
        rename = "tool_output_truncation_config"
    )]
    pub tool_output_max_tokens: Option<u32>,
    /// The subagents the agent may call, by name (default: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_subagents: Option<Vec<String>>,
    /// Cut an MCP tool's output for the model at this many bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp_max_output_bytes: Option<u64>,
}

/// Context compaction. The threshold is also the hard limit for one message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CompactionConfig {
    /// Compact once the context exceeds this many tokens.
    pub token_threshold: Option<u64>,
}

/// Limits after which a turn stops quietly with a `MAX_*_EXCEEDED` stop reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BudgetConfig {
    /// Model calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_model_calls: Option<u32>,
    /// Tool calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tool_calls: Option<u32>,
    /// Input tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_input_tokens: Option<u64>,
    /// Output tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// Total tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_total_tokens: Option<u64>,
    /// What the limits count (the SDK's default: [`BudgetScope::Lifetime`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<BudgetScope>,
}

/// What a [`BudgetConfig`]'s limits count (the SDK's `BudgetScope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BudgetScope {
    /// Everything since the conversation began.
    Lifetime,
    /// What is spent from when the budget was set, or the conversation resumed.
    ForwardLooking,
}

/// The harness's model retries. (They did not apply to HTTP errors on the OpenAI path in the
/// SDK version this crate is tested with; see the quota docs.)
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RetryConfig {
    /// Retries of failed API calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_retry: Option<ApiRetry>,
    /// Retries of unusable model output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_output_retry: Option<OutputRetry>,
}

/// API-call retries.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ApiRetry {
    /// How many.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// First backoff.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_sleep_duration_ms: Option<u64>,
    /// Backoff growth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exponential_multiplier: Option<f64>,
    /// Jitter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_range: Option<f64>,
}

/// Output retries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutputRetry {
    /// How many.
    pub max_retries: Option<u32>,
}

/// A skill given inline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InlineSkill {
    /// Skill name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The skill text.
    pub content: String,
    /// Tools the skill may use.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_tools: Vec<String>,
    /// Tools the skill needs to be present.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dependent_tools: Vec<String>,
    /// Other skills it builds on, by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dependent_skills: Vec<String>,
    /// Free-form key/value metadata.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// An MCP server the agent may use (its tools need a safety policy, as write tools do).
/// Build one with [`McpServer::stdio`] or [`McpServer::http`] and the option methods.
///
/// ```
/// use std::time::Duration;
/// use agy_bridge::sdk_config::McpServer;
///
/// let files = McpServer::stdio("files", "mcp-files")
///     .arg("--root")
///     .arg("/srv/data")
///     .enabled_tools(["read_file", "list_dir"])
///     .timeout(Duration::from_secs(20));
/// let search = McpServer::http("search", "https://mcp.example.com/mcp")
///     .header("Authorization", "Bearer …")
///     .disabled_tools(["delete_index"]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum McpServer {
    /// A server started as a child process speaking MCP on stdio.
    Stdio {
        /// Server name (letters, digits, `-` and `_`).
        name: String,
        /// Program.
        command: String,
        /// Arguments.
        args: Vec<String>,
        /// Environment.
        #[serde(skip_serializing_if = "Option::is_none")]
        env: Option<BTreeMap<String, String>>,
        /// What every kind of server takes.
        #[serde(flatten)]
        options: McpOptions,
    },
    /// A streamable-HTTP MCP server.
    Http {
        /// Server name (letters, digits, `-` and `_`).
        name: String,
        /// URL.
        url: String,
        /// Request headers.
        #[serde(skip_serializing_if = "Option::is_none")]
        headers: Option<BTreeMap<String, String>>,
        /// Connection timeout in seconds (the SDK's default: 30).
        #[serde(skip_serializing_if = "Option::is_none")]
        timeout: Option<f64>,
        /// How long to wait for the next server-sent event, in seconds (default 300).
        #[serde(skip_serializing_if = "Option::is_none")]
        sse_read_timeout: Option<f64>,
        /// Whether the session is terminated when the connection closes (default true).
        #[serde(skip_serializing_if = "Option::is_none")]
        terminate_on_close: Option<bool>,
        /// What every kind of server takes.
        #[serde(flatten)]
        options: McpOptions,
    },
}

/// Options of every MCP server (the SDK's `BaseMcpServerConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct McpOptions {
    /// Only these tools are shown to the model (exclusive with `disabled_tools`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled_tools: Option<Vec<String>>,
    /// These tools are hidden from the model (exclusive with `enabled_tools`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_tools: Option<Vec<String>>,
    /// Timeout in seconds for connecting to the server and listing its tools.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// Puts every tool of the server in the prompt at once instead of behind tool search.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub force_all_tools_eager: bool,
}

impl McpServer {
    /// A server the harness starts as `command`, speaking MCP on its stdio.
    pub fn stdio(name: impl Into<String>, command: impl Into<String>) -> Self {
        Self::Stdio {
            name: name.into(),
            command: command.into(),
            args: Vec::new(),
            env: None,
            options: McpOptions::default(),
        }
    }

    /// A streamable-HTTP server at `url`.
    pub fn http(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self::Http {
            name: name.into(),
            url: url.into(),
            headers: None,
            timeout: None,
            sse_read_timeout: None,
            terminate_on_close: None,
            options: McpOptions::default(),
        }
    }

    /// Adds an argument (stdio servers; ignored for HTTP ones).
    #[must_use]
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        if let Self::Stdio { args, .. } = &mut self {
            args.push(arg.into());
        }
        self
    }

    /// Sets an environment variable of the server process (stdio servers).
    #[must_use]
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let Self::Stdio { env, .. } = &mut self {
            env.get_or_insert_with(BTreeMap::new)
                .insert(name.into(), value.into());
        }
        self
    }

    /// Sets a request header (HTTP servers).
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let Self::Http { headers, .. } = &mut self {
            headers
                .get_or_insert_with(BTreeMap::new)
                .insert(name.into(), value.into());
        }
        self
    }

    /// Shows the model only these of the server's tools.
    #[must_use]
    pub fn enabled_tools<S: Into<String>>(mut self, tools: impl IntoIterator<Item = S>) -> Self {
        self.options_mut().enabled_tools = Some(tools.into_iter().map(Into::into).collect());
        self
    }

    /// Hides these of the server's tools from the model.
    #[must_use]
    pub fn disabled_tools<S: Into<String>>(mut self, tools: impl IntoIterator<Item = S>) -> Self {
        self.options_mut().disabled_tools = Some(tools.into_iter().map(Into::into).collect());
        self
    }

    /// Limits connecting to the server and listing its tools (whole seconds, at least one).
    #[must_use]
    pub fn timeout(mut self, limit: std::time::Duration) -> Self {
        self.options_mut().timeout_seconds = Some(limit.as_secs().max(1));
        self
    }

    /// Puts all the server's tools in the prompt at once, not behind tool search.
    #[must_use]
    pub fn force_all_tools_eager(mut self, eager: bool) -> Self {
        self.options_mut().force_all_tools_eager = eager;
        self
    }

    /// The HTTP connection timeout (HTTP servers).
    #[must_use]
    pub fn connect_timeout(mut self, limit: std::time::Duration) -> Self {
        if let Self::Http { timeout, .. } = &mut self {
            *timeout = Some(limit.as_secs_f64());
        }
        self
    }

    /// How long to wait for the server's next event (HTTP servers).
    #[must_use]
    pub fn sse_read_timeout(mut self, limit: std::time::Duration) -> Self {
        if let Self::Http {
            sse_read_timeout, ..
        } = &mut self
        {
            *sse_read_timeout = Some(limit.as_secs_f64());
        }
        self
    }

    /// Whether the MCP session ends when its connection closes (HTTP servers).
    #[must_use]
    pub fn terminate_on_close(mut self, terminate: bool) -> Self {
        if let Self::Http {
            terminate_on_close, ..
        } = &mut self
        {
            *terminate_on_close = Some(terminate);
        }
        self
    }

    fn options_mut(&mut self) -> &mut McpOptions {
        match self {
            Self::Stdio { options, .. } | Self::Http { options, .. } => options,
        }
    }
}

/// A subagent the agent may delegate to (the SDK's `SubagentConfig`).
///
/// ```
/// use agy_bridge::sdk_config::{Subagent, SubagentCapabilities, SubagentSkills};
///
/// let reviewer = Subagent {
///     name: "reviewer".into(),
///     description: "Reviews a change for bugs.".into(),
///     system_instructions: Some("Be terse.".into()),
///     capabilities: Some(SubagentCapabilities {
///         enabled_tools: Some(vec!["view_file".into(), "grep_search".into()]),
///         ..SubagentCapabilities::default()
///     }),
///     skills: Some(SubagentSkills::Inherit {
///         skill_names: vec!["code-review".into()],
///         extra_skills_paths: vec![],
///     }),
///     ..Subagent::default()
/// };
/// # let _ = reviewer;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Subagent {
    /// Name.
    pub name: String,
    /// When to use it.
    pub description: String,
    /// Its system instructions, in any of the SDK's forms (appended, custom, templated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instructions: Option<SystemInstructions>,
    /// Tools it may use, by name (Rust tools of the parent agent or built-ins).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// Model name, if different from the parent's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Its built-in tools and behaviour (the SDK's default: read-only tools).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<SubagentCapabilities>,
    /// Which skills it sees (the SDK's default: all of the parent's).
    #[serde(rename = "skills_config", skip_serializing_if = "Option::is_none")]
    pub skills: Option<SubagentSkills>,
}

/// A subagent's built-in tools and behaviour (the SDK's `SubagentCapabilities`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SubagentCapabilities {
    /// Its behaviour (the SDK's default: autonomous).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_behavior: Option<crate::protocol::wire::AgentBehavior>,
    /// The subagents it may call in turn (`None`: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_subagents: Option<Vec<String>>,
    /// The built-in tools it gets, by SDK name (exclusive with `disabled_tools`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled_tools: Option<Vec<String>>,
    /// The built-in tools it does not get.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_tools: Option<Vec<String>>,
    /// Its `run_command` settings.
    #[serde(rename = "run_command_config", skip_serializing_if = "Option::is_none")]
    pub run_command: Option<RunCommandConfig>,
}

/// Which skills a subagent sees (the SDK's `SubagentSkillsConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum SubagentSkills {
    /// The parent's (only those named, when any are), plus skills from more directories.
    #[serde(rename = "inherit_config")]
    Inherit {
        /// The parent's skills it gets (empty: all).
        skill_names: Vec<String>,
        /// Further directories of `SKILL.md` files.
        extra_skills_paths: Vec<PathBuf>,
    },
    /// None at all (and no `lookup_skill`).
    #[serde(rename = "none_config")]
    None {},
    /// These instead of the parent's (at least one). The local harness of SDK 0.1.22 refuses
    /// `inline_skills` here (the agent fails to start, saying so): use `skills_paths`.
    #[serde(rename = "override_config")]
    Override {
        /// Directories of `SKILL.md` files.
        skills_paths: Vec<PathBuf>,
        /// Skills given inline.
        inline_skills: Vec<InlineSkill>,
    },
}

/// Skills from directories on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SkillPaths(pub Vec<PathBuf>);

/// Options of Gemini and Vertex AI models (the SDK's `GeminiModelOptions`); set with
/// [`crate::AgentConfig::gemini_options`].
///
/// ```
/// use agy_bridge::sdk_config::{GeminiOptions, ServiceTier, ThinkingLevel};
///
/// let options = GeminiOptions {
///     thinking_level: Some(ThinkingLevel::Low),
///     service_tier: Some(ServiceTier::Flex),
///     max_output_tokens: Some(4096),
/// };
/// # let _ = options;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GeminiOptions {
    /// How much the model thinks before it answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_level: Option<ThinkingLevel>,
    /// The compute queue the calls go to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<ServiceTier>,
    /// The most tokens one answer may have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
}

/// How much a Gemini model thinks (the SDK's `ThinkingLevel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ThinkingLevel {
    /// Minimal thinking.
    Minimal,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Extra high.
    ExtraHigh,
}

/// The service tier of Gemini calls (the SDK's `ServiceTier`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceTier {
    /// Standard processing.
    Standard,
    /// Prioritized inference.
    Priority,
    /// Flex processing.
    Flex,
}

/// Options of a LiteRT model (the SDK's `LiteRTAgentConfig` fields beside `model_path`); set
/// with [`crate::AgentConfig::litert_options`]. Unset fields keep the SDK's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LiteRtOptions {
    /// Where the model runs (the SDK's default: GPU).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<LiteRtBackend>,
    /// Where audio input is processed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_backend: Option<LiteRtBackend>,
    /// Where image input is processed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vision_backend: Option<LiteRtBackend>,
    /// Speculative decoding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enable_speculative_decoding: Option<bool>,
    /// The model cache directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    /// The local server's port (0: any free one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Download the model when `model_path` does not exist.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub download_if_missing: Option<bool>,
}

/// Where a LiteRT model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LiteRtBackend {
    /// The CPU.
    Cpu,
    /// The GPU.
    Gpu,
    /// The NPU.
    Npu,
}

/// A trigger: something that makes the agent start a turn on its own while it is live (the
/// SDK's triggers; read those turns with [`crate::Agent::self_started_turns`]). For triggers of
/// your own, call [`crate::Agent::notify`] from your code.
///
/// An agent with triggers is not hibernated for being idle, unless it sets
/// [`crate::AgentConfig::hibernate_after`] itself: a hibernated agent has no harness, so its
/// triggers stop until its next use (the live cap can still hibernate it).
///
/// ```
/// use std::time::Duration;
/// use agy_bridge::sdk_config::Trigger;
///
/// let hourly = Trigger::every(Duration::from_secs(3600), "Check the queue for new tickets.");
/// let inbox = Trigger::on_file_change("/srv/inbox", "New files arrived:");
/// # let _ = (hourly, inbox);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Trigger {
    /// Sends `message` to the agent every `interval_secs` (the first time after one interval).
    Every {
        /// Seconds between two messages.
        interval_secs: f64,
        /// What the agent is told.
        message: String,
    },
    /// Sends `message`, followed by one `added|modified|deleted: <path>` line per change,
    /// whenever files under `path` change.
    FileChange {
        /// The file or directory watched.
        path: PathBuf,
        /// What the agent is told before the list of changes.
        message: String,
    },
}

impl Trigger {
    /// Tells the agent `message` every `interval` (the SDK's `triggers.every`).
    #[must_use]
    pub fn every(interval: std::time::Duration, message: impl Into<String>) -> Self {
        Self::Every {
            interval_secs: interval.as_secs_f64(),
            message: message.into(),
        }
    }

    /// Tells the agent `message` and what changed whenever files under `path` change (the
    /// SDK's `triggers.on_file_change`).
    #[must_use]
    pub fn on_file_change(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::FileChange {
            path: path.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The shapes the worker's tests feed the SDK with (`tests/test_host.py`).
    #[test]
    fn subagents_budgets_and_model_options_serialize_to_the_sdk_s_field_names() {
        let subagent = Subagent {
            name: "reviewer".into(),
            description: "Reviews.".into(),
            system_instructions: Some("Be terse.".into()),
            capabilities: Some(SubagentCapabilities {
                agent_behavior: Some(crate::protocol::wire::AgentBehavior::Minimal),
                enabled_tools: Some(vec!["view_file".into()]),
                run_command: Some(RunCommandConfig {
                    enable_sandbox: true,
                    ..RunCommandConfig::default()
                }),
                ..SubagentCapabilities::default()
            }),
            skills: Some(SubagentSkills::Inherit {
                skill_names: vec!["checklist".into()],
                extra_skills_paths: vec![],
            }),
            ..Subagent::default()
        };
        assert_eq!(
            serde_json::to_value(&subagent).unwrap(),
            json!({
                "name": "reviewer",
                "description": "Reviews.",
                "system_instructions": "Be terse.",
                "capabilities": {
                    "agent_behavior": "minimal",
                    "enabled_tools": ["view_file"],
                    "run_command_config": {"enable_daemons": false, "enable_sandbox": true},
                },
                "skills_config": {"inherit_config": {"skill_names": ["checklist"], "extra_skills_paths": []}},
            })
        );
        assert_eq!(
            serde_json::to_value(SubagentSkills::None {}).unwrap(),
            json!({"none_config": {}})
        );
        let budget = BudgetConfig {
            max_model_calls: Some(3),
            scope: Some(BudgetScope::ForwardLooking),
            ..BudgetConfig::default()
        };
        assert_eq!(
            serde_json::to_value(budget).unwrap(),
            json!({"max_model_calls": 3, "scope": "FORWARD_LOOKING"})
        );
        let options = GeminiOptions {
            thinking_level: Some(ThinkingLevel::ExtraHigh),
            service_tier: Some(ServiceTier::Priority),
            max_output_tokens: Some(10),
        };
        assert_eq!(
            serde_json::to_value(options).unwrap(),
            json!({"thinking_level": "extra_high", "service_tier": "priority", "max_output_tokens": 10})
        );
        let litert = LiteRtOptions {
            backend: Some(LiteRtBackend::Cpu),
            port: Some(8123),
            ..LiteRtOptions::default()
        };
        assert_eq!(
            serde_json::to_value(litert).unwrap(),
            json!({"backend": "cpu", "port": 8123})
        );
    }
}
