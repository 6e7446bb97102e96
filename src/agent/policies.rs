//! Tool-call policies: allow, deny, or ask the user, with the SDK's name patterns and precedence.
//!
//! The rules are handed to the SDK, whose harness enforces them for every tool (built-in ones
//! too); `ask_user` rules call back into Rust (`policy/confirm`). The bridge also re-checks the
//! policy before it runs a Rust tool (defense in depth).
//!
//! Precedence, as the SDK applies it (list order does not matter):
//! specific deny > specific ask > specific allow > wildcard deny > wildcard ask > wildcard allow.
//! `"*"` matches every tool, `"server/*"` every tool of an MCP server, anything else one name.
//!
//! ```
//! use agy_bridge::policies::{PolicyDecision, PolicyRule, PolicySet};
//!
//! let set = PolicySet::from_iter([PolicyRule::deny_all(), PolicyRule::allow("get_weather")]);
//! assert!(matches!(set.evaluate("get_weather"), PolicyDecision::Allow));
//! assert!(matches!(set.evaluate("run_command"), PolicyDecision::Deny { .. }));
//! ```

use std::{future::Future, sync::Arc};

use futures::{FutureExt, future::BoxFuture};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::protocol::wire::{Decision, PolicySpec};

/// What an `ask_user` handler is asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfirmRequest {
    /// The agent whose tool call needs approval.
    pub agent_id: String,
    /// The tool.
    pub tool: String,
    /// Its arguments.
    pub args: Value,
    /// The rule's reason text.
    pub reason: String,
}

/// Decides `ask_user` confirmations (e.g. by asking a human). No timeout is applied; a
/// cancelled turn drops the pending future.
pub trait AskUserHandler: Send + Sync + 'static {
    /// `true` approves the call.
    fn confirm(&self, request: ConfirmRequest) -> BoxFuture<'static, bool>;
}

impl<F, Fut> AskUserHandler for F
where
    F: Fn(ConfirmRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    fn confirm(&self, request: ConfirmRequest) -> BoxFuture<'static, bool> {
        self(request).boxed()
    }
}

/// One policy rule.
#[derive(Clone)]
#[non_exhaustive]
pub enum PolicyRule {
    /// Allow matching tools.
    Allow {
        /// Tool name or pattern.
        tool: String,
    },
    /// Deny matching tools; the model sees `reason`.
    Deny {
        /// Tool name or pattern.
        tool: String,
        /// Shown to the model.
        reason: String,
    },
    /// Ask `handler` before running matching tools.
    AskUser {
        /// Tool name or pattern.
        tool: String,
        /// Passed to the handler.
        reason: String,
        /// Decides.
        handler: Arc<dyn AskUserHandler>,
    },
}

impl std::fmt::Debug for PolicyRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Allow { tool } => write!(f, "allow({tool:?})"),
            Self::Deny { tool, reason } => write!(f, "deny({tool:?}, {reason:?})"),
            Self::AskUser { tool, reason, .. } => write!(f, "ask_user({tool:?}, {reason:?})"),
        }
    }
}

impl PolicyRule {
    /// Allows `tool` (a name, `"*"`, or `"server/*"`).
    pub fn allow(tool: impl Into<String>) -> Self {
        Self::Allow { tool: tool.into() }
    }

    /// Allows every tool.
    #[must_use]
    pub fn allow_all() -> Self {
        Self::allow("*")
    }

    /// Denies `tool`.
    pub fn deny(tool: impl Into<String>) -> Self {
        Self::deny_with_reason(tool, "")
    }

    /// Denies `tool`; the model is told `reason`.
    pub fn deny_with_reason(tool: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Deny {
            tool: tool.into(),
            reason: reason.into(),
        }
    }

    /// Denies every tool.
    #[must_use]
    pub fn deny_all() -> Self {
        Self::deny("*")
    }

    /// Asks `handler` before `tool` runs.
    pub fn ask_user(tool: impl Into<String>, handler: impl AskUserHandler) -> Self {
        Self::ask_user_with_reason(tool, "", handler)
    }

    /// Asks `handler` before `tool` runs, passing `reason`.
    pub fn ask_user_with_reason(
        tool: impl Into<String>,
        reason: impl Into<String>,
        handler: impl AskUserHandler,
    ) -> Self {
        Self::AskUser {
            tool: tool.into(),
            reason: reason.into(),
            handler: Arc::new(handler),
        }
    }

    /// The rule's tool pattern.
    #[must_use]
    pub fn tool(&self) -> &str {
        match self {
            Self::Allow { tool } | Self::Deny { tool, .. } | Self::AskUser { tool, .. } => tool,
        }
    }

    /// `None` if the rule does not match `tool`, else whether it matched as a wildcard.
    fn matches(&self, tool: &str) -> Option<bool> {
        let pattern = self.tool();
        if pattern == "*" {
            return Some(true);
        }
        if let Some(server) = pattern.strip_suffix("/*") {
            return tool
                .strip_prefix(server)
                .is_some_and(|rest| rest.starts_with('/'))
                .then_some(true);
        }
        (pattern == tool).then_some(false)
    }

    const fn rank(&self) -> u8 {
        match self {
            Self::Deny { .. } => 0,
            Self::AskUser { .. } => 1,
            Self::Allow { .. } => 2,
        }
    }

