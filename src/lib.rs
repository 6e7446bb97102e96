//! # agy-bridge
//!
//! Run [Google Antigravity](https://pypi.org/project/google-antigravity/) agents from Rust.
//! The SDK exists only in Python, so agy-bridge runs it **out of process**: it creates a
//! managed Python venv on first use, starts a worker (`python -m agy_worker`) and speaks
//! JSON-RPC 2.0 over the worker's stdin/stdout. Nothing links libpython; a crashed worker
//! fails only the requests in flight, with its exit status and stderr.
//!
//! ```no_run
//! use agy_bridge::{AgentConfig, Bridge, BridgeConfig, ChatEvent, ModelConfig};
//! use futures::StreamExt;
//!
//! # async fn demo() -> agy_bridge::Result<()> {
//! let bridge = Bridge::start(BridgeConfig::default()).await?;
//! let model = ModelConfig::openai_compatible("http://127.0.0.1:11434/v1", "llama3");
//! let agent = bridge.create_agent(AgentConfig::new(model)).await?;
//! let mut reply = agent.chat("What is 2 + 2?").await?;
//! while let Some(event) = reply.next().await {
//!     if let ChatEvent::Text { text } = event {
//!         print!("{text}");
//!     }
//! }
//! let outcome = reply.finish().await?;
//! println!("\n({:?} tokens)", outcome.usage.and_then(|u| u.total_tokens));
//! agent.close().await?;
//! bridge.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! See `docs/architecture.md` for the design and `docs/protocol.md` for the wire protocol.

// Lets `#[llm_tool]`'s generated `::agy_bridge::…` paths resolve inside this crate too.
extern crate self as agy_bridge;

mod agent;
mod bridge;
mod config;
mod content;
mod error;
mod gateway;
#[cfg(test)]
mod layering;
mod metrics;
mod pricing;
mod protocol;
mod quota;
mod rpc;
pub mod sdk_config;
mod secure_dir;
mod store;
mod streaming;
mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
mod types;
mod worker;

pub use agent::{Agent, hooks, policies, tools};
pub use agy_bridge_macros::llm_tool;
pub use bridge::Bridge;
#[cfg(feature = "otel")]
pub use config::WorkerTracing;
pub use config::{
    AgentConfig, BridgeConfig, DEFAULT_CONVERSATIONS_PER_HARNESS, ENV_CHAT_TIMEOUT,
    ENV_CHAT_TIMEOUT_ALIAS, ENV_GEMINI_API_KEY, ModelConfig, default_data_dir,
};
pub use content::{Content, Part, SlashCommand, Workflow};
pub use error::{AgentErrorKind, Error, Result};
pub use gateway::ModelRetry;
pub use hooks::Hooks;
pub use policies::{PolicyRule, PolicySet};
pub use pricing::{Price, PriceTable};
pub use protocol::SDK_VERSION;
pub use protocol::wire::{AgentBehavior, WorkerInfo};
pub use quota::{QuotaRegistry, QuotaState};
pub use sdk_config::BuiltinTool;
pub use secrecy::SecretString;
pub use store::{ConversationInfo, StoreConfig};
pub use streaming::ChatResponse;
pub use tools::{FnTool, Tool, ToolContext, ToolError};
pub use types::{
    ChatEvent, ChatOutcome, ConversationState, SandboxStatus, SelfStartedTurn, Step, StepToolCall,
    Usage, WorkflowProgress,
};
pub use worker::{
    StartupTimings,
    child_env::EnvVars,
    pool::{DEFAULT_POOL, PoolConfig, PoolStats, RecyclePolicy, WorkerStats},
    supervisor::RestartPolicy,
};

/// The managed Python environment: where it lives, how it is built, checked and cleaned up
/// (what `agy-bridge setup`, `doctor` and `gc` use). [`Bridge::start`] does all of this on its
/// own; call these to prepare a host ahead of time.
pub mod setup {
    pub use crate::worker::venv::{
        ENV_BASE_PYTHON, ENV_CACHE_DIR, ENV_PYTHON, ENV_WHEELHOUSE, PythonConfig, PythonEnv,
        SetupEvent, SetupProgress, VenvStatus, cache_dir, download_wheels, ensure, ensure_blocking,
        inspect, repair, stale_entries, verify,
    };
}

pub use setup::{PythonConfig, SetupEvent};

/// The README's Rust examples, compiled by `cargo test --doc` so they stay copy-pasteable.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// Re-exports and helpers used by code that `#[llm_tool]` generates. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::agent::tools::macro_support::{parse_args, result_output, value_output};
    pub use futures::future::BoxFuture;
    pub use schemars;
    pub use serde;
    pub use serde_json;
    pub use tokio;
}
