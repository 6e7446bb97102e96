"""Baselines for the activation benchmark (benches/activation.rs): the Python SDK driving the
same scripted model with the same no-op tool, in the same run.

Usage: python sdk_activation.py MODE BASE_URL WORKDIR [N]
  cold        import the SDK, start one agent, print READY (the bench times spawn -> READY)
  agents      N times: start an agent and time its start and first turn, a warm turn, then its
              resume (stop, start on the same conversation) and the turn after; prints JSON
  throughput  N agents in one asyncio loop: a warm-up round of N concurrent text turns, then 3
              timed rounds; prints {"turns_per_sec": ...}
  memory      N agents, each after one turn: this process's RSS growth plus its harnesses' RSS,
              per agent; prints {"per_agent_bytes": ...}
"""

import asyncio
import json
import os
import sys
import time
import uuid

from google.antigravity import Agent, CapabilitiesConfig, LocalOpenAIAgentConfig
from google.antigravity.hooks import policy
from google.antigravity.tools.tool_runner import ToolWithSchema


async def noop(**kwargs):
    return "ok"


noop.__doc__ = "Does nothing."


def config(base_url: str, workdir: str, conversation_id: str) -> LocalOpenAIAgentConfig:
    return LocalOpenAIAgentConfig(
        model="bench",
        base_url=base_url,
        tools=[ToolWithSchema(noop, {"type": "object", "properties": {}})],
        policies=[policy.allow_all()],
        capabilities=CapabilitiesConfig(enabled_tools=[]),
        conversation_id=conversation_id,
        save_dir=workdir,
        app_data_dir=workdir,
        session_continuation_mode="create_or_resume",
        env={"HOME": workdir},
    )


async def turn(agent: Agent, prompt: str) -> float:
    t0 = time.perf_counter()
    response = await agent.chat(prompt)
    await response.text()
    return (time.perf_counter() - t0) * 1000


async def cold(base_url: str, workdir: str) -> None:
    async with Agent(config(base_url, workdir, str(uuid.uuid4()))):
        print("READY", flush=True)


async def agents(base_url: str, workdir: str, n: int) -> None:
    out: dict[str, list[float]] = {
        "start_ms": [],
        "first_turn_ms": [],
        "warm_turn_ms": [],
        "resumed_turn_ms": [],
    }
    for i in range(n):
        cid = str(uuid.uuid4())
        agent = Agent(config(base_url, workdir, cid))
        t0 = time.perf_counter()
        await agent.__aenter__()
        out["start_ms"].append((time.perf_counter() - t0) * 1000)
        out["first_turn_ms"].append(await turn(agent, f"first {i}"))
        out["warm_turn_ms"].append(await turn(agent, f"warm {i}"))
        await agent.__aexit__(None, None, None)
        # Resume: what a hibernated conversation costs the SDK (start on the same conversation).
        agent = Agent(config(base_url, workdir, cid))
        t0 = time.perf_counter()
        await agent.__aenter__()
        out["resumed_turn_ms"].append((time.perf_counter() - t0) * 1000 + await turn(agent, f"again {i}"))
        await agent.__aexit__(None, None, None)
    print(json.dumps(out))


async def throughput(base_url: str, workdir: str, n: int) -> None:
    started = [Agent(config(base_url, workdir, str(uuid.uuid4()))) for _ in range(n)]
    await asyncio.gather(*(a.__aenter__() for a in started))

    async def round_() -> None:
        await asyncio.gather(*(turn(a, "hello there") for a in started))

    await round_()
    t0 = time.perf_counter()
    for _ in range(3):
        await round_()
    rate = 3 * n / (time.perf_counter() - t0)
    await asyncio.gather(*(a.__aexit__(None, None, None) for a in started))
    print(json.dumps({"turns_per_sec": rate}))


def _rss(pid: int | str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _children_rss() -> int:
    total, me = 0, str(os.getpid())
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = f.read().rsplit(")", 1)[1].split()[1]
        except OSError:
            continue
        if ppid == me:
            total += _rss(pid)
    return total


async def memory(base_url: str, workdir: str, n: int) -> None:
    warm = Agent(config(base_url, workdir, str(uuid.uuid4())))
    await warm.__aenter__()
    await turn(warm, "warm up")
    await warm.__aexit__(None, None, None)
    before = _rss(os.getpid())
    started = []
    for i in range(n):
        agent = Agent(config(base_url, workdir, str(uuid.uuid4())))
        await agent.__aenter__()
        await turn(agent, f"hello {i}")
        started.append(agent)
    total = _rss(os.getpid()) - before + _children_rss()
    await asyncio.gather(*(a.__aexit__(None, None, None) for a in started))
    print(json.dumps({"per_agent_bytes": total / n}))


def main() -> None:
    mode, base_url, workdir = sys.argv[1:4]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    if mode == "cold":
        asyncio.run(cold(base_url, workdir))
    elif mode == "agents":
        asyncio.run(agents(base_url, workdir, n))
    elif mode == "throughput":
        asyncio.run(throughput(base_url, workdir, n))
    elif mode == "memory":
        asyncio.run(memory(base_url, workdir, n))
    else:
        sys.exit(f"unknown mode {mode!r}")


main()
