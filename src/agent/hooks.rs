//! Lifecycle hooks: one optional async callback per SDK hook point, with typed contexts and
//! results. Only the points you register are proxied by the worker, so unused points cost no
//! round trip.
//!
//! ```
//! use agy_bridge::hooks::{Hooks, ToolDecision};
//!
//! let hooks = Hooks::new()
//!     .pre_tool_call_decide(|call| async move {
//!         if call.tool == "delete_everything" {
//!             ToolDecision::Deny("not today".into())
//!         } else {
//!             ToolDecision::Allow
//!         }
//!     })
//!     .post_turn(|turn| async move { println!("replied: {}", turn.response) });
//! assert_eq!(hooks.points(), ["pre_tool_call_decide", "post_turn"]);
//! ```

use std::{future::Future, sync::Arc};

use futures::{FutureExt, future::BoxFuture};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

/// `pre_turn`: before each turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreTurn {
    /// The agent.
    pub agent_id: String,
    /// The prompt text.
    pub prompt: String,
}

/// `pre_turn`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostTurn {
    /// The agent.
    pub agent_id: String,
    /// The reply text.
    pub response: String,
}

/// `pre_tool_call_decide`: before every tool call (Rust and built-in tools).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

#[derive(Serialize)]
struct WireHookResult {
    allow: bool,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    modified_args: Option<Value>,
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compaction {
    /// The agent.
    pub agent_id: String,
    /// The summary that replaced older context.
    pub summary: String,
}

/// `on_session_start` / `on_session_end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The agent.
    pub agent_id: String,
}

/// One option of an `ask_question` question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestionOption {
    /// Option id, e.g. `"1"`.
    pub id: String,
    /// Option text.
    pub text: String,
}

/// One question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interaction {
    /// The agent.
    pub agent_id: String,
    /// The questions.
    pub questions: Vec<Question>,
}

/// One answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answers {
    /// One per question.
    pub responses: Vec<Answer>,
    /// Cancel the interaction.
    #[serde(default)]
    pub cancelled: bool,
}

/// `stop`: the turn is about to end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

impl Serialize for StopDecision {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (decision, reason) = match self {
            Self::AllowStop => ("ALLOW_STOP", ""),
            Self::Continue(reason) => ("CONTINUE", reason.as_str()),
        };
        serde_json::json!({"decision": decision, "reason": reason}).serialize(s)
    }
}

type HookFn = Arc<dyn Fn(Value) -> BoxFuture<'static, Result<Value, String>> + Send + Sync>;

fn wrap<C, R, F, Fut>(f: F) -> HookFn
where
    C: DeserializeOwned + Send + 'static,
    R: Serialize + 'static,
    F: Fn(C) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |data: Value| {
        let f = Arc::clone(&f);
        async move {
            let ctx: C = serde_json::from_value(data).map_err(|e| format!("bad hook data: {e}"))?;
            let out = f(ctx).await;
            serde_json::to_value(out).map_err(|e| e.to_string())
        }
        .boxed()
    })
}

macro_rules! hook_points {
    ($( $(#[$doc:meta])* $name:ident ($ctx:ty) -> $ret:ty; )*) => {
        /// An agent's hooks: at most one callback per hook point.
        #[derive(Clone, Default)]
        pub struct Hooks {
            points: Vec<(&'static str, HookFn)>,
        }

        impl Hooks {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $name<F, Fut>(mut self, f: F) -> Self
                where
                    F: Fn($ctx) -> Fut + Send + Sync + 'static,
                    Fut: Future<Output = $ret> + Send + 'static,
                {
                    self.set(stringify!($name), wrap::<$ctx, $ret, F, Fut>(f));
                    self
                }
            )*
        }

        /// Every hook point name the SDK has.
        pub const ALL_POINTS: &[&str] = &[$(stringify!($name)),*];
    };
}

hook_points! {
    /// Before each turn; may refuse it.
    pre_turn(PreTurn) -> TurnDecision;
    /// After each turn.
    post_turn(PostTurn) -> ();
    /// Before every tool call; may deny it or change its arguments.
    pre_tool_call_decide(PreToolCall) -> ToolDecision;
    /// After a successful tool call.
    post_tool_call(PostToolCall) -> ();
    /// When a tool fails; `Some(text)` replaces the error the model sees.
    on_tool_error(ToolFailure) -> Option<String>;
    /// After context compaction.
    on_compaction(Compaction) -> ();
    /// When the session starts (lazily, at the first turn).
    on_session_start(Session) -> ();
    /// When the session ends (at close).
    on_session_end(Session) -> ();
    /// Answers the `ask_question` built-in tool.
    on_interaction(Interaction) -> Answers;
    /// When the turn would end; may continue it.
    stop(Stop) -> StopDecision;
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks")
            .field("points", &self.points())
            .finish()
    }
}

impl Hooks {
    /// No hooks.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn set(&mut self, point: &'static str, f: HookFn) {
        self.points.retain(|(p, _)| *p != point);
        self.points.push((point, f));
    }

    /// The registered points, in registration order.
    #[must_use]
    pub fn points(&self) -> Vec<&'static str> {
        self.points.iter().map(|(p, _)| *p).collect()
    }

    /// Whether `point` has a callback.
    #[must_use]
    pub fn has(&self, point: &str) -> bool {
        self.points.iter().any(|(p, _)| *p == point)
    }

    /// Runs the callback of `point` on JSON data.
    ///
    /// # Errors
    /// When the point is not registered or the data does not fit its context type.
    pub(crate) async fn run(&self, point: &str, data: Value) -> Result<Value, String> {
        let f = self
            .points
            .iter()
            .find(|(p, _)| *p == point)
            .map(|(_, f)| Arc::clone(f))
            .ok_or_else(|| format!("no {point} hook registered"))?;
        f(data).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_hook_points_are_the_protocol_s() {
        assert_eq!(super::ALL_POINTS, crate::protocol::HOOK_POINTS);
    }
}
