"""A route model step's retry policy: made once per step and kept while the gateway's own
policy is the same object; made anew when it changes (a new configuration, or a request's
cf-aig-* retry headers)."""

from __future__ import annotations

from typing import Any

from crossroads.attempts import RetryPolicy
from crossroads.routing.plan import CallModel
from crossroads.server import route_exec


class FakeCall:
    def __init__(self, base: RetryPolicy) -> None:
        self.base = base

    def policy(self) -> RetryPolicy:
        return self.base


def test_policy_is_kept_per_step_until_the_base_changes(monkeypatch: Any) -> None:
    seen: list[RetryPolicy] = []

    def fake_open_chat(call: Any, body: Any, provider: str, model: str,
                       policy: RetryPolicy) -> None:
        seen.append(policy)

    monkeypatch.setattr(route_exec, "open_chat", fake_open_chat)
    step = CallModel("m", "openai", "gpt-4o-mini", 2500, 2)
    memo: dict[Any, Any] = {}
    base = RetryPolicy(max_attempts=1, delay_ms=100, backoff="linear")
    call = FakeCall(base)
    route_exec._call_model(call, {}, step, memo)  # type: ignore[arg-type]
    route_exec._call_model(call, {}, step, memo)  # type: ignore[arg-type]
    assert seen[0] is seen[1]
    assert seen[0] == RetryPolicy(max_attempts=3, delay_ms=100, backoff="linear",
                                  timeout_ms=2500, final_attempt_waits=False)
    call.base = RetryPolicy(max_attempts=1, delay_ms=900, backoff="exponential")
    route_exec._call_model(call, {}, step, memo)  # type: ignore[arg-type]
    assert seen[2] is not seen[1]
    assert (seen[2].delay_ms, seen[2].backoff, seen[2].max_attempts) == (900, "exponential", 3)
    other = CallModel("m2", "openai", "gpt-4o", 0, 0)
    route_exec._call_model(call, {}, other, memo)  # type: ignore[arg-type]
    assert seen[3].timeout_ms is None and seen[3].max_attempts == 1
