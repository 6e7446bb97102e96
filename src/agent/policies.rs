//! Tool-call policies: allow, deny, or ask the user, with the SDK's name patterns and precedence.
//!
//! The rules are handed to the SDK, whose harness enforces them for every tool (built-in ones
//! too); `ask_user` rules call back into Rust (`policy/confirm`). The bridge also re-checks the
//! policy before it runs a Rust tool (defense in depth).
//!
//! Precedence, as the SDK applies it (list order does not matter):
//! specific deny > specific ask > specific allow > wildcard deny > wildcard ask > wildcard allow.
//! `"*"` matches every tool, `"server/*"` every tool of an MCP server, `"server/tool"` one MCP
//! tool, anything else one name.
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

/// One policy rule. The SDK's presets are here too, by their SDK names:
/// [`PolicyRule::safe_defaults`], [`PolicyRule::confirm_run_command`],
/// [`PolicyRule::workspace_only`] and [`PolicyRule::auto`].
#[derive(Clone)]
#[non_exhaustive]
pub enum PolicyRule {
    /// Allow matching tools.
    Allow {
        /// Tool name or pattern.
        tool: String,
        /// The rule's name in the SDK (its presets name theirs; the harness reads some).
        name: Option<String>,
        /// The rule applies only to calls whose arguments this holds for (the SDK's `when=`).
        when: Option<ArgPredicate>,
    },
    /// Deny matching tools; the model sees `reason`.
    Deny {
        /// Tool name or pattern.
        tool: String,
        /// Shown to the model.
        reason: String,
        /// The rule's name in the SDK.
        name: Option<String>,
        /// The rule applies only to calls whose arguments this holds for.
        when: Option<ArgPredicate>,
    },
    /// Ask `handler` before running matching tools.
    AskUser {
        /// Tool name or pattern.
        tool: String,
        /// Passed to the handler.
        reason: String,
        /// Decides.
        handler: Arc<dyn AskUserHandler>,
        /// The rule's name in the SDK.
        name: Option<String>,
        /// The rule applies only to calls whose arguments this holds for.
        when: Option<ArgPredicate>,
    },
    /// The SDK's auto policy mode (`policy.auto()`): the harness has a safety model assess
    /// calls of tools with execution or network risk (commands, URL fetches) and blocks the
    /// flagged ones, or asks `handler` about them. Needs a Gemini model for the assessment.
    Auto {
        /// Asked about a flagged call (none: flagged calls are denied).
        handler: Option<Arc<dyn AskUserHandler>>,
        /// The Gemini model that assesses (default: the runtime's).
        model: Option<String>,
    },
}

/// A predicate on a tool call's arguments (JSON, as the model sent them), evaluated in Rust.
#[derive(Clone)]
pub struct ArgPredicate(Arc<dyn Fn(&Value) -> bool + Send + Sync>);

impl std::fmt::Debug for ArgPredicate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArgPredicate")
    }
}

/// The SDK's name for the rules `workspace_only` makes (the harness enforces them by path).
const WORKSPACE_ONLY: &str = "workspace_only";

/// The SDK's read-only built-ins and the deprecated ones (`BuiltinTools.read_only()` and
/// `deprecated()`), which `safe_defaults` allows.
const SAFE_TOOLS: &[&str] = &[
    "view_file",
    "read_url_content",
    "schedule",
    "finish",
    "list_dir",
    "search_dir",
    "find_file",
];

/// The SDK's file tools (`BuiltinTools.file_tools()`), which `workspace_only` scopes.
const FILE_TOOLS: &[&str] = &["view_file", "create_file", "edit_file"];

impl std::fmt::Debug for PolicyRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Allow { tool, .. } => write!(f, "allow({tool:?})"),
            Self::Deny { tool, reason, .. } => write!(f, "deny({tool:?}, {reason:?})"),
            Self::AskUser { tool, reason, .. } => write!(f, "ask_user({tool:?}, {reason:?})"),
            Self::Auto { model, handler } => {
                write!(f, "auto(model: {model:?}, handler: {})", handler.is_some())
            }
        }
    }
}

impl PolicyRule {
    /// Allows `tool`: a name, `"*"`, `"server/*"` for every tool of an MCP server, or
    /// `"server/tool"` for one (the SDK's `allow(server, mcp_tools=[…])` is one rule per tool).
    pub fn allow(tool: impl Into<String>) -> Self {
        Self::Allow {
            tool: tool.into(),
            name: None,
            when: None,
        }
    }

