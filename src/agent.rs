//! [`Agent`]: a handle to one agent living in a worker.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::{OwnedRwLockReadGuard, oneshot, watch};
use tracing::Instrument;

use crate::{
    bridge::BridgeInner,
    content::Content,
    error::{AgentErrorKind, Error, Result},
    pool::Slot,
    protocol::{self, AgentRef, ChatParams, ChatResult, methods},
    quota::QuotaState,
    streaming::ChatResponse,
    supervisor::Worker,
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
    harness_pid: std::sync::Mutex<Option<u32>>,
    bridge: Arc<BridgeInner>,
    /// The worker slot the agent is placed on.
    slot: Arc<Slot>,
    quota: Arc<QuotaState>,
    closed: AtomicBool,
    /// The `agent/create` config, replayed (resuming the conversation) on a replacement worker.
    wire: Value,
    /// The worker generation this agent lives on.
    generation: AtomicU64,
    reattach: tokio::sync::Mutex<()>,
    /// The last turn: whether its response was dropped, and whether its task has ended.
    last_turn: std::sync::Mutex<Option<(Arc<AtomicBool>, watch::Receiver<bool>)>>,
    /// The turn started with [`Agent::send`] and not yet collected (see [`collect_sent_turn`]).
    sent: Arc<std::sync::Mutex<SentTurn>>,
}

