//! [`Agent`]: a handle to one agent living in a worker.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use crate::{
    bridge::BridgeInner,
    error::{Error, Result},
    protocol::{self, AgentRef, ChatParams, ChatResult, methods},
    streaming::ChatResponse,
    types::ChatOutcome,
};

/// A handle to an agent. Rust owns its id and directories; the worker only hosts it.
pub struct Agent {
    id: String,
    conversation_id: String,
    save_dir: PathBuf,
    app_data_dir: PathBuf,
    harness_pid: Option<u32>,
    bridge: Arc<BridgeInner>,
    closed: AtomicBool,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("id", &self.id)
            .field("conversation_id", &self.conversation_id)
            .field("harness_pid", &self.harness_pid)
            .finish_non_exhaustive()
    }
}

/// Removes the turn's event route however the chat task ends (finished, failed, aborted).
struct TurnRoute {
    bridge: Arc<BridgeInner>,
    key: (String, u64),
}

impl Drop for TurnRoute {
    fn drop(&mut self) {
        self.bridge.router.close_turn(&self.key);
    }
}

impl Agent {
    pub(crate) const fn new(
        id: String,
        conversation_id: String,
        save_dir: PathBuf,
        app_data_dir: PathBuf,
        harness_pid: Option<u32>,
        bridge: Arc<BridgeInner>,
    ) -> Self {
        Self {
            id,
            conversation_id,
            save_dir,
            app_data_dir,
            harness_pid,
            bridge,
            closed: AtomicBool::new(false),
        }
    }

    /// The bridge-assigned agent id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The conversation id (persisted; used to resume the conversation).
    #[must_use]
    pub fn conversation_id(&self) -> &str {
        &self.conversation_id
    }

    /// Where the conversation database lives.
    #[must_use]
    pub fn save_dir(&self) -> &Path {
        &self.save_dir
    }

    /// The harness's application data directory.
    #[must_use]
    pub fn app_data_dir(&self) -> &Path {
        &self.app_data_dir
    }

    /// Pid of the agent's `localharness` process.
    #[must_use]
    pub const fn harness_pid(&self) -> Option<u32> {
        self.harness_pid
    }

    /// Sends `prompt` and returns the streaming response at once.
    ///
    /// Turns on one agent are serialized by the worker: a second `chat` while one is running
    /// fails with [`Error::AgentBusy`]. `chat` never retries on its own.
    ///
    /// # Errors
    /// [`Error::UnknownAgent`] after [`Agent::close`]; otherwise errors arrive via
    /// [`ChatResponse::finish`].
    pub async fn chat(&self, prompt: impl Into<String>) -> Result<ChatResponse> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::UnknownAgent {
                agent_id: self.id.clone(),
            });
        }
        let prompt = prompt.into();
        let turn_id = self.bridge.next_turn.fetch_add(1, Ordering::Relaxed);
        let key = (self.id.clone(), turn_id);
        let events = self.bridge.router.open_turn(key.clone());
        let route = TurnRoute {
            bridge: Arc::clone(&self.bridge),
            key,
        };
        let task = tokio::spawn(async move {
            let route = route;
            let bridge = &route.bridge;
            let params = ChatParams {
                agent_id: &route.key.0,
                turn_id,
                prompt: &prompt,
            };
            let reply = bridge
                .worker
                .peer()
                .call_timeout(methods::AGENT_CHAT, params, bridge.config.chat_timeout)
                .await
                .map_err(protocol::refine_error)?;
            let result: ChatResult = serde_json::from_value(reply)
                .map_err(|e| Error::Protocol(format!("bad agent/chat result: {e}")))?;
            Ok(ChatOutcome {
                text: result.text,
                usage: result.usage,
                stop_reason: result.stop_reason,
            })
        });
        Ok(ChatResponse::new(events, task))
    }

    /// Stops the agent and its harness. The conversation stays on disk.
    ///
    /// # Errors
    /// A worker error.
    pub async fn close(self) -> Result<()> {
        self.closed.store(true, Ordering::SeqCst);
        let result = self
            .bridge
            .worker
            .peer()
            .call_timeout(
                methods::AGENT_CLOSE,
                AgentRef { agent_id: &self.id },
                self.bridge.config.operation_timeout,
            )
            .await
            .map_err(protocol::refine_error);
        self.bridge.router.remove_agent(&self.id);
        result?;
        Ok(())
    }
}

impl Drop for Agent {
    /// An agent dropped without [`Agent::close`] is closed in the background when a runtime is
    /// available (its worker going away also ends it).
    fn drop(&mut self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let bridge = Arc::clone(&self.bridge);
            let id = std::mem::take(&mut self.id);
            handle.spawn(async move {
                let _ = bridge
                    .worker
                    .peer()
                    .call(methods::AGENT_CLOSE, AgentRef { agent_id: &id })
                    .await;
                bridge.router.remove_agent(&id);
            });
        }
    }
}
