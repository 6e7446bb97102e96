//! The crate's one error type.

use std::{sync::Arc, time::Duration};

/// Everything that can go wrong in the bridge, as typed variants.
///
/// `Error` is `Clone` so one failure (a worker crash) can be handed to every request that was
/// waiting on that worker.
///
/// ```no_run
/// # async fn demo(agent: agy_bridge::Agent) {
/// use agy_bridge::{AgentErrorKind, Error};
///
/// match agent.chat("Hello").await.unwrap().finish().await {
///     Ok(outcome) => println!("{}", outcome.text),
///     Err(Error::Agent { kind: AgentErrorKind::Quota, retry_after, .. }) => {
///         println!("rate limited; retry after {retry_after:?}");
///     }
///     Err(Error::WorkerCrashed { .. }) => println!("worker crashed; the next chat resumes"),
///     Err(Error::Timeout { .. }) => println!("the turn took too long"),
///     Err(other) => println!("failed: {other}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Creating or repairing the managed Python environment failed at `step`.
    #[error(
        "Python environment set-up failed while {step}: {message}\n--- last output ---\n{output_tail}"
    )]
    VenvSetup {
        /// What was being done, e.g. "installing google-antigravity==0.1.22".
        step: String,
        /// What went wrong.
        message: String,
        /// The last lines printed by pip, uv or Python.
        output_tail: String,
    },
    /// The worker process could not be started.
    #[error("could not start the Python worker `{program}`: {source}")]
    Spawn {
        /// The interpreter that was launched.
        program: String,
        /// The operating-system error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The worker speaks a different protocol or runs different code than this crate expects.
    #[error("version mismatch: {message}")]
    VersionMismatch {
        /// What differs and how to fix it.
        message: String,
    },
    /// The worker process exited or closed its pipes; every request in flight fails with this.
    #[error("the Python worker crashed ({})\n--- worker stderr (last lines) ---\n{stderr_tail}",
        exit_status.as_deref().unwrap_or("exit status unknown"))]
    WorkerCrashed {
        /// How the process ended (`exit status: 1`, `signal: 9 (SIGKILL)`), if known.
        exit_status: Option<String>,
        /// The last lines the worker wrote to stderr.
        stderr_tail: String,
    },
    /// The worker crashed too often: no replacement is started until the window has passed.
    #[error(
        "the worker was restarted {restarts} times within {window:?}; not restarting it again yet (last failure: {last_failure})"
    )]
    RestartBudgetExhausted {
        /// Restarts within the window.
        restarts: u32,
        /// The window.
        window: Duration,
        /// Why the last worker ended or failed to start.
        last_failure: String,
    },
    /// Every worker already hosts `max_agents_per_worker` agents.
    #[error("no capacity: {message}")]
    Capacity {
        /// Details.
        message: String,
    },
    /// The worker was stopped on purpose (shutdown) while this request was pending.
    #[error("the worker was shut down")]
    WorkerStopped,
    /// A message was larger than the configured limit. Only that request fails.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// Size of the message in bytes.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The agent id is not known (closed, never created, or on another worker).
    #[error("unknown agent `{agent_id}`")]
    UnknownAgent {
        /// The id that was asked for.
        agent_id: String,
    },
    /// The agent is already running a turn; turns on one agent are serialized.
    #[error("agent `{agent_id}` is already running a turn")]
    AgentBusy {
        /// The busy agent.
        agent_id: String,
    },
    /// The configuration was rejected by the bridge or the SDK.
    #[error("invalid configuration: {message}")]
    InvalidConfig {
        /// The SDK's or the bridge's explanation, naming the field.
        message: String,
    },
    /// A tool's parameter schema is not a valid JSON Schema (checked against the meta-schema
    /// when the tool is added, before any harness starts).
    #[error("tool {tool}: invalid parameter schema at {path:?}: {message}")]
    InvalidToolSchema {
        /// The tool.
        tool: String,
        /// JSON pointer to the offending part of the schema (`""` is the whole schema).
        path: String,
        /// What is wrong there.
        message: String,
    },
    /// The model or the agent failed the turn.
    #[error("{kind} error: {message}")]
    Agent {
        /// The structural classification made by the worker.
        kind: AgentErrorKind,
        /// HTTP status returned by the model server, if any.
        http_status: Option<u16>,
        /// For quota errors: how long the server asked to wait, when it said.
        retry_after: Option<Duration>,
        /// The SDK's message.
        message: String,
    },
    /// The agent has no live session on its worker: re-opening it after a model error failed
    /// (the turn's [`Error::Agent`] said so). Its next turn tries the re-open again.
    #[error("agent `{agent_id}` has no live session; its next turn re-opens it")]
    AgentDisconnected {
        /// The agent.
        agent_id: String,
    },
    /// The operation was cancelled.
    #[error("the operation was cancelled")]
    Cancelled,
    /// The operation did not finish in time.
    #[error("{operation} timed out after {duration:?}")]
    Timeout {
        /// What timed out.
        operation: String,
        /// The deadline that passed.
        duration: Duration,
    },
    /// The peer answered with a JSON-RPC error the bridge has no better type for.
    #[error("worker error {code}: {message}")]
    Rpc {
        /// JSON-RPC error code.
        code: i64,
        /// Error message.
        message: String,
        /// Optional structured data.
        data: Option<serde_json::Value>,
    },
    /// The worker answered, but the answer was lost: stray bytes on its output stream merged
    /// with it. Whether the request took effect is unknown; the connection itself is fine.
    #[error("the worker's answer to request {request_id} was lost in corrupted output")]
    ResponseLost {
        /// The request's JSON-RPC id.
        request_id: u64,
    },
    /// Another bridge holds the conversation (it is active there); it stayed busy for as long
    /// as this bridge was configured to wait.
    #[error("conversation {conversation_id} is active in {holder}{}", until.map(|u| format!(" (lease until {})", humantime_secs(u))).unwrap_or_default())]
    ConversationBusy {
        /// The conversation.
        conversation_id: String,
        /// Who holds it.
        holder: String,
        /// When its lease expires unless renewed (`None` for the local store, whose leases
        /// end with their holder).
        until: Option<std::time::SystemTime>,
    },
    /// No conversation with that id exists in the store.
    #[error("unknown conversation {conversation_id}")]
    UnknownConversation {
        /// The id that was asked for.
        conversation_id: String,
    },
    /// This bridge's lease on the conversation was taken over by another bridge (its own
    /// expired): nothing this bridge saves for it is accepted any more. Open the conversation
    /// again to continue from the newest saved state.
    #[error("conversation {conversation_id} was taken over by another bridge")]
    LeaseLost {
        /// The conversation.
        conversation_id: String,
    },
    /// The conversation store failed (unreachable, or an SQL error).
    #[error("conversation store: {message}")]
    Store {
        /// What failed.
        message: String,
    },
    /// A stored snapshot failed its checks (checksum, archive, database); the local copy was
    /// left as it was.
    #[error("the stored snapshot {version} of conversation {conversation_id} is damaged: {reason}")]
    CorruptSnapshot {
        /// The conversation.
        conversation_id: String,
        /// The snapshot version.
        version: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The turn completed, but its state could not be saved to the conversation store. The
    /// outcome is here; the state is kept locally and saved at the agent's next call (which
    /// fails with the store's error while the store is unreachable).
    #[error("the turn completed but conversation {conversation_id} could not be saved: {source}")]
    NotSaved {
        /// The conversation.
        conversation_id: String,
        /// What the turn produced.
        outcome: Box<crate::types::ChatOutcome>,
        /// Why the save failed: [`Error::Store`] (retried at the next call), or
        /// [`Error::LeaseLost`] (another bridge took over: this turn is not part of the
        /// conversation's saved state).
        source: Box<Error>,
    },
    /// The peer sent something that breaks the protocol (a bad result shape, …).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A cache or data directory (or a file in it) could have been written by another user, so
    /// the bridge refuses to use it: it would otherwise run or read what someone else planted.
    #[error("refusing to use {}: {problem}", path.display())]
    InsecurePath {
        /// The directory or file.
        path: std::path::PathBuf,
        /// What is wrong with it, and how to fix it.
        problem: String,
    },
    /// Local I/O failed.
    #[error("I/O error: {0}")]
    Io(#[from] Arc<std::io::Error>),
}

/// Seconds since the Unix epoch, for messages.
fn humantime_secs(t: std::time::SystemTime) -> String {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or_else(|_| "?".into(), |d| format!("unix time {}", d.as_secs()))
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::Io(Arc::new(e))
    }
}

