"""Hosts Antigravity agents for the Rust side, keyed by the agent ids Rust assigns.

The worker holds nothing it cannot rebuild: configs, ids and directories come from Rust.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from .proxies import Callbacks, integral, make_hooks, make_policies, make_tool, tool_name
from .rpc import INVALID_PARAMS, Peer, RpcError

log = logging.getLogger("agy_worker.host")

UNKNOWN_AGENT = -32010
AGENT_ERROR = -32020
INVALID_CONFIG = -32030
AGENT_BUSY = -32040

_HTTP_STATUS = re.compile(r"status (\d{3})")


def _sdk():
    from google import antigravity  # imported lazily: the worker boots before the SDK is loaded

    return antigravity


def classify_exception(exc: BaseException) -> RpcError:
    """Turns an SDK exception into a typed error by its class and HTTP status, never by name."""
    from google.antigravity import types as t

    message = str(exc) or type(exc).__name__
    data: dict[str, Any] = {"exception": type(exc).__name__}
    if isinstance(exc, t.AntigravityExecutionError):
        m = _HTTP_STATUS.search(message)
        status = int(m.group(1)) if m else None
        data["http_status"] = status
        if status == 429 or "RESOURCE_EXHAUSTED" in message:
            data["kind"] = "quota"
        elif "max token limit" in message:
            data["kind"] = "max_tokens"
        elif status is not None:
            data["kind"] = "model_http"
        elif "connection refused" in message or "failed to send HTTP request" in message:
            data["kind"] = "model_unreachable"
        else:
            data["kind"] = "execution"
    elif isinstance(exc, t.AntigravityConnectionError):
        data["kind"] = "connection_lost"
    elif isinstance(exc, ValueError):
        data["kind"] = "invalid_request"
    else:
        data["kind"] = "internal"
    return RpcError(AGENT_ERROR, message, data)


def _usage(u: Any) -> dict[str, Any] | None:
    if u is None:
        return None
    return {
        "prompt_tokens": u.prompt_token_count,
        "cached_tokens": u.cached_content_token_count,
        "output_tokens": u.candidates_token_count,
        "thoughts_tokens": u.thoughts_token_count,
        "total_tokens": u.total_token_count,
    }


# SDK built-ins that only read; any other enabled built-in is a write tool (the SDK's rule).
READ_ONLY_BUILTINS = {"view_file", "read_url_content", "schedule", "finish"}


class HostedAgent:
    def __init__(self, agent_id: str):
        self.agent_id = agent_id
        self.agent: Any = None
        self.callbacks = Callbacks()
        self.turn_lock = asyncio.Lock()
        # True while a cancelled turn is being halted; the next turn waits for that, instead
        # of being refused as busy.
        self.cancelling = False
        self.turn_task: asyncio.Task | None = None

    def winding_down(self) -> bool:
        """Whether the running turn was cancelled (its task may not have seen it yet)."""
        task = self.turn_task
        requested = task is not None and getattr(task, "cancelling", lambda: 0)() > 0
        return self.cancelling or requested

    @property
    def harness_pid(self) -> int | None:
        proc = getattr(self.agent.conversation.connection, "_process", None)
        return getattr(proc, "pid", None)


class AgentHost:
    """The worker's agent table and the protocol methods that act on it."""

    def __init__(self, peer: Peer, sdk_ready: asyncio.Future):
        self.peer = peer
        self.sdk_ready = sdk_ready
        self.agents: dict[str, HostedAgent] = {}
        peer.method("agent/create", self.create)
        peer.method("agent/chat", self.chat)
        peer.method("agent/close", self.close)

    def _get(self, params: Any) -> HostedAgent:
        agent_id = (params or {}).get("agent_id")
        hosted = self.agents.get(agent_id)
        if hosted is None:
            raise RpcError(UNKNOWN_AGENT, f"no agent {agent_id!r} on this worker", {"agent_id": agent_id})
        return hosted

    def _build_config(self, agent_id: str, callbacks: Callbacks, cfg: dict[str, Any]) -> Any:
        ag = _sdk()
        model = cfg.get("model") or {}
        enabled = cfg.get("enabled_tools", [])
        has_writes = any(name not in READ_ONLY_BUILTINS for name in enabled)
        common: dict[str, Any] = {
            "conversation_id": cfg["conversation_id"],
            "save_dir": cfg["save_dir"],
            "app_data_dir": cfg["app_data_dir"],
            "session_continuation_mode": cfg.get("session_continuation_mode", "create_or_resume"),
            # Builtin tools are opt-in: the SDK default exposes file writes and commands.
            "capabilities": ag.CapabilitiesConfig(
                enabled_tools=enabled,
                agent_behavior=ag.AgentBehavior(cfg.get("agent_behavior", "autonomous")),
            ),
            "policies": make_policies(self.peer, agent_id, callbacks, cfg.get("policies"), has_writes),
            "tools": [make_tool(self.peer, agent_id, callbacks, d) for d in cfg.get("tools", [])],
            "hooks": make_hooks(self.peer, agent_id, callbacks, cfg.get("hooks", [])),
        }
        if cfg.get("system_instructions"):
            common["system_instructions"] = cfg["system_instructions"]
        if cfg.get("workspaces"):
            common["workspaces"] = cfg["workspaces"]
        if cfg.get("env"):
            common["env"] = cfg["env"]
        kind = model.get("kind")
        try:
            if kind == "openai_compatible":
                return ag.LocalOpenAIAgentConfig(model=model["model"], base_url=model["base_url"], **common)
            if kind == "gemini":
                extra = {k: model[k] for k in ("model", "api_key") if model.get(k)}
                return ag.LocalAgentConfig(**extra, **common)
            if kind == "vertex":
                extra = {k: model[k] for k in ("model", "project", "location", "api_key") if model.get(k)}
                return ag.LocalAgentConfig(vertex=True, **extra, **common)
        except Exception as e:  # pydantic.ValidationError names the field
            raise RpcError(INVALID_CONFIG, str(e), {"exception": type(e).__name__}) from e
        raise RpcError(INVALID_CONFIG, f"unknown model kind {kind!r}", {"field": "model.kind"})

    async def create(self, params: Any) -> dict[str, Any]:
        await self.sdk_ready
        agent_id = params.get("agent_id")
        if not isinstance(agent_id, str) or not agent_id:
            raise RpcError(INVALID_PARAMS, "agent_id must be a non-empty string")
        if agent_id in self.agents:
            raise RpcError(INVALID_PARAMS, f"agent {agent_id!r} already exists on this worker")
        hosted = HostedAgent(agent_id)
        config = self._build_config(agent_id, hosted.callbacks, params.get("config") or {})
        ag = _sdk()
        started = time.perf_counter()
        agent = ag.Agent(config)
        try:
            await agent.__aenter__()
        except RpcError:
            raise
        except Exception as e:
            raise RpcError(
                INVALID_CONFIG, f"agent failed to start: {e}", {"exception": type(e).__name__}
            ) from e
        hosted.agent = agent
        self.agents[agent_id] = hosted
        return {
            "agent_id": agent_id,
            "harness_pid": hosted.harness_pid,
            "start_ms": (time.perf_counter() - started) * 1000,
        }

    async def chat(self, params: Any) -> dict[str, Any]:
        hosted = self._get(params)
        turn_id = params.get("turn_id")
        prompt = params.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise RpcError(INVALID_PARAMS, "prompt must be a non-empty string")
        if hosted.turn_lock.locked() and not hosted.winding_down():
            raise RpcError(
                AGENT_BUSY,
                f"agent {hosted.agent_id} is already running a turn",
                {"agent_id": hosted.agent_id},
            )
        async with hosted.turn_lock:
            hosted.turn_task = asyncio.current_task()
            try:
                return await self._run_turn(hosted, turn_id, prompt)
            finally:
                hosted.turn_task = None

    async def _run_turn(self, hosted: HostedAgent, turn_id: Any, prompt: str) -> dict[str, Any]:
        from google.antigravity import types as t

        agent_id = hosted.agent_id
        notify = self.peer.notify
        response = None
        try:
            response = await hosted.agent.chat(prompt)
            async for chunk in response.chunks:
                if isinstance(chunk, t.Text):
                    event = {"type": "text", "text": chunk.text}
                elif isinstance(chunk, t.Thought):
                    event = {"type": "thought", "text": chunk.text}
                elif isinstance(chunk, t.ToolCall):
                    event = {
                        "type": "tool_call",
                        "id": chunk.id,
                        "name": tool_name(chunk.name),
                        "args": integral(chunk.args),
                    }
                else:
                    continue
                notify("chat/event", {"agent_id": agent_id, "turn_id": turn_id, "event": event})
            text = await response.text()
            stop = response.stop_reason
            return {
                "text": text,
                "usage": _usage(response.usage_metadata),
                "stop_reason": getattr(stop, "value", str(stop)),
            }
        except asyncio.CancelledError:
            # The Rust side cancelled the request (or dropped the stream). Cancelling only the
            # consuming task would leave the harness turn running, so halt it explicitly.
            log.info("turn of %s cancelled (response started: %s)", agent_id, response is not None)
            if response is not None:
                hosted.cancelling = True
                try:
                    await asyncio.shield(self._halt_turn(hosted))
                except BaseException:  # noqa: BLE001 - best effort while already cancelling
                    log.warning("cancelling the turn of %s failed", agent_id)
                finally:
                    hosted.cancelling = False
            raise
        except RpcError:
            raise
        except Exception as e:
            raise classify_exception(e) from e

    async def _halt_turn(self, hosted: HostedAgent) -> None:
        """Halts the harness turn and waits until the SDK reports the agent idle again."""
        conversation = hosted.agent.conversation
        # Rust tools and confirmations in flight are cancelled too; the SDK would let them run.
        hosted.callbacks.cancel_all()
        await asyncio.wait_for(conversation.cancel(), 5)
        await asyncio.wait_for(conversation.wait_for_idle(), 10)

    async def close(self, params: Any) -> dict[str, Any]:
        hosted = self._get(params)
        self.agents.pop(hosted.agent_id, None)
        await self._close_agent(hosted)
        return {}

    async def _close_agent(self, hosted: HostedAgent) -> None:
        try:
            await hosted.agent.__aexit__(None, None, None)
        except Exception:
            log.warning("closing agent %s raised", hosted.agent_id, exc_info=True)

    async def close_all(self, timeout: float) -> None:
        agents = list(self.agents.values())
        self.agents.clear()
        if not agents:
            return
        try:
            await asyncio.wait_for(asyncio.gather(*(self._close_agent(a) for a in agents)), timeout)
        except asyncio.TimeoutError:
            log.warning("agents did not close within %.1fs", timeout)
