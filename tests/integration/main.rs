//! The integration tests: the bridge against the real worker, SDK, `localharness` and
//! PostgreSQL server. One test binary with a module per area, so the crate links once.
//!
//! Tests that re-run this binary as a child process (a replica, a helper holding an agent, an
//! environment probe) name themselves by their module path, e.g. `postgres::replica`. Soak and
//! scale tests are named `soak_…`: `scripts/test` skips them and `scripts/soak` runs them.

mod common;

mod chat;
mod config;
mod conformance;
mod conversation;
mod examples;
mod failures;
mod gateway;
mod hibernation;
mod hook_failures;
mod hooks;
mod leaks;
mod mcp;
#[cfg(feature = "metrics")]
mod metrics;
mod model_options;
#[cfg(feature = "otel")]
mod otlp;
mod policies;
mod pools;
#[cfg(feature = "postgres")]
mod postgres;
mod prestart;
mod security;
mod shared_harnesses;
mod supervision;
mod tools;
#[cfg(feature = "otel")]
mod traces;
mod triggers;
mod usage;
mod workflows;
