//! Rust tools the model can call: the [`Tool`] trait, [`ToolRegistry`], [`ToolContext`] with
//! per-agent state, [`FnTool`] for closures, and the `#[llm_tool]` attribute.
//!
//! # Blocking code in tools
//!
//! Every tool call runs on tokio's blocking thread pool, on a thread of its own, so a tool that
//! blocks (a synchronous file or network read, a CPU-heavy step) never stalls other agents, and
//! the tool timeout, the chat timeout and cancellation still fire. Two things to know:
//!
//! - A plain `fn` with `#[llm_tool]` is run with `spawn_blocking`: write blocking code there
//!   freely. In an `async fn`, prefer `tokio::task::spawn_blocking` (or async I/O) for long
//!   blocking steps.
//! - A timeout or a cancelled turn drops the tool's future at its next `.await`. Code that
//!   blocks without awaiting cannot be interrupted in Rust: the model is told at once that the
//!   tool timed out, but the thread stays busy until the blocking call returns. Give blocking
//!   calls their own deadlines (socket timeouts, non-blocking opens).
//! - The hand-off to a pooled thread costs a thread wake-up per call (tens of µs). A tool that
//!   only awaits and never blocks can skip it: `#[llm_tool(nonblocking)]` on an `async fn`,
//!   [`FnTool::nonblocking`], or [`Tool::nonblocking`] returning `true`. It then runs on the
//!   runtime's threads (with the same panic guard, timeout and cancellation); if it blocks
//!   anyway, it stalls the thread it runs on.
//!
//! ```
//! use agy_bridge::tools::{ToolContext, ToolRegistry};
//! use agy_bridge::llm_tool;
//!
//! /// Adds two numbers.
//! #[llm_tool]
//! fn add(a: i64, b: i64) -> i64 {
//!     a + b
//! }
//!
//! /// Counts how often it was called for this agent.
//! #[llm_tool]
//! async fn count_calls(ctx: ToolContext) -> Result<u64, String> {
//!     Ok(ctx.update("calls", |n: Option<u64>| n.unwrap_or(0) + 1))
//! }
//!
//! let mut registry = ToolRegistry::new();
//! registry.register(Add).unwrap();
//! registry.register(CountCalls).unwrap();
//! assert_eq!(registry.names(), ["add", "count_calls"]);
//! ```

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Display,
    future::Future,
    sync::Arc,
    time::Duration,
};

use futures::{FutureExt, future::BoxFuture};
use parking_lot::RwLock;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::error::{Error, Result};

pub(crate) mod macro_support {
    //! Helpers the code `#[llm_tool]` generates calls (through `agy_bridge::__private`).

    use std::fmt::Display;

    use serde::{Serialize, de::DeserializeOwned};
    use serde_json::Value;

    use super::ToolError;

    /// Decodes tool arguments (used by `#[llm_tool]`).
    ///
    /// # Errors
    /// [`ToolError::InvalidArguments`] naming the mismatch.
    pub fn parse_args<A: DeserializeOwned>(tool: &str, args: Value) -> Result<A, ToolError> {
        serde_json::from_value(args).map_err(|e| ToolError::InvalidArguments {
            tool: tool.to_owned(),
            message: e.to_string(),
        })
    }

    /// Turns a tool's `Result<T, E>` into its JSON output (used by `#[llm_tool]`).
    ///
    /// # Errors
    /// [`ToolError::Failed`] with `E`'s message.
    pub fn result_output<T: Serialize, E: Display>(
        r: std::result::Result<T, E>,
    ) -> Result<Value, ToolError> {
        r.map_err(ToolError::failed).and_then(value_output)
    }

    /// Turns a tool's plain return value into its JSON output (used by `#[llm_tool]`).
    ///
    /// # Errors
    /// [`ToolError::Failed`] if the value cannot be serialized.
    pub fn value_output<T: Serialize>(v: T) -> Result<Value, ToolError> {
        serde_json::to_value(v).map_err(ToolError::failed)
    }
}

/// Shared key-value state of one agent, visible to all its tools, kept across calls and turns.
#[derive(Debug, Clone, Default)]
pub struct ToolState(Arc<RwLock<HashMap<String, Value>>>);

