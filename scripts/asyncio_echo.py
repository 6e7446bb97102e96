"""Baseline for the benchmarks: the plainest asyncio JSON-RPC peer on stdio (stdlib json, default
event loop, StreamReader). It answers every request with "pong" and, on `ping_rust`, times
`count` reverse `$/ping` calls to its parent, exactly like the worker's `worker/ping_rust`."""

import asyncio
import json
import sys
import time


async def main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, sys.stdout.buffer)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    pending: dict[int, asyncio.Future] = {}
    next_id = 0

    def send(obj: dict) -> None:
        writer.write(json.dumps(obj).encode() + b"\n")

    async def ping_rust(count: int, concurrency: int) -> dict:
        nonlocal next_id
        samples: list[float] = []

        async def one() -> None:
            nonlocal next_id
            next_id += 1
            fut = loop.create_future()
            pending[next_id] = fut
            t0 = time.perf_counter()
            send({"jsonrpc": "2.0", "id": next_id, "method": "$/ping", "params": None})
            await fut
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
            "calls_per_sec": len(samples) / wall,
        }

    async def handle(msg: dict) -> None:
        params = msg.get("params") or {}
        if msg["method"] == "ping_rust":
            result = await ping_rust(int(params.get("count", 1000)), int(params.get("concurrency", 1)))
        elif msg["method"] == "echo":
            result = params
        else:
            result = "pong"
        send({"jsonrpc": "2.0", "id": msg["id"], "result": result})

    while line := await reader.readline():
        msg = json.loads(line)
        if "method" in msg:
            asyncio.ensure_future(handle(msg))
        elif (fut := pending.pop(msg.get("id"), None)) is not None:
            fut.set_result(msg.get("result"))


asyncio.run(main())
