//! Configuration: the bridge's runtime knobs ([`BridgeConfig`]), agents ([`AgentConfig`]) and
//! models ([`ModelConfig`]), each in a module of its own, lowered to the wire types of
//! [`crate::protocol`] when an agent is created.

mod agent;
mod bridge;
mod model;

use std::path::PathBuf;

pub use agent::AgentConfig;
#[cfg(feature = "otel")]
pub use bridge::WorkerTracing;
pub use bridge::{
    BridgeConfig, DEFAULT_CONVERSATIONS_PER_HARNESS, ENV_CHAT_TIMEOUT, ENV_CHAT_TIMEOUT_ALIAS,
};
pub use model::{ENV_GEMINI_API_KEY, ModelConfig};

/// The data directory used when [`BridgeConfig::data_dir`] is not set: `agy-bridge` under the
/// user's local data directory (e.g. `~/.local/share/agy-bridge`).
#[must_use]
pub fn default_data_dir() -> PathBuf {
    dirs::data_local_dir().map_or_else(
        || std::env::temp_dir().join("agy-bridge-data"),
        |d| d.join("agy-bridge"),
    )
}
