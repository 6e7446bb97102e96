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
use serde::Serialize;
use serde_json::Value;

use crate::protocol::hooks::HookCall;
pub use crate::protocol::hooks::{
    Answer, Answers, Compaction, Interaction, PostToolCall, PostTurn, PreToolCall, PreTurn,
    Question, QuestionOption, Session, Stop, StopDecision, ToolDecision, ToolFailure, TurnDecision,
};

type HookFn = Arc<dyn Fn(HookCall) -> BoxFuture<'static, Result<Value, String>> + Send + Sync>;

/// A user's callback as a [`HookFn`]: `extract` takes its context out of the call (`None` when
/// the call is another point's).
fn wrap<C, R, F, Fut>(f: F, extract: fn(HookCall) -> Option<C>) -> HookFn
where
    C: Send + 'static,
    R: Serialize + 'static,
    F: Fn(C) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |call: HookCall| {
        let f = Arc::clone(&f);
        async move {
            let point = call.point();
            let ctx =
                extract(call).ok_or_else(|| format!("a {point} call reached another hook"))?;
            let out = f(ctx).await;
            serde_json::to_value(out).map_err(|e| e.to_string())
        }
        .boxed()
    })
}

macro_rules! hook_points {
    ($( $(#[$doc:meta])* $name:ident => $variant:ident ($ctx:ty) -> $ret:ty; )*) => {
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
                    let extract = |call| match call {
                        HookCall::$variant(ctx) => Some(ctx),
                        _ => None,
                    };
                    self.set(stringify!($name), wrap::<$ctx, $ret, F, Fut>(f, extract));
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
    pre_turn => PreTurn(PreTurn) -> TurnDecision;
    /// After each turn.
    post_turn => PostTurn(PostTurn) -> ();
    /// Before every tool call; may deny it or change its arguments.
    pre_tool_call_decide => PreToolCallDecide(PreToolCall) -> ToolDecision;
    /// After a successful tool call.
    post_tool_call => PostToolCall(PostToolCall) -> ();
    /// When a tool fails; `Some(text)` replaces the error the model sees.
    on_tool_error => OnToolError(ToolFailure) -> Option<String>;
    /// After context compaction.
    on_compaction => OnCompaction(Compaction) -> ();
    /// When the session starts (lazily, at the first turn).
    on_session_start => OnSessionStart(Session) -> ();
    /// When the session ends (at close).
    on_session_end => OnSessionEnd(Session) -> ();
    /// Answers the `ask_question` built-in tool.
    on_interaction => OnInteraction(Interaction) -> Answers;
    /// When the turn would end; may continue it.
    stop => Stop(Stop) -> StopDecision;
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

    /// Runs the callback of the call's point.
    ///
    /// # Errors
    /// When the point has no callback.
    pub(crate) async fn run(&self, call: HookCall) -> Result<Value, String> {
        let point = call.point();
        let f = self
            .points
            .iter()
            .find(|(p, _)| *p == point)
            .map(|(_, f)| Arc::clone(f))
            .ok_or_else(|| format!("no {point} hook registered"))?;
        f(call).await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_hook_points_are_the_protocol_s() {
        assert_eq!(super::ALL_POINTS, crate::protocol::HOOK_POINTS);
    }
}
