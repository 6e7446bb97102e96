//! Plain data types shared by the API and the protocol.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One streamed event of a chat turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChatEvent {
    /// A piece of the reply text.
    Text {
        /// The delta.
        text: String,
    },
    /// A piece of the model's visible reasoning.
    Thought {
        /// The delta.
        text: String,
    },
    /// The model asked for a tool call.
    ToolCall {
        /// Call id assigned by the harness.
        id: Option<String>,
        /// Tool name.
        name: String,
        /// Arguments as the model sent them.
        args: serde_json::Value,
    },
    /// A Rust tool finished (reported by the bridge; the SDK does not report tool results).
    ToolResult {
        /// Tool name.
        name: String,
        /// Its result, if it succeeded.
        result: Option<serde_json::Value>,
        /// The error the model was shown, if it failed.
        error: Option<String>,
    },
    /// A Rust hook failed (panicked, or returned what its point cannot take). A hook that
    /// decides something failed closed: the tool call was blocked, the turn refused or ended,
    /// the questions cancelled.
    HookFailed {
        /// The hook point, e.g. `pre_tool_call_decide`.
        point: String,
        /// What went wrong.
        message: String,
    },
    /// A step of the turn reached its final state (user prompt, model text, tool call, …).
    Step {
        /// The step.
        step: Box<Step>,
    },
    /// The agent asked for its commands to run in the SDK's sandbox
    /// (`RunCommandConfig::enable_sandbox`), but the harness has none here: its commands run
    /// unsandboxed. Sent first in every turn of such an agent.
    SandboxUnavailable {
        /// The harness's reason.
        reason: String,
    },
}

/// Whether the harness can sandbox the commands an agent runs (the SDK's `SandboxStatus`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SandboxStatus {
    /// A sandbox is available.
    pub available: bool,
    /// Why not, when it is not.
    #[serde(default)]
    pub unavailable_reason: Option<String>,
}

/// Token usage as reported by the SDK. Fields are `None` when the model did not report them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Usage {
    /// Prompt (input) tokens.
    pub prompt_tokens: Option<u64>,
    /// Prompt tokens served from cache.
    pub cached_tokens: Option<u64>,
    /// Output tokens.
    pub output_tokens: Option<u64>,
    /// Reasoning tokens.
    pub thoughts_tokens: Option<u64>,
    /// Total tokens.
    pub total_tokens: Option<u64>,
    /// The service tier the model served the calls at, as it reported it (Gemini).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<String>,
}

/// The result of a finished turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChatOutcome {
    /// The full reply text.
    pub text: String,
    /// Token usage of this turn.
    pub usage: Option<Usage>,
    /// Why the turn stopped, as the SDK names it (e.g. `UNSPECIFIED`, `MAX_MODEL_CALLS_EXCEEDED`).
    pub stop_reason: String,
    /// The structured output of the turn, when the agent has a response schema.
    #[serde(default)]
    pub structured_output: Option<serde_json::Value>,
    /// Model calls of this turn the model gateway repeated after a transient failure (a
    /// dropped connection, a 429 or 5xx, a stream that broke before its first event).
    #[serde(default)]
    pub model_retries: u32,
    /// Whether the harness could sandbox the agent's commands during the turn, as it reported
    /// it (see [`ChatEvent::SandboxUnavailable`]).
    #[serde(default)]
    pub sandbox: Option<SandboxStatus>,
    /// This turn's usage by each subagent it ran, by the subagent's trajectory id (part of
    /// [`ChatOutcome::usage`], which counts every model call of the turn).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subagent_usage: BTreeMap<String, Usage>,
    /// The conversation's usage so far, this turn included: a running total the harness keeps
    /// with the conversation, so it survives hibernation and moves between replicas with it.
    #[serde(default)]
    pub conversation_usage: Option<Usage>,
    /// The estimated cost of this turn, when the model has a price
    /// ([`crate::BridgeConfig::prices`]).
    #[serde(default)]
    pub cost: Option<f64>,
    /// The estimated cost of the conversation so far (from
    /// [`ChatOutcome::conversation_usage`]), when the model has a price.
    #[serde(default)]
    pub conversation_cost: Option<f64>,
    /// A workflow turn's result ([`crate::Agent::run_workflow`]): the script, its description
    /// and its log and result.
    #[serde(default)]
    pub workflow: Option<WorkflowProgress>,
}

