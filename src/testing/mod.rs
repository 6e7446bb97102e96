//! Test support (feature `testing`): [`ScriptedModel`], a deterministic, offline model server
//! that the real SDK and `localharness` talk to exactly as to a hosted model.

mod scripted_model;

pub use scripted_model::{
    RecordedRequest, Reply, Responder, ScriptedModel, ToolCall, echo_responder,
};

/// The bridge's JSON-RPC peer, for benchmarks that measure it against other peers (the
/// benchmarks' plain asyncio baseline). Not a stable API.
#[doc(hidden)]
pub mod rpc {
    pub use crate::rpc::{CallError, CloseReason, Handler, OnClose, Peer, PeerConfig, RpcError};
}
