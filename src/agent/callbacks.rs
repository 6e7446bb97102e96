//! An agent's Rust side of the reverse calls: its tools, hooks and policies, answering
//! `tool/call`, `hook/run` and `policy/confirm`. The worker holds only proxies.
//!
//! Application code runs off the runtime's worker threads ([`super::user_code`]). A hook that
//! fails (panics, or returns what its point cannot take) is reported as a
//! [`ChatEvent::HookFailed`] on the running turn and a `tracing` error, and a hook that decides
//! something fails closed: a failed `pre_tool_call_decide` blocks the call, a failed `pre_turn`
//! refuses the turn, a failed `stop` lets the turn end, a failed `on_interaction` cancels the
//! questions.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::{FutureExt, future::BoxFuture};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tracing::Instrument;

use super::{
    hooks::Hooks,
    policies::{AskUserHandler, ConfirmRequest, PolicyDecision, PolicyRule, PolicySet},
    tools::{ToolContext, ToolError, ToolRegistry, ToolState},
    user_code::{self, Interrupted},
};
use crate::{
    protocol::{
        codes,
        wire::{ConfirmParams, HookParams, ToolCallParams, WhenParams},
    },
    rpc::{RpcError, codes as rpc_codes},
    types::ChatEvent,
    worker::router::{ReverseRequests, TurnEvents},
};

/// Everything Rust keeps for one agent.
pub(crate) struct AgentState {
    pub(crate) agent_id: String,
    conversation_id: String,
    tools: ToolRegistry,
    hooks: Hooks,
    policies: PolicySet,
    tool_state: ToolState,
    /// How long an `ask_user` handler may take before the call is denied (`None`: no limit).
    confirmation_timeout: Option<Duration>,
    /// `ask_user` approvals granted through `policy/confirm`, not yet used by a tool call.
    approvals: Mutex<HashMap<String, u32>>,
    /// Turns the agent started on its own, for [`crate::Agent::self_started_turns`].
    pub(crate) self_started: tokio::sync::broadcast::Sender<crate::types::SelfStartedTurn>,
}

impl AgentState {
    pub(crate) fn new(
        agent_id: String,
        conversation_id: String,
        tools: ToolRegistry,
        hooks: Hooks,
        policies: PolicySet,
        confirmation_timeout: Option<Duration>,
    ) -> Self {
        Self {
            agent_id,
            conversation_id,
            tools,
            hooks,
            policies,
            tool_state: ToolState::default(),
            confirmation_timeout,
            approvals: Mutex::new(HashMap::new()),
            self_started: tokio::sync::broadcast::channel(SELF_STARTED_BACKLOG).0,
        }
    }

    /// `tool/call`: runs the tool after re-checking the policy, and tells the turn the result.
    pub(crate) async fn call_tool(
        self: Arc<Self>,
        params: ToolCallParams,
        events: &dyn TurnEvents,
    ) -> Result<Value, RpcError> {
        let name = params.tool.clone();
        let started = std::time::Instant::now();
        // A child of the worker's span for this call when its context came along.
        let span = tracing::info_span!(
            "tool",
            agent = %self.agent_id,
            otel.name = %format_args!("execute_tool {name}"),
            otel.status_code = tracing::field::Empty,
            gen_ai.operation.name = "execute_tool",
            gen_ai.tool.name = %name,
            gen_ai.tool.type = "function",
            error.type = tracing::field::Empty,
        );
        if let Some(context) = &params.trace {
            crate::telemetry::set_remote_parent(&span, context);
        }
        let result = self.run_tool(params).instrument(span.clone()).await;
        let (result, outcome) = match result {
            Ok(value) => (Ok(value), "ok"),
            Err((error, outcome)) => {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", outcome);
                (Err(error), outcome)
            }
        };
        crate::metrics::tool_call(&name, outcome, started.elapsed());
        let event = match &result {
            Ok(value) => ChatEvent::ToolResult {
                name,
                result: Some(value.clone()),
                error: None,
            },
            Err(e) => ChatEvent::ToolResult {
                name,
                result: None,
                error: Some(e.message.clone()),
            },
        };
        events.send_to_agent(&self.agent_id, event);
        result
    }

