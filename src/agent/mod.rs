//! [`Agent`]: a handle to one agent living in a worker, and the whole conversation API.
//!
//! Where it lives (live on a worker, or hibernated), how it activates, hibernates and re-opens
//! after a worker change is `life`'s job; a turn started with [`Agent::send`] is collected by
//! `sent_turn`; a streamed turn's routing is `turn`'s.

pub(crate) mod callbacks;
pub(crate) mod context;
pub mod hooks;
pub(crate) mod life;
pub mod policies;
mod sent_turn;
pub mod tools;
mod turn;
pub(crate) mod user_code;

use std::{path::Path, sync::Arc};

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use tokio::sync::OwnedRwLockReadGuard;
use tracing::Instrument;

use life::{AgentCore, LiveUse};
use sent_turn::SentTurn;

use crate::{
    content::Content,
    error::{AgentErrorKind, Error, Result},
    protocol::{
        Method,
        methods::{
            AgentCancel, AgentClearHistory, AgentHistory, AgentNotify, AgentSend, AgentSignalIdle,
            AgentState, AgentWaitForIdle, AgentWaitForWakeup,
        },
        wire::{AgentRef, ChatResult, NotifyParams, SendParams, WakeupParams},
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
    core: Arc<AgentCore>,
    quota: Arc<QuotaState>,
    /// The last streamed turn: whether its response was dropped, and whether its task ended.
    last_turn: Mutex<Option<turn::LastTurn>>,
    /// The turn started with [`Agent::send`] and not yet collected.
    sent: Mutex<Option<SentTurn>>,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("id", &self.core.id)
            .field("conversation_id", &self.core.conversation_id)
            .field("harness_pid", &self.core.harness_pid())
            .finish_non_exhaustive()
    }
}

impl Agent {
    pub(crate) fn new(core: Arc<AgentCore>, quota: Arc<QuotaState>) -> Self {
        Self {
            core,
            quota,
            last_turn: Mutex::new(None),
            sent: Mutex::new(None),
        }
    }

