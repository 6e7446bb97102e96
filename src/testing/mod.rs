//! Test support (feature `testing`): [`ScriptedModel`], a deterministic, offline model server
//! that the real SDK and `localharness` talk to exactly as to a hosted model.

mod scripted_model;

pub use scripted_model::{
    RecordedRequest, Reply, Responder, ScriptedModel, ToolCall, echo_responder,
};