    /// Runs the call; a failure comes with its outcome label (`denied`, `timeout`,
    /// `panicked`, `invalid_arguments`, `unknown_tool` or `failed`).
    async fn run_tool(&self, params: ToolCallParams) -> Result<Value, (RpcError, &'static str)> {
        if !self.tools.contains(&params.tool) {
            tracing::warn!(agent = %self.agent_id, tool = %params.tool, "tool/call for a tool this agent does not have");
            return Err((
                RpcError::new(
                    codes::UNKNOWN_TOOL,
                    format!("agent {} has no tool {}", self.agent_id, params.tool),
                ),
                "unknown_tool",
            ));
        }
        // Defense in depth: the harness enforces the policy already; check again here.
        match self.policies.evaluate_call(&params.tool, &params.args) {
            PolicyDecision::Allow => {}
            PolicyDecision::Deny { reason } => {
                crate::metrics::policy_decision("denied", "rule");
                return Err((
                    RpcError::new(codes::TOOL_FAILED, format!("blocked by policy: {reason}")),
                    "denied",
                ));
            }
            PolicyDecision::AskUser { reason, handler } => {
                if !self.take_approval(&params.tool) {
                    let request = ConfirmRequest {
                        agent_id: self.agent_id.clone(),
                        tool: params.tool.clone(),
                        args: params.args.clone(),
                        reason,
                    };
                    if !self.ask(handler, request).await {
                        return Err((
                            RpcError::new(codes::TOOL_FAILED, "denied by the user"),
                            "denied",
                        ));
                    }
                }
            }
        }
        let ctx = ToolContext::new(
            &self.agent_id,
            &self.conversation_id,
            self.tool_state.clone(),
        );
        self.tools
            .dispatch(&params.tool, params.args, ctx)
            .await
            .map_err(|e| {
                let outcome = match &e {
                    ToolError::TimedOut { .. } => "timeout",
                    ToolError::Panicked { .. } => "panicked",
                    ToolError::InvalidArguments { .. } => "invalid_arguments",
                    _ => "failed",
                };
                (RpcError::new(codes::TOOL_FAILED, e.to_string()), outcome)
            })
    }

    /// `policy/confirm`: asks the handler of an `ask_user` rule.
    pub(crate) async fn confirm(self: Arc<Self>, params: ConfirmParams) -> Result<Value, RpcError> {
        let rule = self.policies.rules().get(params.index);
        let reason = match rule {
            Some(PolicyRule::AskUser { reason, .. }) => reason.clone(),
            _ => String::new(),
        };
        let Some(handler) = rule.and_then(PolicyRule::handler) else {
            return Err(RpcError::new(
                rpc_codes::INVALID_PARAMS,
                format!(
                    "rule {} of agent {} is not an ask_user rule",
                    params.index, self.agent_id
                ),
            ));
        };
        let request = ConfirmRequest {
            agent_id: self.agent_id.clone(),
            tool: params.tool.clone(),
            args: params.args,
            reason: if params.reason.is_empty() {
                reason
            } else {
                params.reason
            },
        };
        let approved = self.ask(Arc::clone(handler), request).await;
        if approved {
            *self.approvals.lock().entry(params.tool).or_default() += 1;
        }
        Ok(json!(approved))
    }

    /// Asks an `ask_user` handler; a handler that fails, or does not answer within the
    /// confirmation timeout, denies.
    async fn ask(&self, handler: Arc<dyn AskUserHandler>, request: ConfirmRequest) -> bool {
        let approved = self.answer(handler, request).await;
        crate::metrics::policy_decision(if approved { "approved" } else { "denied" }, "user");
        approved
    }

    /// The handler's answer; `false` when it fails or is late.
    async fn answer(&self, handler: Arc<dyn AskUserHandler>, request: ConfirmRequest) -> bool {
        let tool = request.tool.clone();
        let asking = user_code::run(handler.confirm(request));
        let answer = match self.confirmation_timeout {
            Some(limit) => match tokio::time::timeout(limit, asking).await {
                Ok(answer) => answer,
                Err(_) => {
                    tracing::warn!(agent = %self.agent_id, %tool, ?limit, "no answer to the confirmation in time; denied");
                    return false;
                }
            },
            None => asking.await,
        };
        match answer {
            Ok(approved) => approved,
            Err(Interrupted::Panicked(message)) => {
                tracing::error!(agent = %self.agent_id, %tool, "the ask_user handler panicked; denied: {message}");
                false
            }
            Err(Interrupted::Cancelled) => false,
        }
    }

