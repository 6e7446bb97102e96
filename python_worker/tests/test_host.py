"""Unit tests of the worker's pure helpers: error classification, history de-duplication and
prompt conversion, against the real SDK's exception and content types."""

import base64

import pytest
from google.antigravity import types as t
from schema_check import SCHEMA, validate

from agy_worker.host import classify_exception, dedupe_steps, to_prompt
from agy_worker.protocol import AGENT_ERROR
from agy_worker.rpc import INVALID_PARAMS, RpcError


def _kind(exc):
    error = classify_exception(exc)
    assert error.code == AGENT_ERROR
    validate(error.data, SCHEMA["error_data"]["AGENT_ERROR"])
    return error.data


def test_a_429_is_quota_with_the_server_s_delay_and_a_dead_session():
    data = _kind(
        t.AntigravityExecutionError(
            "HTTP request failed with status 429: "
            '{"error": {"status": "RESOURCE_EXHAUSTED", "retryDelay": "7s"}}'
        )
    )
    assert data["kind"] == "quota"
    assert data["http_status"] == 429
    assert data["retry_after_secs"] == 7.0
    assert data["session_dead"] is True


@pytest.mark.parametrize(
    ("message", "kind", "status"),
    [
        ("HTTP request failed with status 500: boom", "model_http", 500),
        ("HTTP request failed with status 400: bad", "model_http", 400),
        ("generate failed: RESOURCE_EXHAUSTED", "quota", None),
        ("agent max token limit error: 9000 > 8192", "max_tokens", None),
        ("response blocked by the safety filter", "safety", None),
        ("failed to send HTTP request: dial tcp: connection refused", "model_unreachable", None),
        ("something else went wrong", "execution", None),
    ],
)
def test_execution_errors_are_classified(message, kind, status):
    data = _kind(t.AntigravityExecutionError(message))
    assert (data["kind"], data["http_status"]) == (kind, status)


def test_a_status_attribute_wins_over_the_message():
    exc = t.AntigravityExecutionError("status 500 in the text")
    exc.status = 429
    assert _kind(exc)["kind"] == "quota"


def test_a_pre_turn_refusal_leaves_the_session_alive():
    data = _kind(t.AntigravityExecutionError("turn blocked by pre_turn hook: no"))
    assert data["session_dead"] is False


def test_other_classes():
    assert _kind(t.AntigravityConnectionError("ws closed"))["kind"] == "connection_lost"
    assert _kind(ValueError("empty prompt"))["kind"] == "invalid_request"
    assert _kind(RuntimeError("?"))["kind"] == "internal"


class _Step:
    def __init__(self, **fields):
        self.fields = fields

    def model_dump(self, mode="json", exclude=None):
        return {k: v for k, v in self.fields.items() if k not in (exclude or set())}


def test_dedupe_keeps_the_last_update_in_first_seen_order_and_live_tool_steps():
    history = [
        _Step(id="c:0", trajectory_id="c", step_index=0, content="hel", usage_metadata={"x": 1}),
        _Step(id="c:1", trajectory_id="c", step_index=1, content="a"),
        _Step(id="c:0", trajectory_id="c", step_index=0, content="hello", score=2.0),
        _Step(id="call-7", trajectory_id="c", step_index=1, tool_calls=[{"name": "x", "args": {"n": 3.0}}]),
    ]
    out = dedupe_steps(history)
    assert [s["id"] for s in out] == ["c:0", "c:1", "call-7"]
    assert out[0]["content"] == "hello" and "usage_metadata" not in out[0]
    assert out[0]["score"] == 2 and isinstance(out[0]["score"], int)
    assert out[2]["tool_calls"][0]["args"] == {"n": 3}


def test_prompts_text_and_parts(tmp_path):
    assert to_prompt("hi") == "hi"
    for bad in ["", "   ", [], None, 5]:
        with pytest.raises(RpcError) as e:
            to_prompt(bad)
        assert e.value.code == INVALID_PARAMS
    note = tmp_path / "note.txt"
    note.write_text("file body")
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    parts = to_prompt([{"text": "look"}, {"data": png, "mime_type": "image/png"}, {"path": str(note)}])
    assert parts[0] == "look"
    assert len(parts) == 3 and all(p is not None for p in parts)
    for bad_part in [
        {"data": "!!!", "mime_type": "image/png"},
        {"nothing": 1},
        {"path": str(tmp_path / "missing")},
    ]:
        with pytest.raises(RpcError) as e:
            to_prompt([bad_part])
        assert e.value.code == INVALID_PARAMS


