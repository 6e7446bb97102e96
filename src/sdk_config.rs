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
}

/// An MCP server the agent may use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum McpServer {
    /// A server started as a child process speaking MCP on stdio.
    Stdio {
        /// Server name (tools appear as `name/tool`).
        name: String,
        /// Program.
        command: String,
        /// Arguments.
        args: Vec<String>,
        /// Environment.
        #[serde(skip_serializing_if = "Option::is_none")]
        env: Option<BTreeMap<String, String>>,
    },
    /// A streamable-HTTP MCP server.
    Http {
        /// Server name.
        name: String,
        /// URL.
        url: String,
        /// Request headers.
        #[serde(skip_serializing_if = "Option::is_none")]
        headers: Option<BTreeMap<String, String>>,
    },
}

/// A subagent the agent may delegate to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Subagent {
    /// Name.
    pub name: String,
    /// When to use it.
    pub description: String,
    /// Its system instructions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instructions: Option<String>,
    /// Tools it may use, by name (Rust tools of the parent agent or built-ins).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// Model name, if different from the parent's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// Skills from directories on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct SkillPaths(pub Vec<PathBuf>);