    fn take_approval(&self, tool: &str) -> bool {
        let mut approvals = self.approvals.lock();
        match approvals.get_mut(tool) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// `hook/run`: runs the hook; a failure is reported and decided closed (see the module
    /// docs).
    pub(crate) async fn run_hook(
        self: Arc<Self>,
        params: HookParams,
        events: &dyn TurnEvents,
    ) -> Result<Value, RpcError> {
        let HookParams { mut call, .. } = params;
        call.set_agent_id(&self.agent_id);
        let point = call.point();
        let hooks = self.hooks.clone();
        let running = user_code::run(async move { hooks.run(call).await });
        let failure = match running.await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(message)) => message,
            Err(Interrupted::Panicked(message)) => format!("it panicked: {message}"),
            Err(Interrupted::Cancelled) => {
                return Err(RpcError::new(
                    rpc_codes::REQUEST_CANCELLED,
                    format!("the {point} hook was cancelled"),
                ));
            }
        };
        tracing::error!(agent = %self.agent_id, %point, "the {point} hook failed: {failure}");
        crate::metrics::hook_failed(point);
        events.send_to_agent(
            &self.agent_id,
            ChatEvent::HookFailed {
                point: point.to_owned(),
                message: failure.clone(),
            },
        );
        fail_closed(point, &failure)
    }
}

/// What a failed hook answers: decide-hooks refuse, the others report the failure.
fn fail_closed(point: &str, failure: &str) -> Result<Value, RpcError> {
    let refusal = format!("the {point} hook failed ({failure}); refused");
    match point {
        "pre_turn" | "pre_tool_call_decide" => Ok(json!({"allow": false, "message": refusal})),
        "stop" => Ok(json!({"decision": "ALLOW_STOP", "reason": ""})),
        "on_interaction" => Ok(json!({"responses": [], "cancelled": true})),
        "on_tool_error" => Ok(Value::Null),
        _ => Err(RpcError::new(
            codes::HOOK_FAILED,
            format!("the {point} hook failed: {failure}"),
        )),
    }
}

/// Self-started turns kept for a reader that falls behind (older ones are dropped, with a
/// warning).
const SELF_STARTED_BACKLOG: usize = 64;

impl ReverseRequests for AgentState {
    fn agent_id(&self) -> &str {
        &self.agent_id
    }

    fn self_started(&self, turn: crate::types::SelfStartedTurn) {
        // No reader: nobody asked for them (their steps are in the history anyway).
        let _ = self.self_started.send(turn);
    }

    fn tool_call(
        self: Arc<Self>,
        params: ToolCallParams,
        events: Arc<dyn TurnEvents>,
    ) -> BoxFuture<'static, Result<Value, RpcError>> {
        async move { self.call_tool(params, &*events).await }.boxed()
    }

    fn hook_run(
        self: Arc<Self>,
        params: HookParams,
        events: Arc<dyn TurnEvents>,
    ) -> BoxFuture<'static, Result<Value, RpcError>> {
        async move { self.run_hook(params, &*events).await }.boxed()
    }

    fn policy_confirm(
        self: Arc<Self>,
        params: ConfirmParams,
    ) -> BoxFuture<'static, Result<Value, RpcError>> {
        self.confirm(params).boxed()
    }

    fn policy_when(
        self: Arc<Self>,
        params: WhenParams,
    ) -> BoxFuture<'static, Result<Value, RpcError>> {
        let result = match self.policies.rules().get(params.index) {
            Some(rule) => match rule.predicate_holds(&params.args) {
                Ok(holds) => {
                    let matched = if holds { "matched" } else { "unmatched" };
                    crate::metrics::policy_decision(matched, "predicate");
                    Ok(json!(holds))
                }
                Err(panic) => {
                    tracing::error!(agent = %self.agent_id, tool = %params.tool, "a policy predicate panicked: {panic}");
                    Err(RpcError::new(
                        codes::HOOK_FAILED,
                        format!("the policy predicate panicked: {panic}"),
                    ))
                }
            },
            None => Err(RpcError::new(
                rpc_codes::INVALID_PARAMS,
                format!("agent {} has no rule {}", self.agent_id, params.index),
            )),
        };
        futures::future::ready(result).boxed()
    }
}
