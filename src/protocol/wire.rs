//! The params and results that travel, as plain serde types (their JSON Schema is generated from
//! them). Public API types that travel too (`ChatEvent`, `Step`, `Usage`, …) live in
//! `crate::types` and are used here as they are.

use std::{collections::BTreeMap, path::PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::types::{ChatEvent, Usage};

/// No params, or an empty result: `{}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Empty {}

/// A string that may be secret (an API key, an environment value): sent as it is, never shown
/// by `Debug`.
#[derive(Clone, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(transparent)]
pub(crate) struct WireSecret(pub String);

impl std::fmt::Debug for WireSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// `initialize` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct InitializeParams {
    /// [`super::PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// This crate's version.
    pub crate_version: String,
    /// Harnesses to keep started ahead (none when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness_prestart: Option<HarnessPrestart>,
    /// Conversations one `localharness` may serve (absent: 1, a harness per agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversations_per_harness: Option<usize>,
    /// Tracing: where the worker exports its spans (absent: no tracing in the worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otel: Option<OtelSettings>,
}

/// How the worker exports its spans (OTLP/HTTP).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct OtelSettings {
    /// The OTLP/HTTP traces endpoint (absent: the worker's standard `OTEL_EXPORTER_OTLP_*`
    /// variables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The `service.name` of the worker's spans (absent: `agy-worker`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
}

/// A W3C trace context (<https://www.w3.org/TR/trace-context/>): the span a message's work
/// belongs to, in the other process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct TraceContext {
    /// The `traceparent` header value.
    pub traceparent: String,
    /// The `tracestate` header value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// What a worker pre-starts `localharness` processes with: the storage directory and
/// environment of the bridge's agents (see `agy_worker/harness_pool.py`). No secrets: agents
/// with their own environment start their own harness.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct HarnessPrestart {
    /// How many to keep ready.
    pub count: usize,
    /// The agents' `save_dir`.
    pub storage_directory: std::path::PathBuf,
    /// The harness environment every agent spec carries (`HOME`).
    pub env: BTreeMap<String, String>,
}

/// `initialize` result: who the worker is.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct WorkerInfo {
    /// The worker's protocol version.
    pub protocol_version: u32,
    /// The `agy_worker` package version.
    pub worker_version: String,
    /// The installed `google-antigravity` version.
    pub sdk_version: String,
    /// The interpreter's version.
    pub python_version: String,
    /// The worker's process id.
    pub pid: u32,
    /// `orjson` or `json`.
    pub json_backend: String,
    /// `uvloop` or `asyncio`.
    pub event_loop: String,
    /// The worker's message size limit.
    pub max_message_size: usize,
    /// Unix time (s) at which the worker's `__main__` started running.
    pub main_entered_unix: f64,
    /// Unix time (s) at which the SDK import finished.
    pub sdk_imported_unix: Option<f64>,
    /// Whether agent start-up runs off the event loop (see `agy_worker/offloop.py`).
    #[serde(default)]
    pub offloop_agent_start: bool,
    /// How many conversations share one `localharness` (1: a harness per agent, also when the
    /// SDK is not the pinned version and sharing fell back; see `agy_worker/shared_harness.py`).
    #[serde(default = "one")]
    pub conversations_per_harness: usize,
}

const fn one() -> usize {
    1
}

/// `worker/echo` params (tests and benchmarks).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(not(test), allow(dead_code))] // described in the schema; called by name
pub(crate) struct EchoParams {
    /// Echoed back.
    pub payload: Value,
    /// Adds a string of this many bytes to the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_bytes: Option<usize>,
}

/// `worker/echo` result.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(not(test), allow(dead_code))] // described in the schema; called by name
pub(crate) struct EchoResult {
    /// The payload sent.
    pub payload: Value,
    /// The padding asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad: Option<String>,
}

/// `worker/ping_rust` params: time `count` reverse calls, `concurrency` at a time.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(not(test), allow(dead_code))] // described in the schema; called by name
pub(crate) struct PingRustParams {
    /// How many calls.
    pub count: u32,
    /// How many at a time.
    pub concurrency: u32,
    /// The reverse method (default `$/ping`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Its params.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
}

