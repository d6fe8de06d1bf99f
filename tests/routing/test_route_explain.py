"""explain(): the dry run behind the explain endpoint."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from route_builders import cond, end, model, parse, pct, rate, start

from crossroads.errors import BadRequest
from crossroads.routing.explain import Explanation, explain
from crossroads.routing.plan import CheckLimit, Finish, RouteWalk

ROUTE = parse([
    start("c"),
    cond("c", {"metadata.plan": "free"}, "p", "rl"),
    pct("p", {"70%": "m1", "30%": "m2"}),
    rate("rl", "m1", "m2"),
    model("m1", "e", "m2"),
    model("m2", provider="anthropic", name="claude"),
    end(),
], version=2)


def test_explain_with_a_draw_follows_one_path_with_reasons() -> None:
    result = explain(ROUTE, {"metadata": {"plan": "free"}}, draw=0.8)
    assert isinstance(result, Explanation)
    data = result.as_dict()
    assert data["route"] == "support" and data["version"] == 2
    assert data["outcome"] == "answered" and data["path"] == ["s", "c", "p", "m2", "e"]
    assert data["answered_by"] == {"element": "m2", "provider": "anthropic", "model": "claude"}
    by_id = {s["element"]: s for s in data["steps"]}
    assert by_id["c"]["tests"] == ['metadata.plan = "free" ($eq "free") → true']
    assert by_id["c"]["conditions"] == {"metadata.plan": "free"} and by_id["c"]["next"] == "p"
    assert by_id["p"]["outcome"] == "30%" and by_id["p"]["next"] == "m2"
    assert by_id["p"]["reason"] == "draw 0.8000 falls in branch 30%"
    assert by_id["p"]["branches"] == [
        {"label": "70%", "share": 70.0, "range": [0.0, 0.7], "target": "m1"},
        {"label": "30%", "share": 30.0, "range": [0.7, 1.0], "target": "m2"}]
    assert by_id["m2"] | {} == {
        "element": "m2", "type": "model", "outcome": "success", "reason": "assumed to succeed",
        "next": "e", "provider": "anthropic", "model": "claude", "timeout_ms": 2000,
        "retries": 1, "assumed": True}
    assert by_id["e"]["outcome"] == "answered" and by_id["e"]["next"] is None
    json.dumps(data)


def test_explain_without_a_draw_lists_every_branch() -> None:
    data = explain(ROUTE, {"metadata": {"plan": "free"}}).as_dict()
    assert data["outcome"] == "depends_on_draw" and data["path"] == ["s", "c", "p"]
    split = data["steps"][-1]
    assert split["reason"] == "depends on random draw" and split["next"] is None
    assert [b["label"] for b in split["branches"]] == ["70%", "30%"]
    first, second = (b["then"] for b in split["branches"])
    assert first["path"] == ["s", "c", "p", "m1", "e"] and first["outcome"] == "answered"
    assert [s["element"] for s in first["steps"]] == ["m1", "e"]
    assert second["answered_by"]["element"] == "m2"
    json.dumps(data)


def test_nested_splits_fork_recursively_and_zero_branches_have_no_then() -> None:
    g = parse([start("p"), pct("p", {"50%": "q", "50.0%": "m1"}),
               pct("q", {"0%": "m1", "100%": "m2"}), model("m1"), model("m2"), end()])
    split = explain(g, {}).as_dict()["steps"][-1]
    inner = split["branches"][0]["then"]
    assert inner["outcome"] == "depends_on_draw"
    q = inner["steps"][-1]
    assert q["element"] == "q" and q["branches"][0]["then"] is None
    assert q["branches"][1]["then"]["path"] == ["s", "p", "q", "m2", "e"]
    assert split["branches"][1]["then"]["path"] == ["s", "p", "m1", "e"]


def test_sticky_split_needs_no_draw_when_the_field_is_present() -> None:
    g = parse([start("p"), pct("p", {"50%": "m1", "50.0%": "m2"}, sticky="metadata.user_id"),
               model("m1"), model("m2"), end()])
    data = explain(g, {"metadata": {"user_id": "u1"}}).as_dict()
    assert data["outcome"] == "answered"
    assert data["steps"][1]["reason"].startswith("sticky metadata.user_id → ")


def test_limits_and_models_can_be_told_to_fail() -> None:
    data = explain(ROUTE, {"metadata": {"plan": "pro", "user_id": "u9"}},
                   limits={"rl": False}, models={"m2": False}).as_dict()
    assert data["outcome"] == "exhausted" and data["path"] == ["s", "c", "rl", "m2"]
    rl, m2 = data["steps"][2], data["steps"][3]
    assert rl["outcome"] == "limited" and rl["assumed"] is False
    assert rl["bucket_key"] == "support:rl:u9" and rl["limit"] == 100
    assert rl["technique"] == "sliding" and rl["limit_type"] == "count"
    assert m2["outcome"] == "failure" and m2["reason"] == "assumed to fail, no fallback"
    assert data["answered_by"] is None


def test_rate_limited_without_fallback() -> None:
    g = parse([start("rl"), rate("rl", "m1"), model("m1"), end()])
    data = explain(g, {}, limits={"rl": False}).as_dict()
    assert data["outcome"] == "rate_limited" and data["steps"][-1]["next"] is None
    assert data["steps"][-1]["bucket_key"] == "support:rl:<none>"


def test_a_draw_callable_is_used_per_split() -> None:
    values = iter([0.1])
    assert explain(ROUTE, {"metadata": {"plan": "free"}},
                   draw=lambda: next(values)).path == ("s", "c", "p", "m1", "e")


@given(st.floats(0, 1, exclude_max=True), st.sampled_from(["free", "pro"]), st.booleans(),
       st.booleans())
def test_explain_agrees_with_the_walk(u: float, plan: str, admitted: bool, m1_ok: bool) -> None:
    ctx: dict[str, Any] = {"metadata": {"plan": plan}}
    walk = RouteWalk(ROUTE, ctx, draw=lambda: u)
    step = walk.next()
    while not isinstance(step, Finish):
        if isinstance(step, CheckLimit):
            walk.limit_result(admitted)
        else:
            walk.model_result(step.element_id != "m1" or m1_ok, "x")
        step = walk.next()
    dry = explain(ROUTE, ctx, draw=u, limits={"rl": admitted}, models={"m1": m1_ok})
    assert list(dry.path) == walk.path and dry.outcome == step.outcome


def test_many_random_draws_cover_both_branches() -> None:
    rng = random.Random(3)
    paths = {explain(ROUTE, {"metadata": {"plan": "free"}}, draw=rng.random()).path[3]
             for _ in range(50)}
    assert paths == {"m1", "m2"}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"draw": 1.0}, "draw must be a number in \\[0, 1\\), got 1.0"),
    ({"draw": "0.5"}, "draw must be a number"),
    ({"draw": True}, "draw must be a number"),
    ({"limits": {"m1": False}}, 'limits: "m1" is not a rate element'),
    ({"models": {"nope": False}}, 'models: "nope" is not a model element'),
    ({"models": {"m1": "no"}}, 'models: "m1" must be true or false'),
    ({"limits": ["rl"]}, "limits must be an object"),
])
def test_bad_inputs_from_an_api_body_are_bad_requests(kwargs: dict[str, Any],
                                                      message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        explain(ROUTE, {}, **kwargs)


def test_integer_zero_draw_is_accepted() -> None:
    assert explain(ROUTE, {"metadata": {"plan": "free"}}, draw=0).path[3] == "m1"