    /// The rule as the worker receives it (`index` identifies it in `policy/confirm`).
    pub(crate) fn wire(&self, index: usize) -> PolicySpec {
        let (decision, reason) = match self {
            Self::Allow { .. } => (Decision::Allow, ""),
            Self::Deny { reason, .. } => (Decision::Deny, reason.as_str()),
            Self::AskUser { reason, .. } => (Decision::AskUser, reason.as_str()),
        };
        PolicySpec {
            tool: self.tool().to_owned(),
            decision,
            reason: reason.to_owned(),
            index,
        }
    }
}

/// The outcome of evaluating a [`PolicySet`] for one tool.
#[derive(Clone)]
pub enum PolicyDecision {
    /// Run it.
    Allow,
    /// Do not run it.
    Deny {
        /// Why.
        reason: String,
    },
    /// Ask the handler.
    AskUser {
        /// The rule's reason.
        reason: String,
        /// Who decides.
        handler: Arc<dyn AskUserHandler>,
    },
}

impl std::fmt::Debug for PolicyDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Allow => f.write_str("Allow"),
            Self::Deny { reason } => write!(f, "Deny({reason:?})"),
            Self::AskUser { reason, .. } => write!(f, "AskUser({reason:?})"),
        }
    }
}

/// An agent's policy rules.
#[derive(Debug, Clone, Default)]
pub struct PolicySet {
    rules: Vec<PolicyRule>,
}

impl FromIterator<PolicyRule> for PolicySet {
    fn from_iter<I: IntoIterator<Item = PolicyRule>>(iter: I) -> Self {
        Self {
            rules: iter.into_iter().collect(),
        }
    }
}

impl PolicySet {
    /// No rules.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule.
    pub fn push(&mut self, rule: PolicyRule) {
        self.rules.push(rule);
    }

    /// Whether there are no rules.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules, in the order given.
    #[must_use]
    pub fn rules(&self) -> &[PolicyRule] {
        &self.rules
    }

    /// The decision for `tool`. With no matching rule the call is allowed.
    #[must_use]
    pub fn evaluate(&self, tool: &str) -> PolicyDecision {
        let best = self
            .rules
            .iter()
            .filter_map(|r| r.matches(tool).map(|wild| (u8::from(wild), r.rank(), r)))
            .min_by_key(|(wild, rank, _)| (*wild, *rank));
        match best.map(|(_, _, r)| r) {
            None | Some(PolicyRule::Allow { .. }) => PolicyDecision::Allow,
            Some(PolicyRule::Deny {
                reason,
                tool: pattern,
            }) => PolicyDecision::Deny {
                reason: if reason.is_empty() {
                    format!("denied by policy {pattern:?}")
                } else {
                    reason.clone()
                },
            },
            Some(PolicyRule::AskUser {
                reason, handler, ..
            }) => PolicyDecision::AskUser {
                reason: reason.clone(),
                handler: Arc::clone(handler),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(d: &PolicyDecision) -> &'static str {
        match d {
            PolicyDecision::Allow => "allow",
            PolicyDecision::Deny { .. } => "deny",
            PolicyDecision::AskUser { .. } => "ask",
        }
    }

    fn ask(tool: &str) -> PolicyRule {
        PolicyRule::ask_user(tool, |_req: ConfirmRequest| async { true })
    }

    #[test]
    fn precedence_matches_the_sdk() {
        let cases: Vec<(Vec<PolicyRule>, &str, &str)> = vec![
            (vec![], "t", "allow"),
            (vec![PolicyRule::deny_all()], "t", "deny"),
            (
                vec![PolicyRule::deny_all(), PolicyRule::allow("t")],
                "t",
                "allow",
            ),
            (
                vec![PolicyRule::allow("t"), PolicyRule::deny_all()],
                "t",
                "allow",
            ),
            (
                vec![PolicyRule::allow_all(), PolicyRule::deny("t")],
                "t",
                "deny",
            ),
            (
                vec![PolicyRule::allow("t"), PolicyRule::deny("t")],
                "t",
                "deny",
            ),
            (vec![ask("*"), PolicyRule::allow("t")], "t", "allow"),
            (vec![ask("*"), PolicyRule::allow("t")], "u", "ask"),
            (vec![ask("t"), PolicyRule::allow("t")], "t", "ask"),
            (vec![ask("t"), PolicyRule::deny("t")], "t", "deny"),
            (
                vec![PolicyRule::deny("srv/*"), PolicyRule::allow_all()],
                "srv/x",
                "deny",
            ),
            (
                vec![PolicyRule::deny("srv/*"), PolicyRule::allow_all()],
                "srvx",
                "allow",
            ),
            (
                vec![PolicyRule::deny("srv/*"), PolicyRule::allow("srv/x")],
                "srv/x",
                "allow",
            ),
        ];
        for (rules, tool, want) in cases {
            let set = PolicySet::from_iter(rules.clone());
            assert_eq!(kind(&set.evaluate(tool)), want, "{rules:?} for {tool}");
        }
    }

    #[test]
    fn deny_reasons_reach_the_decision() {
        let set = PolicySet::from_iter([PolicyRule::deny_with_reason("t", "no weather!")]);
        assert!(
            matches!(set.evaluate("t"), PolicyDecision::Deny { reason } if reason == "no weather!")
        );
    }
}
