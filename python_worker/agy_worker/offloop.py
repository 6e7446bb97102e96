"""Keeps an agent's start and stop from stalling the event loop (and every other agent's traffic).

google-antigravity 0.1.22 spawns the `localharness` and does its stdio handshake (a write and
two blocking `stdout.read`s) directly on the event loop, stalling it for ~0.1-0.3 s per agent
start; its `disconnect()` then waits for the harness to exit (`Popen.wait`) and joins its stderr
thread on the loop, ~10-30 ms per agent stop. For that SDK version only, this module runs the
same spawn and handshake in a thread (keeping the WebSocket connect on the loop), and lets
`disconnect()` do everything but those waits, which then run in a thread. Any other SDK version
keeps the original code. Disable with AGY_WORKER_OFFLOOP_START=0 (the benchmark compares both).
The patched start also takes a pre-started harness when the worker keeps one for the same
launch (`harness_pool.py`), and puts the conversation on a harness it shares with other
conversations of the same launch when sharing is on (`shared_harness.py`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from typing import Any

from . import harness_pool, shared_harness

log = logging.getLogger("agy_worker.offloop")

PATCHED_SDK_VERSION = "0.1.22"


def install(
    sdk_version: str,
    pool: harness_pool.HarnessPool | None = None,
    shared: shared_harness.SharedHarnesses | None = None,
) -> bool:
    """Patches the SDK's harness start and stop (see the module doc); agent starts take a
    pre-started harness from `pool` when it holds one for the same launch, and share harnesses
    through `shared` when its capacity is above one conversation."""
    if os.environ.get("AGY_WORKER_OFFLOOP_START", "1") == "0":
        return False
    if sdk_version != PATCHED_SDK_VERSION:
        log.warning("agent start runs on the event loop: SDK %s is not %s", sdk_version, PATCHED_SDK_VERSION)
        return False
    from google.antigravity.connections.local import local_connection as lc

    strategy: Any = getattr(lc, "LocalConnectionStrategy", None)
    original = getattr(strategy, "_spawn_harness_and_connect_ws", None)
    if original is None or not hasattr(strategy, "_connect_websocket"):
        log.warning("agent start runs on the event loop: the SDK's harness start-up is not as expected")
        return False

    async def spawn_off_loop(self: Any, *, use_interactions_api: bool = False) -> Any:
        # The SDK's _spawn_harness_and_connect_ws, with the handshake in a thread (or a spare).
        launch = harness_pool.Launch.of(
            self._binary_path, self._save_dir or "", self._env, use_interactions_api
        )
        if shared is not None and shared.capacity > 1:
            return await _join_shared(self, launch)
        spare = pool.take(launch) if pool is not None else None
        if spare is not None:
            try:
                ws, ws_url = await self._connect_websocket(spare.port, spare.api_key, spare.process)
                return spare.process, ws, ws_url
            except RuntimeError:  # the spare died after take() saw it alive; the SDK killed it
                log.warning("pre-started harness %d did not accept the connection", spare.process.pid)
        harness = await asyncio.to_thread(harness_pool.spawn, launch)
        ws, ws_url = await self._connect_websocket(harness.port, harness.api_key, harness.process)
        return harness.process, ws, ws_url

    async def _join_shared(self: Any, launch: harness_pool.Launch) -> Any:
        assert shared is not None

        async def start() -> harness_pool.Harness:
            spare = pool.take(launch) if pool is not None else None
            return spare if spare is not None else await asyncio.to_thread(harness_pool.spawn, launch)

        tenant = await shared.admit(launch, start)
        harness = tenant.host.harness
        # On failure the SDK calls tenant.kill() (releasing it) and reads its stderr copy.
        ws, ws_url = await self._connect_websocket(harness.port, harness.api_key, tenant)
        tenant.ws = ws
        return tenant, ws, ws_url

    spawn_off_loop.__wrapped__ = original  # type: ignore[attr-defined]
    strategy._spawn_harness_and_connect_ws = spawn_off_loop
    _install_disconnect(lc)
    return True


class _ExitLater:
    """Stands in for the harness `Popen` during the SDK's `disconnect()`: everything is the real
    process's, except that waiting returns at once and the exit status reads as unknown (the
    wait happens afterwards, in a thread)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        self.returncode = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._process, name)

    def wait(self, timeout: float | None = None) -> None:
        return None

    def poll(self) -> None:
        return None


def _reap(process: subprocess.Popen[bytes], stderr_thread: Any, timeout: float) -> int | None:
    # The SDK's own escalation, from its disconnect(): wait, terminate, kill.
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=1)
    if stderr_thread is not None:
        stderr_thread.join(timeout=1.0)
    # The SDK leaves the pipes to the garbage collector; release them now that nothing reads.
    if stderr_thread is None or not stderr_thread.is_alive():
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    return process.returncode


def _install_disconnect(lc: Any) -> None:
    connection: Any = getattr(lc, "LocalConnection", None)
    original = getattr(connection, "disconnect", None)
    timeout = getattr(lc, "_PROCESS_WAIT_TIMEOUT_SECONDS", None)
    if original is None or timeout is None:
        log.warning("agent stop waits on the event loop: the SDK's disconnect is not as expected")
        return

    async def disconnect_off_loop(self: Any) -> None:
        process = getattr(self, "_process", None)
        stderr_thread = getattr(self, "_stderr_thread", None)
        if not isinstance(process, subprocess.Popen):
            await original(self)
            return
        self._process, self._stderr_thread = _ExitLater(process), None
        try:
            await original(self)
        finally:
            self._process, self._stderr_thread = process, stderr_thread
            if process.stdin is not None and not process.stdin.closed:
                process.stdin.close()  # the SDK failed before its own close; the harness exits on EOF
            returncode = await asyncio.to_thread(_reap, process, stderr_thread, timeout)
        if isinstance(returncode, int) and returncode != 0:
            stderr_tail = "\n".join(getattr(self, "_stderr_lines", [])) or "(no stderr output)"
            raise lc.types.AntigravityExecutionError(
                f"Harness process exited with code {returncode}.\nHarness stderr:\n{stderr_tail}"
            )

    disconnect_off_loop.__wrapped__ = original  # type: ignore[attr-defined]
    connection.disconnect = disconnect_off_loop
