"""parse_route: both schemas, normalisation, every validation error, route_to_json."""

from __future__ import annotations

import copy
import dataclasses
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from route_builders import cond, end, known_provider, model, parse, pct, rate, simple, start

from crossroads.errors import InvalidRoute
from crossroads.routing.graph import (
    Conditional,
    End,
    Model,
    Percentage,
    Rate,
    Start,
    parse_route,
    route_to_json,
)

CURRENT = [
    start("c"),
    cond("c", {"metadata.plan": {"$eq": "free"}}, "p", "rl"),
    pct("p", {"10%": "m1", "40%": "m2", "50%": "m3"}),
    rate("rl", "m1", "m2"),
    model("m1", "e", "m2"),
    model("m2", provider="anthropic", name="claude"),
    model("m3", provider="workers-ai", name="@cf/meta/llama-3.1-8b-instruct", timeout=0,
          retries=0),
    end(),
]

OLD = [
    {"id": "s", "type": "start", "outputs": {"next": {"elementId": "c"}}},
    {"id": "c", "type": "conditional",
     "properties": {"condition": {"metadata.plan": {"$eq": "free"}}},
     "outputs": {"true": {"elementId": "p"}, "false": {"elementId": "rl"}}},
    {"id": "p", "type": "percentage",
     "outputs": {"10%": {"elementId": "m1"}, "40%": {"elementId": "m2"},
                 "else": {"elementId": "m3"}}},
    {"id": "rl", "type": "rate_limit",
     "properties": {"limitType": "count", "key": "metadata.user_id", "limit": 100,
                    "interval": 3600, "technique": "fixed"},
     "outputs": {"success": {"elementId": "m1"}, "fallback": {"elementId": "m2"}}},
    model("m1", "e", "m2"),
    model("m2", provider="anthropic", name="claude"),
    model("m3", provider="workers-ai", name="@cf/meta/llama-3.1-8b-instruct", timeout=0,
          retries=0),
    {"id": "e", "type": "end"},
]


def test_current_schema_parses_into_typed_elements() -> None:
    g = parse(CURRENT, version=3)
    assert (g.name, g.version, g.start) == ("support", 3, "s")
    assert [type(e) for e in g.elements] == [Start, Conditional, Percentage, Rate, Model, Model,
                                             Model, End]
    c = g.element("c")
    assert isinstance(c, Conditional) and (c.true, c.false) == ("p", "rl")
    assert c.matcher.source == {"metadata.plan": {"$eq": "free"}}
    p = g.element("p")
    assert isinstance(p, Percentage)
    assert [(b.label, b.share, b.target) for b in p.branches] == [
        ("10%", Decimal(10), "m1"), ("40%", Decimal(40), "m2"), ("50%", Decimal(50), "m3")]
    assert [b.upper for b in p.branches] == pytest.approx([0.1, 0.5, 1.0])
    r = g.element("rl")
    assert isinstance(r, Rate)
    assert (r.limit_type, r.key.text, r.limit, r.window, r.technique, r.success, r.fallback) == (
        "count", "metadata.user_id", 100, 3600, "sliding", "m1", "m2")
    m3 = g.element("m3")
    assert isinstance(m3, Model)
    assert (m3.provider, m3.model, m3.timeout_ms, m3.retries, m3.fallback) == (
        "workers-ai", "@cf/meta/llama-3.1-8b-instruct", 0, 0, None)


def test_old_schema_normalises_to_the_same_internal_form() -> None:
    old = parse(OLD)
    r = old.element("rl")
    assert isinstance(r, Rate) and (r.window, r.technique) == (3600, "fixed")
    p = old.element("p")
    assert isinstance(p, Percentage)
    assert [(b.label, b.share) for b in p.branches] == [
        ("10%", Decimal(10)), ("40%", Decimal(40)), ("else", Decimal(50))]
    equivalent = copy.deepcopy(CURRENT)
    equivalent[3]["properties"]["technique"] = "fixed"
    assert route_to_json(old) == route_to_json(parse(equivalent))


def test_minimal_route_from_third_party_docs() -> None:
    g = parse([start("model", "start"),
               model("model", "end", "end", provider="workers-ai", timeout=30000),
               end("end")])
    assert g.start == "start" and g.element("model").ports() == {
        "success": "end", "fallback": "end"}


