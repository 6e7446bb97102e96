//! Plain data types shared by the API and the protocol.

use serde::{Deserialize, Serialize};

/// One streamed event of a chat turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChatEvent {
    /// A piece of the reply text.
    Text {
        /// The delta.
        text: String,
    },
    /// A piece of the model's visible reasoning.
    Thought {
        /// The delta.
        text: String,
    },
    /// The model asked for a tool call.
    ToolCall {
        /// Call id assigned by the harness.
        id: Option<String>,
        /// Tool name.
        name: String,
        /// Arguments as the model sent them.
        args: serde_json::Value,
    },
}

/// Token usage as reported by the SDK. Fields are `None` when the model did not report them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt (input) tokens.
    pub prompt_tokens: Option<u64>,
    /// Prompt tokens served from cache.
    pub cached_tokens: Option<u64>,
    /// Output tokens.
    pub output_tokens: Option<u64>,
    /// Reasoning tokens.
    pub thoughts_tokens: Option<u64>,
    /// Total tokens.
    pub total_tokens: Option<u64>,
}

/// The result of a finished turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatOutcome {
    /// The full reply text.
    pub text: String,
    /// Token usage of this turn.
    pub usage: Option<Usage>,
    /// Why the turn stopped, as the SDK names it (e.g. `UNSPECIFIED`, `MAX_MODEL_CALLS_EXCEEDED`).
    pub stop_reason: String,
}
