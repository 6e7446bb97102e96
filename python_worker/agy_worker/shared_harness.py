"""Several conversations on one `localharness` process.

A harness serves any number of conversations: each agent opens its own WebSocket to the
harness's port and sends its own `InitializeConversationEvent`, and the connection *is* the
conversation (histories stay apart, turns run in parallel, closing or dropping one socket ends
only that conversation). A harness costs ~155 MiB and each extra conversation on it ~1.6 MiB
(docs/architecture.md), so agents of one launch (binary, storage directory, environment,
protocol flavour) share harnesses, up to `capacity` conversations each.

The SDK holds "its" harness process and, at disconnect or on a failed start, closes its stdin,
waits for it, kills it and reads its stderr. On a shared harness each conversation holds a
`Tenant` instead: a stand-in whose stdin close, wait, kill and stderr touch only that
conversation (release it, return at once, close its socket, read a copy of the harness's
stderr). The harness ends when its last conversation leaves, or when it dies (`kill -9`, OOM),
which fails only the turns in flight on it: every agent on it re-opens its conversation on
another harness at its next turn (`Tenant.harness_alive`, see host.py).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import subprocess
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from .harness_pool import Harness, Launch

log = logging.getLogger("agy_worker.shared_harness")

# Lines of a harness's stderr kept for the error messages of the conversations on it.
STDERR_TAIL = 100


class SharedHarness:
    """One started harness and the conversations on it."""

    def __init__(self, harness: Harness, capacity: int, registry: SharedHarnesses) -> None:
        self.harness = harness
        self.capacity = capacity
        self._registry = registry
        self._tenants: set[Tenant] = set()
        self._lock = threading.Lock()
        self._tail: collections.deque[bytes] = collections.deque(maxlen=STDERR_TAIL)
        self._closing = False
        self._stderr_thread = threading.Thread(
            target=self._drain_stderr, daemon=True, name="shared-harness-stderr"
        )
        self._stderr_thread.start()

    @property
    def pid(self) -> int:
        return self.harness.process.pid

    def alive(self) -> bool:
        return self.harness.process.poll() is None

    def has_room(self) -> bool:
        with self._lock:
            return not self._closing and len(self._tenants) < self.capacity and self.alive()

    def tenants(self) -> int:
        with self._lock:
            return len(self._tenants)

    def admit(self) -> Tenant:
        tenant = Tenant(self)
        with self._lock:
            self._tenants.add(tenant)
        return tenant

    def stderr_tail(self) -> bytes:
        with self._lock:
            return b"".join(self._tail)

    def release(self, tenant: Tenant) -> None:
        """A conversation left; the harness ends with its last one."""
        with self._lock:
            if tenant not in self._tenants:
                return
            self._tenants.discard(tenant)
            last = not self._tenants and not self._closing
            if last:
                self._closing = True
        tenant.lines.put(None)
        if last:
            self._registry.forget(self)
            self._end()

    def _end(self) -> None:
        process = self.harness.process
        if process.stdin is not None and not process.stdin.closed:
            try:
                process.stdin.close()  # the harness exits at EOF on its stdin
            except OSError:
                pass
        threading.Thread(target=_reap, args=(process, self._stderr_thread), daemon=True).start()

    def _drain_stderr(self) -> None:
        stream = self.harness.process.stderr
        if stream is None:
            return
        try:
            for line in stream:
                with self._lock:
                    self._tail.append(line)
                    tenants = list(self._tenants)
                for tenant in tenants:
                    tenant.lines.put(line)
        except (ValueError, OSError):
            pass  # closed
        # EOF: the harness is gone. Every conversation's copy of its stderr ends too.
        with self._lock:
            tenants = list(self._tenants)
        for tenant in tenants:
            tenant.lines.put(None)


def _reap(process: subprocess.Popen[bytes], stderr_thread: threading.Thread) -> None:
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    stderr_thread.join(timeout=1.0)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


class _TenantStdin:
    """The harness's stdin as one conversation sees it: closing it means "I am done"."""

    def __init__(self, tenant: Tenant) -> None:
        self._tenant = tenant
        self.closed = False

    def close(self) -> None:
        self.closed = True
        self._tenant.release()

    def write(self, data: bytes) -> int:
        raise OSError("the stdin of a shared harness is not one conversation's to write")

    def flush(self) -> None:
        return None


