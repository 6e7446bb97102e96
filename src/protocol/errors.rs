//! Error codes of our protocol, and the one place where a failed call becomes a
//! [`crate::Error`].

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    error::{AgentErrorKind, Error},
    rpc::{CallError, RpcError},
};

/// Error codes of our protocol, beyond JSON-RPC's own (`-32700`…`-32600`, `-32800`).
pub(crate) mod codes {
    /// The message exceeded the receiver's (or sender's) size limit. `data: {size, limit}`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) const MESSAGE_TOO_LARGE: i64 = crate::rpc::codes::MESSAGE_TOO_LARGE;
    /// The connection closed before an answer arrived (only the worker answers with it).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) const CONNECTION_CLOSED: i64 = -32002;
    /// `initialize`: the two sides speak different protocol versions.
    pub(crate) const VERSION_MISMATCH: i64 = -32003;
    /// The agent id is not hosted by this worker / not known to this bridge.
    pub(crate) const UNKNOWN_AGENT: i64 = -32010;
    /// The tool is not registered for that agent.
    pub(crate) const UNKNOWN_TOOL: i64 = -32011;
    /// The turn failed; `data.kind` classifies it.
    pub(crate) const AGENT_ERROR: i64 = -32020;
    /// The configuration was rejected.
    pub(crate) const INVALID_CONFIG: i64 = -32030;
    /// The agent is already running a turn.
    pub(crate) const AGENT_BUSY: i64 = -32040;
    /// The agent has no live session (re-opening it after a model error failed).
    pub(crate) const AGENT_DISCONNECTED: i64 = -32041;
    /// A Rust tool failed (its message is shown to the model).
    pub(crate) const TOOL_FAILED: i64 = -32050;
    /// A Rust hook failed.
    pub(crate) const HOOK_FAILED: i64 = -32051;

    /// Every code of ours by name, for the protocol schema.
    #[cfg(test)]
    pub(crate) const ALL: &[(&str, i64)] = &[
        ("MESSAGE_TOO_LARGE", MESSAGE_TOO_LARGE),
        ("CONNECTION_CLOSED", CONNECTION_CLOSED),
        ("VERSION_MISMATCH", VERSION_MISMATCH),
        ("UNKNOWN_AGENT", UNKNOWN_AGENT),
        ("UNKNOWN_TOOL", UNKNOWN_TOOL),
        ("AGENT_ERROR", AGENT_ERROR),
        ("INVALID_CONFIG", INVALID_CONFIG),
        ("AGENT_BUSY", AGENT_BUSY),
        ("AGENT_DISCONNECTED", AGENT_DISCONNECTED),
        ("TOOL_FAILED", TOOL_FAILED),
        ("HOOK_FAILED", HOOK_FAILED),
    ];
}

/// The `data` of an [`codes::AGENT_ERROR`] answer: how the worker classified a failed turn.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct AgentErrorData {
    /// The classification (an unknown one reads as [`AgentErrorKind::Unknown`]).
    pub kind: AgentErrorKind,
    /// The SDK exception's class name (for logs; Rust never decides by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
    /// The model server's HTTP status, when the failure carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// How long the model server asked to wait, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<f64>,
    /// The SDK session died with the turn (the worker re-opens it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_dead: Option<bool>,
    /// Whether re-opening the dead session worked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
    /// Why re-opening the dead session failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reopen_error: Option<String>,
}

/// A failed call as the crate's typed error (a function, not a `From` impl, so that the rpc
/// layer's error stays out of the public API).
pub(crate) fn from_call(error: CallError) -> Error {
    match error {
        CallError::Closed(reason) => closed(&reason),
        CallError::TooLarge { size, limit } => Error::MessageTooLarge { size, limit },
        CallError::Timeout { method, timeout } => Error::Timeout {
            operation: method,
            duration: timeout,
        },
        CallError::Cancelled => Error::Cancelled,
        CallError::Remote(remote) => from_remote(remote),
        CallError::Lost { id } => Error::ResponseLost { request_id: id },
        CallError::Encode { method, message } => {
            Error::Protocol(format!("cannot encode the params of {method}: {message}"))
        }
    }
}

/// The crate error a closed connection stands for: the worker layer closes connections with a
/// [`crate::Error`] (a crash with its exit status and stderr, or a deliberate stop).
fn closed(reason: &crate::rpc::CloseReason) -> Error {
    reason
        .downcast_ref::<Error>()
        .cloned()
        .unwrap_or_else(|| Error::WorkerCrashed {
            exit_status: None,
            stderr_tail: reason.to_string(),
        })
}

