//! Our protocol on top of JSON-RPC, defined once: every method as a Rust type with its params
//! and result ([`methods`]), the types that travel ([`wire`]), the error codes and how they map
//! to [`crate::Error`] ([`errors`]), and the JSON Schema of it all generated from those types
//! ([`schema`], checked into `docs/protocol.schema.json`, which the Python worker's tests read).

pub(crate) mod errors;
pub(crate) mod hooks;
pub(crate) mod methods;
#[cfg(test)]
pub(crate) mod schema;
pub(crate) mod wire;

pub(crate) use errors::codes;

/// Wire protocol version; bumped on any incompatible change. Checked at `initialize`.
pub(crate) const PROTOCOL_VERSION: u32 = 2;
/// Version of the embedded `agy_worker` package (checked against the running worker).
pub(crate) const WORKER_VERSION: &str = "0.2.0";
/// The `google-antigravity` version this crate is tested with (pinned in the managed venv).
pub const SDK_VERSION: &str = "0.1.22";

/// The SDK built-in tools that only read (the SDK's `BuiltinTools.read_only()`); any other
/// enabled built-in writes, and needs a policy. The worker holds the same list, checked against
/// the protocol schema by its tests.
pub(crate) const READ_ONLY_BUILTINS: &[&str] =
    &["view_file", "read_url_content", "schedule", "finish"];

/// Every hook point the Rust side can register a callback for, in the SDK's order (the
/// `point` of `hook/run`). `agent::hooks` declares one callback per point; its tests check the
/// two lists agree, and the worker's tests check its own copy against the schema.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const HOOK_POINTS: &[&str] = &[
    "pre_turn",
    "post_turn",
    "pre_tool_call_decide",
    "post_tool_call",
    "on_tool_error",
    "on_compaction",
    "on_session_start",
    "on_session_end",
    "on_interaction",
    "stop",
];

/// Which side sends a method's requests.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Direction {
    /// Rust calls the worker.
    RustToWorker,
    /// The worker calls Rust.
    WorkerToRust,
    /// A notification from the worker.
    WorkerNotification,
}

/// One method of the protocol: its name, who calls it, and its params and result types.
pub(crate) trait Method {
    /// The JSON-RPC method name.
    const NAME: &'static str;
    /// Who sends it.
    #[cfg_attr(not(test), allow(dead_code))]
    const DIRECTION: Direction;
    /// What it carries.
    type Params: serde::Serialize + serde::de::DeserializeOwned + schemars::JsonSchema;
    /// What it answers (`()` for notifications).
    type Result: serde::Serialize + serde::de::DeserializeOwned + schemars::JsonSchema;
}