/// A tool call recorded in a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StepToolCall {
    /// Tool name.
    pub name: String,
    /// Arguments.
    #[serde(default)]
    pub args: serde_json::Value,
    /// Call id.
    #[serde(default)]
    pub id: Option<String>,
}

/// One step of the conversation history (the SDK's `Step`, de-duplicated: one entry per
/// trajectory and step index, holding its last update).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Step {
    /// `<trajectory_id>:<step_index>`, or the call id for a live tool-call step.
    pub id: String,
    /// Index within its trajectory.
    #[serde(default)]
    pub step_index: u32,
    /// The trajectory (the conversation id for the main agent; subagents have their own).
    #[serde(default)]
    pub trajectory_id: String,
    /// `TEXT_RESPONSE`, `TOOL_CALL`, `SYSTEM_MESSAGE`, `COMPACTION`, `FINISH`, `THINKING`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// `USER`, `MODEL` or `SYSTEM`.
    pub source: String,
    /// `DONE`, `ERROR`, `CANCELED`, …
    pub status: String,
    /// The step's text (cumulative).
    #[serde(default)]
    pub content: String,
    /// Visible reasoning, if any.
    #[serde(default)]
    pub thinking: String,
    /// Tool calls made in this step.
    #[serde(default)]
    pub tool_calls: Vec<StepToolCall>,
    /// The error of an `ERROR` step.
    #[serde(default)]
    pub error: String,
    /// HTTP status of a failed model call, when reported.
    #[serde(default)]
    pub http_code: Option<i64>,
    /// Whether this step is a complete reply to the user.
    #[serde(default)]
    pub is_complete_response: Option<bool>,
    /// Structured output of a `FINISH` step.
    #[serde(default)]
    pub structured_output: Option<serde_json::Value>,
    /// The trajectory that started this one (a subagent's parent); empty for the main one.
    #[serde(default)]
    pub parent_trajectory_id: String,
    /// How deep in subagents the step is (0: the main agent).
    #[serde(default)]
    pub depth: u32,
    /// Whom the step addresses: `TARGET_USER`, `TARGET_ENVIRONMENT`, …
    #[serde(default)]
    pub target: String,
    /// A `run_workflow` step's progress and output.
    #[serde(default)]
    pub workflow_progress: Option<WorkflowProgress>,
}

/// A turn the agent started on its own (a trigger, [`crate::Agent::notify`], a subagent or
/// background task reporting back), with its steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SelfStartedTurn {
    /// Its steps, in order.
    pub steps: Vec<Step>,
}

impl SelfStartedTurn {
    /// The agent's last reply in it: the last model text of the main trajectory.
    #[must_use]
    pub fn text(&self) -> Option<&str> {
        let main = self.steps.first().map(|s| s.trajectory_id.as_str())?;
        self.steps
            .iter()
            .rev()
            .find(|s| {
                s.trajectory_id == main
                    && s.kind == "TEXT_RESPONSE"
                    && s.source == "MODEL"
                    && !s.content.is_empty()
            })
            .map(|s| s.content.as_str())
    }
}

/// The progress of a `run_workflow` step (the SDK's `WorkflowProgress`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WorkflowProgress {
    /// The workflow script's path, when it runs from a file.
    #[serde(default)]
    pub script_path: String,
    /// The script's source, when the model wrote it inline.
    #[serde(default)]
    pub script: String,
    /// What the run is for.
    #[serde(default)]
    pub description: String,
    /// Its log and result so far.
    #[serde(default)]
    pub output: String,
}

/// A snapshot of an agent's conversation counters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ConversationState {
    /// Turns sent in this session (restarts at 0 after a resume, as in the SDK).
    pub turn_count: u32,
    /// Usage over the whole conversation (restored on resume).
    pub total_usage: Option<Usage>,
    /// Usage of the last turn.
    pub last_turn_usage: Option<Usage>,
    /// History indices of compaction step updates.
    pub compaction_indices: Vec<u32>,
    /// Text of the last complete reply.
    pub last_response: Option<String>,
    /// Whether no turn is running.
    pub is_idle: bool,
    /// Structured output of the last turn.
    pub structured_output: Option<serde_json::Value>,
}
