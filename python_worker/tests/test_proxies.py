"""The SDK-side stand-ins for Rust tools, policies and hooks (proxies.py), against the real SDK
types. Every reverse request they send is validated against the protocol schema that the Rust
side generates (docs/protocol.schema.json), so the worker's hand-built payloads cannot drift
from the Rust types."""

import asyncio
from types import SimpleNamespace

import pytest
from google.antigravity import types as t
from schema_check import SCHEMA, validate

from agy_worker import proxies
from agy_worker.protocol import HOOK_RUN, POLICY_CONFIRM, TOOL_CALL
from agy_worker.rpc import RpcError


def _check(method, part, value):
    validate(value, SCHEMA["methods"][method][part])


class FakePeer:
    """Answers reverse calls with canned results, checking each against the schema both ways."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    async def call(self, method, params, timeout=None):
        _check(method, "params", params)
        self.calls.append((method, params))
        answer = self.answers[method]
        if isinstance(answer, Exception):
            raise answer
        _check(method, "result", answer)
        return answer


def run(coro):
    return asyncio.run(coro)


def test_integral_gives_whole_floats_back_their_integer_type_at_any_depth():
    assert proxies.integral({"a": 6.0, "b": [1.0, 2.5, {"c": 3.0}], "d": "7.0"}) == {
        "a": 6,
        "b": [1, 2.5, {"c": 3}],
        "d": "7.0",
    }
    assert isinstance(proxies.integral(6.0), int)


def test_a_tool_proxy_sends_a_schema_valid_tool_call_and_maps_errors():
    peer = FakePeer({TOOL_CALL: {"sky": "clear"}})
    decl = {"name": "weather", "description": "Looks up the weather.", "parameters": {"type": "object"}}
    tool = proxies.make_tool(peer, "agent-1", proxies.Callbacks(), decl)
    assert tool.__name__ == "weather"
    assert run(tool(city="Oslo", days=2.0)) == {"sky": "clear"}
    assert peer.calls == [
        (TOOL_CALL, {"agent_id": "agent-1", "tool": "weather", "args": {"city": "Oslo", "days": 2}})
    ]

    failing = FakePeer({TOOL_CALL: RpcError(-32050, "the tool failed")})
    tool = proxies.make_tool(failing, "agent-1", proxies.Callbacks(), decl)
    with pytest.raises(t.ToolExecutionError, match="the tool failed"):
        run(tool(city="Oslo"))


def test_policies_follow_the_sdk_safety_rule_when_none_are_given():
    peer = FakePeer({})
    assert len(proxies.make_policies(peer, "a", proxies.Callbacks(), None, has_writes=False)) == 1
    # With write tools and no policy, the SDK itself must refuse the agent: hand it nothing.
    assert proxies.make_policies(peer, "a", proxies.Callbacks(), None, has_writes=True) == []


def test_an_ask_user_rule_asks_rust_with_a_schema_valid_confirmation_and_fails_closed():
    rules = [
        {"index": 0, "tool": "run_command", "decision": "deny", "reason": "no shell"},
        {"index": 1, "tool": "weather", "decision": "ask_user", "reason": "costs money"},
        {"index": 2, "tool": "*", "decision": "allow"},
    ]
    peer = FakePeer({POLICY_CONFIRM: True})
    policies = proxies.make_policies(peer, "agent-7", proxies.Callbacks(), rules, has_writes=True)
    assert len(policies) == 3
    handler = proxies._confirm(peer, "agent-7", proxies.Callbacks(), rules[1])
    call = SimpleNamespace(name="weather", args={"city": "Oslo", "n": 1.0})
    assert run(handler(call)) is True
    assert peer.calls[-1] == (
        POLICY_CONFIRM,
        {
            "agent_id": "agent-7",
            "index": 1,
            "tool": "weather",
            "args": {"city": "Oslo", "n": 1},
            "reason": "costs money",
        },
    )
    refusing = FakePeer({POLICY_CONFIRM: RpcError(-32010, "unknown agent")})
    handler = proxies._confirm(refusing, "agent-7", proxies.Callbacks(), rules[1])
    assert run(handler(call)) is False


def test_hooks_send_schema_valid_hook_runs_and_turn_their_answers_into_sdk_results():
    peer = FakePeer({HOOK_RUN: {"allow": False, "message": "not today"}})
    (hook,) = proxies.make_hooks(peer, "agent-3", proxies.Callbacks(), ["pre_tool_call_decide"])
    call = SimpleNamespace(id="c1", name="weather", args={"city": "Oslo"})
    result = run(hook.run(None, call))
    assert isinstance(result, t.HookResult)
    assert (result.allow, result.message) == (False, "not today")
    method, params = peer.calls[0]
    assert (method, params["agent_id"], params["point"]) == (HOOK_RUN, "agent-3", "pre_tool_call_decide")
    assert params["data"]["tool"] == "weather"


def test_a_failing_pre_turn_hook_refuses_the_turn_visibly():
    peer = FakePeer({HOOK_RUN: RpcError(-32051, "hook panicked")})
    (hook,) = proxies.make_hooks(peer, "agent-3", proxies.Callbacks(), ["pre_turn"])
    result = run(hook.run(None, "hello"))
    assert result.allow is False
    assert "hook panicked" in result.message


def test_an_unknown_hook_point_is_refused():
    with pytest.raises(RpcError, match="unknown hook point"):
        proxies.make_hooks(FakePeer({}), "a", proxies.Callbacks(), ["after_lunch"])


def test_cancel_all_cancels_the_reverse_calls_in_flight():
    async def scenario():
        callbacks = proxies.Callbacks()
        started = asyncio.Event()

        async def forever():
            started.set()
            await asyncio.Event().wait()

        task = asyncio.ensure_future(callbacks.run(forever()))
        await started.wait()
        assert len(callbacks.tasks) == 1
        callbacks.cancel_all()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not callbacks.tasks

    run(scenario())


def test_settle_hooks_waits_for_a_hook_in_flight_and_gives_up_on_a_hung_one():
    async def scenario():
        callbacks = proxies.Callbacks()
        release = asyncio.Event()
        order: list[str] = []

        async def slow_hook():
            await release.wait()
            order.append("hook answered")

        async def hung_hook():
            await asyncio.Event().wait()

        async def tool():
            await asyncio.Event().wait()

        slow = asyncio.ensure_future(callbacks.run(slow_hook(), hook=True))
        tool_task = asyncio.ensure_future(callbacks.run(tool()))
        await asyncio.sleep(0)
        asyncio.get_running_loop().call_later(0.05, release.set)
        await callbacks.settle_hooks(30)
        order.append("turn answered")
        assert order == ["hook answered", "turn answered"]
        assert slow.done() and not tool_task.done()  # only hooks are waited for

        hung = asyncio.ensure_future(callbacks.run(hung_hook(), hook=True))
        await asyncio.sleep(0)
        await callbacks.settle_hooks(0.05)
        assert not hung.done()  # bounded: left running, not cancelled
        callbacks.cancel_all()

    run(scenario())


def test_decide_hooks_fail_closed_when_rust_cannot_run_them():
    refusing = FakePeer({HOOK_RUN: RpcError(-32602, "invalid params")})
    decide, stop, ask = proxies.make_hooks(
        refusing, "agent-3", proxies.Callbacks(), ["pre_tool_call_decide", "stop", "on_interaction"]
    )
    call = SimpleNamespace(id="c1", name="rm", args={})
    result = run(decide.run(None, call))
    assert result.allow is False and "invalid params" in result.message
    args = t.StopArgs(response_text="done", trajectory_id="tr-1", continuation_count=0)
    assert run(stop.run(None, args)).decision == t.StopDecision.ALLOW_STOP
    questions = t.AskQuestionInteractionSpec(questions=[])
    assert run(ask.run(None, questions)).cancelled is True


def test_presets_keep_their_sdk_names_and_auto_mode_reaches_the_sdk():
    from google.antigravity.hooks import policy

    rules = [
        {"index": 0, "tool": "view_file", "decision": "deny", "reason": "", "name": "workspace_only"},
        {"index": 1, "tool": "*", "decision": "allow", "reason": "", "name": "allow_all"},
        {"index": 2, "tool": "*", "decision": "auto", "reason": "", "model": "gemini-x"},
        {"index": 3, "tool": "*", "decision": "auto_ask", "reason": ""},
    ]
    spec = SCHEMA["$defs"]["PolicySpec"]
    for rule in rules:
        validate(rule, spec)
    made = proxies.make_policies(FakePeer({}), "a", proxies.Callbacks(), rules, has_writes=True)
    assert [getattr(p, "name", None) for p in made[:2]] == ["workspace_only", "allow_all"]
    assert isinstance(made[2], policy.AutoPolicy) and made[2].model == "gemini-x"
    assert made[2].ask_user is None
    assert isinstance(made[3], policy.AutoPolicy) and made[3].ask_user is not None


def test_a_predicate_asks_rust_with_schema_valid_params_and_fails_closed():
    from agy_worker.protocol import POLICY_WHEN

    allow = {"index": 0, "tool": "run_command", "decision": "allow", "reason": "", "when": True}
    deny = {"index": 1, "tool": "run_command", "decision": "deny", "reason": "", "when": True}
    validate(allow, SCHEMA["$defs"]["PolicySpec"])
    peer = FakePeer({POLICY_WHEN: True})
    made = proxies.make_policies(peer, "a", proxies.Callbacks(), [allow], has_writes=True)
    assert run(made[0].when({"CommandLine": "git status", "n": 2.0})) is True
    assert peer.calls[-1] == (
        POLICY_WHEN,
        {"agent_id": "a", "index": 0, "tool": "run_command", "args": {"CommandLine": "git status", "n": 2}},
    )
    refusing = FakePeer({POLICY_WHEN: RpcError(-32051, "predicate panicked")})
    for rule, closed in ((allow, False), (deny, True)):
        (made,) = proxies.make_policies(refusing, "a", proxies.Callbacks(), [rule], has_writes=True)
        assert run(made.when({})) is closed
