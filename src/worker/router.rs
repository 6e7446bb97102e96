//! Routes a worker's inbound traffic: streamed chat events to their turn, and reverse requests
//! (`tool/call`, `hook/run`, `policy/confirm`) to the Rust state of the agent they name.
//!
//! Dispatch is typed: each inbound method is matched against the protocol's method table
//! ([`crate::protocol::methods`]) and its params parsed into that method's `Params` type before
//! anything looks at them. Isolation: a reverse request is served only for an agent this bridge
//! created on this worker; anything else is refused with a typed error and logged. What the
//! agent's own state then does with it is behind [`ReverseRequests`], which the agent layer
//! implements: this module knows nothing of agents beyond that trait.

use std::{collections::HashMap, sync::Arc};

use futures::{FutureExt, future::BoxFuture};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::{
    protocol::{
        Method, codes as proto,
        methods::{
            AgentSelfStarted, ChatEvent as ChatEventMethod, HarnessChanged, HookRun, Ping,
            PolicyConfirm, PolicyWhen, SpareHarnesses, ToolCall,
        },
        wire::{
            ChatEventParams, ConfirmParams, HarnessEvent, HarnessEventParams, HookParams,
            SelfStartedParams, SpareHarnessesParams, ToolCallParams, WhenParams,
        },
    },
    rpc::{Handler, RpcError, codes},
    types::ChatEvent,
    worker::memory,
};

type TurnKey = (String, u64);

/// Delivers an event to an agent's running turn, if it has one.
pub(crate) trait TurnEvents: Send + Sync {
    /// Sends `event` to the streamed turn of `agent_id`.
    fn send_to_agent(&self, agent_id: &str, event: ChatEvent);
}

/// An agent's Rust side, as the worker's reverse requests reach it: one method per
/// worker-to-Rust method of the protocol, each with that method's typed params.
pub(crate) trait ReverseRequests: Send + Sync {
    /// The agent id the worker names in its requests.
    fn agent_id(&self) -> &str;
    /// `tool/call`.
    fn tool_call(
        self: Arc<Self>,
        params: ToolCallParams,
        events: Arc<dyn TurnEvents>,
    ) -> BoxFuture<'static, Result<Value, RpcError>>;
    /// `hook/run`.
    fn hook_run(
        self: Arc<Self>,
        params: HookParams,
        events: Arc<dyn TurnEvents>,
    ) -> BoxFuture<'static, Result<Value, RpcError>>;
    /// `policy/confirm`.
    fn policy_confirm(
        self: Arc<Self>,
        params: ConfirmParams,
    ) -> BoxFuture<'static, Result<Value, RpcError>>;
    /// `policy/when`.
    fn policy_when(
        self: Arc<Self>,
        params: WhenParams,
    ) -> BoxFuture<'static, Result<Value, RpcError>>;
    /// `agent/self_started` (a notification): a turn the agent started on its own ended.
    fn self_started(&self, turn: crate::types::SelfStartedTurn);
}

/// The params every reverse request starts with: the agent it is for.
trait ForAgent {
    fn agent_id(&self) -> &str;
}

impl ForAgent for ToolCallParams {
    fn agent_id(&self) -> &str {
        &self.agent_id
    }
}

impl ForAgent for HookParams {
    fn agent_id(&self) -> &str {
        &self.agent_id
    }
}

impl ForAgent for ConfirmParams {
    fn agent_id(&self) -> &str {
        &self.agent_id
    }
}

impl ForAgent for WhenParams {
    fn agent_id(&self) -> &str {
        &self.agent_id
    }
}

/// The inbound side of one worker connection.
type Turns = Arc<Mutex<HashMap<TurnKey, mpsc::UnboundedSender<ChatEvent>>>>;

#[derive(Default)]
pub(crate) struct Router {
    turns: Turns,
    agents: Mutex<HashMap<String, Arc<dyn ReverseRequests>>>,
    /// Pre-started harnesses as each worker on this connection handler (the slot's current
    /// worker, its warm spare) last reported them, by worker pid.
    spare_harnesses: Mutex<HashMap<u32, SpareHarnessesParams>>,
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
    pub(crate) fn add_agent(&self, state: Arc<dyn ReverseRequests>) {
        self.agents
            .lock()
            .insert(state.agent_id().to_owned(), state);
    }

    /// Pids of the pre-started harnesses the worker `worker_pid` last reported.
    pub(crate) fn spare_harnesses(&self, worker_pid: u32) -> Vec<u32> {
        self.spare_harnesses
            .lock()
            .get(&worker_pid)
            .map(|r| r.pids.clone())
            .unwrap_or_default()
    }

