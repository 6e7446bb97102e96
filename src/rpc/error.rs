//! Why a call failed, as the rpc layer sees it. The crate maps this into its own `Error` at the
//! boundary (`protocol.rs`); this layer knows nothing about agents or workers.

use std::{sync::Arc, time::Duration};

use super::message::RpcError;

/// The reason a connection was closed, supplied by whoever owns the transport (for a worker:
/// its exit status and stderr tail). Shared by every call the close fails.
pub type CloseReason = Arc<dyn std::error::Error + Send + Sync>;

/// A failed call.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// The connection is closed (or closed while the call was pending).
    #[error("{0}")]
    Closed(CloseReason),
    /// The request, or its answer, was larger than a side's limit. Only this call failed.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the message in bytes.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// No answer within the deadline; the request was cancelled at the peer.
    #[error("{method} timed out after {timeout:?}")]
    Timeout {
        /// The method called.
        method: String,
        /// The deadline.
        timeout: Duration,
    },
    /// The peer cancelled the request (answered `-32800`).
    #[error("the request was cancelled")]
    Cancelled,
    /// The peer answered with an error.
    #[error("remote error {}: {}", .0.code, .0.message)]
    Remote(RpcError),
    /// The peer answered, but the answer was lost in a corrupted stretch of its output (stray
    /// bytes merged with it). Whether the request took effect is unknown.
    #[error(
        "the answer to request {id} was lost: the peer's output stream was corrupted (stray bytes merged with it)"
    )]
    Lost {
        /// The request id.
        id: u64,
    },
    /// The params could not be encoded.
    #[error("cannot encode the params of {method}: {message}")]
    Encode {
        /// The method.
        method: String,
        /// The encoder's message.
        message: String,
    },
}
