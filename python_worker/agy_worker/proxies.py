"""SDK-side stand-ins for Rust tools, hooks and policy handlers.

Each proxy turns the SDK's callback into a reverse request to Rust (`tool/call`, `hook/run`,
`policy/confirm`) carrying the agent id. The task running a callback is tracked on the agent so
that cancelling a turn also cancels the Rust work in flight (the SDK itself would let a tool run
on after the turn was halted).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .protocol import HOOK_RUN, POLICY_CONFIRM, POLICY_WHEN, TOOL_CALL
from .rpc import INVALID_PARAMS, Peer, RpcError

log = logging.getLogger("agy_worker.proxies")


def integral(value: Any) -> Any:
    """The harness turns every JSON number into a float; give integers back their type."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [integral(v) for v in value]
    return value


def tool_name(name: Any) -> str:
    return str(getattr(name, "value", name))


class Callbacks:
    """The reverse calls in flight for one agent."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self.hooks: set[asyncio.Task[Any]] = set()

    async def run(self, coro: Awaitable[Any], *, hook: bool = False) -> Any:
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
            if hook:
                self.hooks.add(task)
        try:
            return await coro
        finally:
            if task is not None:
                self.tasks.discard(task)
                self.hooks.discard(task)

    async def settle_hooks(self, timeout: float) -> None:
        """Waits (at most `timeout` seconds) for the hook calls in flight.

        The SDK runs some hooks (`on_session_start`) concurrently with the turn, so a turn can
        end while one is still with Rust; waiting for it keeps its outcome (a failure report)
        inside the turn that started it. A hook still running after `timeout` is left running.
        """
        pending = {task for task in self.hooks if task is not asyncio.current_task()}
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    def cancel_all(self) -> None:
        log.info("cancelling %d reverse calls in flight", len(self.tasks))
        for task in list(self.tasks):
            task.cancel()


def make_tool(
    peer: Peer,
    agent_id: str,
    callbacks: Callbacks,
    decl: dict[str, Any],
    trace: Callable[[], dict[str, str] | None] = lambda: None,
) -> Any:
    """The SDK tool that runs Rust tool `decl` by a `tool/call` reverse request, carrying the
    W3C trace context `trace` gives (the SDK's tool span), when tracing is on."""
    from google.antigravity.tools.tool_runner import ToolWithSchema
    from google.antigravity.types import ToolExecutionError

    name = decl["name"]

    async def _proxy(**kwargs: Any) -> Any:
        params: dict[str, Any] = {"agent_id": agent_id, "tool": name, "args": integral(kwargs)}
        context = trace()
        if context:
            params["trace"] = context
        try:
            return await callbacks.run(peer.call(TOOL_CALL, params))
        except RpcError as e:
            raise ToolExecutionError(e.message, tool_name=name) from None

    _proxy.__name__ = name
    _proxy.__qualname__ = name
    _proxy.__doc__ = decl.get("description", "")
    return ToolWithSchema(_proxy, decl["parameters"])


def make_policies(
    peer: Peer, agent_id: str, callbacks: Callbacks, rules: list[dict[str, Any]] | None, has_writes: bool
) -> list[Any]:
    from google.antigravity.hooks import policy

    if rules is None:
        # No policy given: allow everything unless write tools are on; then hand the SDK an
        # empty list so that its own safety rule refuses the agent with a clear message.
        return [] if has_writes else [policy.allow_all()]
    out: list[Any] = []
    for rule in rules:
        tool, decision, reason = rule["tool"], rule["decision"], rule.get("reason", "")
        # The SDK's presets name their rules, and the harness reads some names
        # (workspace_only is enforced by path, allow_all is a catch-all).
        named: dict[str, Any] = {"name": rule["name"]} if rule.get("name") else {}
        if rule.get("when"):
            named["when"] = _predicate(peer, agent_id, callbacks, rule)
        if decision == "allow":
            out.append(policy.allow(tool, **named))
        elif decision == "deny":
            out.append(policy.deny(tool, reason=reason, **named))
        elif decision in ("auto", "auto_ask"):
            handler = _confirm(peer, agent_id, callbacks, rule) if decision == "auto_ask" else None
            out.append(policy.auto(handler=handler, model=rule.get("model")))
        else:
            out.append(
                policy.ask_user(
                    tool, handler=_confirm(peer, agent_id, callbacks, rule), reason=reason, **named
                )
            )
    return out


def _predicate(
    peer: Peer, agent_id: str, callbacks: Callbacks, rule: dict[str, Any]
) -> Callable[[Any], Awaitable[bool]]:
    """A rule's argument predicate, evaluated in Rust (`policy/when`). The SDK hands it the
    call's arguments. When Rust cannot answer, it decides closed: an allow rule does not
    apply, a deny or ask rule does."""
    closed: bool = rule["decision"] != "allow"

    async def when(args: Any) -> bool:
        params = {"agent_id": agent_id, "index": rule["index"], "tool": rule["tool"], "args": integral(args)}
        try:
            return bool(await callbacks.run(peer.call(POLICY_WHEN, params)))
        except RpcError as e:
            log.warning("policy predicate for %s failed closed: %s", rule["tool"], e.message)
            return closed

    return when


def _confirm(
    peer: Peer, agent_id: str, callbacks: Callbacks, rule: dict[str, Any]
) -> Callable[..., Awaitable[bool]]:
    async def handler(tool_call: Any, reason: str = "") -> bool:
        params = {
            "agent_id": agent_id,
            "index": rule["index"],
            "tool": tool_name(tool_call.name),
            "args": integral(tool_call.args),
            "reason": reason or rule.get("reason", ""),
        }
        try:
            return bool(await callbacks.run(peer.call(POLICY_CONFIRM, params)))
        except RpcError as e:
            log.warning("policy confirmation for %s failed closed: %s", params["tool"], e.message)
            return False

    return handler


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part for part in content if isinstance(part, str))
    return str(content)