/// `worker/ping_rust` result, timed in the worker.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(not(test), allow(dead_code))] // described in the schema; called by name
pub(crate) struct PingRustResult {
    /// Calls made.
    pub count: u32,
    /// Median round trip (µs).
    pub p50_us: f64,
    /// 99th percentile (µs).
    pub p99_us: f64,
    /// Slowest (µs).
    pub max_us: f64,
    /// Throughput.
    pub calls_per_sec: f64,
}

/// Whether the worker creates the conversation or only resumes it (the SDK's
/// `SessionContinuationMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ContinuationMode {
    /// Create it, or resume it if it exists.
    CreateOrResume,
    /// Resume only: an unknown conversation fails.
    Resume,
}

/// The model of an agent as the worker reads it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum ModelSpec {
    /// The Gemini API.
    Gemini {
        /// The API key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_key: Option<WireSecret>,
        /// The model name (SDK default when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
    },
    /// Vertex AI.
    Vertex {
        /// Google Cloud project.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        project: Option<String>,
        /// Region.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        location: Option<String>,
        /// Express-mode API key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_key: Option<WireSecret>,
        /// Model name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
    },
    /// A LiteRT model file.
    LiteRt {
        /// Its path.
        model_path: PathBuf,
    },
    /// An OpenAI-compatible server.
    OpenaiCompatible {
        /// Its base URL.
        base_url: String,
        /// The model name.
        model: String,
    },
}

/// A model's options: Gemini's (`GeminiModelOptions`), where its calls go (the endpoint's
/// `base_url` and `http_headers`), a second model for images, LiteRT's settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub(crate) struct ModelOptionsSpec {
    /// `GeminiModelOptions` fields: `thinking_level`, `service_tier`, `max_output_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gemini: Option<Value>,
    /// The endpoint's base URL instead of Google's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Extra HTTP headers of the model calls (may hold credentials).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub http_headers: BTreeMap<String, WireSecret>,
    /// The model for image generation (`ModelType.IMAGE`), on the same endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_model: Option<String>,
    /// `LiteRTAgentConfig` fields beside `model_path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub litert: Option<Value>,
}

/// A model's name for price tables and spans: the configured name, `default` for a Gemini or
/// Vertex AI model the SDK picks, the file name of a LiteRT model.
pub(crate) fn model_label<'a>(name: Option<&'a str>, file: Option<&'a std::path::Path>) -> &'a str {
    match (name, file) {
        (Some(name), _) => name,
        (None, Some(path)) => path.file_name().and_then(|n| n.to_str()).unwrap_or("model"),
        (None, None) => "default",
    }
}

impl ModelSpec {
    /// The provider and model as the OpenTelemetry GenAI conventions name them
    /// (`gen_ai.provider.name`, `gen_ai.request.model`; the model as [`model_label`] names it).
    pub(crate) fn otel_names(&self) -> (&'static str, &str) {
        match self {
            Self::Gemini { model, .. } => ("gcp.gemini", model_label(model.as_deref(), None)),
            Self::Vertex { model, .. } => ("gcp.vertex_ai", model_label(model.as_deref(), None)),
            Self::LiteRt { model_path } => ("litert", model_label(None, Some(model_path))),
            Self::OpenaiCompatible { model, .. } => ("openai", model),
        }
    }
}

/// A Rust tool as the worker declares it to the SDK.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct ToolSpec {
    /// Tool name.
    pub name: String,
    /// Description.
    pub description: String,
    /// JSON Schema of the parameters (an object schema).
    pub parameters: Value,
}

/// A policy decision as the SDK knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Decision {
    /// Run the tool.
    Allow,
    /// Refuse it.
    Deny,
    /// Ask Rust (`policy/confirm`).
    AskUser,
    /// The SDK's auto policy mode, flagged calls denied.
    Auto,
    /// The SDK's auto policy mode, flagged calls put to Rust (`policy/confirm`).
    AutoAsk,
}

/// One policy rule as the worker hands it to the SDK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub(crate) struct PolicySpec {
    /// Tool name or pattern (`*`, `server/*`).
    pub tool: String,
    /// What to do.
    pub decision: Decision,
    /// Shown to the model (deny) or the handler (ask).
    pub reason: String,
    /// The rule's position, named again in `policy/confirm`.
    pub index: usize,
    /// The rule's name in the SDK (its presets name their rules; the harness reads some).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The assessing model of auto policy mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The rule applies only when its argument predicate holds (asked with `policy/when`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub when: bool,
}

