//! What an agent needs from the bridge that created it: deadlines, turn numbering and pacing.
//! A small value of its own, so `Agent` does not depend on `Bridge`.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

/// Shared by every agent of one bridge.
pub(crate) struct AgentContext {
    /// Deadline of one turn.
    pub(crate) chat_timeout: Duration,
    /// Deadline of every other call.
    pub(crate) operation_timeout: Duration,
    /// Minimum time between two turn starts (zero: none).
    inter_agent_delay: Duration,
    next_turn: AtomicU64,
    last_turn_start: tokio::sync::Mutex<Option<Instant>>,
}

impl AgentContext {
    pub(crate) fn new(
        chat_timeout: Duration,
        operation_timeout: Duration,
        inter_agent_delay: Duration,
    ) -> Self {
        Self {
            chat_timeout,
            operation_timeout,
            inter_agent_delay,
            next_turn: AtomicU64::new(1),
            last_turn_start: tokio::sync::Mutex::new(None),
        }
    }

    /// A turn number, unique within the bridge (it routes the turn's streamed events).
    pub(crate) fn next_turn(&self) -> u64 {
        self.next_turn.fetch_add(1, Ordering::Relaxed)
    }

    /// Spaces turn starts by the configured inter-agent delay.
    pub(crate) async fn pace_turn(&self) {
        if self.inter_agent_delay.is_zero() {
            return;
        }
        let mut last = self.last_turn_start.lock().await;
        if let Some(at) = *last {
            tokio::time::sleep_until((at + self.inter_agent_delay).into()).await;
        }
        *last = Some(Instant::now());
    }
}
