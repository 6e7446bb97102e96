//! A turn started with [`crate::Agent::send`] and collected later: a background task waits for
//! its outcome on the worker the turn runs on, holding off recycling of that worker meanwhile,
//! and keeps the outcome (or the worker's crash) until [`crate::Agent::wait_for_idle`] takes
//! it. So neither a recycle nor a crash loses it, and a turn that nobody collects cannot block
//! the pool. The turn ends at the chat timeout, as a streamed one does: the task then halts it
//! and keeps [`Error::Timeout`] as its outcome.

use std::{sync::Arc, time::Duration};

use tokio::sync::{OwnedRwLockReadGuard, oneshot, watch};

use super::{life::LiveUse, turn::saved, with_model_calls};
use crate::{
    error::{Error, Result},
    protocol::{
        methods::{AgentCancel, AgentWaitForIdle},
        wire::AgentRef,
    },
    types::ChatOutcome,
    worker::supervisor::Worker,
};

/// What a sent turn ended with: its outcome (saved), `None` when the worker had nothing to
/// report.
pub(crate) type Outcome = Result<Option<ChatOutcome>>;

/// A sent turn being collected.
pub(crate) struct SentTurn {
    outcome: watch::Receiver<Option<Outcome>>,
    /// Dropping it stops the collector and releases the recycling gate.
    _release: oneshot::Sender<()>,
}

impl SentTurn {
    /// Starts collecting the sent turn of the agent `live` is, on `worker`, holding `gate`
    /// (and the agent live) until it ends or the returned value is dropped (the caller
    /// collected or cancelled the turn, or closed the agent). The chat timeout counts from now.
    pub(crate) fn collect(
        gate: OwnedRwLockReadGuard<()>,
        live: LiveUse,
        worker: Arc<Worker>,
    ) -> Self {
        let (release, released) = oneshot::channel::<()>();
        let (report, outcome) = watch::channel(None);
        let context = Arc::clone(&live.core().context);
        let (deadline, operation_timeout): (Duration, Duration) =
            (context.chat_timeout, context.operation_timeout);
        tokio::spawn(async move {
            let _gate = gate;
            let params = AgentRef {
                agent_id: live.core().id.clone(),
            };
            let wait = worker.process.call::<AgentWaitForIdle>(&params, deadline);
            let reply = tokio::select! {
                _ = released => return,
                reply = wait => reply,
            };
            let reply = match reply {
                Err(Error::Timeout { .. }) => {
                    // The streamed path's deadline, for this one too: halt the turn.
                    tracing::warn!(agent = %params.agent_id, ?deadline, "a sent turn ran past the chat timeout; cancelling it");
                    if let Err(e) = worker
                        .process
                        .call::<AgentCancel>(&params, operation_timeout)
                        .await
                    {
                        tracing::warn!(agent = %params.agent_id, "cancelling the timed-out turn failed: {e}");
                    }
                    Err(Error::Timeout {
                        operation: "agent/send turn".into(),
                        duration: deadline,
                    })
                }
                other => other,
            };
            let outcome = match reply {
                Ok(Some(result)) => {
                    let calls = live.core().model_calls();
                    match with_model_calls(Ok(live.core().outcome(result)), calls) {
                        Ok(outcome) => saved(&live, outcome).await.map(Some),
                        Err(e) => Err(e),
                    }
                }
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            drop(live);
            let _ = report.send(Some(outcome));
        });
        Self {
            outcome,
            _release: release,
        }
    }

    /// A handle that waits for the outcome without taking the turn away (a dropped wait loses
    /// nothing).
    pub(crate) fn watch(&self) -> watch::Receiver<Option<Outcome>> {
        self.outcome.clone()
    }

    /// Whether the turn is still being waited for (and so holds off recycling).
    pub(crate) fn is_running(&self) -> bool {
        self.outcome.borrow().is_none()
    }

    /// Whether `other` watches this turn.
    pub(crate) fn is(&self, other: &watch::Receiver<Option<Outcome>>) -> bool {
        self.outcome.same_channel(other)
    }
}

/// Waits for the outcome `outcome` watches.
pub(crate) async fn outcome_of(mut outcome: watch::Receiver<Option<Outcome>>) -> Outcome {
    match outcome.wait_for(Option::is_some).await {
        Ok(done) => done.clone().unwrap_or(Ok(None)),
        // The collector ended without an outcome: it was released (cancelled or closed).
        Err(_) => Err(Error::Cancelled),
    }
}
