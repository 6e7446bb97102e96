"""Entry point: ``python -m agy_worker``. Speaks JSON-RPC on a private copy of fd 1.

Start-up order matters:
1. keep a private dup of fd 1 for the protocol, then point fd 1 and ``sys.stdout`` at stderr,
   so a stray ``print`` anywhere (SDK, tools, C extensions) can never corrupt the stream;
2. configure logging to stderr before the SDK is imported (the SDK logs via the root logger);
3. serve the protocol at once and import the SDK in a thread meanwhile.
"""

from __future__ import annotations

import os
import sys

PROTOCOL_FD = os.dup(1)
os.dup2(2, 1)
sys.stdout = sys.stderr

import asyncio  # noqa: E402
import importlib  # noqa: E402
import importlib.metadata  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402

from . import (  # noqa: E402
    PROTOCOL_VERSION,
    __version__,
    offloop,  # noqa: E402
)
from .host import AgentHost  # noqa: E402
from .rpc import DEFAULT_MAX_MESSAGE, INVALID_PARAMS, JSON_BACKEND, Peer, RpcError  # noqa: E402

MAIN_ENTERED = time.time()

logging.basicConfig(
    stream=sys.stderr,
    level=os.environ.get("AGY_WORKER_LOG_LEVEL", "WARNING").upper(),
    format="%(levelname)s %(name)s: %(message)s",
    force=True,
)
log = logging.getLogger("agy_worker")


def _event_loop_name() -> str:
    if os.environ.get("AGY_WORKER_UVLOOP", "1") != "0":
        try:
            import uvloop

            uvloop.install()
            return "uvloop"
        except ImportError:
            pass
    return "asyncio"


class Worker:
    def __init__(self, loop_name: str):
        max_message = int(os.environ.get("AGY_WORKER_MAX_MESSAGE", DEFAULT_MAX_MESSAGE))
        self.loop_name = loop_name
        self.peer = Peer(PROTOCOL_FD, max_message)
        self.stop = asyncio.Event()
        self.sdk_imported_at: float | None = None
        self.offloop_start = False
        self.sdk_ready = asyncio.ensure_future(self._import_sdk())
        self.host = AgentHost(self.peer, self.sdk_ready)
        p = self.peer
        p.method("initialize", self.initialize)
        p.method("$/ping", self.ping)
        p.method("worker/ping", self.ping)
        p.method("worker/echo", self.echo)
        p.method("worker/ping_rust", self.ping_rust)
        p.method("worker/shutdown", self.shutdown)
        if os.environ.get("AGY_WORKER_DEBUG") == "1":
            p.method("worker/debug", self.debug)

    async def _import_sdk(self) -> str:
        await asyncio.to_thread(importlib.import_module, "google.antigravity")
        self.sdk_imported_at = time.time()
        version = importlib.metadata.version("google-antigravity")
        self.offloop_start = offloop.install(version)
        return version

    async def initialize(self, params: dict) -> dict:
        theirs = (params or {}).get("protocol_version")
        if theirs != PROTOCOL_VERSION:
            raise RpcError(
                INVALID_PARAMS,
                f"protocol version mismatch: Rust speaks {theirs}, this worker speaks {PROTOCOL_VERSION}",
                {"worker_protocol_version": PROTOCOL_VERSION},
            )
        sdk_version = await self.sdk_ready
        return {
            "protocol_version": PROTOCOL_VERSION,
            "worker_version": __version__,
            "sdk_version": sdk_version,
            "python_version": sys.version.split()[0],
            "pid": os.getpid(),
            "json_backend": JSON_BACKEND,
            "event_loop": self.loop_name,
            "max_message_size": self.peer.max_message,
            "main_entered_unix": MAIN_ENTERED,
            "sdk_imported_unix": self.sdk_imported_at,
            "offloop_agent_start": self.offloop_start,
        }

    async def ping(self, params: object) -> str:
        return "pong"

    async def echo(self, params: dict) -> dict:
        pad = int((params or {}).get("pad_bytes", 0))
        out = {"payload": (params or {}).get("payload")}
        if pad:
            out["pad"] = "x" * pad
        return out

    async def ping_rust(self, params: dict) -> dict:
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

    async def shutdown(self, params: object) -> dict:
        asyncio.get_running_loop().call_soon(self.stop.set)
        return {}

    async def debug(self, params: dict) -> object:
        """Failure injection for the bridge's own tests (only with AGY_WORKER_DEBUG=1)."""
        action = params.get("action")
        if action == "print":
            print(params.get("text", "stray print"))
            os.write(1, b"raw write to fd 1\n")
        elif action == "garbage":
            self.peer._queue.put_nowait(params.get("text", "garbage").encode() + b"\n")
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
        await self.host.close_all(grace)
        await self.peer.flush_and_close()


def _kill_own_group() -> None:
    """Takes any leftover children (localharness) down with us; only if we lead our group."""
    try:
        if os.getpgid(0) == os.getpid():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            os.killpg(os.getpid(), signal.SIGTERM)
    except OSError:
        pass


def main() -> None:
    crash_marker = os.environ.get("AGY_WORKER_CRASH_ON_START_IF_EXISTS")
    if os.environ.get("AGY_WORKER_DEBUG") == "1" and crash_marker and os.path.exists(crash_marker):
        # Failure injection for the bridge's supervision tests: a worker that dies on start.
        print("agy_worker: crashing on start as requested by the test", file=sys.stderr)
        os._exit(7)
    loop_name = _event_loop_name()

    async def amain() -> None:
        await Worker(loop_name).run()

    try:
        asyncio.run(amain())
    finally:
        _kill_own_group()
        logging.shutdown()
        os._exit(0)


if __name__ == "__main__":
    main()