    /// The bridge-assigned agent id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.core.id
    }

    /// The conversation id (persisted; [`crate::Bridge::open_agent`] continues it, in this
    /// process or another).
    #[must_use]
    pub fn conversation_id(&self) -> &str {
        &self.core.conversation_id
    }

    /// Where the conversation database lives.
    #[must_use]
    pub fn save_dir(&self) -> &Path {
        &self.core.context.dirs.save_dir
    }

    /// The harness's application data directory.
    #[must_use]
    pub fn app_data_dir(&self) -> &Path {
        &self.core.context.dirs.app_data_dir
    }

    /// The worker pool the agent runs on.
    #[must_use]
    pub fn pool(&self) -> &str {
        &self.core.pool.name
    }

    /// Pid of the worker process hosting the agent; `None` while it is hibernated.
    #[must_use]
    pub fn worker_pid(&self) -> Option<u32> {
        self.core
            .slot()
            .map(|slot| slot.supervisor.current().process.pid())
    }

    /// Pid of the agent's `localharness` process; `None` while it is hibernated.
    #[must_use]
    pub fn harness_pid(&self) -> Option<u32> {
        self.core.harness_pid()
    }

    /// Whether the agent is hibernated: no harness, its conversation on disk (or in the
    /// store). Its next call activates it again.
    #[must_use]
    pub fn is_hibernated(&self) -> bool {
        !self.core.is_live() && !self.core.is_closed()
    }

    /// The live agent (activating it if hibernated); first saves a state left unsaved by a
    /// failed save, so nothing builds on top of it unnoticed.
    async fn live(&self) -> Result<LiveUse> {
        let live = self.core.use_live().await?;
        if self.core.is_dirty() {
            self.core.save_state(live.lease()).await?;
        }
        Ok(live)
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
        let live = self.live().await?;
        let gate = live.slot().enter().await;
        let worker = live.worker().await?;
        let (response, last) = turn::start(turn::TurnStart {
            prompt: prompt.into().to_wire(),
            workflow: None,
            gate,
            worker,
            live,
            quota: Arc::clone(&self.quota),
        });
        *self.last_turn.lock() = Some(last);
        Ok(response)
    }

    /// Runs a workflow in a turn (the SDK's beta `run_workflow`): the model is asked to run
    /// it with the `run_workflow` tool, the harness runs it, and the turn streams as any
    /// other — its steps carry [`crate::Step::workflow_progress`] — and ends with the
    /// workflow's result in [`ChatOutcome::workflow`]. A workflow the model did not run, or
    /// that failed, fails the turn ([`Error::Agent`]).
    ///
    /// # Errors
    /// As [`Agent::chat`]; the turn's own errors come from the response.
    pub async fn run_workflow(&self, workflow: crate::content::Workflow) -> Result<ChatResponse> {
        self.settle_abandoned_turn().await;
        let live = self.live().await?;
        let gate = live.slot().enter().await;
        let worker = live.worker().await?;
        let workflow = workflow.to_wire();
        let (response, last) = turn::start(turn::TurnStart {
            prompt: crate::protocol::wire::Prompt::Text(workflow.description.clone()),
            workflow: Some(workflow),
            gate,
            worker,
            live,
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
        wait_for_quota(&self.quota, &self.core.context.store).await;
        let params = SendParams {
            agent_id: self.core.id.clone(),
            prompt: prompt.into().to_wire(),
            // The worker's spans of the turn join the caller's trace.
            trace: crate::telemetry::context_of(&tracing::Span::current()),
        };
        let live = self.live().await?;
        let gate = live.slot().enter().await;
        let worker = live.worker().await?;
        self.call_on::<AgentSend>(&live, &params).await?;
        live.slot().turn_ended();
        *self.sent.lock() = Some(SentTurn::collect(gate, live, worker));
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
            // No sent turn: wait for a running (streamed) turn to end. A hibernated agent has
            // none.
            None => match self.core.if_live().await? {
                None => Ok(None),
                Some(live) => {
                    let _gate = self.enter_unless_sending(&live).await;
                    live.worker()
                        .await?
                        .process
                        .call::<AgentWaitForIdle>(&self.agent_ref(), self.core.context.chat_timeout)
                        .await
                        .map(|r| r.map(|r| self.core.outcome(r)))
                }
            },
        };
        settle_quota(&self.quota, &self.core.context.store, reply).await
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
        // A hibernated agent runs nothing; a live one is not gated: a turn waiting to be
        // drained must still be cancellable.
        let Some(live) = self.core.if_live().await? else {
            return Ok(false);
        };
        let reply = self
            .call_on::<AgentCancel>(&live, &self.agent_ref())
            .await?;
        self.sent.lock().take();
        Ok(reply.cancelled)
    }

    /// The conversation history, one [`Step`] per step (its last update).
    ///
    /// # Errors
    /// A worker error (the call activates a hibernated agent).
    pub async fn history(&self) -> Result<Vec<Step>> {
        self.request::<AgentHistory>(&self.agent_ref()).await
    }

    /// Counters, usage, last response and idleness in one round trip.
    ///
    /// # Errors
    /// A worker error (the call activates a hibernated agent).
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

    /// Hibernates the agent now: its session ends and its harness (~190 MiB) stops; its
    /// conversation is saved (to the store, when it has one) and its lease released. The next
    /// call (a turn, `history`, …) activates it again, tools, hooks and policies included.
    /// Waits for a running turn to end first.
    ///
    /// # Errors
    /// [`Error::Store`] when the state could not be saved (the agent then keeps its lease and
    /// saves at its next activation); a worker error.
    pub async fn disconnect(&self) -> Result<()> {
        self.sent.lock().take();
        self.core.hibernate_now().await
    }

    /// Waits up to `timeout` for the agent to start a turn on its own (a trigger or a
    /// scheduled task). Its steps are in the history when this returns `true`. The agent is
    /// activated (if hibernated) and stays live while this waits: a hibernated agent has no
    /// harness, so it starts nothing on its own.
    ///
    /// # Errors
    /// A worker error.
    pub async fn wait_for_wakeup(&self, timeout: std::time::Duration) -> Result<bool> {
        let params = WakeupParams {
            agent_id: self.core.id.clone(),
            timeout_secs: timeout.as_secs_f64(),
        };
        let live = self.live().await?;
        let _gate = self.enter_unless_sending(&live).await;
        live.worker()
            .await?
            .process
            .call::<AgentWaitForWakeup>(&params, timeout + self.core.context.operation_timeout)
            .await
    }

    /// Sends the agent a message the way a trigger does: the agent starts a turn on its own
    /// to handle it (read it with [`Agent::self_started_turns`]). This is how to write a
    /// trigger of your own: a task of yours that calls this when its event happens. The agent
    /// is activated if it was hibernated.
    ///
    /// ```no_run
    /// # async fn demo(agent: agy_bridge::Agent) -> agy_bridge::Result<()> {
    /// use futures::StreamExt;
    ///
    /// let mut turns = agent.self_started_turns();
    /// agent.notify("A new order arrived: #1042").await?;
    /// if let Some(turn) = turns.next().await {
    ///     println!("the agent said: {:?}", turn.text());
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// A worker error.
    pub async fn notify(&self, text: impl Into<String>) -> Result<()> {
        let params = NotifyParams {
            agent_id: self.core.id.clone(),
            text: text.into(),
        };
        let live = self.live().await?;
        self.call_on::<AgentNotify>(&live, &params).await?;
        Ok(())
    }

    /// The turns the agent starts on its own from now on ([`Trigger`](crate::sdk_config::Trigger)s,
    /// [`Agent::notify`], subagents and background tasks reporting back), each when it has
    /// ended, with its steps. A reader more than 64 turns behind misses the oldest (they stay
    /// in the history). The stream ends when the agent is gone.
    pub fn self_started_turns(
        &self,
    ) -> futures::stream::BoxStream<'static, crate::types::SelfStartedTurn> {
        use futures::StreamExt;
        let receiver = self.core.callbacks().self_started.subscribe();
        futures::stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(turn) => return Some((turn, receiver)),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(
                            missed,
                            "self-started turns dropped: their reader fell behind"
                        );
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .boxed()
    }

    /// Declares the agent idle: a turn it started on its own is halted and pending wake-ups
    /// are forgotten. (The SDK has no such call; this is the bridge's definition.)
    ///
    /// # Errors
    /// A worker error.
    pub async fn signal_idle(&self) -> Result<()> {
        if let Some(live) = self.core.if_live().await? {
            let _gate = self.enter_unless_sending(&live).await;
            self.call_on::<AgentSignalIdle>(&live, &self.agent_ref())
                .await?;
        }
        self.sent.lock().take();
        Ok(())
    }

    /// Closes the agent and deletes its conversation: its files here and its stored state.
    /// No agent can resume it afterwards.
    ///
    /// # Errors
    /// A worker or store error, or a file that could not be removed.
    pub async fn delete(self) -> Result<()> {
        self.sent.lock().take();
        self.core.close().await?;
        self.core
            .context
            .delete_conversation(&self.core.conversation_id, &self.core.id)
            .await
    }

    /// Closes the agent in the background without waiting (for `Drop` paths and shutdown
    /// hooks); does nothing without a tokio runtime.
    pub fn try_shutdown(&self) {
        self.sent.lock().take();
        if self.core.is_closed() {
            return;
        }
        self.core.mark_closing();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let core = Arc::clone(&self.core);
            handle.spawn(async move {
                if let Err(e) = core.close().await {
                    tracing::warn!(agent = %core.id, "closing the agent failed: {e}");
                }
            });
        }
    }

    /// Stops the agent and its harness. Its conversation is kept (saved to the store, when
    /// there is one) and can be continued with [`crate::Bridge::open_agent`].
    ///
    /// # Errors
    /// A worker error; [`Error::Store`] when the state could not be saved (it stays on disk).
    pub async fn close(self) -> Result<()> {
        self.sent.lock().take();
        self.core.close().await
    }

    fn agent_ref(&self) -> AgentRef {
        AgentRef {
            agent_id: self.core.id.clone(),
        }
    }

    /// Holds off recycling, unless a running [`Agent::send`] turn already does (waiting then
    /// could deadlock: the recycle waits for that turn, which may wait for this call).
    async fn enter_unless_sending(&self, live: &LiveUse) -> Option<OwnedRwLockReadGuard<()>> {
        if self.sent.lock().as_ref().is_some_and(SentTurn::is_running) {
            return None;
        }
        Some(live.slot().enter().await)
    }

    /// A call to the agent's worker (activating the agent), holding off recycling until it is
    /// answered.
    async fn request<M: Method>(&self, params: &M::Params) -> Result<M::Result> {
        let live = self.live().await?;
        let _gate = self.enter_unless_sending(&live).await;
        self.call_on::<M>(&live, params).await
    }

    /// A call to the worker of the live agent; the caller decides about the recycling gate.
    async fn call_on<M: Method>(&self, live: &LiveUse, params: &M::Params) -> Result<M::Result> {
        let span = tracing::debug_span!("agent_call", agent = %self.core.id, method = M::NAME);
        async {
            live.worker()
                .await?
                .process
                .call::<M>(params, self.core.context.operation_timeout)
                .await
        }
        .instrument(span)
        .await
    }
}