impl Error {
    /// Whether the same call may succeed if simply made again later, with nothing changed:
    /// a crashed or hung worker (the agent re-opens with its history), a full pool or restart
    /// budget, a busy agent, a timeout, and a model that is rate limited, unreachable, lost its
    /// connection or answered with a 5xx. Configuration, protocol and set-up errors, refusals
    /// and cancellations are not retryable.
    ///
    /// ```
    /// use agy_bridge::Error;
    ///
    /// let crashed = Error::WorkerCrashed { exit_status: None, stderr_tail: String::new() };
    /// assert!(crashed.is_retryable());
    /// assert!(!Error::Cancelled.is_retryable());
    /// ```
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::WorkerCrashed { .. }
            | Self::RestartBudgetExhausted { .. }
            | Self::Capacity { .. }
            | Self::AgentBusy { .. }
            | Self::ConversationBusy { .. }
            | Self::Store { .. }
            | Self::Timeout { .. } => true,
            Self::Agent {
                kind, http_status, ..
            } => match kind {
                AgentErrorKind::Quota
                | AgentErrorKind::ModelUnreachable
                | AgentErrorKind::ConnectionLost => true,
                AgentErrorKind::ModelHttp => http_status.is_some_and(|s| s >= 500 || s == 408),
                _ => false,
            },
            _ => false,
        }
    }
}