    /// Allows every tool (the SDK's `allow_all()`).
    #[must_use]
    pub fn allow_all() -> Self {
        Self::Allow {
            tool: "*".into(),
            name: Some("allow_all".into()),
            when: None,
        }
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
            name: None,
            when: None,
        }
    }

    /// Denies every tool (the SDK's `deny_all()`).
    #[must_use]
    pub fn deny_all() -> Self {
        Self::Deny {
            tool: "*".into(),
            reason: String::new(),
            name: Some("deny_all".into()),
            when: None,
        }
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
            name: None,
            when: None,
        }
    }

    /// Makes the rule apply only to calls whose arguments `predicate` holds for (the SDK's
    /// `when=`); other calls are decided by the other rules. The predicate runs in Rust, for
    /// built-in and MCP tools too (the harness asks over `policy/when`). A predicate that
    /// panics counts as holding for a deny or ask rule and as not holding for an allow rule.
    /// No effect on auto policy mode.
    ///
    /// ```
    /// use agy_bridge::PolicyRule;
    ///
    /// let git_only = PolicyRule::allow("run_command").when(|args| {
    ///     args["CommandLine"].as_str().is_some_and(|c| c.starts_with("git "))
    /// });
    /// ```
    #[must_use]
    pub fn when(mut self, predicate: impl Fn(&Value) -> bool + Send + Sync + 'static) -> Self {
        let predicate = Some(ArgPredicate(Arc::new(predicate)));
        match &mut self {
            Self::Allow { when, .. } | Self::Deny { when, .. } | Self::AskUser { when, .. } => {
                *when = predicate;
            }
            Self::Auto { .. } => {}
        }
        self
    }

    /// Whether the rule's predicate holds for `args` (no predicate: it does); a panicking
    /// predicate decides closed (see [`PolicyRule::when`]) and is reported as `Err`.
    pub(crate) fn predicate_holds(&self, args: &Value) -> Result<bool, String> {
        let when = match self {
            Self::Allow { when, .. } | Self::Deny { when, .. } | Self::AskUser { when, .. } => when,
            Self::Auto { .. } => &None,
        };
        let Some(ArgPredicate(predicate)) = when else {
            return Ok(true);
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| predicate(args)))
            .map_err(|panic| crate::rpc::panic_message(panic.as_ref()))
    }

    /// The predicate's verdict, failing closed when it panicked.
    fn holds_for(&self, args: &Value) -> bool {
        self.predicate_holds(args)
            .unwrap_or(!matches!(self, Self::Allow { .. }))
    }

    /// The SDK's `safe_defaults(handler)`: the read-only built-ins run, every other tool call
    /// (Rust tools, MCP tools, writes, commands) is put to `handler` first.
    pub fn safe_defaults(handler: impl AskUserHandler) -> Vec<Self> {
        SAFE_TOOLS
            .iter()
            .map(|tool| Self::allow(*tool))
            .chain([Self::ask_user("*", handler)])
            .collect()
    }

    /// The SDK's `confirm_run_command()` (its default for local agents): every tool runs
    /// except `run_command`, which is denied with a message saying how to enable it.
    #[must_use]
    pub fn confirm_run_command() -> Vec<Self> {
        let name = Some("confirm_run_command".to_owned());
        vec![
            Self::Deny {
                tool: "run_command".into(),
                reason: String::new(),
                name: name.clone(),
                when: None,
            },
            Self::Allow {
                tool: "*".into(),
                name,
                when: None,
            },
        ]
    }

    /// The SDK's `confirm_run_command(handler)`: every tool runs; `run_command` only when
    /// `handler` approves.
    pub fn confirm_run_command_with(handler: impl AskUserHandler) -> Vec<Self> {
        let name = Some("confirm_run_command".to_owned());
        vec![
            Self::AskUser {
                tool: "run_command".into(),
                reason: String::new(),
                handler: Arc::new(handler),
                name: name.clone(),
                when: None,
            },
            Self::Allow {
                tool: "*".into(),
                name,
                when: None,
            },
        ]
    }

    /// The SDK's `workspace_only(...)`: the file tools (`view_file`, `create_file`,
    /// `edit_file`) may touch only paths inside the agent's workspaces
    /// ([`crate::AgentConfig::workspace`]); the harness enforces it by path. Other tools are
    /// unaffected (combine it with other rules for them).
    #[must_use]
    pub fn workspace_only() -> Vec<Self> {
        FILE_TOOLS
            .iter()
            .map(|tool| Self::Deny {
                tool: (*tool).into(),
                reason: String::new(),
                name: Some(WORKSPACE_ONLY.into()),
                when: None,
            })
            .collect()
    }

    /// The SDK's `auto()`: auto policy mode, flagged calls denied. See [`PolicyRule::Auto`].
    #[must_use]
    pub const fn auto() -> Self {
        Self::Auto {
            handler: None,
            model: None,
        }
    }

    /// The SDK's `auto(handler=…)`: auto policy mode, flagged calls put to `handler`.
    pub fn auto_with(handler: impl AskUserHandler) -> Self {
        Self::Auto {
            handler: Some(Arc::new(handler)),
            model: None,
        }
    }

    /// The tool pattern of the rule (`"*"` for auto policy mode).
    #[must_use]
    pub fn tool(&self) -> &str {
        match self {
            Self::Allow { tool, .. } | Self::Deny { tool, .. } | Self::AskUser { tool, .. } => tool,
            Self::Auto { .. } => "*",
        }
    }

    /// The handler this rule asks, if it asks one.
    pub(crate) fn handler(&self) -> Option<&Arc<dyn AskUserHandler>> {
        match self {
            Self::AskUser { handler, .. } => Some(handler),
            Self::Auto { handler, .. } => handler.as_ref(),
            _ => None,
        }
    }

    /// `None` if the rule does not match `tool` as the bridge re-checks a Rust tool call, else
    /// whether it matched as a wildcard. Auto policy mode and workspace rules are the
    /// harness's to enforce (by assessment, by path), so they never match here.
    fn matches(&self, tool: &str, args: &Value) -> Option<bool> {
        if !self.holds_for(args) {
            return None;
        }
        match self {
            Self::Auto { .. } => return None,
            Self::Deny {
                name: Some(name), ..
            } if name == WORKSPACE_ONLY => return None,
            _ => {}
        }
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
            Self::AskUser { .. } | Self::Auto { .. } => 1,
            Self::Allow { .. } => 2,
        }
    }

    /// The rule as the worker receives it (`index` identifies it in `policy/confirm`).
    pub(crate) fn wire(&self, index: usize) -> PolicySpec {
        let (decision, reason, name, model) = match self {
            Self::Allow { name, .. } => (Decision::Allow, "", name, None),
            Self::Deny { reason, name, .. } => (Decision::Deny, reason.as_str(), name, None),
            Self::AskUser { reason, name, .. } => (Decision::AskUser, reason.as_str(), name, None),
            Self::Auto { model, handler } => (
                if handler.is_some() {
                    Decision::AutoAsk
                } else {
                    Decision::Auto
                },
                "",
                &None,
                model.clone(),
            ),
        };
        let when = matches!(
            self,
            Self::Allow { when: Some(_), .. }
                | Self::Deny { when: Some(_), .. }
                | Self::AskUser { when: Some(_), .. }
        );
        PolicySpec {
            tool: self.tool().to_owned(),
            decision,
            reason: reason.to_owned(),
            index,
            name: name.clone(),
            model,
            when,
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

    /// The decision for `tool`, whatever its arguments (rules with a predicate see `null`).
    /// With no matching rule the call is allowed.
    #[must_use]
    pub fn evaluate(&self, tool: &str) -> PolicyDecision {
        self.evaluate_call(tool, &Value::Null)
    }

    /// The decision for a call of `tool` with `args` (for the rules' predicates). With no
    /// matching rule the call is allowed.
    #[must_use]
    pub fn evaluate_call(&self, tool: &str, args: &Value) -> PolicyDecision {
        let best = self
            .rules
            .iter()
            .filter_map(|r| {
                r.matches(tool, args)
                    .map(|wild| (u8::from(wild), r.rank(), r))
            })
            .min_by_key(|(wild, rank, _)| (*wild, *rank));
        match best.map(|(_, _, r)| r) {
            None | Some(PolicyRule::Allow { .. } | PolicyRule::Auto { .. }) => {
                PolicyDecision::Allow
            }
            Some(PolicyRule::Deny {
                reason,
                tool: pattern,
                ..
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

    #[test]
    fn predicates_narrow_a_rule_and_a_panicking_one_decides_closed() {
        let git = |args: &Value| {
            args["CommandLine"]
                .as_str()
                .is_some_and(|c| c.starts_with("git "))
        };
        let set = PolicySet::from_iter([
            PolicyRule::deny_all(),
            PolicyRule::allow("run_command").when(git),
        ]);
        let call = |c: &str| serde_json::json!({ "CommandLine": c });
        assert_eq!(
            kind(&set.evaluate_call("run_command", &call("git log"))),
            "allow"
        );
        assert_eq!(
            kind(&set.evaluate_call("run_command", &call("rm -rf /"))),
            "deny"
        );

        let boom = |_: &Value| -> bool { panic!("predicate bug") };
        let allow =
            PolicySet::from_iter([PolicyRule::deny_all(), PolicyRule::allow("t").when(boom)]);
        assert_eq!(kind(&allow.evaluate_call("t", &Value::Null)), "deny");
        let deny =
            PolicySet::from_iter([PolicyRule::allow_all(), PolicyRule::deny("t").when(boom)]);
        assert_eq!(kind(&deny.evaluate_call("t", &Value::Null)), "deny");
        assert!(
            PolicyRule::deny("t")
                .when(boom)
                .predicate_holds(&Value::Null)
                .is_err()
        );
        assert!(PolicyRule::allow("t").wire(0).when.then_some(()).is_none());
        assert!(PolicyRule::allow("t").when(git).wire(0).when);
    }
}
