"""Entry point: ``python -m agy_worker``. Speaks JSON-RPC on a private copy of fd 1.

Start-up order matters:
1. keep a private dup of fd 1 for the protocol, then point fd 1 and ``sys.stdout`` at stderr,
   so a stray ``print`` anywhere (SDK, tools, C extensions) can never corrupt the stream;
2. configure logging to stderr before the SDK is imported (the SDK logs via the root logger);
3. serve the protocol at once and import the SDK in a thread meanwhile.

The cyclic garbage collector is off until the SDK is imported: the import allocates hundreds
of thousands of objects (pydantic models) and creates almost no garbage, so the collections it
triggers are wasted work, ~20 % of the import (see BENCHMARKS.md). Afterwards everything the
import made is frozen (never scanned again) and collection resumes.
"""

from __future__ import annotations

import gc

gc.disable()

import os
import sys

PROTOCOL_FD = os.dup(1)
os.dup2(2, 1)
sys.stdout = sys.stderr

import asyncio
import logging
import signal
import time

from .worker import Worker

MAIN_ENTERED = time.time()

logging.basicConfig(
    stream=sys.stderr,
    level=os.environ.get("AGY_WORKER_LOG_LEVEL", "WARNING").upper(),
    format="%(levelname)s %(name)s: %(message)s",
    force=True,
)


def _event_loop_name() -> str:
    if os.environ.get("AGY_WORKER_UVLOOP", "1") != "0":
        try:
            import uvloop

            uvloop.install()
            return "uvloop"
        except ImportError:
            pass
    return "asyncio"


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
        await Worker(PROTOCOL_FD, loop_name, MAIN_ENTERED).run()

    try:
        asyncio.run(amain())
    finally:
        _kill_own_group()
        logging.shutdown()
        os._exit(0)


if __name__ == "__main__":
    main()
