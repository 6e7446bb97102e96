"""The usage a turn reports: per subagent (what each subagent trajectory grew by during the turn)
and the conversation's running total, from the SDK's own `UsageMetadata` objects."""

from types import SimpleNamespace

from google.antigravity.types import UsageMetadata

from agy_worker.host import conversation_usage, subagent_usage


def usage(prompt: int, output: int) -> UsageMetadata:
    return UsageMetadata(
        prompt_token_count=prompt, candidates_token_count=output, total_token_count=prompt + output
    )


def test_subagent_usage_is_the_turns_growth_of_each_subagent_trajectory() -> None:
    before = {"conv": usage(10, 5), "sub-a": usage(100, 50)}
    conversation = SimpleNamespace(
        conversation_id="conv",
        trajectory_usages={
            "conv": usage(30, 9),
            "sub-a": usage(130, 70),
            "sub-b": usage(7, 3),
            "sub-c": usage(0, 0),
        },
    )
    got = subagent_usage(conversation, before)
    # The main trajectory is the turn's own usage; an idle subagent is left out.
    assert set(got) == {"sub-a", "sub-b"}
    assert (got["sub-a"]["prompt_tokens"], got["sub-a"]["output_tokens"]) == (30, 20)
    assert (got["sub-b"]["prompt_tokens"], got["sub-b"]["output_tokens"]) == (7, 3)


def test_usage_reports_never_fail_a_turn() -> None:
    class Broken:
        conversation_id = "conv"

        @property
        def trajectory_usages(self) -> dict[str, UsageMetadata]:
            raise RuntimeError("not connected")

        @property
        def total_usage(self) -> UsageMetadata:
            raise RuntimeError("not connected")

    assert subagent_usage(Broken(), {}) == {}
    assert conversation_usage(Broken()) is None


def test_the_service_tier_is_reported_when_the_model_names_one() -> None:
    from google.antigravity.types import ServiceTier

    tier = next(iter(ServiceTier))
    total = UsageMetadata(prompt_token_count=1, service_tier=tier)
    got = conversation_usage(SimpleNamespace(total_usage=total))
    assert got is not None and got["service_tier"] == tier.value