/// What a tool call knows about its caller.
#[derive(Debug, Clone)]
pub struct ToolContext {
    agent_id: String,
    conversation_id: String,
    state: ToolState,
    /// Signalled by [`ToolContext::progress`]; restarts the call's timeout.
    progress: Arc<tokio::sync::Notify>,
}

impl ToolContext {
    /// A context for `agent_id` sharing `state`.
    #[must_use]
    pub fn new(
        agent_id: impl Into<String>,
        conversation_id: impl Into<String>,
        state: ToolState,
    ) -> Self {
        Self {
            agent_id: agent_id.into(),
            conversation_id: conversation_id.into(),
            state,
            progress: Arc::default(),
        }
    }

    /// Tells the bridge the call is still making progress: its timeout
    /// ([`Tool::timeout`] or [`ToolRegistry::set_default_timeout`]) starts over. A long job
    /// that reports progress is never cut off, and one that stalls still is.
    ///
    /// ```
    /// use agy_bridge::{llm_tool, tools::ToolContext};
    ///
    /// /// Indexes every file of a large tree.
    /// #[llm_tool]
    /// async fn index_tree(ctx: ToolContext) -> Result<u32, String> {
    ///     let mut indexed = 0;
    ///     for _chunk in 0..1_000 {
    ///         // ... each chunk takes well under the timeout, the whole tree much longer ...
    ///         indexed += 1;
    ///         ctx.progress();
    ///     }
    ///     Ok(indexed)
    /// }
    /// // With `AgentConfig::tool_timeout(Duration::from_secs(10))`, a call that stops
    /// // reporting progress for 10 s fails; one that keeps reporting runs to the end.
    /// ```
    pub fn progress(&self) {
        self.progress.notify_one();
    }

    /// The calling agent's id.
    #[must_use]
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// The calling agent's conversation id.
    #[must_use]
    pub fn conversation_id(&self) -> &str {
        &self.conversation_id
    }

    /// Reads a state value, if present and of type `T`.
    #[must_use]
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let map = self.state.0.read();
        map.get(key)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// Stores a state value.
    pub fn set(&self, key: impl Into<String>, value: impl Serialize) {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        let mut map = self.state.0.write();
        map.insert(key.into(), value);
    }

    /// Atomically replaces a value with `f(old)` and returns the new value.
    pub fn update<T: Serialize + DeserializeOwned + Clone>(
        &self,
        key: &str,
        f: impl FnOnce(Option<T>) -> T,
    ) -> T {
        let mut map = self.state.0.write();
        let old = map
            .get(key)
            .and_then(|v| serde_json::from_value(v.clone()).ok());
        let new = f(old);
        map.insert(
            key.to_owned(),
            serde_json::to_value(new.clone()).unwrap_or(Value::Null),
        );
        new
    }
}

/// Why a tool call failed. The model sees the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The arguments did not match the tool's parameters.
    #[error("invalid arguments for {tool}: {message}")]
    InvalidArguments {
        /// The tool.
        tool: String,
        /// What did not match.
        message: String,
    },
    /// The tool returned an error.
    #[error("{0}")]
    Failed(String),
    /// The tool panicked.
    #[error("tool {tool} panicked: {message}")]
    Panicked {
        /// The tool.
        tool: String,
        /// The panic message.
        message: String,
    },
    /// The tool did not finish within its timeout.
    #[error("tool {tool} timed out after {timeout:?}")]
    TimedOut {
        /// The tool.
        tool: String,
        /// Its timeout.
        timeout: Duration,
    },
}

impl ToolError {
    /// A failure with a message for the model.
    pub fn failed(message: impl Display) -> Self {
        Self::Failed(message.to_string())
    }
}