def _json_or_text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def make_hooks(peer: Peer, agent_id: str, callbacks: Callbacks, points: list[str]) -> list[Any]:
    """One class-based SDK hook per point that Rust registered."""
    from google.antigravity import types as t
    from google.antigravity.hooks import hooks as h

    async def call(point: str, data: dict[str, Any]) -> Any:
        data["agent_id"] = agent_id
        return await callbacks.run(
            peer.call(HOOK_RUN, {"agent_id": agent_id, "point": point, "data": data}), hook=True
        )

    def decide(result: Any) -> Any:
        return t.HookResult(
            allow=bool(result.get("allow", True)),
            message=result.get("message", ""),
            modified_args=result.get("modified_args"),
        )

    specs: dict[str, tuple[type, Callable[[Any], dict[str, Any]], Callable[[Any], Any] | None]] = {
        "on_session_start": (h.OnSessionStartHook, lambda d: {}, None),
        "on_session_end": (h.OnSessionEndHook, lambda d: {}, None),
        "pre_turn": (h.PreTurnHook, lambda d: {"prompt": _content_text(d)}, decide),
        "post_turn": (h.PostTurnHook, lambda d: {"response": d or ""}, None),
        "pre_tool_call_decide": (
            h.PreToolCallDecideHook,
            lambda d: {"call_id": d.id, "tool": tool_name(d.name), "args": integral(d.args)},
            decide,
        ),
        "post_tool_call": (
            h.PostToolCallHook,
            lambda d: {"call_id": d.id, "tool": tool_name(d.name), "result": _json_or_text(d.result)},
            None,
        ),
        "on_tool_error": (
            h.OnToolErrorHook,
            lambda e: {
                "call_id": getattr(e, "call_id", None),
                "tool": getattr(e, "tool_name", None),
                "message": str(e),
            },
            lambda r: r,
        ),
        "on_compaction": (h.OnCompactionHook, lambda s: {"summary": s.content or ""}, None),
        "on_interaction": (
            h.OnInteractionHook,
            lambda spec: {"questions": spec.model_dump(mode="json")["questions"]},
            lambda r: t.QuestionHookResult.model_validate(r),
        ),
        "stop": (
            h.StopHook,
            lambda a: {**integral(a.model_dump(mode="json")), "stop_reason": str(a.stop_reason or "")},
            lambda r: t.StopHookResult(
                decision=t.StopDecision(r.get("decision", "ALLOW_STOP")), reason=r.get("reason", "")
            ),
        ),
    }

    def _fail_closed(point: str, e: RpcError) -> Any:
        """What a hook answers when Rust could not run it (the agent is gone, the call was
        refused, ...): decide-hooks refuse, as Rust's own failure path does; None raises."""
        refusal = f"{point} hook failed: {e.message}"
        if point in ("pre_turn", "pre_tool_call_decide"):
            # (A raising pre_turn hook would make the SDK silently skip the turn.)
            return t.HookResult(allow=False, message=refusal)
        if point == "stop":
            return t.StopHookResult(decision=t.StopDecision.ALLOW_STOP, reason="")
        if point == "on_interaction":
            return t.QuestionHookResult.model_validate({"responses": [], "cancelled": True})
        return None

    out = []
    for point in points:
        if point not in specs:
            raise RpcError(INVALID_PARAMS, f"unknown hook point {point!r}")
        base, to_wire, from_wire = specs[point]

        async def run(
            self: Any,
            context: Any,
            data: Any = None,
            *,
            _point: str = point,
            _w: Callable[[Any], dict[str, Any]] = to_wire,
            _r: Callable[[Any], Any] | None = from_wire,
        ) -> Any:
            try:
                result = await call(_point, _w(data))
            except RpcError as e:
                closed = _fail_closed(_point, e)
                if closed is None:
                    raise
                return closed
            return _r(result) if _r is not None else None

        cls = type(f"Rust{base.__name__}", (base,), {"run": run})
        out.append(cls())
    return out