/// A close reason for the rpc layer.
pub(crate) fn close_reason(error: Error) -> crate::rpc::CloseReason {
    Arc::new(error)
}

/// Turns a remote error answer into the crate's typed errors by its code.
fn from_remote(remote: RpcError) -> Error {
    let RpcError {
        code,
        message,
        data,
    } = remote;
    let field = |k: &str| data.as_ref().and_then(|d| d.get(k)).cloned();
    let agent_id = || {
        field("agent_id")
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    };
    match code {
        codes::UNKNOWN_AGENT => Error::UnknownAgent {
            agent_id: agent_id(),
        },
        codes::AGENT_BUSY => Error::AgentBusy {
            agent_id: agent_id(),
        },
        codes::AGENT_DISCONNECTED => Error::AgentDisconnected {
            agent_id: agent_id(),
        },
        codes::INVALID_CONFIG => Error::InvalidConfig { message },
        codes::VERSION_MISMATCH => Error::VersionMismatch { message },
        codes::AGENT_ERROR => agent_error(message, data),
        _ => Error::Rpc {
            code,
            message,
            data: data.filter(|d| !matches!(d, Value::Null)),
        },
    }
}

/// An [`codes::AGENT_ERROR`] answer as [`Error::Agent`]; data that does not fit
/// [`AgentErrorData`], or a kind this bridge does not know, is logged and read as
/// [`AgentErrorKind::Unknown`].
fn agent_error(message: String, data: Option<Value>) -> Error {
    let named_kind = data
        .as_ref()
        .and_then(|d| d.get("kind"))
        .map(ToString::to_string)
        .unwrap_or_else(|| "none".to_owned());
    let data = match serde_json::from_value::<AgentErrorData>(data.unwrap_or(Value::Null)) {
        Ok(data) => data,
        Err(e) => {
            tracing::warn!(kind = %named_kind, "malformed agent error data ({e}): {message}");
            AgentErrorData {
                kind: AgentErrorKind::Unknown,
                exception: None,
                http_status: None,
                retry_after_secs: None,
                session_dead: None,
                recovered: None,
                reopen_error: None,
            }
        }
    };
    if data.kind == AgentErrorKind::Unknown {
        tracing::warn!(kind = %named_kind, "the worker named an agent error kind this bridge does not know: {message}");
    }
    Error::Agent {
        kind: data.kind,
        http_status: data.http_status,
        retry_after: data
            .retry_after_secs
            .and_then(|s| std::time::Duration::try_from_secs_f64(s).ok()),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_codes_become_typed_errors() {
        let remote = |code, data| CallError::Remote(RpcError::new(code, "m").with_data(data));
        assert!(matches!(
            from_call(remote(codes::UNKNOWN_AGENT, serde_json::json!({"agent_id": "a"}))),
            Error::UnknownAgent { agent_id } if agent_id == "a"
        ));
        assert!(matches!(
            from_call(remote(codes::VERSION_MISMATCH, Value::Null)),
            Error::VersionMismatch { .. }
        ));
        let quota = from_call(remote(
            codes::AGENT_ERROR,
            serde_json::json!({"kind": "quota", "http_status": 429, "retry_after_secs": 2.5}),
        ));
        assert!(
            matches!(quota, Error::Agent { kind: AgentErrorKind::Quota, http_status: Some(429), retry_after: Some(d), .. } if d.as_millis() == 2500)
        );
        let newer = from_call(remote(
            codes::AGENT_ERROR,
            serde_json::json!({"kind": "solar_flare", "http_status": 503}),
        ));
        assert!(matches!(
            newer,
            Error::Agent {
                kind: AgentErrorKind::Unknown,
                http_status: Some(503),
                ..
            }
        ));
        let malformed = from_call(remote(codes::AGENT_ERROR, serde_json::json!({"kind": 7})));
        assert!(matches!(
            malformed,
            Error::Agent {
                kind: AgentErrorKind::Unknown,
                ..
            }
        ));
        assert!(matches!(
            from_call(CallError::Lost { id: 7 }),
            Error::ResponseLost { request_id: 7 }
        ));
        let crash = close_reason(Error::WorkerStopped);
        assert!(matches!(
            from_call(CallError::Closed(crash)),
            Error::WorkerStopped
        ));
    }
}
