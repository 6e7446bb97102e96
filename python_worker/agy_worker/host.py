"""Hosts Antigravity agents for the Rust side, keyed by the agent ids Rust assigns.

The worker holds nothing it cannot rebuild: configs, ids and directories come from Rust.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import time
from typing import Any

from . import telemetry
from .protocol import (
    AGENT_BUSY,
    AGENT_DISCONNECTED,
    AGENT_ERROR,
    CHAT_EVENT,
    HARNESS_EVENT,
    INVALID_CONFIG,
    READ_ONLY_BUILTINS,
    SELF_STARTED,
    UNKNOWN_AGENT,
)
from .proxies import Callbacks, integral, make_hooks, make_policies, make_tool, tool_name
from .rpc import INVALID_PARAMS, Peer, RpcError
from .workflows import WorkflowRun

log = logging.getLogger("agy_worker.host")

# How long a finished turn waits for hooks the SDK runs beside it (on_session_start) before
# answering, so that their failure is reported in the turn (see Callbacks.settle_hooks).
HOOK_SETTLE_SECS = 10.0

_HTTP_STATUS = re.compile(r"status (\d{3})")
# "Retry-After: 7", "retry after 7s", or Google's "retryDelay": "7s".
_RETRY_AFTER = re.compile(r"(?i)retry[-_ ]?(?:after|delay)[\"']?\s*[:=]?\s*[\"']?(\d+(?:\.\d+)?)")


def _sdk() -> Any:
    from google import antigravity  # imported lazily: the worker boots before the SDK is loaded

    return antigravity


def _http_status(exc: BaseException, message: str) -> int | None:
    """The HTTP status of a failed model call: an attribute where the exception carries one,
    else the `status NNN` the harness writes into the message (the SDK's exception classes
    carry no status of their own in 0.1.22)."""
    for attr in ("status", "status_code", "code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 100 <= value <= 599:
            return value
    m = _HTTP_STATUS.search(message)
    return int(m.group(1)) if m else None


def classify_exception(exc: BaseException) -> RpcError:
    """Turns an SDK exception into a typed error. The exception class decides first (execution,
    connection, invalid request); then the HTTP status (429 is quota, any other is model_http).
    Within an execution error without a status, the kind comes from the harness's own message
    texts, since the SDK offers nothing structured for them: `RESOURCE_EXHAUSTED` (quota),
    `max token limit`, a safety or content filter, and an unreachable model server. Rust
    reads only `data.kind`, never class names."""
    from google.antigravity import types as t

    message = str(exc) or type(exc).__name__
    data: dict[str, Any] = {"exception": type(exc).__name__}
    if isinstance(exc, t.AntigravityExecutionError):
        status = _http_status(exc, message)
        data["http_status"] = status
        # Every execution error kills the SDK session except a pre_turn refusal.
        data["session_dead"] = "blocked by pre_turn" not in message
        retry = _RETRY_AFTER.search(message)
        if retry:
            data["retry_after_secs"] = float(retry.group(1))
        if status == 429 or "RESOURCE_EXHAUSTED" in message:
            data["kind"] = "quota"
        elif status is not None:
            data["kind"] = "model_http"
        elif "max token limit" in message:
            data["kind"] = "max_tokens"
        elif "SAFETY" in message or "safety filter" in message or "content_filter" in message:
            data["kind"] = "safety"
        elif "connection refused" in message or "failed to send HTTP request" in message:
            data["kind"] = "model_unreachable"
        else:
            data["kind"] = "execution"
    elif isinstance(exc, t.AntigravityConnectionError):
        data["kind"] = "connection_lost"
        data["session_dead"] = True
    elif isinstance(exc, ValueError):
        data["kind"] = "invalid_request"
    else:
        data["kind"] = "internal"
    return RpcError(AGENT_ERROR, message, data)


def sandbox_status(agent: Any) -> dict[str, Any] | None:
    """The harness's sandbox status for the agent's conversation, as it reported it."""
    try:
        status = agent.conversation.connection.sandbox_status
    except Exception:  # noqa: BLE001 - no connection (yet): nothing reported
        return None
    if status is None:
        return None
    return {"available": bool(status.available), "unavailable_reason": status.unavailable_reason}


def sandbox_warning(config: Any, sandbox: dict[str, Any] | None) -> dict[str, Any] | None:
    """The `sandbox_unavailable` event for an agent that asked for a sandbox the harness does not
    have (its commands then run unsandboxed), else None."""
    run_command = getattr(getattr(config, "capabilities", None), "run_command_config", None)
    if not getattr(run_command, "enable_sandbox", False) or sandbox is None or sandbox["available"]:
        return None
    return {"type": "sandbox_unavailable", "reason": sandbox.get("unavailable_reason") or "no sandbox"}


def _usage(u: Any) -> dict[str, Any] | None:
    if u is None:
        return None
    usage = {
        "prompt_tokens": u.prompt_token_count,
        "cached_tokens": u.cached_content_token_count,
        "output_tokens": u.candidates_token_count,
        "thoughts_tokens": u.thoughts_token_count,
        "total_tokens": u.total_token_count,
    }
    tier = getattr(u, "service_tier", None)
    if tier is not None:
        usage["service_tier"] = str(getattr(tier, "value", tier))
    return usage


def _trajectory_usages(conversation: Any) -> dict[str, Any]:
    try:
        return dict(conversation.trajectory_usages or {})
    except Exception:  # noqa: BLE001 - usage is a report, never a reason to fail a turn
        return {}


def subagent_usage(conversation: Any, before: dict[str, Any]) -> dict[str, Any]:
    """This turn's usage by each subagent trajectory: what `trajectory_usages` grew by since
    `before`, leaving out the main trajectory (the conversation's own id)."""
    main = getattr(conversation, "conversation_id", None)
    out: dict[str, Any] = {}
    for trajectory, usage in _trajectory_usages(conversation).items():
        if trajectory == main:
            continue
        earlier = before.get(trajectory)
        delta = usage - earlier if earlier is not None else usage
        if any(
            getattr(delta, f, None)
            for f in ("prompt_token_count", "candidates_token_count", "total_token_count")
        ):
            out[trajectory] = _usage(delta)
    return out


def conversation_usage(conversation: Any) -> dict[str, Any] | None:
    """The conversation's running total (the harness keeps it with the conversation)."""
    try:
        return _usage(conversation.total_usage)
    except Exception:  # noqa: BLE001 - usage is a report, never a reason to fail a turn
        return None


def google_model(kind: str, model: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """`LocalAgentConfig`'s model arguments for a Gemini or Vertex AI agent: the shorthand
    fields, or with options an explicit `ModelTarget` whose endpoint carries them (the only
    way the SDK takes `GeminiModelOptions`, a `base_url` or headers)."""
    fields = ("model", "api_key") if kind == "gemini" else ("model", "project", "location", "api_key")
    shorthand = {k: model[k] for k in fields if model.get(k)}
    if kind == "vertex":
        shorthand["vertex"] = True
    if not any(options.get(k) for k in ("gemini", "base_url", "http_headers", "image_model")):
        return shorthand
    from google.antigravity import models as m

    endpoint_fields: dict[str, Any] = {
        "base_url": options.get("base_url"),
        "http_headers": options.get("http_headers") or None,
        "options": m.GeminiModelOptions(**options["gemini"]) if options.get("gemini") else None,
    }
    if kind == "vertex":
        endpoint: Any = m.VertexEndpoint(
            project=model.get("project"),
            location=model.get("location"),
            api_key=model.get("api_key"),
            **endpoint_fields,
        )
    else:
        endpoint = m.GeminiAPIEndpoint(api_key=model.get("api_key"), **endpoint_fields)
    name = model.get("model") or m.DEFAULT_MODEL
    # The shorthand stays for the targets the SDK adds by default (the image model).
    args = {**shorthand, "model": m.ModelTarget(name=name, types=[m.ModelType.TEXT], endpoint=endpoint)}
    if options.get("image_model"):
        args["models"] = [
            m.ModelTarget(name=options["image_model"], types=[m.ModelType.IMAGE], endpoint=endpoint)
        ]
    return args


def make_trigger(spec: dict[str, Any]) -> Any:
    """The SDK trigger a Rust `Trigger` describes: `every` or `file_change`, each sending its
    message (a file change adds one `kind: path` line per change)."""
    from google.antigravity import triggers

    message = str(spec.get("message") or "")
    kind = spec.get("kind")
    if kind == "every":

        async def tick(ctx: Any) -> None:
            await ctx.send(message)

        return triggers.every(float(spec["interval_secs"]), tick)
    if kind == "file_change":

        async def changed(ctx: Any, changes: Any) -> None:
            lines = [f"{c.kind.value}: {c.path}" for c in changes]
            await ctx.send("\n".join([message, *lines]))

        return triggers.on_file_change(str(spec["path"]), changed)
    raise RpcError(INVALID_CONFIG, f"unknown trigger kind {kind!r}", {"field": "triggers"})


def to_prompt(prompt: Any) -> Any:
    """A text prompt, or a list of parts: {"text"}, {"data" (base64), "mime_type", "description"?},
    {"path", "description"?} or {"slash_command"}."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise RpcError(INVALID_PARAMS, "prompt must not be empty")
        return prompt
    if not isinstance(prompt, list) or not prompt:
        raise RpcError(INVALID_PARAMS, "prompt must be a non-empty string or list of parts")
    from google.antigravity import types as t

    parts: list[Any] = []
    for part in prompt:
        try:
            if "text" in part:
                parts.append(part["text"])
            elif "slash_command" in part:
                parts.append(t.SlashCommand(name=t.BuiltinSlashCommandName(part["slash_command"])))
            elif "path" in part:
                parts.append(t.from_file(part["path"], part.get("description")))
            else:
                data = base64.b64decode(part["data"], validate=True)
                parts.append(t.from_bytes(data, part["mime_type"], part.get("description")))
        except (KeyError, TypeError, ValueError, OSError) as e:
            raise RpcError(INVALID_PARAMS, f"bad prompt part: {e}") from e
    return parts


def _has_unread_steps(conversation: Any) -> bool:
    if not conversation.is_idle:
        return True
    processor = getattr(conversation.connection, "_processor", None)
    queue = getattr(processor, "step_queue", None)
    return queue is not None and not queue.empty()


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return integral(value)
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if dump else str(value)


def dedupe_steps(history: list[Any]) -> list[dict[str, Any]]:
    """One entry per (trajectory, step index), keeping the last update, in first-seen order;
    the synthetic live tool-call steps (keyed by call id) are kept as they are."""
    out: dict[Any, dict[str, Any]] = {}
    for step in history:
        data = step.model_dump(mode="json", exclude={"usage_metadata"})
        key: Any = (data.get("trajectory_id"), data.get("step_index"))
        if data.get("tool_calls") and data.get("id") != f"{key[0]}:{key[1]}":
            key = ("call", data.get("id"))
        out[key] = data  # a re-assigned key keeps its first position
    return [integral(s) for s in out.values()]


STEP_FIELDS: tuple[str, ...] = ("id", "step_index", "trajectory_id", "type", "source", "status", "content")
STEP_FIELDS += ("thinking", "tool_calls", "error", "http_code", "is_complete_response", "structured_output")
STEP_FIELDS += ("parent_trajectory_id", "depth", "target", "workflow_progress")


def make_step_hook(peer: Peer, hosted: Any) -> Any:
    """An internal SDK hook that streams each completed step of a streamed turn as a chat/event
    (local to the worker: no round trip)."""
    from google.antigravity.hooks import hooks as h

    # The SDK's own step telemetry point (private, and untyped like all of the SDK).
    class _StepEvents(h._PostStepHook):  # type: ignore[misc]
        async def run(self, context: Any, data: Any = None) -> None:
            turn = hosted.current_turn
            if turn is None or data is None:
                return
            dump = data.model_dump(mode="json", include=set(STEP_FIELDS))
            peer.notify(
                CHAT_EVENT,
                {
                    "agent_id": hosted.agent_id,
                    "turn_id": turn,
                    "event": {"type": "step", "step": integral(dump)},
                },
            )

    return _StepEvents()


class HostedAgent:
    def __init__(self, agent_id: str):
        self.agent_id = agent_id
        self.agent: Any = None
        self.config: Any = None
        self.callbacks = Callbacks()
        # A turn started with agent/send runs here; agent/wait_for_idle awaits it.
        self.background: asyncio.Task[dict[str, Any]] | None = None
        # Turns the harness starts on its own (triggers, schedules) set this.
        self.wakeup = asyncio.Event()
        self.monitor: asyncio.Task[None] | None = None
        self.turn_lock = asyncio.Lock()
        # True while a cancelled turn is being halted; the next turn waits for that, instead
        # of being refused as busy.
        self.cancelling = False
        self.turn_task: asyncio.Task[Any] | None = None
        # The streamed turn whose chat/events step updates belong to.
        self.current_turn: Any = None
        # Tracing (telemetry.py): the W3C context of the Rust turn span, and the SDK's context
        # of the turn in progress.
        self.turn_trace: dict[str, str] | None = None
        self.turn_context: Any = None

    def winding_down(self) -> bool:
        """Whether the running turn was cancelled (its task may not have seen it yet)."""
        task = self.turn_task
        requested = task is not None and getattr(task, "cancelling", lambda: 0)() > 0
        return self.cancelling or requested

    @property
    def harness_pid(self) -> int | None:
        proc = getattr(self.agent.conversation.connection, "_process", None)
        return getattr(proc, "pid", None)

    def harness_lost(self) -> bool:
        """Whether the agent's harness has exited while the agent was idle (killed, OOM; a
        shared harness takes every conversation on it along)."""
        if self.agent is None:
            return False
        try:
            proc = getattr(self.agent.conversation.connection, "_process", None)
        except Exception:  # noqa: BLE001 - no connection: nothing to tell
            return False
        poll = getattr(proc, "poll", None)
        if callable(poll) and poll() is not None:
            return True
        # `poll` says nothing while another thread waits for the process (the shared harness's
        # reaper holds Popen's wait lock), even after the process is gone: ask the system.
        pid = getattr(proc, "pid", None)
        return isinstance(pid, int) and not process_running(pid)


def process_running(pid: int) -> bool:
    """Whether `pid` is a running process (not gone, not a zombie waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    except OSError:
        return True  # no /proc to tell: assume it runs, as `poll` did
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state not in (b"Z", b"X")


class AgentHost:
    """The worker's agent table and the protocol methods that act on it."""

    # Method name -> attribute; checked against the protocol schema by the tests.
    METHODS = {
        "agent/create": "create",
        "agent/chat": "chat",
        "agent/close": "close",
        "agent/send": "send",
        "agent/wait_for_idle": "wait_for_idle",
        "agent/cancel": "cancel",
        "agent/history": "history",
        "agent/state": "state",
        "agent/clear_history": "clear_history",
        "agent/wait_for_wakeup": "wait_for_wakeup",
        "agent/notify": "notify",
        "agent/signal_idle": "signal_idle",
    }

    def __init__(self, peer: Peer, sdk_ready: asyncio.Future[str]):
        self.peer = peer
        self.sdk_ready = sdk_ready
        self.agents: dict[str, HostedAgent] = {}
        # Harnesses reported lost (`worker/harness`), so that each is reported once.
        self.lost_harnesses: set[int] = set()
        # Set by `initialize` (off until then).
        self.telemetry: telemetry.Telemetry = telemetry.Telemetry()
        for name, attr in self.METHODS.items():
            peer.method(name, getattr(self, attr))

    def _get(self, params: Any) -> HostedAgent:
        agent_id = (params or {}).get("agent_id")
        hosted = self.agents.get(agent_id) if isinstance(agent_id, str) else None
        if hosted is None:
            raise RpcError(UNKNOWN_AGENT, f"no agent {agent_id!r} on this worker", {"agent_id": agent_id})
        return hosted

    @staticmethod
    def _capabilities(cfg: dict[str, Any], enabled: list[str]) -> Any:
        ag = _sdk()
        extra = dict(cfg.get("capabilities_extra") or {})
        kwargs: dict[str, Any] = {"agent_behavior": ag.AgentBehavior(cfg.get("agent_behavior", "autonomous"))}
        if not extra.get("disabled_tools"):
            kwargs["enabled_tools"] = enabled
        kwargs.update(extra)
        try:
            return ag.CapabilitiesConfig(**kwargs)
        except Exception as e:  # pydantic.ValidationError names the field
            raise RpcError(INVALID_CONFIG, f"capabilities: {e}", {"exception": type(e).__name__}) from e

    def _build_config(self, hosted: HostedAgent, cfg: dict[str, Any]) -> Any:
        agent_id, callbacks = hosted.agent_id, hosted.callbacks
        ag = _sdk()
        model = cfg.get("model") or {}
        enabled = cfg.get("enabled_tools", [])
        extra = cfg.get("capabilities_extra") or {}
        # With disabled_tools the SDK exposes its default set (which writes) minus those. MCP
        # servers need a policy too, however they came (the raw sdk option included): without
        # one, the SDK's own safety rule refuses the agent instead of running them unguarded.
        has_writes = (
            bool(extra.get("disabled_tools"))
            or any(n not in READ_ONLY_BUILTINS for n in enabled)
            or bool((cfg.get("sdk_options") or {}).get("mcp_servers"))
        )
        common: dict[str, Any] = {
            "conversation_id": cfg["conversation_id"],
            "save_dir": cfg["save_dir"],
            "app_data_dir": cfg["app_data_dir"],
            "session_continuation_mode": cfg.get("session_continuation_mode", "create_or_resume"),
            # Builtin tools are opt-in: the SDK default exposes file writes and commands.
            "capabilities": self._capabilities(cfg, enabled),
            "policies": make_policies(self.peer, agent_id, callbacks, cfg.get("policies"), has_writes),
            "tools": [
                make_tool(self.peer, agent_id, callbacks, d, lambda: self.telemetry.tool_context(hosted))
                for d in cfg.get("tools", [])
            ],
            # The tracing hooks first: the turn span must exist before any other hook runs.
            "hooks": self.telemetry.hooks(hosted)
            + make_hooks(self.peer, agent_id, callbacks, cfg.get("hooks", []))
            + [make_step_hook(self.peer, hosted)],
        }
        if cfg.get("triggers"):
            common["triggers"] = [make_trigger(spec) for spec in cfg["triggers"]]
        if cfg.get("response_schema"):
            common["response_schema"] = cfg["response_schema"]
        for name, value in (cfg.get("sdk_options") or {}).items():
            if name in common or name in ("model", "base_url", "api_key"):
                raise RpcError(INVALID_CONFIG, f"sdk option {name!r} is set by the bridge", {"field": name})
            common[name] = value
        if cfg.get("system_instructions"):
            common["system_instructions"] = cfg["system_instructions"]
        if cfg.get("workspaces"):
            common["workspaces"] = cfg["workspaces"]
        if cfg.get("env"):
            common["env"] = cfg["env"]
        kind = model.get("kind")
        options = cfg.get("model_options") or {}
        try:
            if kind == "openai_compatible":
                return ag.LocalOpenAIAgentConfig(model=model["model"], base_url=model["base_url"], **common)
            if kind in ("gemini", "vertex"):
                return ag.LocalAgentConfig(**google_model(kind, model, options), **common)
            if kind == "lite_rt":
                return ag.LiteRTAgentConfig(
                    model_path=model["model_path"], **(options.get("litert") or {}), **common
                )
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
        config = self._build_config(hosted, params.get("config") or {})
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
        hosted.config = config
        self.agents[agent_id] = hosted
        hosted.monitor = asyncio.ensure_future(self._watch_self_started_turns(hosted))
        return {
            "agent_id": agent_id,
            "harness_pid": hosted.harness_pid,
            "start_ms": (time.perf_counter() - started) * 1000,
        }

    def _check_idle(self, hosted: HostedAgent) -> None:
        if hosted.turn_lock.locked() and not hosted.winding_down():
            raise RpcError(
                AGENT_BUSY,
                f"agent {hosted.agent_id} is already running a turn",
                {"agent_id": hosted.agent_id},
            )

    async def chat(self, params: Any) -> dict[str, Any]:
        hosted = self._get(params)
        spec = params.get("workflow")
        run = WorkflowRun.start(spec, hosted.config) if isinstance(spec, dict) else None
        try:
            prompt = run.prompt if run is not None else to_prompt(params.get("prompt"))
            self._check_idle(hosted)
            return await self._locked_turn(hosted, params.get("turn_id"), prompt, params.get("trace"), run)
        finally:
            if run is not None:
                run.close()

    async def _locked_turn(
        self,
        hosted: HostedAgent,
        turn_id: Any,
        prompt: Any,
        trace: dict[str, str] | None = None,
        workflow: WorkflowRun | None = None,
    ) -> dict[str, Any]:
        async with hosted.turn_lock:
            hosted.turn_task = asyncio.current_task()
            hosted.turn_trace = trace if isinstance(trace, dict) else None
            try:
                if hosted.agent is None:  # re-opening after a model error failed: try again
                    await self._reopen(hosted)
                elif hosted.harness_lost():
                    log.info("the harness of %s is gone; re-opening its conversation", hosted.agent_id)
                    self._report_lost(hosted)
                    await self._reopen(hosted)
                return await self._run_turn(hosted, turn_id, prompt, workflow)
            finally:
                hosted.turn_task = None
                hosted.turn_trace = None

    async def send(self, params: Any) -> dict[str, Any]:
        """Starts a turn without streaming it; agent/wait_for_idle returns its outcome."""
        hosted = self._get(params)
        prompt = to_prompt(params.get("prompt"))
        self._check_idle(hosted)
        if hosted.background is not None and not hosted.background.done():
            raise RpcError(AGENT_BUSY, f"agent {hosted.agent_id} is already running a turn")
        hosted.background = asyncio.ensure_future(
            self._locked_turn(hosted, None, prompt, params.get("trace"))
        )
        # Let the turn take the lock before answering, so a chat right after sees it busy.
        await asyncio.sleep(0)
        return {}

    async def wait_for_idle(self, params: Any) -> dict[str, Any] | None:
        hosted = self._get(params)
        task = hosted.background
        if task is not None:
            # Shielded: a caller giving up on waiting must not cancel the turn itself.
            try:
                return await asyncio.shield(task)
            finally:
                if task.done():
                    hosted.background = None
        if hosted.turn_task is not None:
            async with hosted.turn_lock:
                pass
        return None

    async def cancel(self, params: Any) -> dict[str, Any]:
        hosted = self._get(params)
        if hosted.agent is None:
            return {"cancelled": False}
        conversation = hosted.agent.conversation
        if hosted.turn_lock.locked():
            # A consumer is reading the turn: halting makes it end with AntigravityCancelledError.
            # (conversation.wait_for_idle() would discard the queued steps it is waiting for.)
            hosted.callbacks.cancel_all()
            await asyncio.wait_for(conversation.cancel(), 5)
            await asyncio.wait_for(self._turn_finished(hosted), 30)
            return {"cancelled": True}
        if not conversation.is_idle:
            await self._halt_turn(hosted)
            return {"cancelled": True}
        return {"cancelled": False}

    async def _turn_finished(self, hosted: HostedAgent) -> None:
        async with hosted.turn_lock:
            pass

    async def _run_turn(
        self, hosted: HostedAgent, turn_id: Any, prompt: Any, workflow: WorkflowRun | None = None
    ) -> dict[str, Any]:
        from google.antigravity import types as t

        agent_id = hosted.agent_id
        notify = self.peer.notify
        response = None
        hosted.current_turn = turn_id
        sandbox = sandbox_status(hosted.agent)
        warning = sandbox_warning(hosted.config, sandbox)
        if warning is not None and turn_id is not None:
            notify(CHAT_EVENT, {"agent_id": agent_id, "turn_id": turn_id, "event": warning})
        usages_before = _trajectory_usages(hosted.agent.conversation)
        history_start = len(hosted.agent.conversation.history) if workflow is not None else 0
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
                if turn_id is not None:
                    notify(CHAT_EVENT, {"agent_id": agent_id, "turn_id": turn_id, "event": event})
            text = await response.text()
            stop = response.stop_reason
            await hosted.callbacks.settle_hooks(HOOK_SETTLE_SECS)
            result = (
                workflow.result(hosted.agent.conversation, history_start) if workflow is not None else None
            )
            return {
                "workflow": result,
                "text": text,
                "usage": _usage(response.usage_metadata),
                "stop_reason": getattr(stop, "value", str(stop)),
                "structured_output": _jsonable(hosted.agent.conversation.get_last_structured_output()),
                "harness_pid": hosted.harness_pid,
                "sandbox": sandbox,
                "subagent_usage": subagent_usage(hosted.agent.conversation, usages_before),
                "conversation_usage": conversation_usage(hosted.agent.conversation),
            }
        except asyncio.CancelledError:
            # The Rust side cancelled the request (or dropped the stream). Cancelling only the
            # consuming task would leave the harness turn running, so halt it explicitly.
            task = asyncio.current_task()
            by_rust = task is not None and getattr(task, "cancelling", lambda: 1)() > 0
            log.info("turn of %s cancelled (by Rust: %s)", agent_id, by_rust)
            if response is not None and by_rust:
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
            if hosted.harness_lost():
                self._report_lost(hosted)
            error = classify_exception(e)
            if error.data.get("session_dead"):
                # After a model/API error the SDK session is dead (the next chat returns '' and
                # the one after hangs): re-open the conversation so the agent stays usable.
                try:
                    await self._reopen(hosted)
                    error.data["recovered"] = True
                except Exception as reopen_error:
                    log.exception("re-opening %s after a model error failed", agent_id)
                    error.data["recovered"] = False
                    error.data["reopen_error"] = str(reopen_error)
            raise error from e
        finally:
            hosted.current_turn = None

    def _report_lost(self, hosted: HostedAgent) -> None:
        """Tells Rust a harness died under its conversations (once per harness: a shared one
        takes several along)."""
        pid = hosted.harness_pid
        if pid is None or pid in self.lost_harnesses:
            return
        self.lost_harnesses.add(pid)
        self.peer.notify(HARNESS_EVENT, {"worker_pid": os.getpid(), "pid": pid, "event": "lost"})

    async def _reopen(self, hosted: HostedAgent) -> None:
        """Re-opens the agent's conversation (RESUME) with the same tools, hooks and policies."""
        from google.antigravity.types import SessionContinuationMode

        old = hosted.agent
        hosted.agent = None
        if old is not None:
            try:
                await asyncio.wait_for(old.__aexit__(None, None, None), 10)
            except Exception:
                log.info("closing the dead session of %s raised", hosted.agent_id, exc_info=True)
        hosted.config.session_continuation_mode = SessionContinuationMode.RESUME
        agent = _sdk().Agent(hosted.config)
        await agent.__aenter__()
        hosted.agent = agent

    async def _watch_self_started_turns(self, hosted: HostedAgent) -> None:
        """Notices turns the harness starts on its own (a trigger, a schedule) and drains their
        steps into the history, which the SDK would otherwise drop at the next send().

        A fast self-started turn can begin and end between two polls, so besides `is_idle` the
        watch looks at the connection's step queue, where such a turn's steps wait (a private
        SDK attribute, checked defensively).
        """
        while True:
            await asyncio.sleep(0.05)
            agent = hosted.agent
            if agent is None or hosted.turn_lock.locked():
                continue
            if not _has_unread_steps(agent.conversation):
                continue
            async with hosted.turn_lock:
                conversation = agent.conversation
                if hosted.agent is not agent or not _has_unread_steps(conversation):
                    continue
                log.info("agent %s started a turn on its own", hosted.agent_id)
                steps: list[Any] = []
                try:
                    async for step in conversation.receive_steps():
                        steps.append(step)
                except Exception:
                    log.warning("self-started turn of %s failed", hosted.agent_id, exc_info=True)
                hosted.wakeup.set()
                self.peer.notify(SELF_STARTED, {"agent_id": hosted.agent_id, "steps": dedupe_steps(steps)})

    async def notify(self, params: Any) -> dict[str, Any]:
        """Sends the agent a message as a trigger does: it starts a turn on its own."""
        hosted = self._get(params)
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            raise RpcError(INVALID_PARAMS, "text must be a non-empty string")
        if hosted.agent is None:
            raise RpcError(AGENT_DISCONNECTED, f"agent {hosted.agent_id} has no live session")
        await hosted.agent.conversation.connection.send_trigger_notification(text)
        return {}

    async def wait_for_wakeup(self, params: Any) -> bool:
        hosted = self._get(params)
        timeout = params.get("timeout_secs")
        try:
            await asyncio.wait_for(hosted.wakeup.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        hosted.wakeup.clear()
        return True

    async def signal_idle(self, params: Any) -> dict[str, Any]:
        """The application declares the agent idle: a self-started turn is halted and pending
        wake-ups are forgotten."""
        hosted = self._get(params)
        if hosted.agent is not None and not hosted.agent.conversation.is_idle:
            await self._halt_turn(hosted)
        hosted.wakeup.clear()
        return {}

    def _conversation(self, params: Any) -> Any:
        hosted = self._get(params)
        if hosted.agent is None:
            raise RpcError(
                AGENT_DISCONNECTED,
                f"agent {hosted.agent_id} has no live session; its next turn re-opens it",
                {"agent_id": hosted.agent_id},
            )
        return hosted.agent.conversation

    async def history(self, params: Any) -> list[dict[str, Any]]:
        return dedupe_steps(self._conversation(params).history)

    async def state(self, params: Any) -> dict[str, Any]:
        c = self._conversation(params)
        return {
            "turn_count": c.turn_count,
            "total_usage": _usage(c.total_usage),
            "last_turn_usage": _usage(c.last_turn_usage),
            "compaction_indices": list(c.compaction_indices),
            "last_response": c.last_response or None,
            "is_idle": c.is_idle,
            "structured_output": _jsonable(c.get_last_structured_output()),
        }

    async def clear_history(self, params: Any) -> dict[str, Any]:
        self._conversation(params).clear_history()
        return {}

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
        if hosted.monitor is not None:
            hosted.monitor.cancel()
        if hosted.background is not None:
            hosted.background.cancel()
        if hosted.agent is not None:
            await self._close_sdk_agent(hosted.agent_id, hosted.agent)

    async def _close_sdk_agent(self, agent_id: str, agent: Any) -> None:
        try:
            await agent.__aexit__(None, None, None)
        except Exception:
            log.warning("closing agent %s raised", agent_id, exc_info=True)

    async def close_all(self, timeout: float) -> None:
        agents = list(self.agents.values())
        self.agents.clear()
        if not agents:
            return
        try:
            await asyncio.wait_for(asyncio.gather(*(self._close_agent(a) for a in agents)), timeout)
        except asyncio.TimeoutError:
            log.warning("agents did not close within %.1fs", timeout)