class _Peer:
    """Just enough of a peer for AgentHost to register its methods on."""

    def method(self, name, fn):
        pass

    def notify(self, method, params):
        pass


def test_mcp_servers_from_a_raw_sdk_option_get_no_blanket_policy(tmp_path):
    from agy_worker.host import AgentHost, HostedAgent

    host = AgentHost(_Peer(), None)
    cfg = {
        "conversation_id": "c" * 32,
        "save_dir": str(tmp_path),
        "app_data_dir": str(tmp_path),
        "model": {"kind": "openai_compatible", "model": "m", "base_url": "http://127.0.0.1:1/v1"},
    }
    plain = host._build_config(HostedAgent("a1"), cfg)
    assert len(plain.policies) == 1  # no write tools, no MCP: allow_all stands in
    servers = [{"type": "stdio", "name": "files", "command": "true", "args": []}]
    guarded = host._build_config(HostedAgent("a2"), {**cfg, "sdk_options": {"mcp_servers": servers}})
    # No policy at all: the SDK's own safety rule then refuses the agent, as for write tools.
    assert guarded.mcp_servers and guarded.policies == []


def test_an_agent_that_asked_for_a_missing_sandbox_is_warned_and_no_other():
    from types import SimpleNamespace

    from agy_worker.host import sandbox_status, sandbox_warning

    def config(sandboxed):
        return SimpleNamespace(
            capabilities=SimpleNamespace(run_command_config=SimpleNamespace(enable_sandbox=sandboxed))
        )

    def agent(status):
        return SimpleNamespace(
            conversation=SimpleNamespace(connection=SimpleNamespace(sandbox_status=status))
        )

    missing = sandbox_status(agent(t.SandboxStatus(available=False, unavailable_reason="no bwrap")))
    present = sandbox_status(agent(t.SandboxStatus(available=True)))
    assert missing == {"available": False, "unavailable_reason": "no bwrap"}
    validate(missing, SCHEMA["$defs"]["SandboxStatus"])
    assert sandbox_warning(config(True), missing) == {"type": "sandbox_unavailable", "reason": "no bwrap"}
    validate(sandbox_warning(config(True), missing), SCHEMA["$defs"]["ChatEvent"])
    assert sandbox_warning(config(False), missing) is None  # not asked for
    assert sandbox_warning(config(True), present) is None
    assert sandbox_status(SimpleNamespace()) is None  # no connection yet


def test_a_killed_process_is_not_running_before_and_after_it_is_reaped() -> None:
    import signal
    import subprocess
    import time

    from agy_worker.host import process_running

    child = subprocess.Popen(["sleep", "30"])
    assert process_running(child.pid)
    child.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while process_running(child.pid):  # a zombie until reaped: not running
        assert time.monotonic() < deadline, "the killed process still runs"
        time.sleep(0.01)
    assert child.returncode is None, "not reaped yet: only the system knows it is gone"
    child.wait()
    assert not process_running(child.pid)


def _config(tmp_path, model, **extra):
    from agy_worker.host import AgentHost, HostedAgent

    cfg = {
        "conversation_id": "c" * 32,
        "save_dir": str(tmp_path),
        "app_data_dir": str(tmp_path),
        "model": model,
        **extra,
    }
    return AgentHost(_Peer(), None)._build_config(HostedAgent("a1"), cfg)


def test_gemini_options_an_endpoint_headers_and_an_image_model_reach_the_sdk_s_model_targets(tmp_path):
    from google.antigravity import models as m

    options = {
        "gemini": {"thinking_level": "low", "service_tier": "flex", "max_output_tokens": 4096},
        "base_url": "http://127.0.0.1:9/gemini",
        "http_headers": {"x-proxy-token": "t0k3n"},
        "image_model": "my-image-model",
    }
    config = _config(tmp_path, {"kind": "gemini", "model": "gemini-x", "api_key": "k"}, model_options=options)
    text = [t for t in config.models if m.ModelType.TEXT in t.types]
    image = [t for t in config.models if m.ModelType.IMAGE in t.types]
    assert [t.name for t in text] == ["gemini-x"] and [t.name for t in image] == ["my-image-model"]
    endpoint = text[0].endpoint
    assert isinstance(endpoint, m.GeminiAPIEndpoint)
    assert endpoint.api_key == "k" and endpoint.base_url == "http://127.0.0.1:9/gemini"
    assert endpoint.http_headers == {"x-proxy-token": "t0k3n"}
    assert endpoint.options == m.GeminiModelOptions(
        thinking_level=m.ThinkingLevel.LOW, service_tier=m.ServiceTier.FLEX, max_output_tokens=4096
    )
    assert image[0].endpoint == endpoint

    # Vertex AI: the same options on a Vertex endpoint; without options, the shorthand.
    vertex = _config(
        tmp_path,
        {"kind": "vertex", "model": "gemini-v", "project": "p", "location": "europe-west4"},
        model_options={"gemini": {"thinking_level": "high"}},
    )
    endpoint = next(t for t in vertex.models if t.name == "gemini-v").endpoint
    assert isinstance(endpoint, m.VertexEndpoint)
    assert (endpoint.project, endpoint.location) == ("p", "europe-west4")
    assert endpoint.options.thinking_level == m.ThinkingLevel.HIGH
    plain = _config(tmp_path, {"kind": "gemini", "model": "gemini-x", "api_key": "k"})
    assert next(t for t in plain.models if t.name == "gemini-x").endpoint.options is None