/// A turn started with [`Agent::send`]: a background task waits for its outcome on the worker
/// it runs on, holding off recycling of that worker meanwhile, and keeps the outcome (or the
/// worker's crash) here until [`Agent::wait_for_idle`] takes it. So neither a recycle nor a
/// crash loses it.
#[derive(Default)]
struct SentTurn {
    /// Dropping it stops the background task and releases the recycling gate.
    release: Option<oneshot::Sender<()>>,
    /// The turn's `agent/wait_for_idle` reply, once the task has it.
    result: Option<Result<Value>>,
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

/// What the bridge knows about a newly created agent.
pub(crate) struct AgentSeed {
    pub(crate) id: String,
    pub(crate) conversation_id: String,
    pub(crate) save_dir: PathBuf,
    pub(crate) app_data_dir: PathBuf,
    pub(crate) harness_pid: Option<u32>,
    /// The `agent/create` config.
    pub(crate) wire: Value,
    /// The worker generation it was created on.
    pub(crate) generation: u64,
}

/// Removes the turn's event route however the chat task ends (finished, failed, aborted), and
/// then reports the task's end. Declared first in the task, it is dropped last: after the
/// pending call, whose drop sends `$/cancelRequest`.
struct TurnRoute {
    bridge: Arc<BridgeInner>,
    slot: Arc<Slot>,
    key: (String, u64),
    done: watch::Sender<bool>,
}

impl Drop for TurnRoute {
    fn drop(&mut self) {
        self.slot.router.close_turn(&self.key);
        let _ = self.done.send(true);
    }
}

impl Agent {
    pub(crate) fn new(
        seed: AgentSeed,
        bridge: Arc<BridgeInner>,
        slot: Arc<Slot>,
        quota: Arc<QuotaState>,
    ) -> Self {
        Self {
            id: seed.id,
            conversation_id: seed.conversation_id,
            save_dir: seed.save_dir,
            app_data_dir: seed.app_data_dir,
            harness_pid: std::sync::Mutex::new(seed.harness_pid),
            bridge,
            slot,
            quota,
            closed: AtomicBool::new(false),
            wire: seed.wire,
            generation: AtomicU64::new(seed.generation),
            reattach: tokio::sync::Mutex::new(()),
            last_turn: std::sync::Mutex::new(None),
            sent: Arc::default(),
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
        &self.slot.pool
    }

    /// Pid of the worker process currently hosting the agent.
    #[must_use]
    pub fn worker_pid(&self) -> u32 {
        self.slot.supervisor.current().process.pid()
    }

    /// Pid of the agent's `localharness` process.
    #[must_use]
    pub fn harness_pid(&self) -> Option<u32> {
        *self
            .harness_pid
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The live worker this agent is on. After a worker crash this starts a replacement (see
    /// [`crate::supervisor`]) and re-opens the agent there: same id, config, tools, hooks and
    /// policies, and its persisted conversation (the history survives; only the turn that was
    /// in flight was lost).
    async fn attached(&self) -> Result<Arc<Worker>> {
        self.ensure_open()?;
        let worker = self.slot.supervisor.live().await?;
        if worker.generation == self.generation.load(Ordering::SeqCst) {
            return Ok(worker);
        }
        let _guard = self.reattach.lock().await;
        let worker = self.slot.supervisor.live().await?;
        if worker.generation == self.generation.load(Ordering::SeqCst) {
            return Ok(worker);
        }
        tracing::info!(agent = %self.id, generation = worker.generation, "re-opening the agent on a new worker");
        let created = create_on(
            &worker,
            &self.id,
            &self.wire,
            self.bridge.config.operation_timeout,
        )
        .await?;
        *self
            .harness_pid
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = created.harness_pid;
        self.generation.store(worker.generation, Ordering::SeqCst);
        Ok(worker)
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
        let gate = self.slot.enter().await;
        let worker = self.attached().await?;
        let prompt = prompt.into().to_wire();
        let turn_id = self.bridge.next_turn.fetch_add(1, Ordering::Relaxed);
        let key = (self.id.clone(), turn_id);
        let events = self.slot.router.open_turn(key.clone());
        let (done, done_rx) = watch::channel(false);
        let abandoned = Arc::new(AtomicBool::new(false));
        *self
            .last_turn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((Arc::clone(&abandoned), done_rx));
        let route = TurnRoute {
            bridge: Arc::clone(&self.bridge),
            slot: Arc::clone(&self.slot),
            key,
            done,
        };
        let quota = Arc::clone(&self.quota);
        let span =
            tracing::info_span!("turn", agent = %self.id, turn = turn_id, pool = %self.slot.pool);
        let task = tokio::spawn(
            async move {
                let route = route;
                let _gate = gate;
                let bridge = &route.bridge;
                quota.wait_for_quota().await;
                bridge.pace_turn().await;
                let params = ChatParams {
                    agent_id: &route.key.0,
                    turn_id,
                    prompt: &prompt,
                };
                let reply = worker
                    .process
                    .peer()
                    .call_timeout(methods::AGENT_CHAT, params, bridge.config.chat_timeout)
                    .await
                    .map_err(protocol::refine_error);
                route.slot.turn_ended();
                let reply = track_quota(&quota, reply)?;
                outcome_from(reply)
            }
            .instrument(span),
        );
        Ok(ChatResponse::new(events, task, abandoned))
    }

    /// If the previous turn's response was dropped, waits until its task has ended, so that
    /// its `$/cancelRequest` reaches the worker before the next turn does. A turn whose
    /// response is still held is not waited for (the worker answers `AgentBusy`).
    async fn settle_abandoned_turn(&self) {
        let previous = self
            .last_turn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some((abandoned, mut done)) = previous
            && abandoned.load(Ordering::SeqCst)
        {
            let _ = done.wait_for(|d| *d).await;
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
        let prompt = prompt.into().to_wire();
        let gate = self.slot.enter().await;
        let worker = self.attached().await?;
        self.request_in_gate::<Value>(
            methods::AGENT_SEND,
            json!({"agent_id": self.id, "prompt": prompt}),
        )
        .await?;
        self.slot.turn_ended();
        // Locked while the task starts, so it cannot report before `release` is in place.
        let mut sent = self.lock_sent();
        let release = collect_sent_turn(
            gate,
            worker,
            self.id.clone(),
            Arc::clone(&self.sent),
            self.bridge.config.chat_timeout,
        );
        *sent = SentTurn {
            release: Some(release),
            result: None,
        };
        Ok(())
    }

    /// Waits until the agent is idle. Returns the outcome of a turn started with
    /// [`Agent::send`], if one was running.
    ///
    /// # Errors
    /// That turn's error.
    pub async fn wait_for_idle(&self) -> Result<Option<ChatOutcome>> {
        let collected = self.lock_sent().result.take();
        let reply = match collected {
            Some(reply) => reply,
            None => {
                let _gate = self.enter_unless_sending().await;
                self.attached()
                    .await?
                    .process
                    .peer()
                    .call_timeout(
                        methods::AGENT_WAIT_FOR_IDLE,
                        self.agent_ref(),
                        self.bridge.config.chat_timeout,
                    )
                    .await
                    .map_err(protocol::refine_error)
            }
        };
        // One lock for both: with `release` gone the task stores nothing more. What it stored
        // meanwhile wins unless it is the empty answer a waiter gets once the other took the
        // outcome (the worker hands a finished sent turn's outcome out only once).
        let reply = {
            let mut sent = self.lock_sent();
            sent.release.take();
            match sent.result.take() {
                None | Some(Ok(Value::Null)) => reply,
                Some(stored) => stored,
            }
        };
        match track_quota(&self.quota, reply)? {
            Value::Null => Ok(None),
            reply => outcome_from(reply).map(Some),
        }
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
        let reply: Value = self
            .request_in_gate(methods::AGENT_CANCEL, self.agent_ref())
            .await?;
        self.lock_sent().release.take();
        Ok(reply["cancelled"].as_bool().unwrap_or(false))
    }

    /// The conversation history, one [`Step`] per step (its last update).
    ///
    /// # Errors
    /// [`Error::AgentDisconnected`] while disconnected; a worker error.
    pub async fn history(&self) -> Result<Vec<Step>> {
        self.request(methods::AGENT_HISTORY, self.agent_ref()).await
    }

    /// Counters, usage, last response and idleness in one round trip.
    ///
    /// # Errors
    /// [`Error::AgentDisconnected`] while disconnected; a worker error.
    pub async fn conversation_state(&self) -> Result<ConversationState> {
        self.request(methods::AGENT_STATE, self.agent_ref()).await
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
        self.request::<Value>(methods::AGENT_CLEAR_HISTORY, self.agent_ref())
            .await?;
        Ok(())
    }

    /// Ends the live session and stops its harness (~190 MiB) but keeps the agent and its
    /// persisted conversation: the next turn resumes it, tools, hooks and policies included.
    ///
    /// # Errors
    /// A worker error.
    pub async fn disconnect(&self) -> Result<()> {
        self.request::<Value>(methods::AGENT_DISCONNECT, self.agent_ref())
            .await?;
        Ok(())
    }

    /// Waits up to `timeout` for the agent to start a turn on its own (a trigger or a
    /// scheduled task). Its steps are in the history when this returns `true`.
    ///
    /// # Errors
    /// A worker error.
    pub async fn wait_for_wakeup(&self, timeout: std::time::Duration) -> Result<bool> {
        let params = json!({"agent_id": self.id, "timeout_secs": timeout.as_secs_f64()});
        let _gate = self.enter_unless_sending().await;
        let reply: Value = self
            .attached()
            .await?
            .process
            .peer()
            .call_timeout(
                methods::AGENT_WAIT_FOR_WAKEUP,
                params,
                timeout + self.bridge.config.operation_timeout,
            )
            .await
            .map_err(protocol::refine_error)?;
        Ok(reply.as_bool().unwrap_or(false))
    }

    /// Declares the agent idle: a turn it started on its own is halted and pending wake-ups
    /// are forgotten. (The SDK has no such call; this is the bridge's definition.)
    ///
    /// # Errors
    /// A worker error.
    pub async fn signal_idle(&self) -> Result<()> {
        self.request::<Value>(methods::AGENT_SIGNAL_IDLE, self.agent_ref())
            .await?;
        self.lock_sent().release.take();
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
        self.lock_sent().release.take();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let slot = Arc::clone(&self.slot);
            let id = self.id.clone();
            handle.spawn(async move {
                let worker = slot.supervisor.current();
                if !worker.process.peer().is_closed() {
                    let _ = worker
                        .process
                        .peer()
                        .call(methods::AGENT_CLOSE, AgentRef { agent_id: &id })
                        .await;
                }
                slot.router.remove_agent(&id);
            });
        }
    }

    /// Stops the agent and its harness. The conversation stays on disk.
    ///
    /// # Errors
    /// A worker error.
    pub async fn close(self) -> Result<()> {
        self.closed.store(true, Ordering::SeqCst);
        self.lock_sent().release.take();
        let worker = self.slot.supervisor.current();
        // An agent whose worker died has no session left to close.
        let result = if worker.process.peer().is_closed()
            || worker.generation != self.generation.load(Ordering::SeqCst)
        {
            Ok(Value::Null)
        } else {
            worker
                .process
                .peer()
                .call_timeout(
                    methods::AGENT_CLOSE,
                    AgentRef { agent_id: &self.id },
                    self.bridge.config.operation_timeout,
                )
                .await
                .map_err(protocol::refine_error)
        };
        self.slot.router.remove_agent(&self.id);
        result?;
        Ok(())
    }

    fn ensure_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::UnknownAgent {
                agent_id: self.id.clone(),
            });
        }
        Ok(())
    }

