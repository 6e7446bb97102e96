//! [`Agent`]: a handle to one agent living in a worker, and the whole conversation API.
//!
//! Where it lives and how it re-opens after a worker change is `attach`'s job; a turn started
//! with [`Agent::send`] is collected by `sent_turn`; a streamed turn's routing is `turn`'s.

mod attach;
pub(crate) mod callbacks;
pub(crate) mod context;
pub mod hooks;
pub mod policies;
mod sent_turn;
pub mod tools;
mod turn;
pub(crate) mod user_code;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use tokio::sync::OwnedRwLockReadGuard;
use tracing::Instrument;

pub(crate) use attach::{Attachment, create_on};
use context::AgentContext;
use sent_turn::SentTurn;

use crate::{
    content::Content,
    error::{AgentErrorKind, Error, Result},
    protocol::{
        Method,
        methods::{
            AgentCancel, AgentClearHistory, AgentClose, AgentDisconnect, AgentHistory, AgentSend,
            AgentSignalIdle, AgentState, AgentWaitForIdle, AgentWaitForWakeup,
        },
        wire::{AgentRef, ChatResult, SendParams, WakeupParams},
    },
    quota::QuotaState,
    streaming::ChatResponse,
    types::{ChatOutcome, ConversationState, Step, Usage},
};

/// A handle to an agent. Rust owns its id and directories; the worker only hosts it.
///
/// The conversation API in one place:
///
/// ```no_run
/// # async fn demo(agent: agy_bridge::Agent) -> agy_bridge::Result<()> {
/// use agy_bridge::{ChatEvent, Error};
/// use futures::StreamExt;
///
/// // Streamed turn.
/// let mut reply = agent.chat("Summarize README.md").await?;
/// while let Some(event) = reply.next().await {
///     if let ChatEvent::Text { text } = event {
///         print!("{text}");
///     }
/// }
/// let outcome = reply.finish().await?;
///
/// // Fire and forget, collected later.
/// agent.send("Now translate it to French").await?;
/// let later = agent.wait_for_idle().await?;
///
/// // State of the conversation.
/// let steps = agent.history().await?;
/// let state = agent.conversation_state().await?;
/// println!("{} steps, {} turns, idle: {}", steps.len(), state.turn_count, state.is_idle);
///
/// // A worker crash costs only the turn in flight; the same handle carries on.
/// match agent.chat("Next").await?.finish().await {
///     Err(Error::WorkerCrashed { .. }) => { /* retry: the agent re-opens with its history */ }
///     other => drop(other?),
/// }
/// # let _ = (outcome, later);
/// agent.close().await?;
/// # Ok(()) }
/// ```
pub struct Agent {
    id: String,
    conversation_id: String,
    save_dir: PathBuf,
    app_data_dir: PathBuf,
    context: Arc<AgentContext>,
    attachment: Attachment,
    quota: Arc<QuotaState>,
    closed: AtomicBool,
    /// The last streamed turn: whether its response was dropped, and whether its task ended.
    last_turn: Mutex<Option<turn::LastTurn>>,
    /// The turn started with [`Agent::send`] and not yet collected.
    sent: Mutex<Option<SentTurn>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("id", &self.id)
            .field("conversation_id", &self.conversation_id)
            .field("harness_pid", &self.attachment.harness_pid())
            .finish_non_exhaustive()
    }
}

/// What the bridge hands a newly created agent.
pub(crate) struct AgentParts {
    pub(crate) id: String,
    pub(crate) conversation_id: String,
    pub(crate) save_dir: PathBuf,
    pub(crate) app_data_dir: PathBuf,
    pub(crate) context: Arc<AgentContext>,
    pub(crate) attachment: Attachment,
    pub(crate) quota: Arc<QuotaState>,
}

