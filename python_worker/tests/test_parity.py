"""Parity with the SDK: every field of the config models `google-antigravity` exports (and of
every model those contain) and every public policy helper is either reachable from Rust or listed as
not mapped, with the reason. A new SDK version's additions fail this test instead of becoming
silent gaps. The table is docs/sdk-parity.md, which this test checks line by line."""

import typing
from pathlib import Path
from typing import Any

import google.antigravity as ag
import pydantic
from google.antigravity.hooks import policy

DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk-parity.md"

# SDK name -> how Rust reaches it.
MAPPED = {
    # Agent configs (the worker builds them from AgentConfig / ModelConfig).
    "AgentConfig.app_data_dir": "the bridge's data directory (`BridgeConfig::data_dir`)",
    "AgentConfig.budget_config": "`AgentConfig::budget(BudgetConfig)`",
    "AgentConfig.capabilities": "`AgentConfig::capabilities`, `builtin_tool`",
    "AgentConfig.compaction_config": "`AgentConfig::compaction`",
    "AgentConfig.conversation_id": "`AgentConfig::conversation_id`, `Bridge::open_agent`",
    "AgentConfig.hooks": "`AgentConfig::hooks(Hooks)`",
    "AgentConfig.inline_skills": "`AgentConfig::inline_skill`",
    "AgentConfig.mcp_servers": "`AgentConfig::mcp_server(McpServer)`",
    "AgentConfig.policies": "`AgentConfig::policy`, `policies` (`PolicyRule`, presets)",
    "AgentConfig.response_schema": "`AgentConfig::response_schema::<T>()`",
    "AgentConfig.retry_config": "`AgentConfig::retry(RetryConfig)`",
    "AgentConfig.save_dir": "the bridge's data directory",
    "AgentConfig.session_continuation_mode": "set by the bridge (create, resume, hibernation)",
    "AgentConfig.skills_paths": "`AgentConfig::skills_path`",
    "AgentConfig.subagents": "`AgentConfig::subagent(Subagent)`",
    "AgentConfig.system_instructions": "`AgentConfig::system_instructions`, `system`",
    "AgentConfig.tools": "`AgentConfig::tool` (Rust tools)",
    "AgentConfig.workspaces": "`AgentConfig::workspace`",
    "LocalAgentConfig.api_key": "`ModelConfig::gemini`, `Vertex { api_key }`",
    "BaseLocalAgentConfig.env": "`AgentConfig::env`",
    "LocalAgentConfig.location": "`ModelConfig::Vertex { location }`",
    "LocalAgentConfig.model": "`ModelConfig::with_model`",
    "LocalAgentConfig.project": "`ModelConfig::vertex`",
    "LocalAgentConfig.vertex": "`ModelConfig::Vertex`",
    "LocalOpenAIAgentConfig.base_url": "`ModelConfig::openai_compatible` (through the model gateway)",
    "LocalOpenAIAgentConfig.model": "`ModelConfig::openai_compatible`",
    "LiteRTAgentConfig.model_path": "`ModelConfig::LiteRt { model_path }`",
    "BudgetConfig.max_input_tokens": "`BudgetConfig::max_input_tokens`",
    "BudgetConfig.max_model_calls": "`BudgetConfig::max_model_calls`",
    "BudgetConfig.max_output_tokens": "`BudgetConfig::max_output_tokens`",
    "BudgetConfig.max_tool_calls": "`BudgetConfig::max_tool_calls`",
    "BudgetConfig.max_total_tokens": "`BudgetConfig::max_total_tokens`",
    "RunCommandConfig.enable_daemons": "`RunCommandConfig::enable_daemons`",
    "RunCommandConfig.enable_sandbox": "`RunCommandConfig::enable_sandbox`",
    "RunCommandConfig.timeout_seconds": "`RunCommandConfig::timeout_seconds`",
    "SubagentConfig.description": "`Subagent::description`",
    "SubagentConfig.model": "`Subagent::model`",
    "SubagentConfig.name": "`Subagent::name`",
    "SubagentConfig.system_instructions": "`Subagent::system_instructions` (`SystemInstructions`)",
    "SubagentConfig.tools": "`Subagent::tools` (by name: Rust tools of the parent or built-ins)",
    # Capabilities.
    "CapabilitiesConfig.agent_behavior": "`AgentConfig::behavior(AgentBehavior)`",
    "CapabilitiesConfig.allowed_subagents": (
        "`Capabilities::allowed_subagents` (no offline test: needs a delegating model)"
    ),
    "CapabilitiesConfig.mcp_max_output_bytes": "`Capabilities::mcp_max_output_bytes`",
    "CapabilitiesConfig.disabled_tools": "`Capabilities::disabled_tools`",
    "CapabilitiesConfig.enable_subagents": "`Capabilities::enable_subagents`",
    "CapabilitiesConfig.enabled_tools": "`AgentConfig::builtin_tool`",
    "CapabilitiesConfig.max_subagent_depth": "`Capabilities::max_subagent_depth`",
    "CapabilitiesConfig.run_command_config": "`Capabilities::run_command`",
    "CapabilitiesConfig.tool_output_truncation_config": "`Capabilities::tool_output_max_tokens`",
    "ToolOutputTruncationConfig.max_tokens": "`Capabilities::tool_output_max_tokens`",
    "CompactionConfig.token_threshold": "`CompactionConfig::token_threshold`",
    "RetryConfig.api_retry": "`RetryConfig::api_retry`",
    "RetryConfig.model_output_retry": "`RetryConfig::model_output_retry`",
    "ModelAPIRetryConfig.exponential_multiplier": "`ApiRetry::exponential_multiplier`",
    "ModelAPIRetryConfig.initial_sleep_duration_ms": "`ApiRetry::initial_sleep_duration_ms`",
    "ModelAPIRetryConfig.jitter_range": "`ApiRetry::jitter_range`",
    "ModelAPIRetryConfig.max_retries": "`ApiRetry::max_retries`",
    "ModelOutputRetryConfig.max_retries": "`OutputRetry::max_retries`",
    "InlineSkill.allowed_tools": "`InlineSkill::allowed_tools`",
    "InlineSkill.content": "`InlineSkill::content`",
    "InlineSkill.description": "`InlineSkill::description`",
    "InlineSkill.name": "`InlineSkill::name`",
    "InlineSkill.dependent_skills": "`InlineSkill::dependent_skills` (reaches the SDK; not in the prompt)",
    "InlineSkill.dependent_tools": "`InlineSkill::dependent_tools` (reaches the SDK; not in the prompt)",
    "InlineSkill.metadata": "`InlineSkill::metadata` (reaches the SDK; not in the prompt)",
    "SystemInstructionSection.content": "`InstructionSection`",
    "SystemInstructionSection.title": "`InstructionSection`",
    "TemplatedSystemInstructions.identity": "`SystemInstructions::Templated`",
    "TemplatedSystemInstructions.sections": "`SystemInstructions::Templated`",
    "CustomSystemInstructions.text": "`SystemInstructions::Custom`",
    # Content of prompts.
    "_BaseMedia.data": "`Part` (images, audio, documents, video)",
    "_BaseMedia.mime_type": "`Part` (images, audio, documents, video)",
    "McpStdioServer.type": "`McpServer::Stdio`",
    "McpStreamableHttpServer.type": "`McpServer::Http`",
    # What a turn reports.
    "SandboxStatus.available": "`ChatOutcome::sandbox`, `ChatEvent::SandboxUnavailable`",
    "SandboxStatus.unavailable_reason": "`ChatOutcome::sandbox`, `ChatEvent::SandboxUnavailable`",
    "UsageMetadata.cached_content_token_count": "`Usage::cached_tokens`",
    "UsageMetadata.candidates_token_count": "`Usage::output_tokens`",
    "UsageMetadata.prompt_token_count": "`Usage::prompt_tokens`",
    "UsageMetadata.thoughts_token_count": "`Usage::thoughts_tokens`",
    "UsageMetadata.total_token_count": "`Usage::total_tokens`",
    "UsageMetadata.service_tier": "`Usage::service_tier`",
    # MCP servers.
    "McpStdioServer.args": "`McpServer::arg`",
    "McpStdioServer.command": "`McpServer::stdio`",
    "McpStdioServer.env": "`McpServer::env`",
    "McpStreamableHttpServer.headers": "`McpServer::header`",
    "McpStreamableHttpServer.url": "`McpServer::http`",
    "McpStreamableHttpServer.timeout": "`McpServer::connect_timeout`",
    "McpStreamableHttpServer.sse_read_timeout": "`McpServer::sse_read_timeout`",
    "McpStreamableHttpServer.terminate_on_close": "`McpServer::terminate_on_close`",
    "BaseMcpServerConfig.name": "`McpServer::stdio` / `http`",
    "BaseMcpServerConfig.enabled_tools": "`McpServer::enabled_tools`",
    "BaseMcpServerConfig.disabled_tools": "`McpServer::disabled_tools`",
    "BaseMcpServerConfig.timeout_seconds": "`McpServer::timeout`",
    "BaseMcpServerConfig.force_all_tools_eager": "`McpServer::force_all_tools_eager`",
    # Policy helpers.
    "policy.allow": "`PolicyRule::allow` (with `.when(|args| …)` for `when=`)",
    "policy.deny": "`PolicyRule::deny`, `deny_with_reason`",
    "policy.ask_user": "`PolicyRule::ask_user`, `ask_user_with_reason`",
    "policy.allow_all": "`PolicyRule::allow_all`",
    "policy.deny_all": "`PolicyRule::deny_all`",
    "policy.safe_defaults": "`PolicyRule::safe_defaults`",
    "policy.confirm_run_command": "`PolicyRule::confirm_run_command`, `confirm_run_command_with`",
    "policy.workspace_only": "`PolicyRule::workspace_only`",
    "policy.auto": "`PolicyRule::auto`, `auto_with`",
    "LocalAgentConfig.models": "`AgentConfig::image_model` (the text model: `ModelConfig::with_model`)",
    "LiteRTAgentConfig.audio_backend": "`LiteRtOptions::audio_backend`",
    "LiteRTAgentConfig.backend": "`LiteRtOptions::backend`",
    "LiteRTAgentConfig.cache_dir": "`LiteRtOptions::cache_dir`",
    "LiteRTAgentConfig.download_if_missing": "`LiteRtOptions::download_if_missing`",
    "LiteRTAgentConfig.enable_speculative_decoding": "`LiteRtOptions::enable_speculative_decoding`",
    "LiteRTAgentConfig.port": "`LiteRtOptions::port`",
    "LiteRTAgentConfig.vision_backend": "`LiteRtOptions::vision_backend`",
    "GeminiAPIEndpoint.api_key": "`ModelConfig::gemini` (the key)",
    "GeminiAPIEndpoint.options": "`AgentConfig::gemini_options(GeminiOptions)`",
    "VertexEndpoint.api_key": "`ModelConfig::Vertex { api_key }`",
    "VertexEndpoint.location": "`ModelConfig::Vertex { location }`",
    "VertexEndpoint.options": "`AgentConfig::gemini_options(GeminiOptions)`",
    "VertexEndpoint.project": "`ModelConfig::Vertex { project }`",
    "ModelEndpoint.base_url": "`AgentConfig::model_endpoint`",
    "ModelEndpoint.http_headers": "`AgentConfig::model_header`",
    "ModelTarget.endpoint": "built by the worker (`model_endpoint`, `model_header`, `gemini_options`)",
    "ModelTarget.name": "`ModelConfig::with_model`, `AgentConfig::image_model`",
    "ModelTarget.types": "`TEXT`: the agent's model; `IMAGE`: `AgentConfig::image_model`",
    "GeminiModelOptions.max_output_tokens": "`GeminiOptions::max_output_tokens`",
    "GeminiModelOptions.service_tier": "`GeminiOptions::service_tier` (`ServiceTier`)",
    "GeminiModelOptions.thinking_level": "`GeminiOptions::thinking_level` (`ThinkingLevel`)",
    "BudgetConfig.scope": "`BudgetConfig::scope` (`BudgetScope`)",
    "SubagentCapabilities.agent_behavior": "`SubagentCapabilities::agent_behavior`",
    "SubagentCapabilities.allowed_subagents": "`SubagentCapabilities::allowed_subagents`",
    "SubagentCapabilities.disabled_tools": "`SubagentCapabilities::disabled_tools`",
    "SubagentCapabilities.enabled_tools": "`SubagentCapabilities::enabled_tools`",
    "SubagentCapabilities.run_command_config": "`SubagentCapabilities::run_command`",
    "SubagentConfig.capabilities": "`Subagent::capabilities`",
    "SubagentConfig.skills_config": "`Subagent::skills` (`SubagentSkills`)",
    "SubagentInheritSkillsConfig.extra_skills_paths": "`SubagentSkills::Inherit { extra_skills_paths }`",
    "SubagentInheritSkillsConfig.skill_names": "`SubagentSkills::Inherit { skill_names }`",
    "SubagentOverrideSkillsConfig.inline_skills": "`SubagentSkills::Override { inline_skills }` (not local)",
    "SubagentOverrideSkillsConfig.skills_paths": "`SubagentSkills::Override { skills_paths }`",
    "SubagentSkillsConfig.inherit_config": "`SubagentSkills::Inherit`",
    "SubagentSkillsConfig.none_config": "`SubagentSkills::None`",
    "SubagentSkillsConfig.override_config": "`SubagentSkills::Override`",
    "_BaseMedia.description": (
        "`Part::described` (the harness passes it to Gemini models only: on the OpenAI-compatible "
        "path it reaches neither the model request nor the history, checked)"
    ),
    "AgentConfig.triggers": (
        "`AgentConfig::trigger` (`Trigger::every`, `Trigger::on_file_change`); triggers of your own: "
        "`Agent::notify`; their turns: `Agent::self_started_turns`"
    ),
}

