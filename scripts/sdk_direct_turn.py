"""Baseline for the tool-turn benchmark: the same chat turn driven by the Python SDK directly.

Usage: python sdk_direct_turn.py BASE_URL TURNS WORKDIR
The scripted model (run by the Rust benchmark) answers each turn with a call of the no-op tool
`noop`, then a short text. Prints {"turn_ms": [...]} as JSON on stdout.
"""

import asyncio
import json
import sys
import time
import uuid

from google.antigravity import Agent, CapabilitiesConfig, LocalOpenAIAgentConfig
from google.antigravity.hooks import policy
from google.antigravity.tools.tool_runner import ToolWithSchema


async def noop(**kwargs):
    return "ok"


noop.__doc__ = "Does nothing."


async def main(base_url: str, turns: int, workdir: str) -> None:
    config = LocalOpenAIAgentConfig(
        model="bench",
        base_url=base_url,
        tools=[ToolWithSchema(noop, {"type": "object", "properties": {}})],
        policies=[policy.allow_all()],
        capabilities=CapabilitiesConfig(enabled_tools=[]),
        conversation_id=str(uuid.uuid4()),
        save_dir=workdir,
        app_data_dir=workdir,
        session_continuation_mode="create_or_resume",
        env={"HOME": workdir},
    )
    times = []
    async with Agent(config) as agent:
        for i in range(turns + 1):
            t0 = time.perf_counter()
            response = await agent.chat(f"turn {i}")
            await response.text()
            if i > 0:  # the first turn warms up
                times.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({"turn_ms": times}))


asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
