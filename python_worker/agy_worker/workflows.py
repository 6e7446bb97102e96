"""Workflow turns: the SDK's beta `run_workflow`, as a turn the bridge streams like any other.

The SDK runs a workflow by asking the model, in a turn, to call the `run_workflow` tool on a
script file, and then reads the result off the turn's `run_workflow` step. The worker does the
same inside its own turn machinery (so text, steps and tool calls stream, and cancellation,
quota and saving work as for a chat), with the SDK's own checks: the tool must be enabled, a
script path must exist, and source is validated by `workflows.validate_workflow_source` before
it is written to a private temporary file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

from .protocol import INVALID_CONFIG
from .rpc import INVALID_PARAMS, RpcError


class WorkflowRun:
    """One workflow turn: its script file, prompt and result."""

    def __init__(self, path: str, description: str, temporary: bool) -> None:
        self.path = path
        self.description = description
        self.temporary = temporary

    @classmethod
    def start(cls, spec: dict[str, Any], config: Any) -> WorkflowRun:
        """Checks that the agent can run workflows and resolves (or writes) the script."""
        from google.antigravity import types as t
        from google.antigravity.connections import connection

        capabilities = config.capabilities
        active = connection.resolve_active_tools(capabilities)
        if not capabilities.enable_subagents or t.BuiltinTools.RUN_WORKFLOW not in active:
            raise RpcError(
                INVALID_CONFIG,
                "workflows need subagents enabled and the run_workflow built-in tool "
                '(Capabilities::enable_subagents, builtin_tool("run_workflow"))',
                {"field": "capabilities"},
            )
        description = str(spec.get("description") or "")
        workspaces = [str(w) for w in (getattr(config, "workspaces", None) or [])]
        path, source = spec.get("script_path"), spec.get("source")
        if (path is None) == (source is None):
            raise RpcError(INVALID_PARAMS, "a workflow is a script_path or a source, exactly one")
        if path is not None:
            resolved = Path(str(path)).expanduser()
            if not resolved.is_absolute() and workspaces:
                resolved = Path(workspaces[0]) / resolved
            resolved = resolved.resolve()
            if not resolved.is_file():
                raise RpcError(INVALID_PARAMS, f"no workflow script at {resolved}")
            return cls(str(resolved), description or f"Run workflow {resolved.name}", temporary=False)
        from google.antigravity import workflows as wf

        try:
            wf.validate_workflow_source(str(source))
        except wf.WorkflowError as e:
            raise RpcError(INVALID_PARAMS, f"invalid workflow: {e}") from e
        directory = workspaces[0] if workspaces and os.access(workspaces[0], os.W_OK) else None
        # Created 0600; removed when the turn ends.
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", suffix=".py", prefix=".agy_workflow_", dir=directory, delete=False
        ) as f:
            f.write(str(source))
        return cls(f.name, description or "Run workflow", temporary=True)

    @property
    def prompt(self) -> str:
        """What the model is asked (the SDK's own words)."""
        return f"Run the workflow script at `{self.path}` ({self.description}) using the `run_workflow` tool."

    def result(self, conversation: Any, history_start: int) -> dict[str, Any]:
        """The workflow's result, from the main trajectory's `run_workflow` step of this turn;
        the SDK's `ToolExecutionError` when the model did not run it or it failed."""
        from google.antigravity import types as t

        tool = t.BuiltinTools.RUN_WORKFLOW.value
        step = None
        for candidate in reversed(list(conversation.history)[history_start:]):
            if candidate.depth != 0 or candidate.parent_trajectory_id:
                continue
            if candidate.workflow_progress is not None or any(c.name == tool for c in candidate.tool_calls):
                step = candidate
                break
        if step is None:
            raise t.ToolExecutionError(
                tool_name=tool, message="The model did not invoke the run_workflow tool."
            )
        if step.status == t.StepStatus.ERROR:
            raise t.ToolExecutionError(tool_name=tool, message=step.error or "Workflow execution failed.")
        progress = step.workflow_progress or t.WorkflowProgress()
        return {
            "script_path": progress.script_path or self.path,
            "script": progress.script,
            "description": progress.description or self.description,
            "output": progress.output,
        }

    def close(self) -> None:
        if self.temporary:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
