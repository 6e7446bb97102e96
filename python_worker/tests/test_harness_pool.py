"""Pre-started harnesses: the hand-written handshake messages against the SDK's generated
classes, and the pool against a real `localharness`."""

import asyncio
import os
import signal

import pytest
from google.antigravity.proto import localharness_pb2 as pb2
from hypothesis import given
from hypothesis import strategies as st
from schema_check import SCHEMA, validate

from agy_worker import harness_pool
from agy_worker.harness_pool import HarnessPool, Launch, Prestart

_INITIALIZE = SCHEMA["methods"]["initialize"]["params"]

text = st.text(max_size=40)


@given(
    storage=text,
    info=st.fixed_dictionaries(
        {k: text for k in ("language", "version", "language_version", "os", "os_version")}
    ),
    env=st.dictionaries(text, text, max_size=5),
    interactions=st.booleans(),
)
def test_input_config_parses_as_the_sdks_own(storage, info, env, interactions):
    ours = harness_pool.encode_input_config(storage, info, env, interactions)
    expected = pb2.InputConfig(storage_directory=storage, client_info=pb2.ClientInfo(**info), env=env)
    if interactions:  # as the SDK does
        expected.use_interactions_api = True
    parsed = pb2.InputConfig()
    parsed.ParseFromString(ours)
    assert parsed == expected


@given(port=st.integers(min_value=-(2**31), max_value=2**31 - 1), key=text)
def test_output_config_decodes_what_the_sdk_encodes(port, key):
    data = pb2.OutputConfig(port=port, api_key=key).SerializeToString()
    assert harness_pool.decode_output_config(data) == (port, key)


def test_garbage_output_config_is_a_clear_error():
    with pytest.raises(ValueError):
        harness_pool.decode_output_config(b"\x12\x09abc")  # a string field longer than the data
    with pytest.raises(ValueError):
        harness_pool.decode_output_config(b"\x08\xff")  # a varint cut short


def test_client_info_is_what_the_sdk_sends():
    from google.antigravity.connections.local import local_connection as lc

    assert harness_pool.client_info()["version"] == lc._get_sdk_version()
    assert harness_pool.default_binary({}) == lc._get_default_binary_path({})


def test_prestart_comes_from_initialize_and_fits_the_schema():
    spec = {"count": 2, "storage_directory": "/d", "env": {"HOME": "/h"}}
    validate({"protocol_version": 2, "crate_version": "0.2.0", "harness_prestart": spec}, _INITIALIZE)
    assert Prestart.from_params(spec) == Prestart(2, "/d", {"HOME": "/h"})
    assert Prestart.from_params(None) is None
    assert Prestart.from_params({"storage_directory": "/d"}) is None  # malformed: no count
    assert Prestart.from_params({"count": 0, "storage_directory": "/d"}) is None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _exited(pid):
    """Whether our child `pid` has exited, without reaping it."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


async def _wait_for(predicate, what):
    for _ in range(300):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_pool_hands_out_only_exact_launches_replaces_dead_spares_and_ends_its_own(tmp_path):
    async def run():
        reports = []
        env = {"HOME": str(tmp_path)}
        pool = HarnessPool.from_prestart(Prestart(1, str(tmp_path), env), reports.append)
        assert pool is not None
        pool.fill()
        await _wait_for(lambda: len(pool.pids()) == 1, "a spare")
        first = pool.pids()[0]
        assert reports[-1] == [first]

        # Another environment: no spare, and the spare stays.
        other = Launch.of(pool.launch.binary, str(tmp_path), {"HOME": str(tmp_path), "X": "1"}, False)
        assert pool.take(other) is None and pool.pids() == [first]

        # The same launch: the spare itself, answered its handshake; a replacement starts.
        same = Launch.of(pool.launch.binary, str(tmp_path), env, False)
        harness = pool.take(same)
        assert harness is not None and harness.process.pid == first and harness.port > 0 and harness.api_key
        await _wait_for(lambda: len(pool.pids()) == 1, "a replacement")
        second = pool.pids()[0]
        assert second != first
        harness.process.stdin.close()
        harness.process.wait(timeout=10)

        # A spare killed behind the pool's back is not handed out.
        os.kill(second, signal.SIGKILL)
        await _wait_for(lambda: _exited(second), "the spare to die")
        taken = pool.take(same)
        assert taken is None
        await _wait_for(lambda: len(pool.pids()) == 1, "a fresh spare")
        third = pool.pids()[0]
        assert third not in (first, second)

        await pool.close()
        assert pool.pids() == []
        assert not _alive(third)  # ended and reaped

    asyncio.run(run())


def test_a_failed_start_is_retried_after_a_pause_and_close_ends_the_pause(tmp_path):
    async def run():
        real = harness_pool.default_binary({})
        assert real is not None
        # A binary that is not there yet, as during an upgrade that replaces it.
        binary = tmp_path / "localharness"
        launch = Launch.of(str(binary), str(tmp_path), {"HOME": str(tmp_path)}, False)
        pool = HarnessPool(launch, 1, lambda pids: None)
        pool.fill()
        await _wait_for(lambda: pool.failed_starts == 1, "a failed start")
        assert pool.pids() == [] and pool.take(launch) is None
        os.symlink(real, binary)
        await _wait_for(lambda: len(pool.pids()) == 1, "the retry to start a spare")
        assert pool.failed_starts == 0, "a start that works resets the backoff"
        spare = pool.pids()[0]
        await pool.close()
        assert not _alive(spare)

        # A lasting failure: the pool waits between tries; close ends the wait at once.
        gone = Launch.of(str(tmp_path / "missing"), str(tmp_path), {}, False)
        pool = HarnessPool(gone, 1, lambda pids: None)
        pool.RETRY_FIRST = 3600.0
        pool.fill()
        await _wait_for(lambda: pool.failed_starts == 1, "a failed start")
        await asyncio.wait_for(pool.close(), 60)
        assert pool.failed_starts == 1, "no start was tried during the pause"

    asyncio.run(run())
