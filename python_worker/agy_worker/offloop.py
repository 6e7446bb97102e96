"""Keeps an agent's start from stalling the event loop (and so every other agent's traffic).

google-antigravity 0.1.22 spawns the `localharness` and does its stdio handshake (a write and
two blocking `stdout.read`s) directly on the event loop, stalling it for ~0.1-0.3 s per agent
start. For that SDK version only, this module runs the same spawn and handshake in a thread and
keeps the WebSocket connect on the loop. Any other SDK version keeps the original code.
Disable with AGY_WORKER_OFFLOOP_START=0 (the benchmark compares both).
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import subprocess
from typing import Any

log = logging.getLogger("agy_worker.offloop")

PATCHED_SDK_VERSION = "0.1.22"


def install(sdk_version: str) -> bool:
    if os.environ.get("AGY_WORKER_OFFLOOP_START", "1") == "0":
        return False
    if sdk_version != PATCHED_SDK_VERSION:
        log.warning("agent start runs on the event loop: SDK %s is not %s", sdk_version, PATCHED_SDK_VERSION)
        return False
    import platform

    from google.antigravity.connections.local import local_connection as lc

    strategy = getattr(lc, "LocalConnectionStrategy", None)
    original = getattr(strategy, "_spawn_harness_and_connect_ws", None)
    needed = ("localharness_pb2", "_get_sdk_version")
    if (
        original is None
        or not hasattr(strategy, "_connect_websocket")
        or not all(hasattr(lc, n) for n in needed)
    ):
        log.warning("agent start runs on the event loop: the SDK's harness start-up is not as expected")
        return False

    def handshake(self: Any, use_interactions_api: bool) -> tuple[subprocess.Popen[bytes], Any]:
        # The body of the SDK's _spawn_harness_and_connect_ws up to the WebSocket connect.
        client_info_proto = lc.localharness_pb2.ClientInfo(
            language="python",
            version=lc._get_sdk_version(),
            language_version=platform.python_version(),
            os=platform.system().lower(),
            os_version=platform.release(),
        )
        env_map = {str(k): str(v) for k, v in self._env.items()} if self._env else {}
        input_config = lc.localharness_pb2.InputConfig(
            storage_directory=self._save_dir or "",
            client_info=client_info_proto,
            env=env_map,
        )
        if use_interactions_api:
            input_config.use_interactions_api = True
        merged_env = {**os.environ, **env_map} if self._env is not None else None
        process = subprocess.Popen(
            [self._binary_path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=merged_env,
        )
        serialized = input_config.SerializeToString()
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None
        process.stdin.write(struct.pack("<I", len(serialized)) + serialized)
        process.stdin.flush()
        raw_len = process.stdout.read(4)
        if not raw_len:
            stderr_output = process.stderr.read().decode("utf-8")
            raise RuntimeError(f"Failed to read length from stdout. Stderr: {stderr_output}")
        length = struct.unpack("<I", raw_len)[0]
        output_config = lc.localharness_pb2.OutputConfig()
        output_config.ParseFromString(process.stdout.read(length))
        return process, output_config

    async def spawn_off_loop(self: Any, *, use_interactions_api: bool = False) -> Any:
        process, output_config = await asyncio.to_thread(handshake, self, use_interactions_api)
        ws, ws_url = await self._connect_websocket(output_config.port, output_config.api_key, process)
        return process, ws, ws_url

    spawn_off_loop.__wrapped__ = original  # type: ignore[attr-defined]
    strategy._spawn_harness_and_connect_ws = spawn_off_loop
    return True
