//! A streamed turn: its task, the route of its events, its save to the conversation store,
//! and how an abandoned turn settles before the next one starts.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use tokio::sync::{OwnedRwLockReadGuard, watch};
use tracing::{Instrument, field::Empty};

use super::{
    life::{AgentCore, LiveUse},
    settle_quota, wait_for_quota, with_model_calls,
};
use crate::{
    error::{Error, Result},
    protocol::{
        methods::AgentChat,
        wire::{ChatParams, Prompt, WorkflowSpec},
    },
    quota::QuotaState,
    streaming::ChatResponse,
    types::ChatOutcome,
    worker::{pool::Slot, supervisor::Worker},
};

/// Everything a streamed turn needs.
pub(super) struct TurnStart {
    pub(super) prompt: Prompt,
    /// A workflow to run instead of the prompt.
    pub(super) workflow: Option<WorkflowSpec>,
    /// Holds off recycling of the worker until the turn ends.
    pub(super) gate: OwnedRwLockReadGuard<()>,
    pub(super) worker: Arc<Worker>,
    /// Keeps the agent live (not hibernated) until the turn ends.
    pub(super) live: LiveUse,
    pub(super) quota: Arc<QuotaState>,
}

/// The last streamed turn of an agent: whether its response was dropped, and whether its task
/// has ended.
#[derive(Clone)]
pub(super) struct LastTurn {
    abandoned: Arc<AtomicBool>,
    done: watch::Receiver<bool>,
}

impl LastTurn {
    /// Returns once the turn's task has ended, if its response was dropped; at once otherwise.
    pub(super) async fn settled(mut self) {
        if self.abandoned.load(Ordering::SeqCst) {
            let _ = self.done.wait_for(|d| *d).await;
        }
    }
}

/// Removes the turn's event route however the chat task ends (finished, failed, aborted), and
/// then reports the task's end. Declared first in the task, it is dropped last: after the
/// pending call, whose drop sends `$/cancelRequest`.
struct TurnRoute {
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

/// Starts the turn's task and returns its response stream.
pub(super) fn start(turn: TurnStart) -> (ChatResponse, LastTurn) {
    let TurnStart {
        prompt,
        workflow,
        gate,
        worker,
        live,
        quota,
    } = turn;
    let core = Arc::clone(live.core());
    let turn_id = core.context.next_turn();
    let key = (core.id.clone(), turn_id);
    let slot = Arc::clone(live.slot());
    let events = slot.router.open_turn(key.clone());
    let (done, done_rx) = watch::channel(false);
    let abandoned = Arc::new(AtomicBool::new(false));
    let (provider, model) = core.model_names();
    let model_label = model.to_owned();
    // Named and attributed as the OpenTelemetry GenAI conventions say, for applications that
    // export `tracing` spans (docs/operations.md, "Traces").
    let span = tracing::info_span!(
        "turn",
        agent = %core.id,
        turn = turn_id,
        pool = %slot.pool,
        otel.name = "invoke_agent agy-bridge",
        otel.status_code = Empty,
        gen_ai.operation.name = "invoke_agent",
        gen_ai.agent.name = "agy-bridge",
        gen_ai.provider.name = provider,
        gen_ai.request.model = %model,
        gen_ai.conversation.id = %core.conversation_id,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        error.type = Empty,
    );
    let route = TurnRoute { slot, key, done };
    let task = tokio::spawn(
        async move {
            let started = std::time::Instant::now();
            let result = run(
                route,
                live,
                gate,
                quota,
                core,
                (prompt, workflow),
                turn_id,
                worker,
            )
            .await;
            let span = tracing::Span::current();
            if let Ok(outcome) = &result
                && let Some(cost) = outcome.cost
            {
                crate::metrics::turn_cost(&model_label, cost);
            }
            if let Ok(outcome) = &result
                && let Some(usage) = &outcome.usage
            {
                crate::metrics::tokens(usage.prompt_tokens, usage.output_tokens);
                if let Some(n) = usage.prompt_tokens {
                    span.record("gen_ai.usage.input_tokens", n);
                }
                if let Some(n) = usage.output_tokens {
                    span.record("gen_ai.usage.output_tokens", n);
                }
            }
            let outcome = result
                .as_ref()
                .map_or_else(crate::metrics::turn_outcome, |_| "ok");
            if result.is_err() {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", outcome);
            }
            crate::metrics::turn(outcome, started.elapsed());
            result
        }
        .instrument(span),
    );
    let last = LastTurn {
        abandoned: Arc::clone(&abandoned),
        done: done_rx,
    };
    (ChatResponse::new(events, task, abandoned), last)
}

/// The turn itself: waits for quota and pacing, runs it on the worker, notes what the gateway
/// saw, settles quota and saves the conversation. The route, live use and recycling gate are
/// moved into locals first, in the order that drops the route last.
#[allow(clippy::too_many_arguments)] // the parts of one TurnStart, kept apart for drop order
async fn run(
    route: TurnRoute,
    live: LiveUse,
    gate: OwnedRwLockReadGuard<()>,
    quota: Arc<QuotaState>,
    core: Arc<AgentCore>,
    (prompt, workflow): (Prompt, Option<WorkflowSpec>),
    turn_id: u64,
    worker: Arc<Worker>,
) -> Result<ChatOutcome> {
    let route = route;
    let live = live;
    let _gate = gate;
    wait_for_quota(&quota, &core.context.store).await;
    core.context.pace_turn().await;
    let span = tracing::Span::current();
    let params = ChatParams {
        agent_id: core.id.clone(),
        turn_id,
        prompt,
        trace: crate::telemetry::context_of(&span),
        workflow,
    };
    core.set_turn_span(Some(span));
    let reply = worker
        .process
        .call::<AgentChat>(&params, core.context.chat_timeout)
        .await;
    core.set_turn_span(None);
    route.slot.turn_ended();
    if let Ok(result) = &reply {
        core.ran_on_harness(result.harness_pid);
    }
    let reply = with_model_calls(reply.map(|r| core.outcome(r)), core.model_calls());
    let outcome = settle_quota(&quota, &core.context.store, reply).await?;
    saved(&live, outcome).await
}

/// Saves the conversation after a completed turn (to the store, when there is one): the turn's
/// outcome once saved, else [`Error::NotSaved`] carrying it.
pub(super) async fn saved(live: &LiveUse, outcome: ChatOutcome) -> Result<ChatOutcome> {
    let core = live.core();
    match core.save_state(live.lease()).await {
        Ok(_) => Ok(outcome),
        Err(e) => {
            tracing::warn!(agent = %core.id, conversation = %core.conversation_id, "the turn's state was not saved: {e}");
            Err(Error::NotSaved {
                conversation_id: core.conversation_id.clone(),
                outcome: Box::new(outcome),
                source: Box::new(e),
            })
        }
    }
}
