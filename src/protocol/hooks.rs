//! The payloads of `hook/run`: what each hook point hands a Rust callback, and what the callback
//! answers. The public ones are re-exported by [`crate::agent::hooks`], the API users register
//! callbacks with; [`HookCall`] and [`HookAnswer`] are the method's params and result in the
//! protocol schema.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `pre_turn`: before each turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PreTurn {
    /// The agent.
    pub agent_id: String,
    /// The prompt text.
    pub prompt: String,
}

/// `pre_turn`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TurnDecision {
    /// `false` fails the turn with `message` (the agent stays usable).
    pub allow: bool,
    /// Why.
    #[serde(default)]
    pub message: String,
}

impl TurnDecision {
    /// Let the turn run.
    #[must_use]
    pub const fn allow() -> Self {
        Self {
            allow: true,
            message: String::new(),
        }
    }

    /// Refuse the turn.
    pub fn deny(message: impl Into<String>) -> Self {
        Self {
            allow: false,
            message: message.into(),
        }
    }
}

/// `post_turn`: after each turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PostTurn {
    /// The agent.
    pub agent_id: String,
    /// The reply text.
    pub response: String,
}

/// `pre_tool_call_decide`: before every tool call (Rust and built-in tools).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PreToolCall {
    /// The agent.
    pub agent_id: String,
    /// The harness's call id.
    pub call_id: Option<String>,
    /// Tool name as the model sees it.
    pub tool: String,
    /// Arguments as the model sent them.
    pub args: Value,
}

/// `pre_tool_call_decide`'s answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolDecision {
    /// Run the call.
    Allow,
    /// Block it; the model sees the reason.
    Deny(String),
    /// Run it with these arguments merged over the model's (shallow merge).
    Modify(Value),
}

/// A decide hook's answer on the wire (`pre_turn`, `pre_tool_call_decide`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct WireHookResult {
    /// Whether the turn or call goes ahead.
    pub allow: bool,
    /// Why not (shown to the model or the caller).
    #[serde(default)]
    pub message: String,
    /// Arguments merged over the model's (`pre_tool_call_decide`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_args: Option<Value>,
}

impl Serialize for ToolDecision {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let wire = match self {
            Self::Allow => WireHookResult {
                allow: true,
                message: String::new(),
                modified_args: None,
            },
            Self::Deny(reason) => WireHookResult {
                allow: false,
                message: reason.clone(),
                modified_args: None,
            },
            Self::Modify(args) => WireHookResult {
                allow: true,
                message: String::new(),
                modified_args: Some(args.clone()),
            },
        };
        wire.serialize(s)
    }
}

/// `post_tool_call`: after a successful call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PostToolCall {
    /// The agent.
    pub agent_id: String,
    /// The harness's call id.
    pub call_id: Option<String>,
    /// Tool name.
    pub tool: String,
    /// The result as the model received it.
    pub result: Value,
}

/// `on_tool_error`: a tool failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ToolFailure {
    /// The agent.
    pub agent_id: String,
    /// The harness's call id.
    pub call_id: Option<String>,
    /// Tool name.
    pub tool: Option<String>,
    /// The error message.
    pub message: String,
}

/// `on_compaction`: the context was compacted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Compaction {
    /// The agent.
    pub agent_id: String,
    /// The summary that replaced older context.
    pub summary: String,
}

/// `on_session_start` / `on_session_end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Session {
    /// The agent.
    pub agent_id: String,
}

/// One option of an `ask_question` question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QuestionOption {
    /// Option id, e.g. `"1"`.
    pub id: String,
    /// Option text.
    pub text: String,
}

/// One question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Question {
    /// The question.
    pub question: String,
    /// Its options.
    pub options: Vec<QuestionOption>,
    /// Whether several options may be chosen.
    #[serde(default)]
    pub is_multi_select: bool,
}

/// `on_interaction`: the model used the `ask_question` built-in tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Interaction {
    /// The agent.
    pub agent_id: String,
    /// The questions.
    pub questions: Vec<Question>,
}

/// One answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Answer {
    /// Chosen option ids.
    pub selected_option_ids: Option<Vec<String>>,
    /// Free text.
    #[serde(default)]
    pub freeform_response: String,
    /// Skip this question.
    #[serde(default)]
    pub skipped: bool,
}

/// `on_interaction`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Answers {
    /// One per question.
    pub responses: Vec<Answer>,
    /// Cancel the interaction.
    #[serde(default)]
    pub cancelled: bool,
}