/// An agent's configuration as the worker reads it (`agent/create`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct AgentSpec {
    /// The model.
    pub model: ModelSpec,
    /// The conversation (at least 32 of `[a-zA-Z0-9-]`).
    pub conversation_id: String,
    /// Where the harness keeps `<conversation_id>.db`.
    pub save_dir: PathBuf,
    /// The harness's application data (`brain/<conversation_id>/`).
    pub app_data_dir: PathBuf,
    /// Create or resume.
    pub session_continuation_mode: ContinuationMode,
    /// SDK built-in tools to expose (none by default).
    pub enabled_tools: Vec<String>,
    /// `autonomous`, `interactive` or `minimal`.
    pub agent_behavior: AgentBehavior,
    /// The harness's environment on top of the worker's (its `HOME` at least).
    pub env: BTreeMap<String, WireSecret>,
    /// Rust tools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// Hook points Rust has a callback for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<String>,
    /// Policy rules in order; absent: allow everything (refused with write tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<PolicySpec>>,
    /// System instructions in one of the SDK's forms (validated by the SDK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_instructions: Option<Value>,
    /// Further `CapabilitiesConfig` fields (validated by the SDK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities_extra: Option<Value>,
    /// Workspace directories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workspaces: Vec<PathBuf>,
    /// JSON Schema of structured output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<Value>,
    /// Further SDK config fields by their SDK names (validated by the SDK).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk_options: Option<Value>,
    /// Model options beyond the model itself (absent: the SDK's defaults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_options: Option<ModelOptionsSpec>,
    /// Triggers (`{"kind": "every", "interval_secs", "message"}` or
    /// `{"kind": "file_change", "path", "message"}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<Value>,
}

/// `agent/create` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct AgentCreateParams {
    /// Rust-assigned agent id.
    pub agent_id: String,
    /// The agent's configuration.
    pub config: AgentSpec,
}

/// `agent/create` result.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct AgentCreateResult {
    /// The agent id.
    pub agent_id: String,
    /// Pid of the agent's `localharness` process.
    pub harness_pid: Option<u32>,
    /// How long the SDK took to start the agent, in milliseconds.
    pub start_ms: f64,
}

/// Params of requests that only name an agent.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct AgentRef {
    /// The agent.
    pub agent_id: String,
}

/// One part of a prompt.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum PromptPart {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
    /// Media bytes.
    Media {
        /// Base64 of the bytes.
        data: String,
        /// Their MIME type.
        mime_type: String,
        /// What they show.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    /// A local file the SDK reads.
    File {
        /// Its path.
        path: PathBuf,
        /// What it shows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    /// A slash command (`BuiltinSlashCommandName`, e.g. `plan`).
    SlashCommand {
        /// Its name.
        slash_command: String,
    },
}

/// A prompt: text, or a list of parts.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum Prompt {
    /// Plain text.
    Text(String),
    /// Text and media.
    Parts(Vec<PromptPart>),
}

/// `agent/chat` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct ChatParams {
    /// The agent.
    pub agent_id: String,
    /// Rust-assigned turn number; echoed in every `chat/event`.
    pub turn_id: u64,
    /// The prompt.
    pub prompt: Prompt,
    /// The Rust turn span's trace context (tracing on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceContext>,
    /// Run this workflow (`prompt` is then ignored: the worker asks the model to run it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowSpec>,
}

/// A workflow to run in a turn: a script's path or its source (one of the two).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct WorkflowSpec {
    /// The script file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_path: Option<PathBuf>,
    /// The script's source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// What the run is for.
    #[serde(default)]
    pub description: String,
}

/// `agent/send` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct SendParams {
    /// The agent.
    pub agent_id: String,
    /// The prompt.
    pub prompt: Prompt,
    /// The caller's trace context (tracing on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceContext>,
}

