"""Symmetric JSON-RPC 2.0 peer over newline-delimited JSON (NDJSON).

One reader callback (an asyncio ``Protocol``) frames lines with a hard size bound and never
awaits a handler: every inbound request runs in its own task (or, for the few methods
registered with ``inline_method``, is answered on the spot), notifications are dispatched
synchronously in arrival order, responses resolve pending futures.

Writes go to the pipe transport without a writer task (a task hop costs a loop iteration on
every message): what is written during one loop iteration leaves in one ``write`` at its end
(a callback scheduled with ``call_soon``), and what the reader callback writes while handling
a chunk of input leaves when it returns. So a burst of answers or of concurrent calls costs
one system call, and a lone message leaves within the same iteration. The transport buffers
what the pipe does not take at once.

The module knows nothing about agents; ``host.py`` registers the methods.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, BinaryIO


def _json_backend() -> tuple[str, Callable[[Any], bytes], Callable[[bytes], Any]]:
    """orjson is ~4x faster on large payloads; the stdlib is the fallback (and the benchmark's
    comparison point, selected with AGY_WORKER_JSON=json)."""
    if os.environ.get("AGY_WORKER_JSON", "orjson") != "json":
        try:
            import orjson

            return "orjson", orjson.dumps, orjson.loads
        except ImportError:  # pragma: no cover - only without orjson installed
            pass
    import json

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

    return "json", dumps, json.loads


JSON_BACKEND, dumps, loads = _json_backend()

log = logging.getLogger("agy_worker.rpc")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
REQUEST_CANCELLED = -32800
MESSAGE_TOO_LARGE = -32001
CONNECTION_CLOSED = -32002

# Built into the peer: cancelling a request in flight, and which of these request ids have been
# answered (see _answered_among).
CANCEL_REQUEST = "$/cancelRequest"
ANSWERED = "$/answered"

DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024
# Bytes of an oversized line kept so that its "id" (written first by both peers) can be read.
_HEAD_KEEP = 256
_ID_RE = re.compile(rb'"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")')
_METHOD_RE = re.compile(rb'"method"\s*:')


class RpcError(Exception):
    """An error that travels as a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            obj["data"] = self.data
        return obj


def too_large(size: int, limit: int) -> RpcError:
    return RpcError(
        MESSAGE_TOO_LARGE,
        f"message of {size} bytes exceeds the limit of {limit} bytes",
        {"size": size, "limit": limit},
    )


# ("line", bytes) for a complete line, ("oversized", size, head) for one over the limit.
Frame = tuple[str, bytes] | tuple[str, int, bytes]


class LineFramer:
    """Splits a byte stream into lines, holding at most ``limit`` bytes of a partial line.

    ``feed`` yields ``("line", bytes)`` for complete lines and ``("oversized", size, head)``
    for lines longer than the limit; the rest of an oversized line is discarded as it arrives,
    so a peer that never sends a newline cannot grow memory past the limit.
    """

    def __init__(self, limit: int):
        self.limit = limit
        self._buf = bytearray()
        self._discarding = False
        self._discarded = 0
        self._head = b""

    def feed(self, data: bytes) -> Iterator[Frame]:
        start = 0
        n = len(data)
        while start < n:
            nl = data.find(b"\n", start)
            end = n if nl < 0 else nl
            self._append(data, start, end)
            if nl < 0:
                break
            yield self._finish()
            start = nl + 1

    def finish_eof(self) -> Iterator[Frame]:
        if self._discarding or self._buf:
            yield self._finish()

    def _append(self, data: bytes, start: int, end: int) -> None:
        seg = end - start
        if self._discarding:
            self._discarded += seg
        elif len(self._buf) + seg > self.limit:
            head = bytes(self._buf[:_HEAD_KEEP])
            if len(head) < _HEAD_KEEP:
                head += data[start : start + (_HEAD_KEEP - len(head))]
            self._head = head
            self._discarded = len(self._buf) + seg
            self._buf = bytearray()
            self._discarding = True
        else:
            self._buf += data[start:end]

    def _finish(self) -> Frame:
        if self._discarding:
            item = ("oversized", self._discarded, self._head)
            self._discarding = False
            self._discarded = 0
            self._head = b""
            return item
        line = bytes(self._buf)
        self._buf = bytearray()
        if line.endswith(b"\r"):
            line = line[:-1]
        return ("line", line)


def sniff_id(head: bytes) -> tuple[Any, bool]:
    """Reads the id and whether a method is present from the start of an oversized message."""
    m = _ID_RE.search(head)
    msg_id: Any = None
    if m:
        try:
            msg_id = loads(m.group(1))
        except ValueError:
            msg_id = None
    return msg_id, bool(_METHOD_RE.search(head))


