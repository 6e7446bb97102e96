//! A small, generic, symmetric JSON-RPC 2.0 peer over NDJSON. It knows nothing about agents.
//!
//! Why not jsonrpsee: its client cannot answer server→client requests and treats any stray line
//! as fatal, and its `RpcModule` adds a channel per call for dispatch we do with one `match`.
//! See `docs/architecture.md`.

// The peer's `pub` items are public API only through `testing::rpc` (the benchmarks).
#![cfg_attr(not(feature = "testing"), allow(unreachable_pub))]

mod error;
mod framing;
mod message;
mod peer;

pub use error::{CallError, CloseReason};
pub use message::RpcError;
pub(crate) use message::codes;
#[cfg(test)]
pub(crate) use peer::ANSWERED_METHOD;
#[cfg(test)]
pub(crate) use peer::CANCEL_METHOD;
pub(crate) use peer::DEFAULT_MAX_MESSAGE_SIZE;
pub(crate) use peer::panic_message;
pub use peer::{Handler, OnClose, Peer, PeerConfig};