class _TenantStderr:
    """A copy of the harness's stderr from the conversation's start: iterated by the SDK's
    drain thread (ends when the conversation leaves or the harness dies), read whole on a
    failed start (the tail so far, without blocking)."""

    def __init__(self, tenant: Tenant) -> None:
        self._tenant = tenant

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self._tenant.lines.get()
            if line is None:
                return
            yield line

    def read(self, size: int = -1) -> bytes:
        return self._tenant.host.stderr_tail()

    def close(self) -> None:
        return None


class Tenant:
    """Stands in for the harness `Popen` in one conversation's SDK connection (see the module
    doc): the real pid and exit status, but stdin, wait, kill and stderr are this
    conversation's only."""

    def __init__(self, host: SharedHarness) -> None:
        self.host = host
        self.lines: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.stdin = _TenantStdin(self)
        self.stdout = None
        self.stderr = _TenantStderr(self)
        self.ws: Any = None
        self._released = False

    @property
    def pid(self) -> int:
        return self.host.pid

    @property
    def returncode(self) -> int | None:
        return self.host.harness.process.returncode

    def harness_alive(self) -> bool:
        return self.host.alive()

    def poll(self) -> int | None:
        return self.host.harness.process.poll()

    def wait(self, timeout: float | None = None) -> int | None:
        # Never waits: the harness outlives this conversation unless it has died already.
        return self.poll()

    def kill(self) -> None:
        """The SDK gave up on this conversation (a failed connect or initialize): close its
        socket, if any, and leave the harness to the others."""
        ws = self.ws
        if ws is not None:
            try:
                asyncio.get_running_loop().create_task(ws.close())
            except RuntimeError:
                pass  # no loop here: the socket goes with its connection object
        self.release()

    terminate = kill

    def send_signal(self, sig: int) -> None:
        return None

    def release(self) -> None:
        if not self._released:
            self._released = True
            self.host.release(self)


class SharedHarnesses:
    """The shared harnesses of one worker, by launch."""

    def __init__(self, capacity: int, on_change: Callable[[], None] = lambda: None) -> None:
        self.capacity = max(1, capacity)
        self._on_change = on_change
        self._by_launch: dict[Launch, list[SharedHarness]] = {}
        self._starting: dict[Launch, asyncio.Future[SharedHarness]] = {}
        self._lock = threading.Lock()

    async def admit(self, launch: Launch, start: Callable[[], Awaitable[Harness]]) -> Tenant:
        """A place for one more conversation of `launch`: on a live harness with room, else on
        one `start` makes. Concurrent starts wait for one harness rather than each starting
        their own; `start`'s failure is theirs too."""
        while True:
            host = self.with_room(launch)
            if host is not None:
                return host.admit()
            pending = self._starting.get(launch)
            if pending is None:
                pending = asyncio.ensure_future(self._start(launch, start))
                self._starting[launch] = pending
            await asyncio.shield(pending)

    async def _start(self, launch: Launch, start: Callable[[], Awaitable[Harness]]) -> SharedHarness:
        try:
            return self.add(await start())
        finally:
            self._starting.pop(launch, None)

    def with_room(self, launch: Launch) -> SharedHarness | None:
        """The fullest live harness of `launch` with room (fewer, fuller harnesses), or None."""
        with self._lock:
            candidates = [h for h in self._by_launch.get(launch, []) if h.has_room()]
        if not candidates:
            return None
        return max(candidates, key=lambda h: h.tenants())

    def add(self, harness: Harness) -> SharedHarness:
        shared = SharedHarness(harness, self.capacity, self)
        with self._lock:
            self._by_launch.setdefault(harness.launch, []).append(shared)
        self._changed()
        return shared

    def forget(self, shared: SharedHarness) -> None:
        with self._lock:
            hosts = self._by_launch.get(shared.harness.launch, [])
            if shared in hosts:
                hosts.remove(shared)
            if not hosts:
                self._by_launch.pop(shared.harness.launch, None)
        self._changed()

    def _changed(self) -> None:
        try:
            self._on_change()
        except Exception:
            log.warning("reporting shared harnesses failed", exc_info=True)

    def pids(self) -> list[int]:
        with self._lock:
            return [h.pid for hosts in self._by_launch.values() for h in hosts]

    def close(self) -> None:
        """Ends every harness (the worker is stopping)."""
        with self._lock:
            hosts = [h for hs in self._by_launch.values() for h in hs]
            self._by_launch.clear()
        for host in hosts:
            host._closing = True
            host._end()
