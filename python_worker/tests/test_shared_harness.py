"""Shared harnesses (shared_harness.py) against a real `localharness`: conversations fill the
fullest harness of their launch, concurrent starts wait for one harness, each conversation's
stand-in touches only itself, and a harness ends with its last conversation or its death."""

import asyncio
import os
import signal

from agy_worker import harness_pool
from agy_worker.harness_pool import Launch
from agy_worker.shared_harness import SharedHarnesses


def _launch(tmp_path, **extra):
    binary = harness_pool.default_binary({})
    assert binary is not None, "the SDK's localharness"
    return Launch.of(binary, str(tmp_path), {"HOME": str(tmp_path), **extra}, False)


async def _wait_for(condition, what, timeout=30.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_conversations_share_by_launch_and_the_harness_ends_with_the_last(tmp_path):
    async def run():
        shared = SharedHarnesses(2)
        starts = []

        async def start(launch):
            starts.append(launch)
            return await asyncio.to_thread(harness_pool.spawn, launch)

        same = _launch(tmp_path)
        # Three concurrent starts of one launch: one harness for two, then a second.
        first, second, third = await asyncio.gather(
            *(shared.admit(same, lambda: start(same)) for _ in range(3))
        )
        assert first.pid == second.pid != third.pid
        assert len(starts) == 2
        # Another environment never joins them.
        other = await shared.admit(_launch(tmp_path, X="1"), lambda: start(_launch(tmp_path, X="1")))
        assert other.pid not in (first.pid, third.pid)

        # A conversation's stand-in: wait never waits, kill releases only itself, stderr reads
        # without blocking.
        assert first.wait(timeout=5) is None and first.poll() is None
        assert isinstance(first.stderr.read(), bytes)
        first.kill()
        assert not _gone(second.pid)
        # Room again: the next conversation joins the half-empty harness.
        fourth = await shared.admit(same, lambda: start(same))
        assert fourth.pid == second.pid and len(starts) == 3

        pid = second.pid
        second.stdin.close()
        fourth.stdin.close()
        await _wait_for(lambda: _gone(pid), "the empty harness to end")
        for tenant in (third, other):
            tenant.release()
        assert shared.pids() == []

    asyncio.run(run())


def test_a_killed_harness_is_seen_by_its_conversations_and_not_joined_again(tmp_path):
    async def run():
        shared = SharedHarnesses(4)
        launch = _launch(tmp_path)

        async def start():
            return await asyncio.to_thread(harness_pool.spawn, launch)

        a = await shared.admit(launch, start)
        b = await shared.admit(launch, start)
        lines = []
        reader = asyncio.get_running_loop().run_in_executor(None, lambda: lines.extend(a.stderr))
        os.kill(a.pid, signal.SIGKILL)
        await _wait_for(lambda: not a.harness_alive(), "the harness to die")
        assert b.poll() == -signal.SIGKILL
        await asyncio.wait_for(reader, 10)  # the conversation's stderr copy ends with the harness
        c = await shared.admit(launch, start)
        assert c.pid != a.pid and c.harness_alive()
        for tenant in (a, b, c):
            tenant.release()

    asyncio.run(run())