impl Agent {
    pub(crate) fn new(parts: AgentParts) -> Self {
        Self {
            id: parts.id,
            conversation_id: parts.conversation_id,
            save_dir: parts.save_dir,
            app_data_dir: parts.app_data_dir,
            context: parts.context,
            attachment: parts.attachment,
            quota: parts.quota,
            closed: AtomicBool::new(false),
            last_turn: Mutex::new(None),
            sent: Mutex::new(None),
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

    /// The worker pool the agent runs on.
    #[must_use]
    pub fn pool(&self) -> &str {
        &self.attachment.slot().pool
    }

    /// Pid of the worker process currently hosting the agent.
    #[must_use]
    pub fn worker_pid(&self) -> u32 {
        self.attachment.slot().supervisor.current().process.pid()
    }

    /// Pid of the agent's `localharness` process.
    #[must_use]
    pub fn harness_pid(&self) -> Option<u32> {
        self.attachment.harness_pid()
    }

    /// The live worker this agent is on (re-opening it on a replacement if needed).
    async fn worker(&self) -> Result<Arc<crate::worker::supervisor::Worker>> {
        self.ensure_open()?;
        self.attachment.worker().await
    }

    /// Sends `prompt` (text or [`Content`] parts) and returns the streaming response at once.
    ///
    /// Turns on one agent are serialized by the worker: a second `chat` while one is running
    /// fails with [`Error::AgentBusy`]. If the model's API key is in quota backoff, the turn
    /// first waits it out. `chat` never retries; see [`Agent::chat_with_retry`].
    ///
    /// # Errors
    /// [`Error::UnknownAgent`] after [`Agent::close`]; otherwise errors arrive via
    /// [`ChatResponse::finish`].
    pub async fn chat(&self, prompt: impl Into<Content>) -> Result<ChatResponse> {
        self.settle_abandoned_turn().await;
        let gate = self.attachment.slot().enter().await;
        let worker = self.worker().await?;
        let (response, last) = turn::start(turn::TurnStart {
            agent_id: self.id.clone(),
            prompt: prompt.into().to_wire(),
            gate,
            worker,
            slot: Arc::clone(self.attachment.slot()),
            context: Arc::clone(&self.context),
            quota: Arc::clone(&self.quota),
        });
        *self.last_turn.lock() = Some(last);
        Ok(response)
    }

    /// If the previous turn's response was dropped, waits until its task has ended, so that
    /// its `$/cancelRequest` reaches the worker before the next turn does. A turn whose
    /// response is still held is not waited for (the worker answers `AgentBusy`).
    async fn settle_abandoned_turn(&self) {
        let previous = self.last_turn.lock().clone();
        if let Some(previous) = previous {
            previous.settled().await;
        }
    }

    /// [`Agent::chat`] to the end, retrying up to `max_attempts` times while the model reports
    /// quota exhaustion (each retry waits out the key's backoff). This helper is the only
    /// place the bridge retries.
    ///
    /// ```no_run
    /// # async fn demo(agent: agy_bridge::Agent) -> agy_bridge::Result<()> {
    /// let outcome = agent.chat_with_retry("Classify this ticket", 3).await?;
    /// println!("{}", outcome.text);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// The last error once attempts run out, or any non-quota error at once.
    pub async fn chat_with_retry(
        &self,
        prompt: impl Into<Content>,
        max_attempts: u32,
    ) -> Result<ChatOutcome> {
        let prompt = prompt.into();
        let mut attempt = 1;
        loop {
            match self.chat(prompt.clone()).await?.finish().await {
                Err(Error::Agent {
                    kind: AgentErrorKind::Quota,
                    ..
                }) if attempt < max_attempts => attempt += 1,
                other => return other,
            }
        }
    }

    /// Starts a turn without streaming it (fire-and-forget); [`Agent::wait_for_idle`] returns
    /// its outcome. The turn's steps still go into the history.
    ///
    /// # Errors
    /// [`Error::AgentBusy`] if a turn is running; a worker error.
    pub async fn send(&self, prompt: impl Into<Content>) -> Result<()> {
        self.quota.wait_for_quota().await;
        let params = SendParams {
            agent_id: self.id.clone(),
            prompt: prompt.into().to_wire(),
        };
        let gate = self.attachment.slot().enter().await;
        let worker = self.worker().await?;
        self.request_in_gate::<AgentSend>(&params).await?;
        self.attachment.slot().turn_ended();
        *self.sent.lock() = Some(SentTurn::collect(
            gate,
            worker,
            self.id.clone(),
            self.context.chat_timeout,
            self.context.operation_timeout,
        ));
        Ok(())
    }

    /// Waits until the agent is idle. Returns the outcome of a turn started with
    /// [`Agent::send`], if one was running.
    ///
    /// # Errors
    /// That turn's error.
    pub async fn wait_for_idle(&self) -> Result<Option<ChatOutcome>> {
        let sent = self.sent.lock().as_ref().map(SentTurn::watch);
        let reply = match sent {
            Some(watch) => {
                let outcome = sent_turn::outcome_of(watch.clone()).await;
                let mut current = self.sent.lock();
                if current.as_ref().is_some_and(|s| s.is(&watch)) {
                    *current = None;
                }
                outcome
            }
            // No sent turn: wait for a running (streamed) turn to end.
            None => {
                let _gate = self.enter_unless_sending().await;
                let worker = self.worker().await?;
                worker
                    .process
                    .call::<AgentWaitForIdle>(&self.agent_ref(), self.context.chat_timeout)
                    .await
            }
        };
        track_quota(&self.quota, reply).map(|r| r.map(outcome_from))
    }

    /// Halts the running turn, if any (its `ChatResponse` then ends with [`Error::Cancelled`]).
    /// Rust tools and confirmations in flight for this agent are cancelled too.
    ///
    /// ```no_run
    /// # async fn demo(agent: agy_bridge::Agent) -> agy_bridge::Result<()> {
    /// use std::time::Duration;
    ///
    /// let reply = agent.chat("Write a very long story").await?;
    /// tokio::time::sleep(Duration::from_secs(2)).await;
    /// agent.cancel().await?;
    /// assert!(matches!(reply.finish().await, Err(agy_bridge::Error::Cancelled)));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// A worker error.
    pub async fn cancel(&self) -> Result<bool> {
        // Not gated: a turn waiting to be drained must still be cancellable.
        let reply = self
            .request_in_gate::<AgentCancel>(&self.agent_ref())
            .await?;
        self.sent.lock().take();
        Ok(reply.cancelled)
    }

    /// The conversation history, one [`Step`] per step (its last update).
    ///
    /// # Errors
    /// [`Error::AgentDisconnected`] while disconnected; a worker error.
    pub async fn history(&self) -> Result<Vec<Step>> {
        self.request::<AgentHistory>(&self.agent_ref()).await
    }

    /// Counters, usage, last response and idleness in one round trip.
    ///
    /// # Errors
    /// [`Error::AgentDisconnected`] while disconnected; a worker error.
    pub async fn conversation_state(&self) -> Result<ConversationState> {
        self.request::<AgentState>(&self.agent_ref()).await
    }

    /// Turns sent in this session.
    ///
    /// # Errors
    /// As [`Agent::conversation_state`].
    pub async fn turn_count(&self) -> Result<u32> {
        Ok(self.conversation_state().await?.turn_count)
    }

    /// Usage over the whole conversation.
    ///
    /// # Errors
    /// As [`Agent::conversation_state`].
    pub async fn total_usage(&self) -> Result<Usage> {
        Ok(self
            .conversation_state()
            .await?
            .total_usage
            .unwrap_or_default())
    }

    /// Usage of the last turn.
    ///
    /// # Errors
    /// As [`Agent::conversation_state`].
    pub async fn last_turn_usage(&self) -> Result<Usage> {
        Ok(self
            .conversation_state()
            .await?
            .last_turn_usage
            .unwrap_or_default())
    }

    /// History indices at which compaction happened.
    ///
    /// # Errors
    /// As [`Agent::conversation_state`].
    pub async fn compaction_indices(&self) -> Result<Vec<u32>> {
        Ok(self.conversation_state().await?.compaction_indices)
    }

    /// Text of the last complete reply.
    ///
    /// # Errors
    /// As [`Agent::conversation_state`].
    pub async fn last_response(&self) -> Result<Option<String>> {
        Ok(self.conversation_state().await?.last_response)
    }

    /// Whether no turn is running.
    ///
    /// # Errors
    /// As [`Agent::conversation_state`].
    pub async fn is_idle(&self) -> Result<bool> {
        Ok(self.conversation_state().await?.is_idle)
    }

    /// The last turn's structured output decoded into `T` (set a schema with
    /// [`crate::AgentConfig::response_schema`]).
    ///
    /// ```no_run
    /// # async fn demo(bridge: agy_bridge::Bridge, model: agy_bridge::ModelConfig) -> agy_bridge::Result<()> {
    /// #[derive(serde::Deserialize, schemars::JsonSchema)]
    /// struct Verdict {
    ///     approve: bool,
    ///     reason: String,
    /// }
    ///
    /// let agent = bridge
    ///     .create_agent(agy_bridge::AgentConfig::new(model).response_schema::<Verdict>())
    ///     .await?;
    /// agent.chat("Review this change: ...").await?.finish().await?;
    /// if let Some(verdict) = agent.structured_output::<Verdict>().await? {
    ///     println!("approve: {} ({})", verdict.approve, verdict.reason);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::Protocol`] if the output does not fit `T`; as [`Agent::conversation_state`].
    pub async fn structured_output<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        self.conversation_state()
            .await?
            .structured_output
            .map(|v| {
                serde_json::from_value(v)
                    .map_err(|e| Error::Protocol(format!("structured output does not fit: {e}")))
            })
            .transpose()
    }

    /// Clears the local history (the model's context is unchanged, as in the SDK).
    ///
    /// # Errors
    /// A worker error.
    pub async fn clear_history(&self) -> Result<()> {
        self.request::<AgentClearHistory>(&self.agent_ref()).await?;
        Ok(())
    }

    /// Ends the live session and stops its harness (~190 MiB) but keeps the agent and its
    /// persisted conversation: the next turn resumes it, tools, hooks and policies included.
    ///
    /// # Errors
    /// A worker error.
    pub async fn disconnect(&self) -> Result<()> {
        self.request::<AgentDisconnect>(&self.agent_ref()).await?;
        Ok(())
    }

    /// Waits up to `timeout` for the agent to start a turn on its own (a trigger or a
    /// scheduled task). Its steps are in the history when this returns `true`.
    ///
    /// # Errors
    /// A worker error.
    pub async fn wait_for_wakeup(&self, timeout: std::time::Duration) -> Result<bool> {
        let params = WakeupParams {
            agent_id: self.id.clone(),
            timeout_secs: timeout.as_secs_f64(),
        };
        let _gate = self.enter_unless_sending().await;
        self.worker()
            .await?
            .process
            .call::<AgentWaitForWakeup>(&params, timeout + self.context.operation_timeout)
            .await
    }

    /// Declares the agent idle: a turn it started on its own is halted and pending wake-ups
    /// are forgotten. (The SDK has no such call; this is the bridge's definition.)
    ///
    /// # Errors
    /// A worker error.
    pub async fn signal_idle(&self) -> Result<()> {
        self.request::<AgentSignalIdle>(&self.agent_ref()).await?;
        self.sent.lock().take();
        Ok(())
    }

    /// Closes the agent and deletes its persisted conversation (database and harness files).
    /// A new agent can never resume it.
    ///
    /// # Errors
    /// A worker error, or a file that could not be removed.
    pub async fn delete(self) -> Result<()> {
        let files = conversation_files(&self.save_dir, &self.app_data_dir, &self.conversation_id);
        self.close().await?;
        for path in files {
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match removed {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Closes the agent in the background without waiting (for `Drop` paths and shutdown
    /// hooks); does nothing without a tokio runtime.
    pub fn try_shutdown(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        self.sent.lock().take();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let slot = Arc::clone(self.attachment.slot());
            let params = self.agent_ref();
            let timeout = self.context.operation_timeout;
            handle.spawn(async move {
                let worker = slot.supervisor.current();
                if !worker.process.peer().is_closed() {
                    let _ = worker.process.call::<AgentClose>(&params, timeout).await;
                }
                slot.router.remove_agent(&params.agent_id);
            });
        }
    }

    /// Stops the agent and its harness. The conversation stays on disk.
    ///
    /// # Errors
    /// A worker error.
    pub async fn close(self) -> Result<()> {
        self.closed.store(true, Ordering::SeqCst);
        self.sent.lock().take();
        let slot = self.attachment.slot();
        let worker = slot.supervisor.current();
        // An agent whose worker died has no session left to close.
        let result = if worker.process.peer().is_closed() || !self.attachment.is_on(&worker) {
            Ok(())
        } else {
            worker
                .process
                .call::<AgentClose>(&self.agent_ref(), self.context.operation_timeout)
                .await
                .map(drop)
        };
        slot.router.remove_agent(&self.id);
        result
    }

    fn ensure_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::UnknownAgent {
                agent_id: self.id.clone(),
            });
        }
        Ok(())
    }

    fn agent_ref(&self) -> AgentRef {
        AgentRef {
            agent_id: self.id.clone(),
        }
    }

    /// Holds off recycling, unless a running [`Agent::send`] turn already does (waiting then
    /// could deadlock: the recycle waits for that turn, which may wait for this call).
    async fn enter_unless_sending(&self) -> Option<OwnedRwLockReadGuard<()>> {
        if self.sent.lock().as_ref().is_some_and(SentTurn::is_running) {
            return None;
        }
        Some(self.attachment.slot().enter().await)
    }

    /// A call to the agent's worker, holding off recycling until it is answered.
    async fn request<M: Method>(&self, params: &M::Params) -> Result<M::Result> {
        let _gate = self.enter_unless_sending().await;
        self.request_in_gate::<M>(params).await
    }

    /// A call to the agent's worker; the caller decides about the recycling gate.
    async fn request_in_gate<M: Method>(&self, params: &M::Params) -> Result<M::Result> {
        let span = tracing::debug_span!("agent_call", agent = %self.id, method = M::NAME);
        async {
            self.worker()
                .await?
                .process
                .call::<M>(params, self.context.operation_timeout)
                .await
        }
        .instrument(span)
        .await
    }
}

/// Records quota hits and model successes for the agent's API key.
pub(crate) fn track_quota<T>(quota: &QuotaState, reply: Result<T>) -> Result<T> {
    match &reply {
        Ok(_) => quota.record_success(),
        Err(Error::Agent {
            kind: AgentErrorKind::Quota,
            retry_after,
            ..
        }) => {
            quota.record_hit(*retry_after);
        }
        Err(_) => {}
    }
    reply
}

pub(crate) fn outcome_from(result: ChatResult) -> ChatOutcome {
    ChatOutcome {
        text: result.text,
        usage: result.usage,
        stop_reason: result.stop_reason,
        structured_output: result.structured_output,
    }
}

/// The files the SDK keeps for one conversation.
fn conversation_files(save_dir: &Path, app_data_dir: &Path, conversation_id: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["db", "db-wal", "db-shm"]
        .iter()
        .map(|ext| save_dir.join(format!("{conversation_id}.{ext}")))
        .collect();
    files.push(app_data_dir.join("brain").join(conversation_id));
    files
}

impl Drop for Agent {
    /// An agent dropped without [`Agent::close`] is closed in the background when a runtime is
    /// available (its worker going away also ends it).
    fn drop(&mut self) {
        self.try_shutdown();
    }
}
