//! Where an agent lives: its worker slot, the worker generation it was opened on, and the
//! configuration that re-opens it on a replacement worker (after a crash or a recycle) with its
//! conversation, tools, hooks and policies.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use parking_lot::Mutex;

use crate::{
    error::Result,
    protocol::{
        methods::AgentCreate,
        wire::{AgentCreateParams, AgentCreateResult, AgentSpec},
    },
    worker::{pool::Slot, supervisor::Worker},
};

/// An agent's place on a worker slot.
pub(crate) struct Attachment {
    agent_id: String,
    slot: Arc<Slot>,
    /// The `agent/create` configuration, replayed (resuming the conversation) on a
    /// replacement worker.
    spec: AgentSpec,
    /// The worker generation the agent lives on.
    generation: AtomicU64,
    harness_pid: Mutex<Option<u32>>,
    reattach: tokio::sync::Mutex<()>,
    timeout: Duration,
}

impl Attachment {
    pub(crate) fn new(
        agent_id: String,
        slot: Arc<Slot>,
        spec: AgentSpec,
        created_on: &Worker,
        created: &AgentCreateResult,
        timeout: Duration,
    ) -> Self {
        Self {
            agent_id,
            slot,
            spec,
            generation: AtomicU64::new(created_on.generation),
            harness_pid: Mutex::new(created.harness_pid),
            reattach: tokio::sync::Mutex::new(()),
            timeout,
        }
    }

    /// The slot the agent is placed on.
    pub(crate) const fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }

    /// Pid of the agent's `localharness`, as last reported.
    pub(crate) fn harness_pid(&self) -> Option<u32> {
        *self.harness_pid.lock()
    }

    /// Whether the agent lives on `worker` (the current generation of its slot).
    pub(crate) fn is_on(&self, worker: &Worker) -> bool {
        worker.generation == self.generation.load(Ordering::SeqCst)
    }

    /// The live worker the agent is on. After a worker crash this starts a replacement (see
    /// [`crate::worker::supervisor`]) and re-opens the agent there: same id, config, tools,
    /// hooks and policies, and its persisted conversation (the history survives; only the turn
    /// that was in flight was lost).
    pub(crate) async fn worker(&self) -> Result<Arc<Worker>> {
        let worker = self.slot.supervisor.live().await?;
        if self.is_on(&worker) {
            return Ok(worker);
        }
        let _guard = self.reattach.lock().await;
        let worker = self.slot.supervisor.live().await?;
        if self.is_on(&worker) {
            return Ok(worker);
        }
        tracing::info!(agent = %self.agent_id, generation = worker.generation, "re-opening the agent on a new worker");
        let created = create_on(&worker, &self.agent_id, &self.spec, self.timeout).await?;
        *self.harness_pid.lock() = created.harness_pid;
        self.generation.store(worker.generation, Ordering::SeqCst);
        Ok(worker)
    }
}

/// Sends `agent/create` for `agent_id` to `worker` (first start, or re-opening after failover).
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