/// A tool the model can call.
pub trait Tool: Send + Sync + 'static {
    /// The name the model sees (unique per agent).
    fn name(&self) -> &str;
    /// What the tool does, for the model.
    fn description(&self) -> &str;
    /// JSON schema of the parameters (an object schema).
    fn parameters(&self) -> Value;
    /// Runs the tool.
    fn call(&self, args: Value, ctx: ToolContext) -> BoxFuture<'static, Result<Value, ToolError>>;
    /// A deadline for one call, started over each time the tool calls
    /// [`ToolContext::progress`]; `None` (the default) waits as long as it takes.
    fn timeout(&self) -> Option<Duration> {
        None
    }
    /// Whether the tool promises never to block its thread (it only awaits). Such a tool runs
    /// on the runtime's own threads, skipping the hand-off to a blocking-pool thread that every
    /// other tool call pays (a thread wake-up, ~10–15 µs; see BENCHMARKS.md). A tool that
    /// blocks anyway stalls the runtime's thread it runs on, and deadlines on that thread wait
    /// for it. Default `false`.
    fn nonblocking(&self) -> bool {
        false
    }
}

type ToolFn =
    dyn Fn(Value, ToolContext) -> BoxFuture<'static, Result<Value, ToolError>> + Send + Sync;

/// A tool from a closure, without macros.
///
/// ```
/// use agy_bridge::tools::{FnTool, ToolError};
/// use serde_json::json;
///
/// let shout = FnTool::new(
///     "shout",
///     "Upper-cases a text.",
///     json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
///     |args, _ctx| async move {
///         let text = args["text"].as_str().ok_or_else(|| ToolError::failed("text missing"))?;
///         Ok(json!(text.to_uppercase()))
///     },
/// );
/// ```
#[derive(Clone)]
pub struct FnTool {
    name: String,
    description: String,
    parameters: Value,
    timeout: Option<Duration>,
    nonblocking: bool,
    f: Arc<ToolFn>,
}

impl std::fmt::Debug for FnTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnTool")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl FnTool {
    /// A tool taking raw JSON arguments.
    pub fn new<F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        parameters: Value,
        f: F,
    ) -> Self
    where
        F: Fn(Value, ToolContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, ToolError>> + Send + 'static,
    {
        Self {
            name: name.into(),
            description: description.into(),
            parameters,
            timeout: None,
            nonblocking: false,
            f: Arc::new(move |args, ctx| f(args, ctx).boxed()),
        }
    }

    /// A tool whose arguments are the typed struct `A` (schema derived with `schemars`).
    pub fn typed<A, R, E, F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        f: F,
    ) -> Self
    where
        A: DeserializeOwned + schemars::JsonSchema + Send + 'static,
        R: Serialize,
        E: Display,
        F: Fn(A, ToolContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<R, E>> + Send + 'static,
    {
        let name = name.into();
        let tool = name.clone();
        let f = Arc::new(f);
        Self::new(name, description, schema_for::<A>(), move |args, ctx| {
            let f = Arc::clone(&f);
            let tool = tool.clone();
            async move {
                let args = macro_support::parse_args::<A>(&tool, args)?;
                macro_support::result_output(f(args, ctx).await)
            }
        })
    }

    /// Sets a per-call timeout.
    #[must_use]
    pub const fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Promises that the tool never blocks its thread, so it runs on the runtime's threads
    /// without a hand-off (see [`Tool::nonblocking`]).
    #[must_use]
    pub const fn nonblocking(mut self) -> Self {
        self.nonblocking = true;
        self
    }
}

impl Tool for FnTool {
    fn name(&self) -> &str {
        &self.name
    }
    fn description(&self) -> &str {
        &self.description
    }
    fn parameters(&self) -> Value {
        self.parameters.clone()
    }
    fn call(&self, args: Value, ctx: ToolContext) -> BoxFuture<'static, Result<Value, ToolError>> {
        (self.f)(args, ctx)
    }
    fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
    fn nonblocking(&self) -> bool {
        self.nonblocking
    }
}

/// The tools of one agent, by name.
#[derive(Clone, Default)]
pub struct ToolRegistry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
    default_timeout: Option<Duration>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolRegistry")
            .field("tools", &self.names())
            .finish()
    }
}

impl ToolRegistry {
    /// An empty registry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tool.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if a tool of that name exists; [`Error::InvalidToolSchema`] if
    /// its parameters are not a valid JSON Schema of an object.
    pub fn register(&mut self, tool: impl Tool) -> Result<()> {
        self.register_arc(Arc::new(tool))
    }

