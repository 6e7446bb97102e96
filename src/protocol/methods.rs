//! Every method of the protocol, once: name, direction, params and result.

use serde_json::Value;

use super::{
    Direction, Method,
    hooks::HookAnswer,
    wire::{
        AgentCreateParams, AgentCreateResult, AgentRef, AnsweredParams, CancelResult,
        ChatEventParams, ChatParams, ChatResult, ConfirmParams, DebugParams, EchoParams,
        EchoResult, Empty, HarnessEventParams, HookParams, InitializeParams, NotifyParams,
        PingRustParams, PingRustResult, SelfStartedParams, SendParams, SpareHarnessesParams,
        ToolCallParams, WakeupParams, WhenParams, WorkerInfo,
    },
};
use crate::types::{ConversationState, Step};

macro_rules! methods {
    ($( $(#[$doc:meta])* $ty:ident = $name:literal, $dir:ident, $params:ty => $result:ty; )*) => {
        $(
            $(#[$doc])*
            // Some are only called by name (tests, benches) or by the rpc layer (`$/answered`);
            // all are declared here for the schema.
            #[cfg_attr(not(test), allow(dead_code))]
            pub(crate) enum $ty {}

            impl Method for $ty {
                const NAME: &'static str = $name;
                const DIRECTION: Direction = Direction::$dir;
                type Params = $params;
                type Result = $result;
            }
        )*

        /// Calls `visit` once per method, in declaration order.
        #[cfg(test)]
        pub(crate) fn each<V: super::schema::Visit>(visit: &mut V) {
            $( visit.method::<$ty>(); )*
        }
    };
}

methods! {
    /// Version handshake; must be first. The worker answers once the SDK is imported.
    Initialize = "initialize", RustToWorker, InitializeParams => WorkerInfo;
    /// Liveness probe, either direction: `"pong"`.
    Ping = "$/ping", RustToWorker, Option<Value> => String;
    /// Which of these request ids the peer has answered (asked after a corrupt line).
    Answered = "$/answered", RustToWorker, AnsweredParams => Vec<u64>;
    /// Heartbeat: `"pong"`.
    WorkerPing = "worker/ping", RustToWorker, Option<Value> => String;
    /// Echo (tests and benchmarks).
    WorkerEcho = "worker/echo", RustToWorker, EchoParams => EchoResult;
    /// The worker times reverse calls to Rust (benchmarks).
    WorkerPingRust = "worker/ping_rust", RustToWorker, PingRustParams => PingRustResult;
    /// Close every agent and exit.
    WorkerShutdown = "worker/shutdown", RustToWorker, Empty => Empty;
    /// Failure injection; only with `AGY_WORKER_DEBUG=1`.
    WorkerDebug = "worker/debug", RustToWorker, DebugParams => Value;
    /// Start an agent.
    AgentCreate = "agent/create", RustToWorker, AgentCreateParams => AgentCreateResult;
    /// Run one turn, streaming `chat/event`s.
    AgentChat = "agent/chat", RustToWorker, ChatParams => ChatResult;
    /// Start a turn without streaming it.
    AgentSend = "agent/send", RustToWorker, SendParams => Empty;
    /// Wait for a sent turn (its outcome) or a running one (`null`).
    AgentWaitForIdle = "agent/wait_for_idle", RustToWorker, AgentRef => Option<ChatResult>;
    /// Halt the running turn.
    AgentCancel = "agent/cancel", RustToWorker, AgentRef => CancelResult;
    /// The de-duplicated history.
    AgentHistory = "agent/history", RustToWorker, AgentRef => Vec<Step>;
    /// Counters, usage, last response, idleness.
    AgentState = "agent/state", RustToWorker, AgentRef => ConversationState;
    /// Clear the local history.
    AgentClearHistory = "agent/clear_history", RustToWorker, AgentRef => Empty;
    /// Wait until the agent starts a turn on its own.
    AgentWaitForWakeup = "agent/wait_for_wakeup", RustToWorker, WakeupParams => bool;
    /// Halt a self-started turn and forget wake-ups.
    AgentSignalIdle = "agent/signal_idle", RustToWorker, AgentRef => Empty;
    /// Stop the agent and its harness.
    AgentClose = "agent/close", RustToWorker, AgentRef => Empty;
    /// Send the agent a message as a trigger does (it starts a turn on its own).
    AgentNotify = "agent/notify", RustToWorker, NotifyParams => Empty;
    /// A turn the agent started on its own ended (notification).
    AgentSelfStarted = "agent/self_started", WorkerNotification, SelfStartedParams => ();
    /// One streamed event of a turn (notification).
    ChatEvent = "chat/event", WorkerNotification, ChatEventParams => ();
    /// The worker's pre-started harnesses changed (notification).
    SpareHarnesses = "worker/spare_harnesses", WorkerNotification, SpareHarnessesParams => ();
    /// A harness started or was lost (notification).
    HarnessChanged = "worker/harness", WorkerNotification, HarnessEventParams => ();
    /// Run a Rust tool; answers the tool's JSON result.
    ToolCall = "tool/call", WorkerToRust, ToolCallParams => Value;
    /// Run a Rust hook; answers the hook's result.
    HookRun = "hook/run", WorkerToRust, HookParams => HookAnswer;
    /// Ask an `ask_user` handler.
    PolicyConfirm = "policy/confirm", WorkerToRust, ConfirmParams => bool;
    /// Evaluate a policy rule's argument predicate.
    PolicyWhen = "policy/when", WorkerToRust, WhenParams => bool;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rpc_layer_s_own_methods_are_these() {
        assert_eq!(Answered::NAME, crate::rpc::ANSWERED_METHOD);
    }
}
