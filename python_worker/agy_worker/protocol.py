"""The protocol's constants on the worker side. `docs/protocol.schema.json` (generated from the
Rust types) is the source of truth; `tests/test_protocol.py` checks these against it."""

from __future__ import annotations

from .rpc import CONNECTION_CLOSED, MESSAGE_TOO_LARGE

# Error codes of ours (JSON-RPC's own, and the connection-level ones above, are in rpc.py).
VERSION_MISMATCH = -32003
UNKNOWN_AGENT = -32010
UNKNOWN_TOOL = -32011
AGENT_ERROR = -32020
INVALID_CONFIG = -32030
AGENT_BUSY = -32040
AGENT_DISCONNECTED = -32041
TOOL_FAILED = -32050
HOOK_FAILED = -32051

# Requests and notifications the worker sends to Rust.
TOOL_CALL = "tool/call"
HOOK_RUN = "hook/run"
POLICY_CONFIRM = "policy/confirm"
POLICY_WHEN = "policy/when"
CHAT_EVENT = "chat/event"
SPARE_HARNESSES = "worker/spare_harnesses"
HARNESS_EVENT = "worker/harness"
SELF_STARTED = "agent/self_started"

# SDK built-ins that only read; any other enabled built-in is a write tool (the SDK's rule).
READ_ONLY_BUILTINS = frozenset({"view_file", "read_url_content", "schedule", "finish"})

# Every hook point the Rust side can register a callback for.
HOOK_POINTS = (
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
)

__all__ = [
    "AGENT_BUSY",
    "AGENT_DISCONNECTED",
    "AGENT_ERROR",
    "CHAT_EVENT",
    "CONNECTION_CLOSED",
    "HARNESS_EVENT",
    "HOOK_FAILED",
    "HOOK_POINTS",
    "HOOK_RUN",
    "INVALID_CONFIG",
    "MESSAGE_TOO_LARGE",
    "POLICY_CONFIRM",
    "POLICY_WHEN",
    "READ_ONLY_BUILTINS",
    "SELF_STARTED",
    "SPARE_HARNESSES",
    "TOOL_CALL",
    "TOOL_FAILED",
    "UNKNOWN_AGENT",
    "UNKNOWN_TOOL",
    "VERSION_MISMATCH",
]