/// `agent/chat` result (and `agent/wait_for_idle`'s for a sent turn).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct ChatResult {
    /// The reply text.
    pub text: String,
    /// Token usage of the turn.
    pub usage: Option<Usage>,
    /// The SDK's stop reason.
    pub stop_reason: String,
    /// Structured output, if any.
    #[serde(default)]
    pub structured_output: Option<Value>,
    /// The harness the agent is on after the turn (it changes when the worker re-opened the
    /// conversation on another one, e.g. after its harness died).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness_pid: Option<u32>,
    /// The harness's sandbox status, as it reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<crate::types::SandboxStatus>,
    /// This turn's usage by subagent trajectory (the SDK's `trajectory_usages`, the turn's
    /// part of each).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subagent_usage: BTreeMap<String, Usage>,
    /// The conversation's usage so far (the SDK's `total_usage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_usage: Option<Usage>,
    /// A workflow turn's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<crate::types::WorkflowProgress>,
}

/// `agent/cancel` result.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct CancelResult {
    /// Whether a turn was running and was halted.
    pub cancelled: bool,
}

/// `agent/wait_for_wakeup` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct WakeupParams {
    /// The agent.
    pub agent_id: String,
    /// How long to wait.
    pub timeout_secs: f64,
}

/// `chat/event` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct ChatEventParams {
    /// The agent.
    pub agent_id: String,
    /// The turn.
    pub turn_id: u64,
    /// The event.
    pub event: ChatEvent,
}

/// `worker/spare_harnesses` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct SpareHarnessesParams {
    /// The reporting worker (a slot's current worker and its warm spare share a connection
    /// handler, so the report says whose it is).
    pub worker_pid: u32,
    /// Pids of the harnesses the worker keeps started for agents still to come.
    pub pids: Vec<u32>,
    /// Pids of the shared harnesses serving conversations now.
    #[serde(default)]
    pub shared: Vec<u32>,
}

/// `agent/notify` params: a message for the agent, as a trigger sends it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct NotifyParams {
    /// The agent.
    pub agent_id: String,
    /// The message.
    pub text: String,
}

/// `agent/self_started` params: a turn the agent started on its own has ended.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct SelfStartedParams {
    /// The agent.
    pub agent_id: String,
    /// The turn's steps (de-duplicated, as `agent/history` gives them).
    pub steps: Vec<crate::types::Step>,
}

/// `worker/harness` params: a harness started, or was found dead under its conversations.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct HarnessEventParams {
    /// The reporting worker.
    pub worker_pid: u32,
    /// The harness.
    pub pid: u32,
    /// What happened.
    pub event: HarnessEvent,
}

/// What happened to a harness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum HarnessEvent {
    /// It started (a spare, a shared harness, an agent's own).
    Started,
    /// It was found dead while conversations were on it (killed, crashed, out of memory).
    Lost,
}

/// `tool/call` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct ToolCallParams {
    /// The agent.
    pub agent_id: String,
    /// The tool.
    pub tool: String,
    /// Arguments as the model sent them (integral floats made integers).
    #[serde(default)]
    pub args: Value,
    /// The worker's tool span's trace context (tracing on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<TraceContext>,
}

/// `hook/run` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct HookParams {
    /// The agent.
    pub agent_id: String,
    /// The hook point and its data (see docs/protocol.md).
    #[serde(flatten)]
    pub call: super::hooks::HookCall,
}

/// `policy/confirm` params.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct ConfirmParams {
    /// The agent.
    pub agent_id: String,
    /// The `ask_user` rule's index.
    pub index: usize,
    /// The tool.
    pub tool: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Value,
    /// The rule's reason.
    #[serde(default)]
    pub reason: String,
}

/// `policy/when` params: does a rule's argument predicate hold for this call?
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct WhenParams {
    /// The agent.
    pub agent_id: String,
    /// The rule's index.
    pub index: usize,
    /// The tool.
    pub tool: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Value,
}

/// `worker/debug` params: failure injection for the bridge's own tests.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(not(test), allow(dead_code))] // described in the schema; called by name
pub(crate) struct DebugParams {
    /// `print`, `garbage`, `block`, `reverse`, `trigger` or `exit`.
    pub action: String,
    /// The action's arguments.
    #[serde(flatten)]
    pub args: BTreeMap<String, Value>,
}

/// `$/answered` params: which of these request ids has the peer answered?
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(not(test), allow(dead_code))] // described in the schema; called by name
pub(crate) struct AnsweredParams {
    /// Request ids.
    pub ids: Vec<u64>,
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
