"""The worker's method table, error codes and constants against the protocol schema that the
Rust side generates from its types (docs/protocol.schema.json)."""

from schema_check import SCHEMA

from agy_worker import PROTOCOL_VERSION, __version__, protocol, rpc
from agy_worker.host import AgentHost
from agy_worker.worker import Worker


def _methods(direction):
    return {name for name, m in SCHEMA["methods"].items() if m["direction"] == direction}


def test_versions_match():
    assert SCHEMA["protocol_version"] == PROTOCOL_VERSION
    assert SCHEMA["worker_version"] == __version__


def test_the_worker_serves_exactly_the_methods_rust_calls():
    served = set(Worker.METHODS) | set(Worker.DEBUG_METHODS) | set(AgentHost.METHODS) | {rpc.ANSWERED}
    assert served == _methods("rust_to_worker")
    for table, cls in (
        (Worker.METHODS, Worker),
        (Worker.DEBUG_METHODS, Worker),
        (AgentHost.METHODS, AgentHost),
    ):
        for name, attr in table.items():
            assert callable(getattr(cls, attr, None)), f"{name} -> {cls.__name__}.{attr}"


def test_the_worker_calls_exactly_the_methods_rust_serves():
    assert {protocol.TOOL_CALL, protocol.HOOK_RUN, protocol.POLICY_CONFIRM, protocol.POLICY_WHEN} == _methods(
        "worker_to_rust"
    )
    assert {
        protocol.CHAT_EVENT,
        protocol.SPARE_HARNESSES,
        protocol.HARNESS_EVENT,
        protocol.SELF_STARTED,
    } == _methods("worker_notification")


def test_error_codes_match():
    ours = {name: getattr(protocol, name) for name in SCHEMA["error_codes"]}
    assert ours == SCHEMA["error_codes"]


def test_shared_constants_match():
    assert sorted(protocol.READ_ONLY_BUILTINS) == sorted(SCHEMA["read_only_builtins"])
    assert list(protocol.HOOK_POINTS) == SCHEMA["hook_points"]


def test_json_rpc_constants_match():
    jsonrpc = SCHEMA["jsonrpc"]
    assert {name: getattr(rpc, name) for name in jsonrpc["codes"]} == jsonrpc["codes"]
    assert rpc.CANCEL_REQUEST == jsonrpc["cancel_method"]
    assert rpc.ANSWERED == jsonrpc["answered_method"]
    assert rpc.DEFAULT_MAX_MESSAGE == jsonrpc["default_max_message_size"]
