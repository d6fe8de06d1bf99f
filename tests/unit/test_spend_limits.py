"""Which gateway spend-limit budgets a call counts against (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from crossroads.gateway_settings import GatewaySettings
from crossroads.spend_limits import budgets, counter_names


def rules(*rs: dict[str, Any], enabled: bool = True) -> dict[str, Any]:
    """Through the settings model, as the gateway stores them (defaults filled in)."""
    stored = GatewaySettings(id="g", spend_limits={"enabled": enabled, "rules": list(rs)}).stored()
    return stored["spend_limits"]  # type: ignore[no-any-return]


def keys(setting: dict[str, Any], provider: str = "openai", model: str = "gpt-4o",
         meta: dict[str, Any] | None = None) -> list[str]:
    return [b.key for b in budgets(setting, "acct", "gw", provider, model, meta or {})]


def test_unfiltered_rule_is_one_budget_for_every_call() -> None:
    s = rules({"id": "all", "limit": 10, "limitType": "cost", "window": 86400})
    assert keys(s) == keys(s, "anthropic", "claude-x") == ["spend:acct:gw:all"]
    (b,) = budgets(s, "acct", "gw", "openai", "gpt-4o", {})
    assert (b.limit, b.window, b.technique, b.rule) == (10.0, 86400.0, "fixed", "all")


def test_filters_on_provider_model_and_metadata() -> None:
    s = rules({"id": "r", "limit": 1, "limitType": "cost", "window": 60,
               "provider": {"mode": "filter", "values": ["openai"]},
               "model": {"mode": "filter", "values": ["gpt-4o", "groq/llama-3"]},
               "metadata": {"team": {"mode": "filter", "values": ["search", "42"]}}})
    assert keys(s, meta={"team": "search"}) == ["spend:acct:gw:r"]
    assert keys(s, meta={"team": 42}) == ["spend:acct:gw:r"]  # numbers compared as text
    assert keys(s, meta={"team": "ads"}) == []
    assert keys(s, meta={}) == []  # a filter on a key the call did not send
    assert keys(s, model="gpt-4o-mini", meta={"team": "search"}) == []
    assert keys(s, "anthropic", "gpt-4o", {"team": "search"}) == []
    groq = rules({"id": "q", "limit": 1, "limitType": "cost", "window": 60,
                  "model": {"mode": "filter", "values": ["groq/llama-3"]}})
    assert keys(groq, "groq", "llama-3") == ["spend:acct:gw:q"]  # provider/model form


def test_partitions_split_a_rule_per_value() -> None:
    s = rules({"limit": 5, "limitType": "cost", "window": 3600, "technique": "sliding",
               "metadata": {"user": {"mode": "partition"}, "app": {"mode": "partition"}}})
    (name,) = counter_names(s["rules"])
    assert keys(s, meta={"user": "u1", "app": "web"}) == [f"spend:acct:gw:{name}:app=web:user=u1"]
    assert keys(s, meta={"user": "u2"}) == [f"spend:acct:gw:{name}:app=<none>:user=u2"]
    assert budgets(s, "acct", "gw", "openai", "m", {})[0].rule == "rule-0"  # as shown
    assert budgets(s, "acct", "gw", "openai", "m", {})[0].technique == "sliding"


def test_disabled_rules_and_setting_apply_to_nothing() -> None:
    a = {"id": "a", "limit": 1, "limitType": "cost", "window": 60}
    b = {"id": "b", "limit": 1, "limitType": "cost", "window": 60, "enabled": False}
    assert keys(rules(a, b)) == ["spend:acct:gw:a"]
    assert keys(rules(a, enabled=False)) == []
    assert keys({}) == [] and budgets(None, "a", "g", "p", "m", {}) == []


def test_a_rule_without_id_keeps_its_budget_when_rules_move_or_limits_change() -> None:
    """Its counter is named by what it counts: a rule put before it, or a new limit, leaves
    its spend where it was; a rule that counts something else has a budget of its own."""
    daily = {"limit": 10, "limitType": "cost", "window": 86400,
             "provider": {"mode": "filter", "values": ["openai"]}}
    other = {"limit": 1, "limitType": "cost", "window": 60}
    (before,) = keys(rules(daily))
    assert before.startswith("spend:acct:gw:auto-")
    assert keys(rules(other, daily))[1] == before  # moved to second place
    assert keys(rules({**daily, "limit": 50})) == [before]  # a new limit
    assert keys(rules({**daily, "enabled": True, "technique": "fixed"})) == [before]
    assert keys(rules({**daily, "window": 3600})) != [before]  # counts another window
    assert keys(rules({**daily, "provider": {"mode": "filter", "values": ["groq"]}}),
                "groq") != [before]
    twins = keys(rules(daily, daily))
    assert twins[0] == before and twins[1] == before + "-2"  # each keeps a budget
    assert keys(rules({**daily, "id": "mine"})) == ["spend:acct:gw:mine"]


def test_counter_names_are_worked_out_once_per_rules_list() -> None:
    stored = rules({"limit": 1, "limitType": "cost", "window": 60})["rules"]
    first = counter_names(stored)
    assert counter_names(stored) is first  # the same settings: looked up, not hashed again
    assert counter_names([dict(r) for r in stored]) == first  # same rules: same names


@pytest.mark.parametrize("bad", [
    {"limit": -1, "limitType": "cost", "window": 60},
    {"limit": 1, "limitType": "count", "window": 60},
    {"limit": 1, "limitType": "cost", "window": 0},
    {"limit": 1, "limitType": "cost", "window": 60, "technique": "rolling"},
    {"limit": 1, "limitType": "cost", "window": 60, "model": {"mode": "partition"}},
    {"limit": 1, "limitType": "cost", "window": 60, "metadata": {"k": {"mode": "filter"}}},
])
def test_bad_rules_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        rules(bad)
    with pytest.raises(ValueError):
        rules(*[{"limit": 1, "limitType": "cost", "window": 60}] * 21)