    fn agent_ref(&self) -> Value {
        json!({ "agent_id": self.id })
    }

    fn lock_sent(&self) -> std::sync::MutexGuard<'_, SentTurn> {
        lock_sent(&self.sent)
    }

    /// Holds off recycling, unless a running [`Agent::send`] turn already does (waiting then
    /// could deadlock: the recycle waits for that turn, which may wait for this call).
    async fn enter_unless_sending(&self) -> Option<OwnedRwLockReadGuard<()>> {
        if self
            .lock_sent()
            .release
            .as_ref()
            .is_some_and(|s| !s.is_closed())
        {
            return None;
        }
        Some(self.slot.enter().await)
    }

    /// A call to the agent's worker, holding off recycling until it is answered.
    async fn request<R: DeserializeOwned>(&self, method: &str, params: Value) -> Result<R> {
        let _gate = self.enter_unless_sending().await;
        self.request_in_gate(method, params).await
    }

    /// A call to the agent's worker; the caller decides about the recycling gate.
    async fn request_in_gate<R: DeserializeOwned>(&self, method: &str, params: Value) -> Result<R> {
        let span = tracing::debug_span!("agent_call", agent = %self.id, %method);
        let reply = async {
            self.attached()
                .await?
                .process
                .peer()
                .call_timeout(method, params, self.bridge.config.operation_timeout)
                .await
                .map_err(protocol::refine_error)
        }
        .instrument(span)
        .await?;
        serde_json::from_value(reply)
            .map_err(|e| Error::Protocol(format!("bad {method} result: {e}")))
    }
}

