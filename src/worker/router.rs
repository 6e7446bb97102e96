//! Routes a worker's inbound traffic: streamed chat events to their turn, and reverse requests
//! (`tool/call`, `hook/run`, `policy/confirm`) to the Rust state of the agent they name.
//!
//! Isolation: a reverse request is served only for an agent this bridge created on this
//! worker; anything else is refused with a typed error and logged. What the agent's own state
//! then does with it is `agent::callbacks`' job.

use std::{collections::HashMap, sync::Arc};

use futures::{FutureExt, future::BoxFuture};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub(crate) use crate::agent::callbacks::AgentState;
use crate::{
    agent::callbacks::TurnEvents,
    protocol::{
        Method, codes as proto,
        methods::{
            ChatEvent as ChatEventMethod, HookRun, Ping, PolicyConfirm, SpareHarnesses, ToolCall,
        },
        wire::{ChatEventParams, SpareHarnessesParams},
    },
    rpc::{Handler, RpcError, codes},
    types::ChatEvent,
    worker::memory,
};

type TurnKey = (String, u64);

/// The inbound side of one worker connection.
type Turns = Arc<Mutex<HashMap<TurnKey, mpsc::UnboundedSender<ChatEvent>>>>;

#[derive(Default)]
pub(crate) struct Router {
    turns: Turns,
    agents: Mutex<HashMap<String, Arc<AgentState>>>,
    /// Pre-started harnesses as each worker on this connection handler (the slot's current
    /// worker, its warm spare) last reported them, by worker pid.
    spare_harnesses: Mutex<HashMap<u32, Vec<u32>>>,
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

    /// Pids of the pre-started harnesses the worker `worker_pid` last reported.
    pub(crate) fn spare_harnesses(&self, worker_pid: u32) -> Vec<u32> {
        self.spare_harnesses
            .lock()
            .get(&worker_pid)
            .cloned()
            .unwrap_or_default()
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
                agent.call_tool(parse(params)?, &turns).await
            } else if method == HookRun::NAME {
                agent.run_hook(parse(params)?, &turns).await
            } else {
                agent.confirm(parse(params)?).await
            }
        }
        .boxed()
    }

    fn notification(&self, method: String, params: Value) {
        if method == SpareHarnesses::NAME {
            match serde_json::from_value::<SpareHarnessesParams>(params) {
                Ok(p) => {
                    let mut reports = self.spare_harnesses.lock();
                    // Reports of workers that have ended since go (their spares went with them;
                    // a worker leads its own process group while it lives).
                    reports.retain(|&pid, _| memory::process_group(pid) == Some(pid));
                    reports.insert(p.worker_pid, p.pids);
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