/// Waits out the key's quota backoff: this bridge's, and the one recorded in a shared store by
/// any bridge. The store is advisory here: when it cannot be read, the turn goes ahead.
pub(crate) async fn wait_for_quota(quota: &QuotaState, store: &crate::store::Store) {
    match store.quota_wait(quota.key()).await {
        Ok(wait) if !wait.is_zero() => quota.block_for(wait),
        Ok(_) => {}
        Err(e) => tracing::warn!("reading the shared quota backoff: {e}"),
    }
    quota.wait_for_quota().await;
}

/// [`track_quota`], and shares a quota hit with every bridge on the store.
pub(crate) async fn settle_quota<T>(
    quota: &QuotaState,
    store: &crate::store::Store,
    reply: Result<T>,
) -> Result<T> {
    let reply = track_quota(quota, reply);
    if let Err(Error::Agent {
        kind: AgentErrorKind::Quota,
        ..
    }) = &reply
        && let Err(e) = store.quota_hit(quota.key(), quota.remaining()).await
    {
        tracing::warn!("sharing a quota backoff: {e}");
    }
    reply
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
            crate::metrics::quota_backoff();
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
        model_retries: 0,
        sandbox: result.sandbox,
        subagent_usage: result.subagent_usage,
        conversation_usage: result.conversation_usage,
        cost: None,
        conversation_cost: None,
        workflow: result.workflow,
    }
}

/// Adds what the model gateway saw during the turn to its outcome: the retries, and for a quota
/// failure the server's `Retry-After` header when the worker could not read one from the
/// error message.
pub(crate) fn with_model_calls(
    reply: Result<ChatOutcome>,
    calls: crate::gateway::CallReport,
) -> Result<ChatOutcome> {
    match reply {
        Ok(mut outcome) => {
            outcome.model_retries = calls.retries;
            Ok(outcome)
        }
        Err(Error::Agent {
            kind: AgentErrorKind::Quota,
            http_status,
            retry_after,
            message,
        }) => Err(Error::Agent {
            kind: AgentErrorKind::Quota,
            http_status,
            retry_after: retry_after.or(calls.quota_retry_after),
            message,
        }),
        other => other,
    }
}

impl Drop for Agent {
    /// An agent dropped without [`Agent::close`] is closed in the background when a runtime is
    /// available (its worker going away also ends it).
    fn drop(&mut self) {
        self.try_shutdown();
    }
}