def test_percentage_else_takes_the_remainder_and_may_be_zero() -> None:
    g = parse([start("p"), pct("p", {"37.5%": "m1", "else": "m2"}), model("m1"), model("m2"),
               end()])
    p = g.element("p")
    assert isinstance(p, Percentage) and p.branches[1].share == Decimal("62.5")
    g = parse([start("p"), pct("p", {"100%": "m1", "else": "m2"}), model("m1"), model("m2"),
               end()])
    assert g.element("p").branches[1].share == 0  # type: ignore[union-attr]


def test_count_limits_are_whole_numbers_and_cost_limits_may_be_fractional() -> None:
    g = parse([start("a"), rate("a", "b", limit=100.0), rate("b", "m1", limitType="cost",
                                                             limit=2.5), model("m1"), end()])
    assert g.element("a").limit == 100 and isinstance(g.element("a").limit, int)  # type: ignore
    assert g.element("b").limit == 2.5  # type: ignore[union-attr]


def test_custom_providers_are_decided_by_the_callback() -> None:
    elements = [start("m1"), model("m1", provider="custom-bedrock-qwen"), end()]
    assert parse(elements).element("m1").provider == "custom-bedrock-qwen"  # type: ignore
    with pytest.raises(InvalidRoute, match='element "m1": properties.provider "custom-b'):
        parse_route(elements, lambda slug: slug == "openai")


def test_graph_is_immutable() -> None:
    g = parse(simple())
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.name = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.element("m1").retries = 3  # type: ignore[misc]


def _with(elements: list[dict[str, Any]], eid: str, path: str, value: Any) -> list[dict]:
    """A deep copy of elements with element eid's dotted path set (value DELETE removes it)."""
    result = copy.deepcopy(elements)
    target = next(e for e in result if e["id"] == eid)
    *parents, last = path.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return result


DELETE = object()
BASE = [start("c"), cond("c", {"metadata.plan": "free"}, "p", "rl"),
        pct("p", {"70%": "m1", "30%": "m2"}), rate("rl", "m1", "m2"), model("m1", "e", "m2"),
        model("m2"), end()]

FIELD_ERRORS = [
    ("s", "outputs.next", DELETE, 's": outputs.next is required'),
    ("c", "outputs.true", DELETE, 'c": outputs.true is required'),
    ("c", "outputs.false", DELETE, 'c": outputs.false is required'),
    ("m1", "outputs.success", DELETE, 'm1": outputs.success is required'),
    ("rl", "outputs.success", DELETE, 'rl": outputs.success is required'),
    ("m1", "outputs.other", {"elementId": "e"}, 'm1": outputs.other is not a port of a model'),
    ("m1", "outputs.fallback", {"elementId": "nope"}, 'm1": outputs.fallback.elementId "nope" '
                                                      "is not an element"),
    ("m1", "outputs.fallback", {"elementId": ""}, 'm1": outputs.fallback.elementId must be'),
    ("m1", "outputs.fallback", "m2", 'm1": outputs.fallback.elementId must be'),
    ("m1", "outputs.fallback", {"elementId": "s"}, 'm1": outputs.fallback.elementId points at '
                                                   "the start"),
    ("m1", "outputs", [], 'm1": outputs must be an object'),
    ("m1", "properties", "x", 'm1": properties must be an object'),
    ("m1", "type", "router", "m1\": type 'router' is not one of"),
    ("m1", "properties.retry", 1, 'm1": properties.retry is not a property of a model'),
    ("c", "properties.condition", {}, 'c": properties.conditions and properties.condition'),
    ("c", "properties.conditions", {"metadata.plan": {"$like": "x"}},
     'c": properties.conditions: operator "$like"'),
    ("c", "properties.conditions", {"metadata.plan": {"$regex": "("}},
     'c": properties.conditions: operator "$regex" on "metadata.plan": "(" is not a valid'),
    ("c", "properties.conditions", {"plan": "free"}, 'c": properties.conditions: field path '
                                                     '"plan" must start with'),
    ("c", "properties.conditions", "free", 'c": properties.conditions: a condition must be'),
    ("p", "outputs.abc", {"elementId": "m1"}, 'p": outputs."abc" is not a percentage'),
    ("p", "outputs.130%", {"elementId": "m1"}, 'p": outputs."130%" is not a percentage'),
    ("p", "outputs.70%", DELETE, 'p": outputs percentages sum to 30%, must be exactly 100%'),
    ("p", "outputs.5%", {"elementId": "m1"}, 'p": outputs percentages sum to 105%'),
    ("p", "properties.sticky", "user", 'p": properties.sticky: field path "user"'),
    ("p", "properties.weights", 1, 'p": properties.weights is not a property of a percentage'),
    ("rl", "properties.limitType", "tokens", 'rl": properties.limitType must be "count" or'),
    ("rl", "properties.key", DELETE, 'rl": properties.key is required'),
    ("rl", "properties.key", "", 'rl": properties.key: field path must be a non-empty'),
    ("rl", "properties.key", "user_id", 'rl": properties.key: field path "user_id" must start'),
    ("rl", "properties.limit", 0, 'rl": properties.limit must be a positive number'),
    ("rl", "properties.limit", -5, 'rl": properties.limit must be a positive number'),
    ("rl", "properties.limit", "100", 'rl": properties.limit must be a positive number'),
    ("rl", "properties.limit", True, 'rl": properties.limit must be a positive number'),
    ("rl", "properties.limit", 2.5, 'rl": properties.limit must be a whole number of requests'),
    ("rl", "properties.window", 0, 'rl": properties.window must be a positive number'),
    ("rl", "properties.window", DELETE, 'rl": properties.window must be a positive number'),
    ("rl", "properties.interval", 60, 'rl": properties.window and properties.interval'),
    ("rl", "properties.technique", "leaky", 'rl": properties.technique must be "sliding" or'),
    ("m1", "properties.provider", "nope", 'm1": properties.provider "nope" is not a known'),
    ("m1", "properties.provider", "", 'm1": properties.provider must be a non-empty string'),
    ("m1", "properties.model", " ", 'm1": properties.model must be a non-empty string'),
    ("m1", "properties.model", DELETE, 'm1": properties.model must be a non-empty string'),
    ("m1", "properties.timeout", -1, 'm1": properties.timeout must be an integer number of ms'),
    ("m1", "properties.timeout", 1.5, 'm1": properties.timeout must be an integer'),
    ("m1", "properties.timeout", "60s", 'm1": properties.timeout must be an integer'),
    ("m1", "properties.timeout", DELETE, 'm1": properties.timeout must be an integer'),
    ("m1", "properties.retries", 11, 'm1": properties.retries must be an integer from 0 to 10'),
    ("m1", "properties.retries", -1, 'm1": properties.retries must be an integer from 0 to 10'),
    ("m1", "properties.retries", 1.0, 'm1": properties.retries must be an integer from 0'),
    ("m1", "properties.retries", True, 'm1": properties.retries must be an integer from 0'),
    ("m1", "outputs.success", {"elementId": "m2"}, 'm1": outputs.success leads to model "m2"'),
]


