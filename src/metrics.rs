//! Metrics through the `metrics` facade (feature `metrics`): the application installs the
//! recorder and exporter it likes (Prometheus, StatsD, …); without the feature, or without a
//! recorder, every call here costs nothing. The names, their labels and what they count are
//! in `docs/operations.md` ("Metrics"). No label carries a prompt, a key, a tool argument or
//! an unbounded value (tool names are the agent's own, a bounded set).

use std::time::Duration;

/// A turn ended: `outcome` is `ok` or the kind of its error (see [`turn_outcome`]).
pub(crate) fn turn(outcome: &'static str, took: Duration) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("agy_bridge_turns_total", "outcome" => outcome).increment(1);
        metrics::histogram!("agy_bridge_turn_duration_seconds", "outcome" => outcome)
            .record(took.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (outcome, took);
}

/// The tokens a completed turn used, as the model reported them.
pub(crate) fn tokens(input: Option<u64>, output: Option<u64>) {
    #[cfg(feature = "metrics")]
    {
        if let Some(n) = input {
            metrics::counter!("agy_bridge_tokens_total", "direction" => "input").increment(n);
        }
        if let Some(n) = output {
            metrics::counter!("agy_bridge_tokens_total", "direction" => "output").increment(n);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (input, output);
}

/// The estimated cost of a completed turn of `model` (a model with a price).
pub(crate) fn turn_cost(model: &str, cost: f64) {
    #[cfg(feature = "metrics")]
    metrics::histogram!("agy_bridge_turn_cost", "model" => model.to_owned()).record(cost);
    #[cfg(not(feature = "metrics"))]
    let _ = (model, cost);
}

/// An agent was activated (created, or resumed from hibernation): `outcome` is `ok` or
/// `failed`; `took` includes waiting for room under the live cap and for the lease.
pub(crate) fn activation(outcome: &'static str, took: Duration) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("agy_bridge_activations_total", "outcome" => outcome).increment(1);
        metrics::histogram!("agy_bridge_activation_duration_seconds", "outcome" => outcome)
            .record(took.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (outcome, took);
}

/// A live agent hibernated.
pub(crate) fn hibernation() {
    #[cfg(feature = "metrics")]
    metrics::counter!("agy_bridge_hibernations_total").increment(1);
}

/// The model refused an API key for quota: later turns with it wait.
pub(crate) fn quota_backoff() {
    #[cfg(feature = "metrics")]
    metrics::counter!("agy_bridge_quota_backoffs_total").increment(1);
}

/// A Rust tool call ended: `outcome` is `ok`, `failed` or `denied`.
pub(crate) fn tool_call(tool: &str, outcome: &'static str, took: Duration) {
    #[cfg(feature = "metrics")]
    {
        let tool = tool.to_owned();
        metrics::counter!("agy_bridge_tool_calls_total", "tool" => tool.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("agy_bridge_tool_call_duration_seconds", "tool" => tool)
            .record(took.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (tool, outcome, took);
}

/// A Rust hook failed at `point`.
pub(crate) fn hook_failed(point: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("agy_bridge_hook_failures_total", "point" => point).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = point;
}

/// The model gateway answered a model call: `outcome` is `ok`, `retried` (one attempt that
/// failed and is repeated), `failed` (passed on to the harness) or `cut` (a broken stream).
pub(crate) fn model_call(outcome: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("agy_bridge_model_calls_total", "outcome" => outcome).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = outcome;
}

/// A dead or hung worker was replaced.
pub(crate) fn worker_restart() {
    #[cfg(feature = "metrics")]
    metrics::counter!("agy_bridge_worker_restarts_total").increment(1);
}

/// A worker process started (`outcome` `ok` or `failed`: it did not get through its
/// handshake).
pub(crate) fn worker_start(outcome: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("agy_bridge_worker_starts_total", "outcome" => outcome).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = outcome;
}

/// A worker died (crashed, killed, or stopped answering) while it was in use.
pub(crate) fn worker_crash() {
    #[cfg(feature = "metrics")]
    metrics::counter!("agy_bridge_worker_crashes_total").increment(1);
}

/// A harness `started`, or was `lost` (found dead under its conversations).
pub(crate) fn harness(event: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("agy_bridge_harness_events_total", "event" => event).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = event;
}

/// A policy decision made in Rust: by `user` (an `ask_user` handler: `approved` or `denied`),
/// by `rule` (the Rust re-check of a tool call the harness let through: `denied`), or by
/// `predicate` (a rule's Rust predicate: `matched` or `unmatched`).
pub(crate) fn policy_decision(decision: &'static str, by: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("agy_bridge_policy_decisions_total", "decision" => decision, "by" => by)
        .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (decision, by);
}

/// The live and hibernated agents of `pool` now.
pub(crate) fn agents(pool: &str, live: usize, hibernated: usize) {
    #[cfg(feature = "metrics")]
    {
        metrics::gauge!("agy_bridge_live_agents", "pool" => pool.to_owned()).set(live as f64);
        metrics::gauge!("agy_bridge_hibernated_agents", "pool" => pool.to_owned())
            .set(hibernated as f64);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (pool, live, hibernated);
}

/// A conversation lease: `event` is `acquired`, `waited` (another holder had it; acquired
/// later or given up) or `lost` (taken over while held, e.g. after a missed renewal).
pub(crate) fn lease(event: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("agy_bridge_leases_total", "event" => event).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = event;
}

/// A conversation's state was saved to the store: `outcome` `ok` or `failed`, its size.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))] // only snapshot stores save
pub(crate) fn store_save(outcome: &'static str, took: Duration, bytes: Option<u64>) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("agy_bridge_store_saves_total", "outcome" => outcome).increment(1);
        metrics::histogram!("agy_bridge_store_save_duration_seconds", "outcome" => outcome)
            .record(took.as_secs_f64());
        if let Some(bytes) = bytes {
            metrics::histogram!("agy_bridge_store_save_bytes").record(bytes as f64);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (outcome, took, bytes);
}

/// The `outcome` label of a turn that ended with `error`.
pub(crate) fn turn_outcome(error: &crate::error::Error) -> &'static str {
    use crate::error::Error;
    match error {
        Error::Agent { .. } => "model_error",
        Error::Timeout { .. } => "timeout",
        Error::Cancelled => "cancelled",
        Error::WorkerCrashed { .. } | Error::WorkerStopped => "worker_crashed",
        Error::NotSaved { .. } => "not_saved",
        _ => "error",
    }
}
