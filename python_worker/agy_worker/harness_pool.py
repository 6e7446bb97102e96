"""Pre-started `localharness` processes, so that an agent start or resume skips the harness's
own start-up (~80-100 ms: exec, Go runtime start, the stdio handshake).

What a harness is handed at start is small and agent-independent: its storage directory, a
client description and an environment (`InputConfig`, written length-prefixed on its stdin;
it answers with an `OutputConfig`: the WebSocket port and key). Everything that belongs to an
agent (model, tools, policies, conversation id) goes later, over the WebSocket, in the SDK's
`InitializeConversationEvent`. So a harness can be started before its agent is known, for a
*launch*: binary, storage directory, environment and protocol flavour. A spare is handed only
to an agent start whose launch is exactly the same as what the SDK would have started; anything
else starts its own harness as before.

The bridge says what to pre-start in `initialize` (`harness_prestart`: `count`,
`storage_directory`, `env`), its first request, which the worker handles while the SDK is
still being imported: the first spare starts alongside the import. Spares live in the worker's
process group and hold a pipe to the worker on their stdin: they go when the worker goes (the
bridge kills the group, the worker kills it on exit, and a harness exits at EOF on its stdin).

The `InputConfig`/`OutputConfig` messages are encoded here by hand (five fields, wire format
per the SDK's descriptor) so that spawning needs no SDK import; `tests/test_harness_pool.py`
checks the encoding against the SDK's own generated classes.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
import platform
import struct
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("agy_worker.harness_pool")

HARNESS_PATH_ENV = "ANTIGRAVITY_HARNESS_PATH"
SDK_DISTRIBUTION = "google-antigravity"


# --- protobuf wire format, just what InputConfig and OutputConfig need -----------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _string_field(number: int, value: str) -> bytes:
    # Always written, even empty: the schema is proto2, where a set field is present.
    return _bytes_field(number, value.encode())


def encode_input_config(
    storage_directory: str,
    client_info: Mapping[str, str],
    env: Mapping[str, str],
    use_interactions_api: bool,
) -> bytes:
    """`antigravity.localharness.InputConfig`: storage_directory = 1, client_info = 4
    (ClientInfo: language = 1, version = 2, language_version = 3, os = 4, os_version = 5),
    env = 5 (map<string, string>), use_interactions_api = 6 (written only when true). The
    fields the SDK sets, as it sets them."""
    info_fields = ("language", "version", "language_version", "os", "os_version")
    info = b"".join(_string_field(i + 1, client_info.get(name, "")) for i, name in enumerate(info_fields))
    out = _string_field(1, storage_directory) + _bytes_field(4, info)
    for key, value in env.items():
        out += _bytes_field(5, _bytes_field(1, key.encode()) + _bytes_field(2, value.encode()))
    if use_interactions_api:
        out += _varint(6 << 3) + b"\x01"
    return out


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def decode_output_config(data: bytes) -> tuple[int, str]:
    """`antigravity.localharness.OutputConfig` -> (port = 1, api_key = 2); unknown fields are
    skipped, as protobuf does."""
    port, api_key, pos = 0, "", 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _read_varint(data, pos)
            if number == 1:
                port = value if value < 1 << 31 else value - (1 << 64)
        elif wire_type == 2:
            length, pos = _read_varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated field")
            if number == 2:
                api_key = data[pos : pos + length].decode()
            pos += length
        elif wire_type in (1, 5):
            pos += 8 if wire_type == 1 else 4
        else:
            raise ValueError(f"unexpected wire type {wire_type}")
    return port, api_key


# --- launching a harness ------------------------------------------------------------------


def client_info() -> dict[str, str]:
    """What the SDK tells the harness about its client (its `_spawn_harness_and_connect_ws`)."""
    try:
        version = importlib.metadata.version(SDK_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        version = "0.0.0-dev"
    return {
        "language": "python",
        "version": version,
        "language_version": platform.python_version(),
        "os": platform.system().lower(),
        "os_version": platform.release(),
    }


def default_binary(env: Mapping[str, str]) -> str | None:
    """The SDK's binary lookup, first steps (`_get_default_binary_path_external`): the agent's
    environment, the process environment, then the installed distribution's files. None when
    those fail; the SDK's later fallbacks need its import, and a launch it resolves differently
    simply finds no spare."""
    if HARNESS_PATH_ENV in env:
        return env[HARNESS_PATH_ENV]
    if path := os.environ.get(HARNESS_PATH_ENV):
        return path
    try:
        for f in importlib.metadata.distribution(SDK_DISTRIBUTION).files or ():
            if str(f).replace("\\", "/").endswith("google/antigravity/bin/localharness"):
                path = os.path.abspath(str(f.locate()))
                if os.path.exists(path):
                    return path
    except (importlib.metadata.PackageNotFoundError, ValueError, AttributeError):
        pass
    return None


@dataclass(frozen=True)
class Launch:
    """Everything a harness is started with; two starts with equal launches are identical."""

    binary: str
    storage_directory: str
    env: tuple[tuple[str, str], ...]
    use_interactions_api: bool

    @classmethod
    def of(
        cls, binary: str, storage_directory: str, env: Mapping[Any, Any] | None, interactions: bool
    ) -> Launch:
        pairs = {str(k): str(v) for k, v in (env or {}).items()}
        return cls(binary, storage_directory, tuple(sorted(pairs.items())), interactions)


@dataclass
class Harness:
    """A started harness that has answered the handshake (its WebSocket not yet connected)."""

    process: subprocess.Popen[bytes]
    port: int
    api_key: str
    launch: Launch

    def alive(self) -> bool:
        return self.process.poll() is None


class HandshakeError(RuntimeError):
    """The harness exited or answered garbage during its stdio handshake."""


# Called (from the spawning thread) with the pid of every harness started: the worker reports
# harness starts to Rust (`worker/harness`).
on_spawn: Callable[[int], None] | None = None


def spawn(launch: Launch) -> Harness:
    """Starts a harness and does its stdio handshake (blocking: run it in a thread). The same
    steps, environment and messages as the SDK's own start-up."""
    env = dict(launch.env)
    config = encode_input_config(launch.storage_directory, client_info(), env, launch.use_interactions_api)
    process = subprocess.Popen(
        [launch.binary],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    try:
        process.stdin.write(struct.pack("<I", len(config)) + config)
        process.stdin.flush()
        raw_len = process.stdout.read(4)
        if len(raw_len) != 4:
            raise HandshakeError(
                f"Failed to read length from stdout. Stderr: {process.stderr.read().decode()}"
            )
        (length,) = struct.unpack("<I", raw_len)
        port, api_key = decode_output_config(process.stdout.read(length))
    except BaseException:
        _kill(process)
        raise
    if on_spawn is not None:
        on_spawn(process.pid)
    return Harness(process, port, api_key, launch)


def _kill(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait()
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()


# --- the pool -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prestart:
    """What the bridge asked to keep ready."""

    count: int
    storage_directory: str
    env: dict[str, str]

    @classmethod
    def from_params(cls, spec: Any) -> Prestart | None:
        """Reads `initialize`'s `harness_prestart`; None when absent, zero or malformed."""
        if not spec:
            return None
        try:
            prestart = cls(
                int(spec["count"]),
                str(spec["storage_directory"]),
                {str(k): str(v) for k, v in (spec.get("env") or {}).items()},
            )
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            log.warning("ignoring harness_prestart: %s", e)
            return None
        return prestart if prestart.count > 0 else None


class HarnessPool:
    """Keeps `count` spare harnesses started for one launch; hands them out and refills.

    A start that fails (the binary gone during an upgrade, out of file descriptors or memory)
    is retried after a pause that doubles from `RETRY_FIRST` up to `RETRY_MAX` seconds and is
    reset by a start that works: a passing failure does not turn pre-starting off for the
    worker's life, and a lasting one costs a failed start every few minutes, not a loop.
    Meanwhile agents start their own harness, as with no pool."""

    RETRY_FIRST = 1.0
    RETRY_MAX = 300.0

    def __init__(self, launch: Launch, count: int, on_change: Callable[[list[int]], None]):
        self.launch = launch
        self.count = count
        self._on_change = on_change
        self._spares: list[Harness] = []
        self._lock = threading.Lock()
        self._refill: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()  # set by close; also ends a pause before a retry
        self.failed_starts = 0

    @classmethod
    def from_prestart(cls, prestart: Prestart, on_change: Callable[[list[int]], None]) -> HarnessPool | None:
        binary = default_binary(prestart.env)
        if binary is None:
            log.warning("no localharness binary found; harnesses start on demand")
            return None
        launch = Launch.of(binary, prestart.storage_directory, prestart.env, False)
        return cls(launch, prestart.count, on_change)

    def pids(self) -> list[int]:
        with self._lock:
            return [h.process.pid for h in self._spares]

    def take(self, launch: Launch) -> Harness | None:
        """A live spare for exactly `launch`, or None; a refill starts either way."""
        found = None
        dead: list[Harness] = []
        with self._lock:
            while launch == self.launch and self._spares:
                spare = self._spares.pop(0)
                if spare.alive():
                    found = spare
                    break
                dead.append(spare)
        for spare in dead:
            log.warning(
                "spare harness %d had exited (%s); not used", spare.process.pid, spare.process.returncode
            )
            _kill(spare.process)
        if found is not None or dead:
            self._changed()
        self.fill()
        return found

    def fill(self) -> None:
        """Starts spares (in a thread each, one at a time) until `count` are ready."""
        if self._closed.is_set() or (self._refill is not None and not self._refill.done()):
            return
        self._refill = asyncio.ensure_future(self._fill())

    async def _fill(self) -> None:
        while not self._closed.is_set():
            with self._lock:
                missing = self.count - len(self._spares)
            if missing <= 0:
                return
            try:
                harness = await asyncio.to_thread(spawn, self.launch)
            except (OSError, HandshakeError, ValueError) as e:
                try:
                    await asyncio.wait_for(self._closed.wait(), self._pause_after(e))
                except asyncio.TimeoutError:
                    pass
                continue
            self.failed_starts = 0
            if self._closed.is_set():
                _kill(harness.process)
                return
            with self._lock:
                self._spares.append(harness)
            self._changed()

    def _pause_after(self, error: Exception) -> float:
        """Counts a failed start and says how long to wait before the next one."""
        self.failed_starts += 1
        pause = min(self.RETRY_FIRST * (1 << min(self.failed_starts - 1, 30)), self.RETRY_MAX)
        log.warning(
            "pre-starting a harness failed (%s); agents start their own; retrying in %.0f s",
            error,
            pause,
        )
        return pause

    def _changed(self) -> None:
        try:
            self._on_change(self.pids())
        except Exception:
            log.warning("reporting spare harnesses failed", exc_info=True)

    async def close(self) -> None:
        """Stops refilling and ends every spare (closing its stdin first lets it exit cleanly)."""
        self._closed.set()
        if self._refill is not None and not self._refill.done():
            # Not cancelled: a spawn in its thread would finish unseen; _fill ends the harness.
            try:
                await asyncio.wait_for(asyncio.shield(self._refill), 5)
            except asyncio.TimeoutError:
                log.warning("a harness being pre-started did not finish its handshake in time")
        with self._lock:
            spares, self._spares = self._spares, []
        for spare in spares:
            if spare.process.stdin is not None:
                spare.process.stdin.close()
        if spares:
            await asyncio.to_thread(_end_all, [s.process for s in spares])


def _end_all(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        try:
            process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            pass
        if process.poll() is None:
            _kill(process)
        else:
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()