@pytest.mark.parametrize(("eid", "path", "value", "message"), FIELD_ERRORS,
                         ids=[f"{e}.{p}={v!r}"[:60] for e, p, v, _ in FIELD_ERRORS])
def test_validation_errors_name_element_and_field(eid: str, path: str, value: Any,
                                                  message: str) -> None:
    with pytest.raises(InvalidRoute) as info:
        parse(_with(BASE, eid, path, value))
    assert f'element "{message}' in info.value.message.replace("milliseconds", "ms")
    assert info.value.status == 400 and info.value.code == 2010


def test_the_base_route_of_the_error_table_is_valid() -> None:
    assert len(parse(BASE).elements) == 7


@pytest.mark.parametrize(("elements", "message"), [
    ([], "route elements must be a non-empty list"),
    ({"id": "s"}, "route elements must be a non-empty list"),
    (["x"], "element #0: must be an object"),
    ([{"type": "start"}], "element #0: id must be a non-empty string"),
    ([{"id": " ", "type": "start"}], "element #0: id must be a non-empty string"),
    ([start("m1"), model("m1"), end(), end()], 'element "e": id is used by more than one'),
    ([model("m1"), end()], "route must have exactly one start element, found none"),
    ([start("m1"), start("m1", "s2"), model("m1"), end()],
     'route must have exactly one start element, found "s", "s2"'),
    ([start("m1"), model("m1"), model("m9"), end()],
     'element "m9": is not reachable from the start element "s"'),
    ([start("p"), pct("p", {}), end()], 'element "p": outputs must have 1 to 5 branches, got 0'),
    ([start("p"), pct("p", {f"{i}%": "e" for i in (10, 20, 30, 15, 14, 11)}), end()],
     'element "p": outputs must have 1 to 5 branches, got 6'),
    ([start("p"), pct("p", {"60%": "e", "50%": "e", "else": "e"}), end()],
     'element "p": outputs percentages sum to 110%'),
])
def test_route_level_errors(elements: Any, message: str) -> None:
    with pytest.raises(InvalidRoute, match=message.replace("(", r"\(")):
        parse(elements)


