"""Tests of the worker's framing and peer, with real pipes and a real event loop."""

import asyncio
import json
import os

import pytest

from agy_worker.rpc import MESSAGE_TOO_LARGE, LineFramer, Peer, sniff_id


def test_framer_splits_and_bounds_lines():
    f = LineFramer(limit=10)
    items = list(f.feed(b'{"a":1}\n0123456789X'))
    assert items == [("line", b'{"a":1}')]
    items = list(f.feed(b"YZ\nok\r\n"))
    assert items[0][0] == "oversized" and items[0][1] == 13
    assert items[1] == ("line", b"ok")
    # Memory stays bounded while a line never ends.
    for _ in range(1000):
        list(f.feed(b"x" * 1000))
    assert len(f._buf) <= 10
    assert list(f.finish_eof())[0][0] == "oversized"


def test_sniff_id_reads_the_head():
    assert sniff_id(b'{"jsonrpc":"2.0","id":42,"method":"x","params":"aaa') == (42, True)
    assert sniff_id(b'{"jsonrpc":"2.0","id":"s-1","result":"aaa') == ("s-1", False)
    assert sniff_id(b"garbage") == (None, False)


async def _pair(limit: int):
    """A Peer on one end of two OS pipes; the test drives the other end raw."""
    to_peer_r, to_peer_w = os.pipe()
    from_peer_r, from_peer_w = os.pipe()
    peer = Peer(from_peer_w, limit)

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


async def _answer(reader):
    return json.loads(await asyncio.wait_for(reader.readline(), 10))


@pytest.mark.parametrize("garbage", [b"not json\n", b"[1,2]\n", b"\n\n"])
def test_garbage_is_ignored_and_oversized_requests_fail_alone(garbage):
    async def run():
        peer, w, reader = await _pair(limit=200)
        os.write(w, garbage)
        os.write(w, b'{"jsonrpc":"2.0","id":1,"method":"echo","params":"' + b"x" * 500 + b'"}\n')
        answer = await _answer(reader)
        assert answer["id"] == 1 and answer["error"]["code"] == MESSAGE_TOO_LARGE
        os.write(w, b'{"jsonrpc":"2.0","id":2,"method":"echo","params":{"v":"ok"}}\n')
        assert (await _answer(reader))["result"] == {"v": "ok"}

    asyncio.run(run())


def test_cancel_request_answers_cancelled_and_eof_fails_pending_calls():
    async def run():
        peer, w, reader = await _pair(limit=1 << 20)
        os.write(w, b'{"jsonrpc":"2.0","id":7,"method":"slow","params":null}\n')
        os.write(w, b'{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":7}}\n')
        answer = await _answer(reader)
        assert answer["id"] == 7 and answer["error"]["code"] == -32800
        pending = asyncio.ensure_future(peer.call("anything", None))
        await asyncio.sleep(0.05)
        os.close(w)
        with pytest.raises(Exception, match="closed the connection"):
            await asyncio.wait_for(pending, 10)

    asyncio.run(run())


def test_cancelling_a_call_sends_cancel_request():
    async def run():
        peer, w, reader = await _pair(limit=1 << 20)
        task = asyncio.ensure_future(peer.call("tool/call", {"x": 1}))
        request = await _answer(reader)
        task.cancel()
        cancel = await _answer(reader)
        assert cancel["method"] == "$/cancelRequest"
        assert cancel["params"] == {"id": request["id"]}

    asyncio.run(run())
