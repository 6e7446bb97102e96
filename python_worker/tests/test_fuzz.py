"""No message, however malformed, may end the worker's reader: a property test over generated
JSON-RPC-shaped messages (ids, methods and params of every JSON type), then the three classes a
random fuzz found (array and object ids, a cancel with array params)."""

import asyncio
import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agy_worker.rpc import INVALID_REQUEST, Peer

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
methods = st.sampled_from(["echo", "slow", "$/cancelRequest", "$/answered", "nope", ""]) | json_values
messages = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0"]) | json_values,
        "id": json_values,
        "method": methods,
        "params": json_values,
        "result": json_values,
        "error": json_values,
    },
)
lines = (
    messages.map(lambda m: json.dumps(m).encode())
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=40).filter(lambda b: b"\n" not in b)
)


async def _peer():
    to_peer_r, to_peer_w = os.pipe()
    from_peer_r, from_peer_w = os.pipe()
    peer = Peer(from_peer_w, 1 << 16)

    async def echo(params):
        return params

    async def slow(params):
        await asyncio.sleep(60)

    peer.method("echo", echo)
    peer.method("slow", slow)
    await peer.start(to_peer_r)
    reader = asyncio.StreamReader(limit=1 << 24)
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(from_peer_r, "rb"))
    return peer, to_peer_w, reader


async def _still_answers(w, reader, marker="alive"):
    os.write(
        w, json.dumps({"jsonrpc": "2.0", "id": marker, "method": "echo", "params": {"x": 1}}).encode() + b"\n"
    )
    while True:
        answer = json.loads(await asyncio.wait_for(reader.readline(), 10))
        if answer.get("id") == marker:
            return answer


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(lines, min_size=1, max_size=12))
def test_no_message_ends_the_reader(batch):
    async def run():
        peer, w, reader = await _peer()
        for line in batch:
            os.write(w, line + b"\n")
        assert (await _still_answers(w, reader))["result"] == {"x": 1}
        assert not peer.eof.is_set()
        peer.cancel_inflight()

    asyncio.run(run())


def test_the_three_crash_classes_get_answers_or_are_dropped():
    async def run():
        peer, w, reader = await _peer()
        os.write(w, b'{"jsonrpc":"2.0","id":[1],"method":"echo"}\n')
        answer = json.loads(await asyncio.wait_for(reader.readline(), 10))
        assert answer["id"] is None and answer["error"]["code"] == INVALID_REQUEST
        os.write(w, b'{"jsonrpc":"2.0","id":{"a":1},"method":"echo"}\n')
        answer = json.loads(await asyncio.wait_for(reader.readline(), 10))
        assert answer["id"] is None and answer["error"]["code"] == INVALID_REQUEST
        os.write(w, b'{"jsonrpc":"2.0","method":"$/cancelRequest","params":[1]}\n')
        assert (await _still_answers(w, reader))["result"] == {"x": 1}

    asyncio.run(run())


def test_answered_reports_only_ids_already_answered():
    async def run():
        peer, w, reader = await _peer()
        os.write(w, b'{"jsonrpc":"2.0","id":1,"method":"echo","params":{}}\n')
        os.write(w, b'{"jsonrpc":"2.0","id":2,"method":"slow","params":{}}\n')
        assert json.loads(await asyncio.wait_for(reader.readline(), 10))["id"] == 1
        os.write(w, b'{"jsonrpc":"2.0","id":3,"method":"$/answered","params":{"ids":[1,2,7]}}\n')
        answer = json.loads(await asyncio.wait_for(reader.readline(), 10))
        assert answer == {"jsonrpc": "2.0", "id": 3, "result": [1]}
        peer.cancel_inflight()

    asyncio.run(run())