def test_cycle_is_reported_with_its_element_ids() -> None:
    elements = [start("c"), cond("c", {}, "a", "e"), cond("a", {}, "b", "e"),
                cond("b", {}, "c", "e"), end()]
    with pytest.raises(InvalidRoute) as info:
        parse(elements)
    assert info.value.message == 'element "c": outputs form a cycle: "c" → "a" → "b" → "c"'


def test_self_loop_is_a_cycle() -> None:
    with pytest.raises(InvalidRoute, match='element "m1": outputs form a cycle: "m1" → "m1"'):
        parse([start("m1"), model("m1", "e", "m1"), end()])


def test_model_success_may_pass_through_a_split_to_end_but_not_to_a_rate() -> None:
    ok = [start("m1"), model("m1", "p"), pct("p", {"50%": "e", "50.0%": "e2"}), end(), end("e2")]
    assert parse(ok).element("m1").success == "p"  # type: ignore[union-attr]
    bad = [start("m1"), model("m1", "r"), rate("r", "e"), end()]
    with pytest.raises(InvalidRoute, match='"m1": outputs.success leads to rate "r"'):
        parse(bad)


def test_round_trip_of_current_schema_is_exact() -> None:
    assert route_to_json(parse(CURRENT)) == CURRENT
    assert parse(route_to_json(parse(CURRENT))) == parse(CURRENT)


def test_old_schema_comes_out_modernised() -> None:
    out = route_to_json(parse(OLD))
    assert out[1]["properties"] == {"conditions": {"metadata.plan": {"$eq": "free"}}}
    assert list(out[2]["outputs"]) == ["10%", "40%", "50%"]
    assert out[3]["type"] == "rate" and out[3]["properties"]["window"] == 3600
    assert out[3]["properties"]["technique"] == "fixed" and "interval" not in out[3]["properties"]
    assert out[-1] == {"id": "e", "type": "end", "outputs": {}}


def test_else_stays_when_its_explicit_key_is_taken() -> None:
    g = parse([start("p"), pct("p", {"30%": "m1", "40%": "m2", "else": "m3"}), model("m1"),
               model("m2"), model("m3"), end()])
    assert list(route_to_json(g)[1]["outputs"]) == ["30%", "40%", "else"]


def test_sticky_round_trips() -> None:
    elements = [start("p"), pct("p", {"50%": "m1", "50.0%": "m2"}, sticky="metadata.user_id"),
                model("m1"), model("m2"), end()]
    assert route_to_json(parse(elements)) == elements


@st.composite
def splits(draw: st.DrawFn) -> list[str]:
    """1..5 percentage keys (integers or one decimal) summing exactly to 100."""
    n = draw(st.integers(1, 5))
    tenths = sorted(draw(st.lists(st.integers(0, 1000), min_size=n - 1, max_size=n - 1)))
    cuts = [0, *tenths, 1000]
    parts = [b - a for a, b in zip(cuts, cuts[1:], strict=False)]
    keys = [f"{p // 10}%" if p % 10 == 0 else f"{p / 10:.1f}%" for p in parts]
    return keys if len(set(keys)) == len(keys) else [f"{p / 10:.{i + 1}f}%"
                                                     for i, p in enumerate(parts)]


@given(splits())
def test_any_split_summing_to_100_parses_and_round_trips(keys: list[str]) -> None:
    targets = [f"m{i}" for i in range(len(keys))]
    elements = [start("p"), pct("p", dict(zip(keys, targets, strict=True))),
                *(model(t) for t in targets), end()]
    g = parse(elements)
    p = g.element("p")
    assert isinstance(p, Percentage) and p.branches[-1].upper == 1.0
    assert sum(b.share for b in p.branches) == 100
    assert route_to_json(g) == elements


@given(st.integers(1, 99), st.sampled_from(["else", "no-else"]))
def test_split_below_100_needs_else(share: int, mode: str) -> None:
    outputs = {f"{share}%": "m1"} | ({"else": "e"} if mode == "else" else {})
    elements = [start("p"), pct("p", outputs), model("m1"), end()]
    if mode == "else":
        assert parse(elements).element("p").branches[-1].share == 100 - share  # type: ignore
    else:
        with pytest.raises(InvalidRoute, match=f"sum to {share}%"):
            parse(elements)


def test_known_providers_callback_is_consulted_per_model() -> None:
    seen: list[str] = []
    parse_route([start("m1"), model("m1", "e", "m2"), model("m2", provider="anthropic"), end()],
                lambda slug: seen.append(slug) is None)
    assert seen == ["openai", "anthropic"]
    assert known_provider("custom-x")