def test_litert_options_reach_the_sdk_config(tmp_path):
    options = {
        "backend": "cpu",
        "audio_backend": "cpu",
        "vision_backend": "npu",
        "enable_speculative_decoding": True,
        "cache_dir": str(tmp_path / "cache"),
        "port": 8123,
        "download_if_missing": True,
    }
    config = _config(
        tmp_path,
        {"kind": "lite_rt", "model_path": str(tmp_path / "m.litertlm")},
        model_options={"litert": options},
    )
    assert config.backend.value == "cpu" and config.vision_backend.value == "npu"
    assert config.enable_speculative_decoding and config.download_if_missing
    assert (config.cache_dir, config.port) == (str(tmp_path / "cache"), 8123)


def test_a_bad_model_option_is_an_invalid_config_naming_it(tmp_path):
    from agy_worker.protocol import INVALID_CONFIG

    with pytest.raises(RpcError) as e:
        _config(
            tmp_path,
            {"kind": "gemini", "model": "g", "api_key": "k"},
            model_options={"gemini": {"max_output_tokens": 0}},
        )
    assert e.value.code == INVALID_CONFIG and "max_output_tokens" in e.value.message


def test_subagent_capabilities_skills_and_the_budget_scope_reach_the_sdk_config(tmp_path):
    # As agy_bridge::sdk_config serializes them (checked on the Rust side).
    subagent = {
        "name": "reviewer",
        "description": "Reviews.",
        "system_instructions": {
            "identity": "You review.",
            "sections": [{"title": "Style", "content": "Terse."}],
        },
        "capabilities": {
            "agent_behavior": "minimal",
            "enabled_tools": ["view_file"],
            "run_command_config": {"enable_daemons": False, "enable_sandbox": True},
        },
        "skills_config": {
            "inherit_config": {"skill_names": ["checklist"], "extra_skills_paths": [str(tmp_path)]}
        },
    }
    none = {"name": "plain", "description": "No skills.", "skills_config": {"none_config": {}}}
    config = _config(
        tmp_path,
        {"kind": "openai_compatible", "model": "m", "base_url": "http://127.0.0.1:1/v1"},
        sdk_options={
            "subagents": [subagent, none],
            "budget_config": {"max_model_calls": 3, "scope": "FORWARD_LOOKING"},
        },
    )
    reviewer, plain = config.subagents
    assert reviewer.capabilities.agent_behavior.value == "minimal"
    assert [t.value for t in reviewer.capabilities.enabled_tools] == ["view_file"]
    assert reviewer.capabilities.run_command_config.enable_sandbox
    assert reviewer.skills_config.inherit_config.skill_names == ["checklist"]
    assert reviewer.system_instructions.identity == "You review."
    assert plain.skills_config.none_config is not None
    assert config.budget_config.scope.value == "FORWARD_LOOKING"


def test_media_descriptions_and_slash_commands_become_the_sdk_s_content(tmp_path):
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()
    path = tmp_path / "chart.png"
    path.write_bytes(base64.b64decode(png))
    parts = to_prompt(
        [
            {"slash_command": "plan"},
            {"text": "look"},
            {"data": png, "mime_type": "image/png", "description": "a chart"},
            {"path": str(path), "description": "the same chart"},
        ]
    )
    assert parts[0] == t.SlashCommand(name=t.BuiltinSlashCommandName.PLAN)
    assert parts[2].description == "a chart" and parts[3].description == "the same chart"
    with pytest.raises(RpcError) as e:
        to_prompt([{"slash_command": "no-such-command"}])
    assert e.value.code == INVALID_PARAMS