    /// Adds a shared tool.
    ///
    /// # Errors
    /// As [`ToolRegistry::register`].
    pub fn register_arc(&mut self, tool: Arc<dyn Tool>) -> Result<()> {
        let name = tool.name().to_owned();
        if name.is_empty() {
            return Err(Error::InvalidConfig {
                message: "a tool name must not be empty".into(),
            });
        }
        let parameters = tool.parameters();
        // A schema the harness cannot use would make every turn of the agent fail; refuse it
        // here, naming the place in the schema.
        if let Err(e) = jsonschema::meta::validate(&parameters) {
            return Err(Error::InvalidToolSchema {
                tool: name,
                path: e.instance_path().to_string(),
                message: e.to_string(),
            });
        }
        if parameters.get("type").and_then(Value::as_str) != Some("object") {
            return Err(Error::InvalidToolSchema {
                tool: name,
                path: "/type".into(),
                message: "the parameters must be a JSON schema of type \"object\"".into(),
            });
        }
        if self.tools.contains_key(&name) {
            return Err(Error::InvalidConfig {
                message: format!("tool {name} is registered twice"),
            });
        }
        self.tools.insert(name, tool);
        Ok(())
    }

    /// A timeout for tools that set none themselves.
    pub const fn set_default_timeout(&mut self, timeout: Option<Duration>) {
        self.default_timeout = timeout;
    }

    /// Tool names, sorted.
    #[must_use]
    pub fn names(&self) -> Vec<&str> {
        self.tools.keys().map(String::as_str).collect()
    }

    /// Whether a tool of that name exists.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.tools.contains_key(name)
    }

    /// Whether the registry is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// Declarations of all tools, as the worker hands them to the SDK.
    pub(crate) fn declarations(&self) -> Vec<crate::protocol::wire::ToolSpec> {
        self.tools
            .values()
            .map(|t| crate::protocol::wire::ToolSpec {
                name: t.name().to_owned(),
                description: t.description().to_owned(),
                parameters: t.parameters(),
            })
            .collect()
    }

    /// Runs a tool: a panic or a timeout becomes a [`ToolError`], never a crash.
    ///
    /// # Errors
    /// The tool's error, [`ToolError::Panicked`], [`ToolError::TimedOut`], or
    /// [`ToolError::InvalidArguments`] for an unknown tool.
    pub(crate) async fn dispatch(
        &self,
        name: &str,
        args: Value,
        ctx: ToolContext,
    ) -> Result<Value, ToolError> {
        let tool = self
            .tools
            .get(name)
            .ok_or_else(|| ToolError::InvalidArguments {
                tool: name.to_owned(),
                message: "no such tool".into(),
            })?;
        let progress = Arc::clone(&ctx.progress);
        // Off the async threads (a tool that blocks its thread holds only that thread), unless
        // the tool promised never to block.
        let call = if tool.nonblocking() {
            super::user_code::run_here(tool.call(args, ctx)).boxed()
        } else {
            super::user_code::run(tool.call(args, ctx)).boxed()
        };
        let outcome = match tool.timeout().or(self.default_timeout) {
            Some(timeout) => {
                let mut call = std::pin::pin!(call);
                loop {
                    tokio::select! {
                        outcome = &mut call => break outcome,
                        () = progress.notified() => {} // progress: a fresh timeout
                        () = tokio::time::sleep(timeout) => {
                            return Err(ToolError::TimedOut {
                                tool: name.to_owned(),
                                timeout,
                            });
                        }
                    }
                }
            }
            None => call.await,
        };
        outcome.unwrap_or_else(|interrupted| match interrupted {
            super::user_code::Interrupted::Panicked(message) => Err(ToolError::Panicked {
                tool: name.to_owned(),
                message,
            }),
            super::user_code::Interrupted::Cancelled => {
                Err(ToolError::failed(format!("tool {name} was cancelled")))
            }
        })
    }
}

