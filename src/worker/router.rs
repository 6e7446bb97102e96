//! Routes a worker's inbound traffic: streamed chat events to their turn, and reverse requests
//! (`tool/call`, `hook/run`, `policy/confirm`) to the Rust state of the agent they name.
//!
//! Isolation: a reverse request is served only for an agent this bridge created on this
//! worker, and only for a tool registered for that agent; anything else is refused with a
//! typed error and logged. Each agent's tool state is its own.

use std::{collections::HashMap, sync::Arc};

use futures::{FutureExt, future::BoxFuture};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::{
    agent::{
        hooks::Hooks,
        policies::{ConfirmRequest, PolicyDecision, PolicyRule, PolicySet},
        tools::{ToolContext, ToolRegistry, ToolState},
    },
    protocol::{
        Method, codes as proto,
        methods::{ChatEvent as ChatEventMethod, HookRun, Ping, PolicyConfirm, ToolCall},
        wire::{ChatEventParams, ConfirmParams, HookParams, ToolCallParams},
    },
    rpc::{Handler, RpcError, codes},
    types::ChatEvent,
};

type TurnKey = (String, u64);

/// Everything Rust keeps for one agent: the worker holds only proxies.
pub(crate) struct AgentState {
    pub(crate) agent_id: String,
    pub(crate) conversation_id: String,
    pub(crate) tools: ToolRegistry,
    pub(crate) hooks: Hooks,
    pub(crate) policies: PolicySet,
    pub(crate) tool_state: ToolState,
    /// `ask_user` approvals granted through `policy/confirm`, not yet used by a tool call.
    approvals: Mutex<HashMap<String, u32>>,
}

impl AgentState {
    pub(crate) fn new(
        agent_id: String,
        conversation_id: String,
        tools: ToolRegistry,
        hooks: Hooks,
        policies: PolicySet,
    ) -> Self {
        Self {
            agent_id,
            conversation_id,
            tools,
            hooks,
            policies,
            tool_state: ToolState::default(),
            approvals: Mutex::new(HashMap::new()),
        }
    }