# SDK name -> why Rust does not reach it (yet).
NOT_MAPPED = {
    "DebugConfig.enable_server_side_tracing": "the SDK's debugging aid (see AgentConfig.debug_config)",
    "DebugConfig.logging_level": "the SDK's debugging aid (see AgentConfig.debug_config)",
    "AgentConfig.debug_config": "debugging aid of the SDK's own; the bridge has tracing and AGY_WORKER_DEBUG",
    "CapabilitiesConfig.compaction_threshold": "reachable through `CompactionConfig::token_threshold`",
    "CapabilitiesConfig.finish_tool_schema_json": "set by the SDK from `response_schema`",
    "policy.enforce": "the SDK's internal glue (turns policies into its decide hook)",
    "policy.flatten_policies": "the SDK's internal glue (the worker hands it flat lists)",
}


def _models_in(annotation: Any) -> list[type[pydantic.BaseModel]]:
    """The pydantic models an annotation names (through unions, lists, dicts, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _sdk_names() -> set[str]:
    """Every field of the config models the SDK exports and of every model they contain, and
    every public policy helper."""
    names: set[str] = set()
    todo = [getattr(ag, n) for n in getattr(ag, "__all__", [])]
    seen: set[type] = set()
    while todo:
        model = todo.pop()
        if not (isinstance(model, type) and issubclass(model, pydantic.BaseModel)) or model in seen:
            continue
        seen.add(model)
        for field, info in model.model_fields.items():
            # A field belongs to the first class (in method resolution order) that declares
            # it, so one inherited by several configs is listed once.
            owner = next(c for c in reversed(model.__mro__) if field in getattr(c, "__annotations__", {}))
            names.add(f"{owner.__name__}.{field}")
            todo.extend(_models_in(info.annotation))
    public = getattr(policy, "__all__", None) or [n for n in dir(policy) if not n.startswith("_")]
    for name in public:
        obj = getattr(policy, name)
        if callable(obj) and not isinstance(obj, type) and getattr(obj, "__module__", "") == policy.__name__:
            names.add(f"policy.{name}")
    return names


def test_every_sdk_config_field_and_policy_helper_is_mapped_or_listed_with_a_reason():
    names = _sdk_names()
    missing = sorted(names - MAPPED.keys() - NOT_MAPPED.keys())
    assert missing == [], f"SDK names the bridge neither maps nor lists: {missing}"
    gone = sorted((MAPPED.keys() | NOT_MAPPED.keys()) - names)
    assert gone == [], f"listed names the SDK no longer has: {gone}"
    assert not MAPPED.keys() & NOT_MAPPED.keys()


def test_the_parity_table_in_the_docs_is_this_one():
    text = DOC.read_text()
    for name, how in sorted(MAPPED.items()):
        assert f"| `{name}` | {how} |" in text, f"docs/sdk-parity.md lacks {name}"
    for name, why in sorted(NOT_MAPPED.items()):
        assert f"| `{name}` | — | {why} |" in text, f"docs/sdk-parity.md lacks {name}"
