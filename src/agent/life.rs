//! An agent's life: live on a worker (with a `localharness`), or hibernated (nothing but its
//! conversation on disk or in the store), and the moves between them.
//!
//! - **Activation** (the first use, and any use of a hibernated agent): make room under the
//!   pool's live cap, take the conversation's lease, restore a newer snapshot from the store,
//!   place the agent on the least-loaded worker of its pool and open the conversation there.
//! - **While live**: the lease is renewed; after a worker crash or recycle the agent re-opens
//!   on the replacement worker (failover); every completed turn is saved to the store.
//! - **Hibernation** (idle past its delay, pushed out by the live cap, or `disconnect`): close
//!   the session (the harness exits), save the state, give the lease back.
//!
//! Uses hold a read lock on the life for their whole duration (a turn included), so an agent
//! in use is never hibernated: hibernation only takes the write lock when nobody holds it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{FutureExt, future::BoxFuture};
use parking_lot::Mutex;
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use super::{callbacks::AgentState, context::AgentContext};
use crate::{
    error::{Error, Result},
    gateway::{CallReport, RouteGuard},
    protocol::{
        methods::{AgentClose, AgentCreate},
        wire::{AgentCreateParams, AgentCreateResult, AgentRef, AgentSpec},
    },
    store::Lease,
    worker::{
        live_set::Member,
        pool::{Pool, Slot},
        supervisor::{Supervisor, Worker},
    },
};

/// Where an agent is.
pub(crate) enum Life {
    /// On a worker, with a harness.
    Live(Live),
    /// Without a harness. `kept` is a lease still held because the last state could not be
    /// saved (the next activation saves it before anything else).
    Hibernated { kept: Option<Lease> },
    /// Closed for good.
    Closed,
}

/// A live agent's place.
pub(crate) struct Live {
    slot: Arc<Slot>,
    /// The worker generation the agent lives on.
    generation: AtomicU64,
    reattach: tokio::sync::Mutex<()>,
    pub(crate) lease: Lease,
    /// Set by the renewal task when another bridge took the lease over.
    lease_lost: Arc<AtomicBool>,
    _renewal: Option<Renewal>,
}

/// The lease's renewal task, stopped with the live state.
struct Renewal(tokio::task::JoinHandle<()>);

impl Drop for Renewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Everything an agent is, shared by its handle and its running turns.
pub(crate) struct AgentCore {
    pub(crate) id: String,
    pub(crate) conversation_id: String,
    pub(crate) context: Arc<AgentContext>,
    pub(crate) pool: Arc<Pool>,
    callbacks: Arc<AgentState>,
    spec: AgentSpec,
    hibernate_after: Option<Duration>,
    life: Arc<RwLock<Life>>,
    last_used: Mutex<Instant>,
    /// The local state is newer than the store's (a save failed).
    dirty: AtomicBool,
    /// Closing or closed: no new use may start (set before the close itself runs).
    closing: AtomicBool,
    /// What the agent's accessors show, updated when a transition completes (so that they
    /// never block and never show a state halfway through).
    shown: Mutex<Shown>,
    /// The agent's route through the model gateway, when its model calls take it.
    route: Option<RouteGuard>,
}

/// The agent's observable place.
#[derive(Default)]
struct Shown {
    slot: Option<Arc<Slot>>,
    harness_pid: Option<u32>,
}

/// A use of a live agent: it stays live (and is not hibernated) while this exists.
pub(crate) struct LiveUse {
    core: Arc<AgentCore>,
    life: OwnedRwLockReadGuard<Life>,
}

impl LiveUse {
    fn live(&self) -> &Live {
        match &*self.life {
            Life::Live(live) => live,
            _ => unreachable!("a LiveUse only exists for a live agent"),
        }
    }

    /// The slot the agent is on.
    pub(crate) fn slot(&self) -> &Arc<Slot> {
        &self.live().slot
    }

    /// The agent's lease.
    pub(crate) fn lease(&self) -> &Lease {
        &self.live().lease
    }

