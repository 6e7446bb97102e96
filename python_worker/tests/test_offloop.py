"""The off-loop harness stop: the stand-in process and the reaping that replace the SDK's waits."""

import subprocess

from agy_worker.offloop import _ExitLater, _reap


def test_the_stand_in_never_blocks_and_forwards_everything_else():
    process = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    stand_in = _ExitLater(process)
    assert stand_in.wait(timeout=100) is None  # returns at once although cat is running
    assert stand_in.poll() is None and stand_in.returncode is None
    assert stand_in.pid == process.pid and stand_in.stdin is process.stdin
    stand_in.stdin.close()
    assert _reap(process, None, timeout=10) == 0


def test_reaping_escalates_to_kill_when_the_process_ignores_eof():
    process = subprocess.Popen(["sleep", "30"], stdin=subprocess.PIPE)
    process.stdin.close()
    # sleep ignores EOF: the wait times out, terminate ends it.
    assert _reap(process, None, timeout=0.1) == -15


def test_reaping_releases_the_pipes_the_sdk_leaves_open():
    process = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdin.close()
    assert _reap(process, None, timeout=10) == 0
    assert process.stdout.closed and process.stderr.closed