/// `stop`: the turn is about to end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Stop {
    /// The agent.
    pub agent_id: String,
    /// The latest reply text.
    pub response_text: String,
    /// The trajectory.
    pub trajectory_id: String,
    /// How often a stop hook has continued this turn already.
    pub continuation_count: u32,
    /// The SDK's stop reason.
    pub stop_reason: String,
    /// The error, if the turn stopped because of one.
    pub error_message: Option<String>,
}

/// `stop`'s answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopDecision {
    /// Let the turn end.
    AllowStop,
    /// Keep going: `reason` is injected as a system message.
    Continue(String),
}

/// `stop`'s decision on the wire (the SDK's `StopDecision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum WireStopDecision {
    /// Let the turn end.
    AllowStop,
    /// Keep going.
    Continue,
}

/// `stop`'s answer on the wire.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct WireStopResult {
    /// End or continue.
    pub decision: WireStopDecision,
    /// The system message a continued turn gets.
    #[serde(default)]
    pub reason: String,
}

impl Serialize for StopDecision {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (decision, reason) = match self {
            Self::AllowStop => (WireStopDecision::AllowStop, String::new()),
            Self::Continue(reason) => (WireStopDecision::Continue, reason.clone()),
        };
        WireStopResult { decision, reason }.serialize(s)
    }
}

impl JsonSchema for StopDecision {
    fn schema_name() -> Cow<'static, str> {
        "StopDecision".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        WireStopResult::json_schema(generator)
    }
}

impl JsonSchema for ToolDecision {
    fn schema_name() -> Cow<'static, str> {
        "ToolDecision".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        WireHookResult::json_schema(generator)
    }
}

/// One hook point's call: the `point` and its `data` (adjacently tagged, as the worker sends
/// them in `hook/run`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "point", content = "data", rename_all = "snake_case")]
pub(crate) enum HookCall {
    /// Before each turn.
    PreTurn(PreTurn),
    /// After each turn.
    PostTurn(PostTurn),
    /// Before every tool call.
    PreToolCallDecide(PreToolCall),
    /// After a successful tool call.
    PostToolCall(PostToolCall),
    /// A tool failed.
    OnToolError(ToolFailure),
    /// The context was compacted.
    OnCompaction(Compaction),
    /// The session started.
    OnSessionStart(Session),
    /// The session ended.
    OnSessionEnd(Session),
    /// The model asked questions.
    OnInteraction(Interaction),
    /// The turn would end.
    Stop(Stop),
}

impl HookCall {
    /// The hook point's name (one of [`crate::protocol::HOOK_POINTS`]).
    pub(crate) const fn point(&self) -> &'static str {
        match self {
            Self::PreTurn(_) => "pre_turn",
            Self::PostTurn(_) => "post_turn",
            Self::PreToolCallDecide(_) => "pre_tool_call_decide",
            Self::PostToolCall(_) => "post_tool_call",
            Self::OnToolError(_) => "on_tool_error",
            Self::OnCompaction(_) => "on_compaction",
            Self::OnSessionStart(_) => "on_session_start",
            Self::OnSessionEnd(_) => "on_session_end",
            Self::OnInteraction(_) => "on_interaction",
            Self::Stop(_) => "stop",
        }
    }

    /// Names the agent in the payload as the Rust side knows it (whatever the worker wrote).
    pub(crate) fn set_agent_id(&mut self, agent_id: &str) {
        let slot = match self {
            Self::PreTurn(c) => &mut c.agent_id,
            Self::PostTurn(c) => &mut c.agent_id,
            Self::PreToolCallDecide(c) => &mut c.agent_id,
            Self::PostToolCall(c) => &mut c.agent_id,
            Self::OnToolError(c) => &mut c.agent_id,
            Self::OnCompaction(c) => &mut c.agent_id,
            Self::OnSessionStart(c) | Self::OnSessionEnd(c) => &mut c.agent_id,
            Self::OnInteraction(c) => &mut c.agent_id,
            Self::Stop(c) => &mut c.agent_id,
        };
        agent_id.clone_into(slot);
    }
}

/// What `hook/run` answers, by point: a decision (`pre_turn`, `pre_tool_call_decide`), a stop
/// decision (`stop`), answers (`on_interaction`), replacement text or nothing
/// (`on_tool_error`), and nothing for the points that only observe.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
#[cfg_attr(not(test), allow(dead_code))] // the method's result in the schema; built as JSON
pub(crate) enum HookAnswer {
    /// `pre_turn`, `pre_tool_call_decide`.
    Decision(WireHookResult),
    /// `stop`.
    Stop(WireStopResult),
    /// `on_interaction`.
    Answers(Answers),
    /// `on_tool_error`'s replacement text, or nothing.
    Text(Option<String>),
}
