"""The worker's own protocol methods: handshake, heartbeat, echo, reverse-call timing,
shutdown and failure injection. Agents are served by `host.AgentHost`."""

from __future__ import annotations

import asyncio
import gc
import importlib
import importlib.metadata
import logging
import os
import sys
import time
from typing import Any

from . import PROTOCOL_VERSION, __version__, harness_pool, offloop, shared_harness, telemetry
from .host import AgentHost
from .protocol import HARNESS_EVENT, SPARE_HARNESSES, VERSION_MISMATCH
from .rpc import DEFAULT_MAX_MESSAGE, INVALID_PARAMS, JSON_BACKEND, Peer, RpcError

log = logging.getLogger("agy_worker")


class Worker:
    """The worker's own methods (agents are AgentHost's), served on the protocol fd."""

    # Method name -> attribute; checked against the protocol schema by the tests.
    METHODS = {
        "initialize": "initialize",
        "$/ping": "ping",
        "worker/ping": "ping",
        "worker/echo": "echo",
        "worker/ping_rust": "ping_rust",
        "worker/shutdown": "shutdown",
    }
    # Answered inside the reader callback, without a task (they return at once).
    INLINE = frozenset({"ping"})
    # Failure injection for the bridge's own tests, only with AGY_WORKER_DEBUG=1.
    DEBUG_METHODS = {"worker/debug": "debug"}

    def __init__(self, protocol_fd: int, loop_name: str, main_entered: float):
        max_message = int(os.environ.get("AGY_WORKER_MAX_MESSAGE", DEFAULT_MAX_MESSAGE))
        self.loop_name = loop_name
        self.peer = Peer(protocol_fd, max_message)
        self.main_entered = main_entered
        self.stop = asyncio.Event()
        self.sdk_imported_at: float | None = None
        self.offloop_start = False
        # Spare harnesses: set up by `initialize`, which arrives while the SDK is imported.
        self.harnesses: harness_pool.HarnessPool | None = None
        # Harnesses several conversations share (`initialize`'s conversations_per_harness).
        self.shared: shared_harness.SharedHarnesses | None = None
        self._started: asyncio.Future[str] | None = None
        self.sdk_ready = asyncio.ensure_future(self._import_sdk())
        self.host = AgentHost(self.peer, self.sdk_ready)
        methods = dict(self.METHODS)
        if os.environ.get("AGY_WORKER_DEBUG") == "1":
            methods.update(self.DEBUG_METHODS)
            # The bridge's protocol-conformance test records every message, to check each one
            # against docs/protocol.schema.json. Test-only (it would write API keys to a file),
            # so only with the debug methods; the file is owner-only and unbuffered.
            record = os.environ.pop("AGY_WORKER_RECORD", None)
            if record:
                fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
                self.peer.recorder = os.fdopen(fd, "ab", buffering=0)
        for name, attr in methods.items():
            if attr in self.INLINE:
                self.peer.inline_method(name, getattr(self, attr))
            else:
                self.peer.method(name, getattr(self, attr))

    async def _import_sdk(self) -> str:
        try:
            await asyncio.to_thread(importlib.import_module, "google.antigravity")
        finally:
            # __main__ turned the collector off for the start-up imports (see there).
            gc.freeze()
            gc.enable()
        self.sdk_imported_at = time.time()
        return importlib.metadata.version("google-antigravity")

    def _harness_started(self, pid: int) -> None:
        self.peer.notify(HARNESS_EVENT, {"worker_pid": os.getpid(), "pid": pid, "event": "started"})

    async def _start(self, prestart: harness_pool.Prestart | None, per_harness: int) -> str:
        """Starts the spare harnesses (alongside the SDK import), then installs the off-loop
        agent start that hands them out and shares harnesses. Once per worker: the first
        `initialize` decides."""
        loop = asyncio.get_running_loop()

        def started(pid: int) -> None:
            loop.call_soon_threadsafe(self._harness_started, pid)

        harness_pool.on_spawn = started
        if per_harness > 1:
            self.shared = shared_harness.SharedHarnesses(per_harness, self._report_harnesses)
        if prestart is not None:
            self.harnesses = harness_pool.HarnessPool.from_prestart(prestart, self._report_spares)
            if self.harnesses is not None:
                self.harnesses.fill()
        version = await self.sdk_ready
        self.offloop_start = offloop.install(version, self.harnesses, self.shared)
        if not self.offloop_start:
            self.shared = None  # only the patched start can share harnesses
            if self.harnesses is not None:
                await self.harnesses.close()  # nor hand spares out
                self.harnesses = None
                self._report_spares([])
        return version

    def _report_spares(self, pids: list[int]) -> None:
        shared = self.shared.pids() if self.shared is not None else []
        self.peer.notify(SPARE_HARNESSES, {"worker_pid": os.getpid(), "pids": pids, "shared": shared})

    def _report_harnesses(self) -> None:
        spares = self.harnesses.pids() if self.harnesses is not None else []
        self._report_spares(spares)

    async def initialize(self, params: dict[str, Any]) -> dict[str, Any]:
        theirs = (params or {}).get("protocol_version")
        if theirs != PROTOCOL_VERSION:
            raise RpcError(
                VERSION_MISMATCH,
                f"protocol version mismatch: Rust speaks {theirs}, this worker speaks {PROTOCOL_VERSION}",
                {"worker_protocol_version": PROTOCOL_VERSION},
            )
        if self._started is None:
            prestart = harness_pool.Prestart.from_params((params or {}).get("harness_prestart"))
            per_harness = (params or {}).get("conversations_per_harness") or 1
            if not isinstance(per_harness, int) or per_harness < 1:
                raise RpcError(INVALID_PARAMS, f"conversations_per_harness must be >= 1, not {per_harness!r}")
            try:
                self.host.telemetry = telemetry.start((params or {}).get("otel"))
            except RuntimeError as e:
                raise RpcError(INVALID_PARAMS, str(e)) from e
            self._started = asyncio.ensure_future(self._start(prestart, per_harness))
        sdk_version = await asyncio.shield(self._started)
        return {
            "protocol_version": PROTOCOL_VERSION,
            "worker_version": __version__,
            "sdk_version": sdk_version,
            "python_version": sys.version.split()[0],
            "pid": os.getpid(),
            "json_backend": JSON_BACKEND,
            "event_loop": self.loop_name,
            "max_message_size": self.peer.max_message,
            "main_entered_unix": self.main_entered,
            "sdk_imported_unix": self.sdk_imported_at,
            "offloop_agent_start": self.offloop_start,
            "conversations_per_harness": self.shared.capacity if self.shared is not None else 1,
        }

    def ping(self, params: object) -> str:
        return "pong"

    async def echo(self, params: dict[str, Any]) -> dict[str, Any]:
        pad = int((params or {}).get("pad_bytes", 0))
        out = {"payload": (params or {}).get("payload")}
        if pad:
            out["pad"] = "x" * pad
        return out

    async def ping_rust(self, params: dict[str, Any]) -> dict[str, Any]:
        """Times reverse round trips (worker -> Rust -> worker) as the worker sees them: `$/ping`
        by default, or any reverse `method`/`params` (e.g. a no-op `tool/call`)."""
        params = params or {}
        count = int(params.get("count", 1000))
        concurrency = max(1, int(params.get("concurrency", 1)))
        method = params.get("method", "$/ping")
        call_params = params.get("params")
        samples: list[float] = []

        async def one() -> None:
            t0 = time.perf_counter()
            await self.peer.call(method, call_params)
            samples.append((time.perf_counter() - t0) * 1e6)

        started = time.perf_counter()
        for _ in range(0, count, concurrency):
            await asyncio.gather(*(one() for _ in range(concurrency)))
        wall = time.perf_counter() - started
        samples.sort()
        return {
            "count": len(samples),
            "p50_us": samples[len(samples) // 2],
            "p99_us": samples[min(len(samples) - 1, int(len(samples) * 0.99))],
            "max_us": samples[-1],
            "calls_per_sec": len(samples) / wall if wall > 0 else 0.0,
        }

    async def shutdown(self, params: object) -> dict[str, Any]:
        asyncio.get_running_loop().call_soon(self.stop.set)
        return {}

    async def debug(self, params: dict[str, Any]) -> object:
        """Failure injection for the bridge's own tests (only with AGY_WORKER_DEBUG=1)."""
        action = params.get("action")
        if action == "print":
            print(params.get("text", "stray print"))
            os.write(1, b"raw write to fd 1\n")
        elif action == "garbage":
            # Bytes on the protocol stream: a line of their own, or (newline false) unterminated,
            # so that they merge with the next message, as a stray write from a C extension would.
            ending = b"\n" if params.get("newline", True) else b""
            text = params.get("text", "garbage") * int(params.get("repeat", 1))
            self.peer._write(text.encode() + ending)
        elif action == "block":
            time.sleep(float(params.get("seconds", 1)))
        elif action == "reverse":
            # Sends an arbitrary reverse request, as a forged or buggy worker could.
            return await self.peer.call(params["method"], params.get("params"))
        elif action == "trigger":
            # Makes the harness start a turn on its own, as a trigger or schedule would.
            hosted = self.host.agents[params["agent_id"]]
            await hosted.agent.conversation.connection.send_trigger_notification(params["text"])
        elif action == "exit":
            os._exit(int(params.get("code", 3)))
        else:
            raise RpcError(INVALID_PARAMS, f"unknown debug action {action!r}")
        return {}

    async def _watch_parent(self) -> None:
        """Exits when the process that started us is gone, even if our stdin stays open."""
        parent = os.getppid()
        while True:
            await asyncio.sleep(0.5)
            if os.getppid() != parent:
                log.warning("parent process %d is gone; exiting", parent)
                self.stop.set()
                return

    async def run(self) -> None:
        await self.peer.start(0)
        watcher = asyncio.create_task(self._watch_parent())
        eof = asyncio.create_task(self.peer.eof.wait())
        stop = asyncio.create_task(self.stop.wait())
        await asyncio.wait({eof, stop}, return_when=asyncio.FIRST_COMPLETED)
        watcher.cancel()
        # On a deliberate shutdown Rust waits for us; on EOF the parent may be dead: be quick.
        grace = 5.0 if self.stop.is_set() and not self.peer.eof.is_set() else 1.0
        self.peer.cancel_inflight()
        if self.harnesses is not None:
            await self.harnesses.close()
        await self.host.close_all(grace)
        if self.shared is not None:
            self.shared.close()  # any left after their agents closed
        await asyncio.to_thread(self.host.telemetry.shutdown)
        await self.peer.flush_and_close()
