//! Our protocol on top of JSON-RPC: method names, typed params and results, error codes.
//! `docs/protocol.md` describes the same surface for humans; this file is the source of truth.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    error::{AgentErrorKind, Error},
    types::{ChatEvent, Usage},
};

/// Wire protocol version; bumped on any incompatible change. Checked at `initialize`.
pub const PROTOCOL_VERSION: u32 = 1;
/// Version of the embedded `agy_worker` package (checked against the running worker).
pub const WORKER_VERSION: &str = "0.1.0";
/// The `google-antigravity` version this crate is tested with (pinned in the managed venv).
pub const SDK_VERSION: &str = "0.1.22";

/// Method names.
pub mod methods {
    /// Rust → worker: version handshake.
    pub const INITIALIZE: &str = "initialize";
    /// Either direction: liveness probe answered with `"pong"`.
    pub const PING: &str = "$/ping";
    /// Rust → worker: heartbeat.
    pub const WORKER_PING: &str = "worker/ping";
    /// Rust → worker: echo a payload (plus optional padding), for tests and benchmarks.
    pub const WORKER_ECHO: &str = "worker/echo";
    /// Rust → worker: have the worker time `count` reverse `$/ping` calls to Rust.
    pub const WORKER_PING_RUST: &str = "worker/ping_rust";
    /// Rust → worker: close all agents and exit.
    pub const WORKER_SHUTDOWN: &str = "worker/shutdown";
    /// Rust → worker: failure injection, only when the worker runs with `AGY_WORKER_DEBUG=1`.
    pub const WORKER_DEBUG: &str = "worker/debug";
    /// Rust → worker: start an agent.
    pub const AGENT_CREATE: &str = "agent/create";
    /// Rust → worker: run one turn; streams `chat/event`, answers with the outcome.
    pub const AGENT_CHAT: &str = "agent/chat";
    /// Rust → worker: stop an agent.
    pub const AGENT_CLOSE: &str = "agent/close";
    /// Rust → worker: start a turn without streaming it.
    pub const AGENT_SEND: &str = "agent/send";
    /// Rust → worker: wait for a turn started with `agent/send`; returns its outcome.
    pub const AGENT_WAIT_FOR_IDLE: &str = "agent/wait_for_idle";
    /// Rust → worker: halt the running turn.
    pub const AGENT_CANCEL: &str = "agent/cancel";
    /// Rust → worker: the de-duplicated history.
    pub const AGENT_HISTORY: &str = "agent/history";
    /// Rust → worker: counters, usage, last response, idleness.
    pub const AGENT_STATE: &str = "agent/state";
    /// Rust → worker: clear the local history.
    pub const AGENT_CLEAR_HISTORY: &str = "agent/clear_history";
    /// Rust → worker: end the live session, keep the agent (resumed on the next turn).
    pub const AGENT_DISCONNECT: &str = "agent/disconnect";
    /// Rust → worker: wait until the agent starts a turn on its own.
    pub const AGENT_WAIT_FOR_WAKEUP: &str = "agent/wait_for_wakeup";
    /// Rust → worker: declare the agent idle (halts a self-started turn).
    pub const AGENT_SIGNAL_IDLE: &str = "agent/signal_idle";
    /// Worker → Rust notification: one streamed event of a turn.
    pub const CHAT_EVENT: &str = "chat/event";
    /// Worker → Rust: run a Rust tool for an agent.
    pub const TOOL_CALL: &str = "tool/call";
    /// Worker → Rust: run an agent's hook.
    pub const HOOK_RUN: &str = "hook/run";
    /// Worker → Rust: ask an agent's `ask_user` policy handler.
    pub const POLICY_CONFIRM: &str = "policy/confirm";
}

/// Error codes of our protocol (beyond the JSON-RPC ones in [`crate::rpc::codes`]).
pub mod codes {
    /// The agent id is not hosted by this worker / not known to this bridge.
    pub const UNKNOWN_AGENT: i64 = -32010;
    /// The turn failed; `data.kind` classifies it.
    pub const AGENT_ERROR: i64 = -32020;
    /// The configuration was rejected.
    pub const INVALID_CONFIG: i64 = -32030;
    /// The agent is already running a turn.
    pub const AGENT_BUSY: i64 = -32040;
    /// The agent is disconnected (its next turn resumes it).
    pub const AGENT_DISCONNECTED: i64 = -32041;
    /// The tool is not registered for that agent.
    pub const UNKNOWN_TOOL: i64 = -32011;
    /// A Rust tool failed (its message is shown to the model).
    pub const TOOL_FAILED: i64 = -32050;
    /// A Rust hook failed.
    pub const HOOK_FAILED: i64 = -32051;
}