/// Sends `agent/create` for `agent_id` to `worker` (first start, or re-opening after failover).
pub(crate) async fn create_on(
    worker: &Worker,
    agent_id: &str,
    config: &Value,
    timeout: std::time::Duration,
) -> Result<protocol::AgentCreateResult> {
    let params = protocol::AgentCreateParams { agent_id, config };
    let reply = worker
        .process
        .peer()
        .call_timeout(methods::AGENT_CREATE, params, timeout)
        .await
        .map_err(protocol::refine_error)?;
    serde_json::from_value(reply)
        .map_err(|e| Error::Protocol(format!("bad agent/create result: {e}")))
}

fn lock_sent(sent: &std::sync::Mutex<SentTurn>) -> std::sync::MutexGuard<'_, SentTurn> {
    sent.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Waits on `worker` for the outcome of a turn started with [`Agent::send`] and stores it in
/// `sent`, keeping `gate` (holding off recycling of the worker) until then. Stops early,
/// storing nothing, when the returned sender is dropped (the caller collected or cancelled the
/// turn, or closed the agent). A crash of the worker is stored as the turn's error.
fn collect_sent_turn(
    gate: OwnedRwLockReadGuard<()>,
    worker: Arc<Worker>,
    agent_id: String,
    sent: Arc<std::sync::Mutex<SentTurn>>,
    timeout: std::time::Duration,
) -> oneshot::Sender<()> {
    let (release, mut released) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _gate = gate;
        let params = json!({ "agent_id": agent_id });
        loop {
            let reply = tokio::select! {
                _ = &mut released => return,
                reply = worker.process.peer().call_timeout(
                    methods::AGENT_WAIT_FOR_IDLE,
                    params.clone(),
                    timeout,
                ) => reply.map_err(protocol::refine_error),
            };
            if matches!(reply, Err(Error::Timeout { .. })) {
                continue; // a long turn: keep waiting, as the caller's own wait would
            }
            let mut sent = lock_sent(&sent);
            if sent.release.is_some() {
                sent.result = Some(reply);
            }
            return;
        }
    });
    release
}

/// Records quota hits and model successes for the agent's API key.
fn track_quota(quota: &QuotaState, reply: Result<Value>) -> Result<Value> {
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

fn outcome_from(reply: Value) -> Result<ChatOutcome> {
    let result: ChatResult = serde_json::from_value(reply)
        .map_err(|e| Error::Protocol(format!("bad chat result: {e}")))?;
    Ok(ChatOutcome {
        text: result.text,
        usage: result.usage,
        stop_reason: result.stop_reason,
        structured_output: result.structured_output,
    })
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