    /// Pids of the shared harnesses the worker `worker_pid` last reported.
    pub(crate) fn shared_harnesses(&self, worker_pid: u32) -> Vec<u32> {
        self.spare_harnesses
            .lock()
            .get(&worker_pid)
            .map(|r| r.shared.clone())
            .unwrap_or_default()
    }

    pub(crate) fn agent_count(&self) -> usize {
        self.agents.lock().len()
    }

    pub(crate) fn remove_agent(&self, agent_id: &str) {
        self.agents.lock().remove(agent_id);
    }

    fn agent(&self, agent_id: &str) -> Result<Arc<dyn ReverseRequests>, RpcError> {
        self.agents.lock().get(agent_id).cloned().ok_or_else(|| {
            tracing::warn!(%agent_id, "reverse request for an agent that is not on this worker");
            RpcError::new(proto::UNKNOWN_AGENT, format!("unknown agent {agent_id:?}"))
                .with_data(json!({ "agent_id": agent_id }))
        })
    }

    /// Parses a reverse request's params as method `M`'s and finds the agent they name, then
    /// hands both to `serve`.
    fn reverse<M>(
        &self,
        params: Value,
        serve: impl FnOnce(
            Arc<dyn ReverseRequests>,
            M::Params,
            Arc<dyn TurnEvents>,
        ) -> BoxFuture<'static, Result<Value, RpcError>>,
    ) -> BoxFuture<'static, Result<Value, RpcError>>
    where
        M: Method,
        M::Params: ForAgent,
    {
        let served = parse::<M::Params>(params).and_then(|params| {
            let agent = self.agent(params.agent_id())?;
            let turns: Arc<dyn TurnEvents> = Arc::new(Arc::clone(&self.turns));
            Ok(serve(agent, params, turns))
        });
        match served {
            Ok(future) => future,
            Err(e) => async move { Err(e) }.boxed(),
        }
    }
}

impl TurnEvents for Turns {
    /// An agent has at most one streamed turn at a time; an event for an agent without one is
    /// dropped (a `send` turn, or a hook outside any turn).
    fn send_to_agent(&self, agent_id: &str, event: ChatEvent) {
        let turns = self.lock();
        if let Some(tx) = turns
            .iter()
            .find(|((agent, _), _)| agent == agent_id)
            .map(|(_, tx)| tx)
        {
            let _ = tx.send(event);
        }
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
        match method.as_str() {
            Ping::NAME => async { Ok(json!("pong")) }.boxed(),
            ToolCall::NAME => self.reverse::<ToolCall>(params, |agent, params, turns| {
                agent.tool_call(params, turns)
            }),
            HookRun::NAME => self
                .reverse::<HookRun>(params, |agent, params, turns| agent.hook_run(params, turns)),
            PolicyConfirm::NAME => self
                .reverse::<PolicyConfirm>(params, |agent, params, _| agent.policy_confirm(params)),
            PolicyWhen::NAME => {
                self.reverse::<PolicyWhen>(params, |agent, params, _| agent.policy_when(params))
            }
            _ => async move {
                Err(RpcError::new(
                    codes::METHOD_NOT_FOUND,
                    format!("the Rust side has no method {method}"),
                ))
            }
            .boxed(),
        }
    }

    fn notification(&self, method: String, params: Value) {
        if method == HarnessChanged::NAME {
            match serde_json::from_value::<HarnessEventParams>(params) {
                Ok(p) => crate::metrics::harness(match p.event {
                    HarnessEvent::Started => "started",
                    HarnessEvent::Lost => "lost",
                }),
                Err(e) => tracing::warn!("malformed {method}: {e}"),
            }
            return;
        }
        if method == AgentSelfStarted::NAME {
            match serde_json::from_value::<SelfStartedParams>(params) {
                Ok(p) => match self.agents.lock().get(&p.agent_id).cloned() {
                    Some(agent) => {
                        agent.self_started(crate::types::SelfStartedTurn { steps: p.steps })
                    }
                    None => {
                        tracing::debug!(agent = %p.agent_id, "self-started turn of a gone agent")
                    }
                },
                Err(e) => tracing::warn!("malformed {method}: {e}"),
            }
            return;
        }
        if method == SpareHarnesses::NAME {
            match serde_json::from_value::<SpareHarnessesParams>(params) {
                Ok(p) => {
                    let mut reports = self.spare_harnesses.lock();
                    // Reports of workers that have ended since go (their spares went with them;
                    // a worker leads its own process group while it lives).
                    reports.retain(|&pid, _| memory::process_group(pid) == Some(pid));
                    reports.insert(p.worker_pid, p);
                }
                Err(e) => tracing::warn!("malformed {method}: {e}"),
            }
            return;
        }
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