/// `initialize` params.
#[derive(Debug, Clone, Serialize)]
pub struct InitializeParams {
    /// [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// This crate's version.
    pub crate_version: &'static str,
}

/// `initialize` result: who the worker is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// The worker's protocol version.
    pub protocol_version: u32,
    /// The `agy_worker` package version.
    pub worker_version: String,
    /// The installed `google-antigravity` version.
    pub sdk_version: String,
    /// The interpreter's version.
    pub python_version: String,
    /// The worker's process id.
    pub pid: u32,
    /// `orjson` or `json`.
    pub json_backend: String,
    /// `uvloop` or `asyncio`.
    pub event_loop: String,
    /// The worker's message size limit.
    pub max_message_size: usize,
    /// Unix time (s) at which the worker's `__main__` started running.
    pub main_entered_unix: f64,
    /// Unix time (s) at which the SDK import finished.
    pub sdk_imported_unix: Option<f64>,
    /// Whether agent start-up runs off the event loop (see `agy_worker/offloop.py`).
    #[serde(default)]
    pub offloop_agent_start: bool,
}

/// `agent/create` params.
#[derive(Debug, Clone, Serialize)]
pub struct AgentCreateParams<'a> {
    /// Rust-assigned agent id.
    pub agent_id: &'a str,
    /// The agent's configuration as the worker reads it.
    pub config: &'a Value,
}

/// `agent/create` result.
#[derive(Debug, Clone, Deserialize)]
pub struct AgentCreateResult {
    /// Pid of the agent's `localharness` process.
    pub harness_pid: Option<u32>,
    /// How long the SDK took to start the agent, in milliseconds.
    pub start_ms: f64,
}

/// Params of requests that only name an agent.
#[derive(Debug, Clone, Serialize)]
pub struct AgentRef<'a> {
    /// The agent.
    pub agent_id: &'a str,
}

/// `agent/chat` params.
#[derive(Debug, Clone, Serialize)]
pub struct ChatParams<'a> {
    /// The agent.
    pub agent_id: &'a str,
    /// Rust-assigned turn number; echoed in every `chat/event`.
    pub turn_id: u64,
    /// The prompt: a string or a list of parts (see [`crate::content::Content::to_wire`]).
    pub prompt: &'a Value,
}

/// `chat/event` params.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatEventParams {
    /// The agent.
    pub agent_id: String,
    /// The turn.
    pub turn_id: u64,
    /// The event.
    pub event: ChatEvent,
}

/// `agent/chat` result.
#[derive(Debug, Clone, Deserialize)]
pub struct ChatResult {
    /// The reply text.
    pub text: String,
    /// Token usage of the turn.
    pub usage: Option<Usage>,
    /// The SDK's stop reason.
    pub stop_reason: String,
    /// Structured output, if any.
    #[serde(default)]
    pub structured_output: Option<Value>,
}

/// Turns protocol-level error codes from the worker into the crate's typed errors.
#[must_use]
pub fn refine_error(error: Error) -> Error {
    let Error::Rpc {
        code,
        message,
        data,
    } = error
    else {
        return error;
    };
    let field = |k: &str| data.as_ref().and_then(|d| d.get(k)).cloned();
    match code {
        codes::UNKNOWN_AGENT => Error::UnknownAgent {
            agent_id: field("agent_id")
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        },
        codes::AGENT_BUSY => Error::AgentBusy {
            agent_id: field("agent_id")
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        },
        codes::INVALID_CONFIG => Error::InvalidConfig { message },
        codes::AGENT_ERROR => Error::Agent {
            kind: field("kind")
                .and_then(|k| serde_json::from_value(k).ok())
                .unwrap_or(AgentErrorKind::Internal),
            http_status: field("http_status")
                .and_then(|s| s.as_u64())
                .and_then(|s| u16::try_from(s).ok()),
            retry_after: field("retry_after_secs")
                .and_then(|s| s.as_f64())
                .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok()),
            message,
        },
        codes::AGENT_DISCONNECTED => Error::AgentDisconnected {
            agent_id: field("agent_id")
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        },
        _ => Error::Rpc {
            code,
            message,
            data,
        },
    }
}