/// The JSON schema of `T` as a tool parameter object: subschemas inlined (models handle `$ref`
/// poorly), no `$schema` or `title`.
#[must_use]
pub fn schema_for<T: schemars::JsonSchema>() -> Value {
    let settings = schemars::generate::SchemaSettings::draft2020_12().with(|s| {
        s.inline_subschemas = true;
    });
    let mut schema = settings
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value();
    if let Value::Object(map) = &mut schema {
        map.remove("$schema");
        map.remove("title");
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Sleeps `steps` times for `step`, reporting progress after each step when `report`.
    fn slow_tool(name: &str, steps: u32, step: Duration, report: bool) -> FnTool {
        FnTool::new(
            name,
            "slow",
            json!({"type": "object"}),
            move |_args, ctx| async move {
                for _ in 0..steps {
                    tokio::time::sleep(step).await;
                    if report {
                        ctx.progress();
                    }
                }
                Ok(json!("done"))
            },
        )
    }

    // Real time (tools run on the blocking pool, and tokio's paused clock does not advance
    // while a blocking task runs): steps far apart from the timeout, so a slow machine cannot
    // tell the two cases apart.
    #[tokio::test(flavor = "multi_thread")]
    async fn progress_restarts_the_timeout_and_a_stall_still_times_out() {
        let mut registry = ToolRegistry::new();
        let step = Duration::from_millis(400);
        registry
            .register(slow_tool("reporting", 5, step, true))
            .unwrap();
        registry
            .register(slow_tool("silent", 5, step, false))
            .unwrap();
        registry.set_default_timeout(Some(Duration::from_millis(1500)));
        // 2 s in all, never 1.5 s without progress; the silent one goes 2 s without any.
        let done = registry.dispatch("reporting", json!({}), ctx()).await;
        assert_eq!(done.unwrap(), json!("done"));
        let silent = registry.dispatch("silent", json!({}), ctx()).await;
        assert!(
            matches!(silent, Err(ToolError::TimedOut { .. })),
            "{silent:?}"
        );
    }

    fn ctx() -> ToolContext {
        ToolContext::new("agent-1", "conv", ToolState::default())
    }

    #[tokio::test]
    async fn panics_and_timeouts_become_tool_errors() {
        let mut reg = ToolRegistry::new();
        reg.register(FnTool::new(
            "boom",
            "panics",
            json!({"type": "object"}),
            |_, _| async { panic!("kaboom") },
        ))
        .unwrap();
        reg.register(
            FnTool::new(
                "sleepy",
                "sleeps",
                json!({"type": "object"}),
                |_, _| async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok(Value::Null)
                },
            )
            .with_timeout(Duration::from_millis(20)),
        )
        .unwrap();
        assert_eq!(
            reg.dispatch("boom", json!({}), ctx()).await,
            Err(ToolError::Panicked {
                tool: "boom".into(),
                message: "kaboom".into()
            })
        );
        assert!(matches!(
            reg.dispatch("sleepy", json!({}), ctx()).await,
            Err(ToolError::TimedOut { .. })
        ));
    }

    #[test]
    fn duplicate_and_non_object_tools_are_refused() {
        let mut reg = ToolRegistry::new();
        let t = || {
            FnTool::new("t", "", json!({"type": "object"}), |_, _| async {
                Ok(Value::Null)
            })
        };
        reg.register(t()).unwrap();
        assert!(matches!(
            reg.register(t()),
            Err(Error::InvalidConfig { .. })
        ));
        let bad = FnTool::new("bad", "", json!({}), |_, _| async { Ok(Value::Null) });
        assert!(matches!(
            reg.register(bad),
            Err(Error::InvalidToolSchema { path, .. }) if path == "/type"
        ));
        let invalid = FnTool::new(
            "invalid",
            "",
            json!({"type": "object", "properties": 5}),
            |_, _| async { Ok(Value::Null) },
        );
        assert!(matches!(
            reg.register(invalid),
            Err(Error::InvalidToolSchema { tool, path, .. }) if tool == "invalid" && path == "/properties"
        ));
    }

    #[test]
    fn state_is_shared_and_updates_are_atomic() {
        let state = ToolState::default();
        let a = ToolContext::new("a", "c", state.clone());
        let b = ToolContext::new("a", "c", state);
        a.set("k", 41);
        assert_eq!(b.update("k", |v: Option<i64>| v.unwrap_or(0) + 1), 42);
        assert_eq!(a.get::<i64>("k"), Some(42));
    }
}