/// How the worker classified a failed turn (from the exception class and HTTP status).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AgentErrorKind {
    /// HTTP 429 or RESOURCE_EXHAUSTED.
    Quota,
    /// The context or output token limit was hit.
    MaxTokens,
    /// The model's safety filter blocked the reply.
    Safety,
    /// The model server answered with an HTTP error.
    ModelHttp,
    /// The model server could not be reached.
    ModelUnreachable,
    /// The harness connection was lost.
    ConnectionLost,
    /// The SDK rejected the request (e.g. an empty prompt).
    InvalidRequest,
    /// Another terminal execution error.
    Execution,
    /// An unexpected error inside the worker.
    Internal,
    /// A kind this bridge does not know (a newer worker sent it); logged as a warning with the
    /// kind the worker named.
    #[serde(other)]
    Unknown,
}

impl std::fmt::Display for AgentErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Self::Quota => "quota",
            Self::MaxTokens => "max tokens",
            Self::Safety => "safety",
            Self::ModelHttp => "model HTTP",
            Self::ModelUnreachable => "model unreachable",
            Self::ConnectionLost => "connection lost",
            Self::InvalidRequest => "invalid request",
            Self::Execution => "execution",
            Self::Internal => "internal",
            Self::Unknown => "unknown",
        };
        f.write_str(s)
    }
}

/// Shorthand for `Result<T, agy_bridge::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    fn model_error(kind: AgentErrorKind, http_status: Option<u16>) -> Error {
        Error::Agent {
            kind,
            http_status,
            retry_after: None,
            message: String::new(),
        }
    }

    #[test]
    fn transient_failures_are_retryable_and_refusals_are_not() {
        assert!(model_error(AgentErrorKind::Quota, Some(429)).is_retryable());
        assert!(model_error(AgentErrorKind::ModelHttp, Some(503)).is_retryable());
        assert!(!model_error(AgentErrorKind::ModelHttp, Some(400)).is_retryable());
        assert!(!model_error(AgentErrorKind::Safety, None).is_retryable());
        assert!(
            Error::AgentBusy {
                agent_id: "a".into()
            }
            .is_retryable()
        );
        assert!(
            !Error::InvalidConfig {
                message: String::new()
            }
            .is_retryable()
        );
        assert!(!Error::WorkerStopped.is_retryable());
    }
}