    /// The live worker the agent is on. After a worker crash this starts a replacement (see
    /// [`crate::worker::supervisor`]) and re-opens the agent there: same id, config, tools,
    /// hooks and policies, and its persisted conversation (only the turn in flight was lost).
    pub(crate) async fn worker(&self) -> Result<Arc<Worker>> {
        let live = self.live();
        let worker = live.slot.supervisor.live().await?;
        if worker.generation == live.generation.load(Ordering::SeqCst) {
            return Ok(worker);
        }
        let _guard = live.reattach.lock().await;
        let worker = live.slot.supervisor.live().await?;
        if worker.generation == live.generation.load(Ordering::SeqCst) {
            return Ok(worker);
        }
        tracing::info!(agent = %self.core.id, generation = worker.generation, "re-opening the agent on a new worker");
        let created = self.core.create_on(&worker).await?;
        self.core.shown.lock().harness_pid = created.harness_pid;
        live.generation.store(worker.generation, Ordering::SeqCst);
        Ok(worker)
    }

    /// The agent's shared core.
    pub(crate) fn core(&self) -> &Arc<AgentCore> {
        &self.core
    }
}

impl Drop for LiveUse {
    fn drop(&mut self) {
        *self.core.last_used.lock() = Instant::now();
        self.core.pool.live.became_idle();
    }
}

/// What an agent is made of, as its bridge prepared it.
pub(crate) struct AgentParts {
    pub(crate) id: String,
    pub(crate) conversation_id: String,
    pub(crate) callbacks: Arc<AgentState>,
    pub(crate) spec: AgentSpec,
    pub(crate) hibernate_after: Option<Duration>,
    /// Its route through the model gateway, when its model calls take it.
    pub(crate) route: Option<RouteGuard>,
}

impl AgentCore {
    pub(crate) fn new(parts: AgentParts, context: Arc<AgentContext>, pool: Arc<Pool>) -> Arc<Self> {
        let AgentParts {
            id,
            conversation_id,
            callbacks,
            spec,
            hibernate_after,
            route,
        } = parts;
        let core = Arc::new(Self {
            id,
            conversation_id,
            context,
            pool,
            callbacks,
            spec,
            hibernate_after,
            life: Arc::new(RwLock::new(Life::Hibernated { kept: None })),
            last_used: Mutex::new(Instant::now()),
            dirty: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            shown: Mutex::new(Shown::default()),
            route,
        });
        core.pool
            .live
            .register(&(Arc::clone(&core) as Arc<dyn Member>));
        core
    }

    /// The live agent, activating it first when it is hibernated.
    ///
    /// # Errors
    /// [`Error::UnknownAgent`] after close; [`Error::LeaseLost`] once, when another bridge took
    /// the conversation over (the agent is then hibernated; its next use waits for the
    /// conversation and continues from the newest saved state); what activation can fail
    /// with ([`Error::ConversationBusy`], [`Error::Store`], a worker error, …).
    pub(crate) async fn use_live(self: &Arc<Self>) -> Result<LiveUse> {
        loop {
            if self.closing.load(Ordering::SeqCst) {
                return Err(self.closed_error());
            }
            let life = Arc::clone(&self.life).read_owned().await;
            match &*life {
                Life::Live(live) if live.lease_lost.load(Ordering::SeqCst) => {
                    drop(life);
                    self.demote_after_takeover().await;
                    return Err(Error::LeaseLost {
                        conversation_id: self.conversation_id.clone(),
                    });
                }
                Life::Live(_) => {
                    return Ok(LiveUse {
                        core: Arc::clone(self),
                        life,
                    });
                }
                Life::Closed => return Err(self.closed_error()),
                Life::Hibernated { .. } => {}
            }
            drop(life);
            let mut life = Arc::clone(&self.life).write_owned().await;
            if matches!(&*life, Life::Hibernated { .. }) {
                self.activate(&mut life).await?;
            }
            let life = OwnedRwLockWriteGuard::downgrade(life);
            if matches!(&*life, Life::Live(_)) {
                return Ok(LiveUse {
                    core: Arc::clone(self),
                    life,
                });
            }
        }
    }