    async fn call_tool(self: Arc<Self>, params: ToolCallParams) -> Result<Value, RpcError> {
        if !self.tools.contains(&params.tool) {
            tracing::warn!(agent = %self.agent_id, tool = %params.tool, "tool/call for a tool this agent does not have");
            return Err(RpcError::new(
                proto::UNKNOWN_TOOL,
                format!("agent {} has no tool {}", self.agent_id, params.tool),
            ));
        }
        // Defense in depth: the harness enforces the policy already; check again here.
        match self.policies.evaluate(&params.tool) {
            PolicyDecision::Allow => {}
            PolicyDecision::Deny { reason } => {
                return Err(RpcError::new(
                    proto::TOOL_FAILED,
                    format!("blocked by policy: {reason}"),
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
                    if !handler.confirm(request).await {
                        return Err(RpcError::new(proto::TOOL_FAILED, "denied by the user"));
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
            .map_err(|e| RpcError::new(proto::TOOL_FAILED, e.to_string()))
    }

    async fn confirm(self: Arc<Self>, params: ConfirmParams) -> Result<Value, RpcError> {
        let Some(PolicyRule::AskUser {
            handler, reason, ..
        }) = self.policies.rules().get(params.index)
        else {
            return Err(RpcError::new(
                codes::INVALID_PARAMS,
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
                reason.clone()
            } else {
                params.reason
            },
        };
        let approved = handler.confirm(request).await;
        if approved {
            *self.approvals.lock().entry(params.tool).or_default() += 1;
        }
        Ok(json!(approved))
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

    async fn run_hook(self: Arc<Self>, params: HookParams) -> Result<Value, RpcError> {
        let mut data = params.data;
        if let Value::Object(map) = &mut data {
            map.insert("agent_id".into(), json!(self.agent_id));
        }
        self.hooks
            .run(&params.point, data)
            .await
            .map_err(|e| RpcError::new(proto::HOOK_FAILED, e))
    }
}

/// The inbound side of one worker connection.
type Turns = Arc<Mutex<HashMap<TurnKey, mpsc::UnboundedSender<ChatEvent>>>>;

#[derive(Default)]
pub(crate) struct Router {
    turns: Turns,
    agents: Mutex<HashMap<String, Arc<AgentState>>>,
}

impl Router {
    pub(crate) fn open_turn(&self, key: TurnKey) -> mpsc::UnboundedReceiver<ChatEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.turns.lock().insert(key, tx);
        rx
    }

    pub(crate) fn close_turn(&self, key: &TurnKey) {
        self.turns.lock().remove(key);
    }

    /// Registers an agent's state; done before `agent/create` is sent, so reverse requests that
    /// arrive while the agent starts find it.
    pub(crate) fn add_agent(&self, state: Arc<AgentState>) {
        self.agents.lock().insert(state.agent_id.clone(), state);
    }

    pub(crate) fn agent_count(&self) -> usize {
        self.agents.lock().len()
    }

    pub(crate) fn remove_agent(&self, agent_id: &str) {
        self.agents.lock().remove(agent_id);
    }

    fn agent(&self, params: &Value) -> Result<Arc<AgentState>, RpcError> {
        let agent_id = params
            .get("agent_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        self.agents.lock().get(agent_id).cloned().ok_or_else(|| {
            tracing::warn!(%agent_id, "reverse request for an agent that is not on this worker");
            RpcError::new(proto::UNKNOWN_AGENT, format!("unknown agent {agent_id:?}"))
                .with_data(json!({ "agent_id": agent_id }))
        })
    }
}

/// Tells the agent's streaming turn (there is at most one) how a Rust tool call ended.
fn report_tool_result(
    turns: &Turns,
    agent_id: &str,
    name: String,
    result: &Result<Value, RpcError>,
) {
    let event = match result {
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
    let turns = turns.lock();
    if let Some(tx) = turns
        .iter()
        .find(|((agent, _), _)| agent == agent_id)
        .map(|(_, tx)| tx)
    {
        let _ = tx.send(event);
    }
}

fn parse<T: DeserializeOwned>(params: Value) -> Result<T, RpcError> {
    serde_json::from_value(params).map_err(|e| RpcError::new(codes::INVALID_PARAMS, e.to_string()))
}

impl Handler for Router {
    fn request(
        &self,
        method: String,
        params: Value,
    ) -> BoxFuture<'static, Result<Value, RpcError>> {
        if method == Ping::NAME {
            return async { Ok(json!("pong")) }.boxed();
        }
        let reverse = [ToolCall::NAME, HookRun::NAME, PolicyConfirm::NAME];
        if !reverse.contains(&method.as_str()) {
            return async move {
                Err(RpcError::new(
                    codes::METHOD_NOT_FOUND,
                    format!("the Rust side has no method {method}"),
                ))
            }
            .boxed();
        }
        let agent = match self.agent(&params) {
            Ok(agent) => agent,
            Err(e) => return async move { Err(e) }.boxed(),
        };
        let turns = Arc::clone(&self.turns);
        async move {
            if method == ToolCall::NAME {
                let params: ToolCallParams = parse(params)?;
                let (name, agent_id) = (params.tool.clone(), agent.agent_id.clone());
                let result = agent.call_tool(params).await;
                report_tool_result(&turns, &agent_id, name, &result);
                result
            } else if method == HookRun::NAME {
                agent.run_hook(parse(params)?).await
            } else {
                agent.confirm(parse(params)?).await
            }
        }
        .boxed()
    }

    fn notification(&self, method: String, params: Value) {
        if method != ChatEventMethod::NAME {
            tracing::debug!(%method, "ignoring an unknown notification");
            return;
        }
        match serde_json::from_value::<ChatEventParams>(params) {
            Ok(p) => {
                let key = (p.agent_id, p.turn_id);
                if let Some(tx) = self.turns.lock().get(&key) {
                    let _ = tx.send(p.event);
                } else {
                    tracing::debug!(agent = %key.0, turn = key.1, "event for a finished turn");
                }
            }
            Err(e) => tracing::warn!("malformed chat/event: {e}"),
        }
    }
}
