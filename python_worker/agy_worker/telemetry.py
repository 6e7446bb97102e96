"""OpenTelemetry in the worker: off unless `initialize` asks for it (`otel`), and then free of
any import until then, so a worker without the otel packages runs as before.

When on, the worker exports its spans over OTLP/HTTP and gives every agent the SDK's own
tracing hooks (`google.antigravity.utils.otel`: turn, step and tool spans with the GenAI
attributes), with two changes that carry the trace across the pipe:

- the SDK's turn span (`invoke_agent`) becomes a child of the Rust turn span, whose W3C trace
  context arrives with `agent/chat` (`trace`): a hook that runs before the SDK's sets the
  parent the SDK looks for (`session_span`) on the turn's context;
- a Rust tool call (`tool/call`) carries the context of the SDK's `execute_tool` span, so the
  Rust tool's span is that span's child.

The SDK's session span is left out: it would last as long as the agent (hibernation and
replicas cut it anyway) and make every turn of a conversation one trace.
"""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)

# The `service.name` of the worker's spans unless `initialize` names another.
SERVICE_NAME = "agy-worker"
# How long a stopping worker waits for its last spans to be exported.
FLUSH_TIMEOUT_MS = 3000


class Telemetry:
    """Tracing switched off: no hooks, no context, nothing imported."""

    enabled = False

    def hooks(self, agent: Any) -> list[Any]:
        """The tracing hooks an agent gets (none)."""
        return []

    def tool_context(self, agent: Any) -> dict[str, str] | None:
        """The W3C trace context a reverse tool call carries (none)."""
        return None

    def shutdown(self) -> None:
        """Exports what is buffered (nothing)."""


class OtelTelemetry(Telemetry):
    """Tracing through the OpenTelemetry SDK, exported over OTLP/HTTP."""

    enabled = True

    def __init__(self, config: dict[str, Any]):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        resource = Resource.create({"service.name": config.get("service_name") or SERVICE_NAME})
        # Flushed by `shutdown` with a bound instead of at interpreter exit without one.
        self.provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        # Without an endpoint the exporter reads the standard OTEL_EXPORTER_OTLP_* variables.
        endpoint = config.get("endpoint")
        exporter = OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
        # Exported in batches off the event loop's thread; a second's delay keeps a turn's
        # spans together without holding them long.
        delay = int(config.get("export_delay_ms") or 1000)
        self.provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=delay))
        # The exporter has read its settings (headers may hold a collector's token): keep
        # them from the harnesses and the commands agents run, which inherit our environment.
        for name in [n for n in os.environ if n.startswith("OTEL_")]:
            del os.environ[name]
        self.propagator = TraceContextTextMapPropagator()
        from opentelemetry import trace

        # The SDK's hooks use the global tracer provider.
        trace.set_tracer_provider(self.provider)
        self.trace = trace

    def hooks(self, agent: Any) -> list[Any]:
        from google.antigravity.hooks import hooks as h
        from google.antigravity.utils import otel

        telemetry = self

        class _TurnParent(h.PreTurnHook):  # type: ignore[misc]
            """Makes the Rust turn span the parent of the SDK's turn span, and remembers the
            turn's context for the tool calls."""

            async def run(self, context: Any, data: Any) -> Any:
                agent.turn_context = context
                carrier = agent.turn_trace
                if carrier:
                    parent = telemetry.propagator.extract(carrier)
                    span = telemetry.trace.get_current_span(parent)
                    if span.get_span_context().is_valid:
                        context.set_state("session_span", span)
                return h.HookResult(allow=True)

        class _ToolParent(h.PreToolCallDecideHook):  # type: ignore[misc]
            """The SDK parents a tool span to the step span in progress, and makes it a root
            when the harness asks before that step's span started (it does, for client tools):
            the turn span is the parent then."""

            async def run(self, context: Any, data: Any) -> Any:
                if context.get_state("current_active_step_span") is None:
                    turn = agent.turn_context
                    span = context.get_state("turn_span") or (turn.get_state("turn_span") if turn else None)
                    if span is not None:
                        context.set_state("current_active_step_span", span)
                return h.HookResult(allow=True)

        name = getattr(agent, "agent_id", "agent")
        sdk = [
            hook
            for hook in otel.get_otel_hooks(agent_name=name)
            if not isinstance(hook, (otel.OTelSessionStartHook, otel.OTelSessionEndHook))
        ]
        return [_TurnParent(), _ToolParent(), *sdk]

    def tool_context(self, agent: Any) -> dict[str, str] | None:
        """The context of the SDK's span for the tool call being run: the current span when
        the SDK runs the tool in the task that started it, else the turn's active tool span."""
        span: Any = self.trace.get_current_span()
        if not span.get_span_context().is_valid:
            turn = getattr(agent, "turn_context", None)
            span = turn.get_state("active_tool_span") if turn is not None else None
            if span is None:
                return None
        carrier: dict[str, str] = {}
        self.propagator.inject(carrier, context=self.trace.set_span_in_context(span))
        return carrier or None

    def shutdown(self) -> None:
        try:
            if not self.provider.force_flush(timeout_millis=FLUSH_TIMEOUT_MS):
                log.warning("the last spans were not exported within %d ms", FLUSH_TIMEOUT_MS)
        except Exception:
            log.warning("exporting the last spans failed", exc_info=True)


def start(config: dict[str, Any] | None) -> Telemetry:
    """Tracing as `initialize` asked: off without a config."""
    if not config:
        return Telemetry()
    try:
        return OtelTelemetry(config)
    except ImportError as e:
        raise RuntimeError(
            "tracing was asked for, but the OpenTelemetry packages are missing from the worker's "
            f"interpreter ({e}); the managed venv installs them when tracing is on"
        ) from e