    /// The live agent if it is live; `None` when hibernated (nothing is activated).
    pub(crate) async fn if_live(self: &Arc<Self>) -> Result<Option<LiveUse>> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(self.closed_error());
        }
        let life = Arc::clone(&self.life).read_owned().await;
        match &*life {
            Life::Live(_) => Ok(Some(LiveUse {
                core: Arc::clone(self),
                life,
            })),
            Life::Closed => Err(self.closed_error()),
            Life::Hibernated { .. } => Ok(None),
        }
    }

    fn closed_error(&self) -> Error {
        Error::UnknownAgent {
            agent_id: self.id.clone(),
        }
    }

    /// Whether the agent has a harness now.
    pub(crate) fn harness_pid(&self) -> Option<u32> {
        self.shown.lock().harness_pid
    }

    /// A turn's outcome from the worker's result, with its cost when the model has a price.
    pub(crate) fn outcome(
        &self,
        result: crate::protocol::wire::ChatResult,
    ) -> crate::types::ChatOutcome {
        let mut outcome = super::outcome_from(result);
        if let Some(price) = self.context.prices.price(self.model_names().1) {
            outcome.cost = outcome.usage.as_ref().and_then(|u| price.cost(u));
            outcome.conversation_cost = outcome
                .conversation_usage
                .as_ref()
                .and_then(|u| price.cost(u));
        }
        outcome
    }

    /// The agent's Rust side of reverse calls.
    pub(crate) fn callbacks(&self) -> &Arc<AgentState> {
        &self.callbacks
    }

    /// The provider and model of the agent, as span attributes name them.
    pub(crate) fn model_names(&self) -> (&'static str, &str) {
        self.spec.model.otel_names()
    }

    /// Makes `span` (a turn's) the parent of the spans of the model calls the gateway
    /// forwards for this agent, until `None` replaces it.
    pub(crate) fn set_turn_span(&self, span: Option<tracing::Span>) {
        if let Some(route) = &self.route {
            route.route().set_turn_span(span);
        }
    }

    /// What the agent's model calls went through at the gateway since the last report.
    pub(crate) fn model_calls(&self) -> CallReport {
        self.route
            .as_ref()
            .map(|r| r.route().take_report())
            .unwrap_or_default()
    }

    /// Notes the harness a turn ran on (the worker may have moved the agent to another).
    pub(crate) fn ran_on_harness(&self, pid: Option<u32>) {
        let mut shown = self.shown.lock();
        if pid.is_some() && shown.slot.is_some() {
            shown.harness_pid = pid;
        }
    }

    /// The slot the agent is on, when it is live.
    pub(crate) fn slot(&self) -> Option<Arc<Slot>> {
        self.shown.lock().slot.clone()
    }

    /// Whether the agent is live (the last completed transition).
    pub(crate) fn is_live(&self) -> bool {
        self.shown.lock().slot.is_some()
    }

    /// Opens the agent: room under the live cap, the lease, the newest state, a worker.
    async fn activate(self: &Arc<Self>, life: &mut Life) -> Result<()> {
        let Life::Hibernated { kept } = life else {
            return Ok(());
        };
        let kept = kept.take();
        let started = Instant::now();
        let member = Arc::clone(self) as Arc<dyn Member>;
        if let Err(e) = self.pool.live.admit(&member).await {
            crate::metrics::activation("failed", started.elapsed());
            return Err(e);
        }
        let opened = self.open(kept).await;
        match opened {
            Ok((live, harness_pid)) => {
                *self.shown.lock() = Shown {
                    slot: Some(Arc::clone(&live.slot)),
                    harness_pid,
                };
                *life = Life::Live(live);
                crate::metrics::activation("ok", started.elapsed());
                self.report_agents();
                Ok(())
            }
            Err((e, kept)) => {
                self.pool.live.remove(&member);
                *life = Life::Hibernated { kept };
                crate::metrics::activation("failed", started.elapsed());
                Err(e)
            }
        }
    }

    async fn open(
        self: &Arc<Self>,
        kept: Option<Lease>,
    ) -> std::result::Result<(Live, Option<u32>), (Error, Option<Lease>)> {
        let context = &self.context;
        let held_over = kept.is_some();
        let lease = match kept {
            Some(lease) => lease,
            None => context
                .claim(&self.conversation_id, &self.id)
                .await
                .map_err(|e| (e, None))?,
        };
        let restored = if held_over {
            // Our own unsaved state is the newest: save it now, before anything else.
            self.save_state(&lease).await.map(drop)
        } else {
            self.restore_newer(&lease).await
        };
        if let Err(e) = restored {
            return Err(self.give_back(e, lease).await);
        }
        let placed = async {
            let slot = self.pool.place()?;
            slot.router.add_agent(Arc::clone(&self.callbacks) as _);
            let _gate = slot.enter().await;
            let started = self.start_on_live_worker(&slot.supervisor).await;
            let (worker, created) = started.inspect_err(|_| slot.router.remove_agent(&self.id))?;
            tracing::debug!(agent = %self.id, start_ms = created.start_ms, "agent started");
            Ok((slot, worker.generation, created.harness_pid))
        }
        .await;
        let (slot, generation, harness_pid) = match placed {
            Ok(placed) => placed,
            Err(e) => return Err(self.give_back(e, lease).await),
        };
        let lease_lost = Arc::new(AtomicBool::new(false));
        let renewal = context
            .renew_in_background(&lease, Arc::clone(&lease_lost))
            .map(Renewal);
        let live = Live {
            slot,
            generation: AtomicU64::new(generation),
            reattach: tokio::sync::Mutex::new(()),
            lease,
            lease_lost,
            _renewal: renewal,
        };
        Ok((live, harness_pid))
    }

    /// Creates the agent on `supervisor`'s live worker. A worker that dies under the request
    /// (its crash may not have been seen yet when the request was sent) holds nothing of the
    /// agent: the start is tried once more on its replacement, as a chat re-opens its agent
    /// after a failover. A second crash is returned.
    async fn start_on_live_worker(
        &self,
        supervisor: &Arc<Supervisor>,
    ) -> Result<(Arc<Worker>, AgentCreateResult)> {
        let worker = supervisor.live().await?;
        match self.create_on(&worker).await {
            Err(Error::WorkerCrashed { .. }) if worker.process.peer().is_closed() => {
                tracing::info!(agent = %self.id, "the worker died under the agent's start; starting it on the replacement");
                let worker = supervisor.live().await?;
                let created = self.create_on(&worker).await?;
                Ok((worker, created))
            }
            other => other.map(|created| (worker, created)),
        }
    }

    /// Releases `lease` after a failed activation, and hands the error back.
    async fn give_back(&self, error: Error, lease: Lease) -> (Error, Option<Lease>) {
        if self.dirty.load(Ordering::SeqCst) {
            return (error, Some(lease)); // unsaved state: keep the lease until it is saved
        }
        self.context.release(lease, &self.conversation_id).await;
        (error, None)
    }

    /// Sends `agent/create` for this agent to `worker` (activation, or re-opening after
    /// failover).
    async fn create_on(&self, worker: &Worker) -> Result<AgentCreateResult> {
        create_on(worker, &self.id, &self.spec, self.context.operation_timeout).await
    }

    /// Hibernates the agent if nobody is using it.
    pub(crate) async fn hibernate_if_idle(self: &Arc<Self>) -> Result<bool> {
        let Ok(mut life) = Arc::clone(&self.life).try_write_owned() else {
            return Ok(false); // in use
        };
        if !matches!(&*life, Life::Live(_)) {
            return Ok(false);
        }
        self.hibernate(&mut life).await?;
        Ok(true)
    }

    /// Hibernates the agent, waiting for uses in progress to end.
    pub(crate) async fn hibernate_now(self: &Arc<Self>) -> Result<()> {
        let mut life = Arc::clone(&self.life).write_owned().await;
        match &*life {
            Life::Live(_) => self.hibernate(&mut life).await,
            Life::Closed => Err(self.closed_error()),
            Life::Hibernated { .. } => Ok(()),
        }
    }

    /// Live → hibernated: the session closes (the harness exits and flushes the database),
    /// the state is saved, the lease given back. If the save fails the lease is kept, and the
    /// next activation saves first.
    async fn hibernate(self: &Arc<Self>, life: &mut Life) -> Result<()> {
        let Life::Live(live) = std::mem::replace(life, Life::Hibernated { kept: None }) else {
            return Ok(());
        };
        tracing::debug!(agent = %self.id, conversation = %self.conversation_id, "hibernating");
        crate::metrics::hibernation();
        self.stop_on_worker(&live).await;
        let Live { lease, .. } = live;
        self.pool
            .live
            .remove(&(Arc::clone(self) as Arc<dyn Member>));
        self.report_agents();
        match self.save_state(&lease).await {
            Ok(_) => {
                self.context.release(lease, &self.conversation_id).await;
                Ok(())
            }
            Err(e @ Error::LeaseLost { .. }) => Err(e),
            Err(e) => {
                tracing::warn!(agent = %self.id, "hibernated without saving (kept its lease): {e}");
                *life = Life::Hibernated { kept: Some(lease) };
                Err(e)
            }
        }
    }

    /// Ends the agent's session on its worker (if the worker still has it) and takes it off
    /// the worker's router.
    async fn stop_on_worker(&self, live: &Live) {
        let worker = live.slot.supervisor.current();
        if !worker.process.peer().is_closed()
            && worker.generation == live.generation.load(Ordering::SeqCst)
        {
            let params = AgentRef {
                agent_id: self.id.clone(),
            };
            if let Err(e) = worker
                .process
                .call::<AgentClose>(&params, self.context.operation_timeout)
                .await
            {
                tracing::warn!(agent = %self.id, "closing the session failed: {e}");
            }
        }
        live.slot.router.remove_agent(&self.id);
        *self.shown.lock() = Shown::default();
    }

    /// After another bridge took the conversation over: stop the harness, forget the lease,
    /// and let the next use re-activate from the store's newest state.
    async fn demote_after_takeover(self: &Arc<Self>) {
        let mut life = Arc::clone(&self.life).write_owned().await;
        if let Life::Live(live) = std::mem::replace(&mut *life, Life::Hibernated { kept: None }) {
            tracing::warn!(agent = %self.id, conversation = %self.conversation_id, "another bridge took the conversation over");
            self.stop_on_worker(&live).await;
            self.pool
                .live
                .remove(&(Arc::clone(self) as Arc<dyn Member>));
            self.dirty.store(false, Ordering::SeqCst);
        }
    }

    /// From now on, no new use of the agent may start (it is being closed).
    pub(crate) fn mark_closing(&self) {
        self.closing.store(true, Ordering::SeqCst);
    }

    /// Closes the agent for good: its session ends, its state is saved, its lease released.
    pub(crate) async fn close(self: &Arc<Self>) -> Result<()> {
        self.mark_closing();
        let mut life = Arc::clone(&self.life).write_owned().await;
        let result = match std::mem::replace(&mut *life, Life::Closed) {
            Life::Live(live) => {
                let mut as_life = Life::Live(live);
                let saved = self.hibernate(&mut as_life).await;
                if let Life::Hibernated { kept: Some(lease) } = as_life {
                    // Closing anyway: the state stays local; the lease goes.
                    self.context.release(lease, &self.conversation_id).await;
                }
                saved
            }
            Life::Hibernated { kept: Some(lease) } => {
                let saved = self.save_state(&lease).await.map(drop);
                self.context.release(lease, &self.conversation_id).await;
                saved
            }
            Life::Hibernated { kept: None } | Life::Closed => Ok(()),
        };
        self.pool
            .live
            .remove(&(Arc::clone(self) as Arc<dyn Member>));
        self.report_agents();
        result
    }

    /// Records the pool's live and hibernated agents (gauges).
    fn report_agents(&self) {
        let stats = self.pool.agent_stats();
        crate::metrics::agents(&stats.pool, stats.live_agents, stats.hibernated_agents);
    }

    /// Saves the conversation's state to the store under `lease` (nothing to do for the local
    /// store). Marks the agent dirty when it fails.
    pub(crate) async fn save_state(&self, lease: &Lease) -> Result<u64> {
        let saved = self.context.save(&self.conversation_id, lease).await;
        self.dirty.store(saved.is_err(), Ordering::SeqCst);
        saved
    }

    /// Replaces the local state with the store's when the store's is newer.
    async fn restore_newer(&self, lease: &Lease) -> Result<()> {
        self.context
            .restore_newer(&self.conversation_id, lease)
            .await
    }

    /// Whether the last save failed.
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty.load(Ordering::SeqCst)
    }

    /// Whether the agent is closed (or being closed).
    pub(crate) fn is_closed(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }
}

impl Member for AgentCore {
    fn last_used(&self) -> Instant {
        *self.last_used.lock()
    }

    fn try_hibernate(self: Arc<Self>) -> BoxFuture<'static, Result<bool>> {
        async move { self.hibernate_if_idle().await }.boxed()
    }

    fn idle_expired(&self) -> bool {
        self.hibernate_after
            .is_some_and(|after| self.last_used.lock().elapsed() >= after)
    }

    fn drain(self: Arc<Self>) -> BoxFuture<'static, Result<()>> {
        async move {
            match self.hibernate_now().await {
                Err(Error::UnknownAgent { .. }) => Ok(()), // closed meanwhile
                other => other,
            }
        }
        .boxed()
    }
}

/// Sends `agent/create` for `agent_id` to `worker`.
pub(crate) async fn create_on(
    worker: &Worker,
    agent_id: &str,
    spec: &AgentSpec,
    timeout: Duration,
) -> Result<AgentCreateResult> {
    let params = AgentCreateParams {
        agent_id: agent_id.to_owned(),
        config: spec.clone(),
    };
    worker.process.call::<AgentCreate>(&params, timeout).await
}