def _is_int_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _valid_id(value: Any) -> bool:
    """JSON-RPC ids are strings, numbers or null; we accept integers among the numbers."""
    return value is None or isinstance(value, str) or _is_int_id(value)


def _internal_error(e: Exception) -> dict[str, Any]:
    return {
        "code": INTERNAL_ERROR,
        "message": f"{type(e).__name__}: {e}",
        "data": {"exception": type(e).__name__},
    }


RequestHandler = Callable[[Any], Awaitable[Any]]
InlineHandler = Callable[[Any], Any]
NotificationHandler = Callable[[Any], None]


class Peer:
    """A JSON-RPC 2.0 peer: sends and answers requests and notifications."""

    def __init__(self, write_fd: int, max_message: int = DEFAULT_MAX_MESSAGE):
        self.max_message = max_message
        self._write_fd = write_fd
        self._methods: dict[str, RequestHandler] = {}
        self._inline: dict[str, InlineHandler] = {}
        self._notifications: dict[str, NotificationHandler] = {}
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._inflight: dict[Any, asyncio.Task[None]] = {}
        # Ids of the last answers queued, for `$/answered`.
        self._answered: collections.deque[Any] = collections.deque(maxlen=4096)
        self._next_id = 1
        # Output not yet handed to the transport: before start(), and while corked.
        self._held: list[bytes] = []
        self._corked = True
        self._flush_scheduled = False
        self._transport: asyncio.WriteTransport | None = None
        self._write_closed = False
        self._closed: RpcError | None = None
        self.eof = asyncio.Event()
        # Every message in ("< ") and out ("> "), one per line, when recording (the bridge's
        # protocol-conformance test; see Worker).
        self.recorder: BinaryIO | None = None

    # registration -------------------------------------------------------------------------
    def method(self, name: str, handler: RequestHandler) -> None:
        self._methods[name] = handler

    def inline_method(self, name: str, handler: InlineHandler) -> None:
        """A method answered inside the reader callback, without a task: only for handlers
        that return at once and never block (pings, the heartbeat)."""
        self._inline[name] = handler

    def notification(self, name: str, handler: NotificationHandler) -> None:
        self._notifications[name] = handler

    # lifecycle ----------------------------------------------------------------------------
    async def start(self, read_fd: int) -> None:
        loop = asyncio.get_running_loop()
        peer = self

        class _Reader(asyncio.Protocol):
            def __init__(self) -> None:
                self.framer = LineFramer(peer.max_message)

            def data_received(self, data: bytes) -> None:
                peer._cork()
                try:
                    for item in self.framer.feed(data):
                        peer._on_frame(item)
                finally:
                    peer._uncork()

            def eof_received(self) -> bool:
                for item in self.framer.finish_eof():
                    peer._on_frame(item)
                return False

            def connection_lost(self, exc: Exception | None) -> None:
                peer._on_eof()

        read_file = os.fdopen(read_fd, "rb", buffering=0, closefd=False)
        await loop.connect_read_pipe(_Reader, read_file)
        write_file = os.fdopen(self._write_fd, "wb", buffering=0, closefd=False)
        self._transport, _ = await loop.connect_write_pipe(asyncio.Protocol, write_file)
        self._uncork()

    def _cork(self) -> None:
        self._corked = True

    def _uncork(self) -> None:
        self._corked = False
        if self._held and self._transport is not None:
            held, self._held = self._held, []
            self._transport_write(b"".join(held))

    def _transport_write(self, data: bytes) -> None:
        if self._write_closed or self._transport is None or self._transport.is_closing():
            return
        try:
            self._transport.write(data)
        except (ConnectionError, OSError, RuntimeError):
            log.warning("protocol pipe closed while writing")
            self._write_closed = True

    def _write(self, data: bytes) -> None:
        """Sends one encoded message (with its newline), in order with everything before it.
        Messages written in one loop iteration leave together, at its end."""
        if self.recorder is not None:
            self.recorder.write(b"> " + data)
        self._held.append(data)
        if not self._corked and not self._flush_scheduled and self._transport is not None:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._flush_scheduled = False
        if not self._corked:
            self._uncork()

    async def flush_and_close(self) -> None:
        """Writes everything sent so far, then stops writing."""
        self._uncork()
        transport = self._transport
        if transport is None:
            return
        for _ in range(500):
            if transport.is_closing() or transport.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.01)
        else:
            log.warning("could not flush the protocol stream at shutdown")
        self._write_closed = True
        transport.close()

    # sending ------------------------------------------------------------------------------
    def _send(self, obj: dict[str, Any]) -> None:
        self._write(dumps(obj) + b"\n")

    def notify(self, method: str, params: Any) -> None:
        data = dumps({"jsonrpc": "2.0", "method": method, "params": params}) + b"\n"
        if len(data) - 1 > self.max_message:
            raise too_large(len(data) - 1, self.max_message)
        self._write(data)

    async def call(self, method: str, params: Any, timeout: float | None = None) -> Any:
        if self._closed is not None:
            raise self._closed
        req_id = self._next_id
        self._next_id += 1
        data = dumps({"jsonrpc": "2.0", "id": req_id, "method": method, "params": params}) + b"\n"
        if len(data) - 1 > self.max_message:
            raise too_large(len(data) - 1, self.max_message)
        fut = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        self._write(data)
        try:
            if timeout is None:
                return await fut
            return await asyncio.wait_for(fut, timeout)
        except asyncio.CancelledError:
            # Task.cancel() cancels the future awaited here, so `fut` is usually done (cancelled)
            # by now; only an answer that already arrived makes the cancel pointless.
            answered = fut.done() and not fut.cancelled()
            if not answered and self._closed is None:
                self._send({"jsonrpc": "2.0", "method": CANCEL_REQUEST, "params": {"id": req_id}})
            raise
        except asyncio.TimeoutError:
            if self._closed is None:
                self._send({"jsonrpc": "2.0", "method": CANCEL_REQUEST, "params": {"id": req_id}})
            raise
        finally:
            self._pending.pop(req_id, None)

    # receiving ----------------------------------------------------------------------------
    def _on_frame(self, item: Frame) -> None:
        """Never raises: no input, however malformed, may end the reader (and the worker)."""
        try:
            if len(item) == 3:
                _, size, head = item
                self._on_oversized(size, head)
            else:
                self._on_line(item[1])
        except Exception:
            log.exception("dropped a message that could not be handled")

    def _on_line(self, line: bytes) -> None:
        if not line.strip():
            return
        if self.recorder is not None:
            self.recorder.write(b"< " + line.rstrip(b"\n") + b"\n")
        try:
            msg = loads(line)
        except ValueError:
            log.warning("ignoring a non-JSON line from the peer: %r", line[:200])
            return
        if not isinstance(msg, dict):
            log.warning("ignoring a JSON value that is not a message: %r", line[:200])
            return
        has_id = "id" in msg
        msg_id = msg.get("id")
        if has_id and not _valid_id(msg_id):
            # Unusable as a key and as an answer's id: answer with a null id, as JSON-RPC says.
            self._reply_invalid(None, f"invalid id {msg_id!r}: ids are strings, integers or null")
            return
        if "method" in msg:
            method, params = msg["method"], msg.get("params")
            if not isinstance(method, str):
                if has_id:
                    self._reply_invalid(msg_id, "method must be a string")
                return
            if params is not None and not isinstance(params, (dict, list)):
                if has_id:
                    self._reply_invalid(msg_id, "params must be an object or an array")
                return
            if has_id:
                self._on_request(msg_id, method, params)
            else:
                self._on_notification(method, params)
            return
        if has_id:
            self._on_response(msg)
            return
        log.warning("ignoring an invalid message: %r", line[:200])

    def _reply_invalid(self, msg_id: Any, why: str) -> None:
        log.warning("invalid request: %s", why)
        self._send_response(msg_id, error={"code": INVALID_REQUEST, "message": why})

    def _on_oversized(self, size: int, head: bytes) -> None:
        msg_id, is_request = sniff_id(head)
        log.error("discarded an oversized message of %d bytes (limit %d)", size, self.max_message)
        err = too_large(size, self.max_message)
        if is_request and msg_id is not None:
            self._send_response(msg_id, error=err.to_json())
        elif not is_request and _is_int_id(msg_id):
            fut = self._pending.get(msg_id)
            if fut is not None and not fut.done():
                fut.set_exception(err)

    def _on_response(self, msg: dict[str, Any]) -> None:
        msg_id = msg["id"]
        fut = self._pending.get(msg_id) if _is_int_id(msg_id) else None
        if fut is None or fut.done():
            log.debug("response for an unknown or finished request id %r", msg_id)
            return
        err = msg.get("error")
        if err is None:
            fut.set_result(msg.get("result"))
        elif isinstance(err, dict) and _is_int_id(err.get("code")) and isinstance(err.get("message"), str):
            fut.set_exception(RpcError(err["code"], err["message"], err.get("data")))
        else:
            fut.set_exception(RpcError(INVALID_REQUEST, f"malformed error object in the answer: {err!r}"))

    def _on_notification(self, method: str, params: Any) -> None:
        if method == CANCEL_REQUEST:
            target = params.get("id") if isinstance(params, dict) else None
            task = self._inflight.get(target) if _valid_id(target) else None
            if task is not None:
                task.cancel()
            elif not _valid_id(target):
                log.warning("ignoring a $/cancelRequest without a valid id: %r", params)
            return
        handler = self._notifications.get(method)
        if handler is None:
            log.debug("no handler for notification %s", method)
            return
        try:
            handler(params)
        except Exception:
            log.exception("notification handler for %s failed", method)

    def _on_request(self, msg_id: Any, method: str, params: Any) -> None:
        if msg_id in self._inflight:
            self._reply_invalid(msg_id, f"request id {msg_id!r} is already in use")
            return
        if method == ANSWERED:
            self._send_response(msg_id, result=self._answered_among(params))
            return
        inline = self._inline.get(method)
        if inline is not None:
            try:
                result = inline(params)
            except RpcError as e:
                self._send_response(msg_id, error=e.to_json())
            except Exception as e:
                log.exception("handler for %s failed", method)
                self._send_response(msg_id, error=_internal_error(e))
            else:
                self._send_response(msg_id, result=result)
            return
        handler = self._methods.get(method)
        if handler is None:
            error = {"code": METHOD_NOT_FOUND, "message": f"method not found: {method}"}
            self._send_response(msg_id, error=error)
            return
        if isinstance(params, list):
            error = {"code": INVALID_PARAMS, "message": f"{method} takes named params (an object)"}
            self._send_response(msg_id, error=error)
            return
        task = asyncio.get_running_loop().create_task(self._run(msg_id, method, handler, params))
        self._inflight[msg_id] = task
        task.add_done_callback(lambda t: self._on_task_done(t, msg_id, method))

    def _answered_among(self, params: Any) -> list[Any]:
        """`$/answered {ids}`: which of these request ids were answered already. The Rust side
        asks after its reader saw a corrupt line: an id answered here but still pending there
        lost its answer on the way, and fails instead of waiting forever."""
        ids = params.get("ids") if isinstance(params, dict) else None
        if not isinstance(ids, list):
            return []
        answered = set(self._answered)
        return [i for i in ids if _valid_id(i) and i in answered]

    def _on_task_done(self, task: asyncio.Task[None], msg_id: Any, method: str) -> None:
        self._inflight.pop(msg_id, None)
        if task.cancelled():
            # Cancelled before its first step ran, so _run could not answer: answer here.
            error = {"code": REQUEST_CANCELLED, "message": f"{method} was cancelled"}
            self._send_response(msg_id, error=error)

    def _send_response(self, msg_id: Any, result: Any = None, error: dict[str, Any] | None = None) -> None:
        """Sends an answer; remembers its id for `$/answered` (answered exactly when sent)."""
        if error is None:
            data = dumps({"jsonrpc": "2.0", "id": msg_id, "result": result}) + b"\n"
            if len(data) - 1 > self.max_message:
                error = too_large(len(data) - 1, self.max_message).to_json()
        if error is not None:
            data = dumps({"jsonrpc": "2.0", "id": msg_id, "error": error}) + b"\n"
        self._write(data)
        if msg_id is not None:
            self._answered.append(msg_id)

    async def _run(self, msg_id: Any, method: str, handler: RequestHandler, params: Any) -> None:
        try:
            result = await handler(params)
            self._send_response(msg_id, result=result)
        except RpcError as e:
            self._send_response(msg_id, error=e.to_json())
        except asyncio.CancelledError:
            # Cancelled by the peer ($/cancelRequest) or at shutdown: answer so nothing waits.
            self._send_response(
                msg_id, error={"code": REQUEST_CANCELLED, "message": f"{method} was cancelled"}
            )
        except Exception as e:
            log.exception("handler for %s failed", method)
            self._send_response(msg_id, error=_internal_error(e))
        finally:
            self._inflight.pop(msg_id, None)

    def _on_eof(self) -> None:
        if self._closed is None:
            self._closed = RpcError(CONNECTION_CLOSED, "the Rust side closed the connection")
        for fut in list(self._pending.values()):
            if not fut.done():
                fut.set_exception(self._closed)
        self.eof.set()

    def cancel_inflight(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
