//! [`ChatResponse`]: the stream of a running turn and its final outcome.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use futures::Stream;
use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    error::{Error, Result},
    types::{ChatEvent, ChatOutcome},
};

/// A running chat turn: a [`Stream`] of [`ChatEvent`]s, then [`ChatResponse::finish`].
///
/// Dropping it before the turn ends cancels the turn in the worker (the SDK would otherwise
/// keep the turn running). Events are buffered in an unbounded queue per turn, so a slow
/// consumer never stalls the connection or other agents.
#[derive(Debug)]
pub struct ChatResponse {
    events: mpsc::UnboundedReceiver<ChatEvent>,
    outcome: Option<JoinHandle<Result<ChatOutcome>>>,
    abandoned: Arc<AtomicBool>,
}

impl ChatResponse {
    pub(crate) const fn new(
        events: mpsc::UnboundedReceiver<ChatEvent>,
        outcome: JoinHandle<Result<ChatOutcome>>,
        abandoned: Arc<AtomicBool>,
    ) -> Self {
        Self {
            events,
            outcome: Some(outcome),
            abandoned,
        }
    }

    /// Waits for the end of the turn (discarding events not yet read) and returns its outcome.
    ///
    /// # Errors
    /// The turn's error: [`Error::Agent`] for model failures, [`Error::WorkerCrashed`] if the
    /// worker died, [`Error::Timeout`] past the chat timeout, …
    pub async fn finish(mut self) -> Result<ChatOutcome> {
        let handle = self.outcome.take().expect("finish consumes the response");
        match handle.await {
            Ok(result) => result,
            Err(e) if e.is_cancelled() => Err(Error::Cancelled),
            Err(e) => Err(Error::Protocol(format!("chat task failed: {e}"))),
        }
    }
}

impl Stream for ChatResponse {
    type Item = ChatEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ChatEvent>> {
        self.events.poll_recv(cx)
    }
}

impl Drop for ChatResponse {
    fn drop(&mut self) {
        if let Some(handle) = self.outcome.take() {
            // Aborting drops the pending call, which sends `$/cancelRequest` to the worker. That
            // happens on a runtime thread a moment later; the agent's next turn waits for it.
            self.abandoned.store(true, Ordering::SeqCst);
            handle.abort();
        }
    }
}
