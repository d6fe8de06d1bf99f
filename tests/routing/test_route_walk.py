"""RouteWalk: conditional routing, splits, sticky splits, limits, model fallback, traces."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from route_builders import cond, end, model, parse, pct, rate, start

from crossroads.errors import GatewayError, RateLimited, RouteExhausted
from crossroads.routing.elements import End, Model, RouteGraph, Start
from crossroads.routing.plan import (
    NONE_VALUE,
    CallModel,
    CheckLimit,
    Finish,
    ModelAttempt,
    RouteWalk,
    TraceEntry,
    sticky_fraction,
)


def no_draw() -> float:
    raise AssertionError("this walk must not draw")


def run(graph: RouteGraph, ctx: dict[str, Any], *, draw: Any = no_draw,
        limits: dict[str, bool] | None = None,
        models: dict[str, tuple[bool, str | None]] | None = None,
        trace: bool = True) -> RouteWalk:
    """Drive a walk to its Finish the way an executor does."""
    walk = RouteWalk(graph, ctx, draw=draw, trace=trace)
    step = walk.next()
    while not isinstance(step, Finish):
        if isinstance(step, CheckLimit):
            walk.limit_result((limits or {}).get(step.element_id, True))
        else:
            walk.model_result(*(models or {}).get(step.element_id, (True, None)))
        step = walk.next()
    return walk


PLANS = parse([
    start("c"),
    cond("c", {"metadata.plan": {"$in": ["pro", "team"]}}, "m_pro", "m_free"),
    model("m_pro", name="gpt-4o"),
    model("m_free", provider="workers-ai", name="@cf/meta/llama-3.1-8b-instruct"),
    end(),
])


@pytest.mark.parametrize(("plan", "expected"), [
    ("pro", "m_pro"), ("team", "m_pro"), ("free", "m_free"), (None, "m_free")])
def test_conditional_routes_on_metadata(plan: str | None, expected: str) -> None:
    walk = RouteWalk(PLANS, {"metadata": {"plan": plan}}, draw=no_draw)
    step = walk.next()
    assert isinstance(step, CallModel) and step.element_id == expected
    walk.model_result(True)
    assert walk.next() == Finish("e", True, "answered")
    assert walk.path == ["s", "c", expected, "e"]
    assert walk.trace[1] == TraceEntry("c", str(plan in ("pro", "team")).lower(),
                                       "conditions matched" if plan in ("pro", "team")
                                       else "conditions did not match")
    assert walk.error() is None


def test_call_model_carries_the_element_settings() -> None:
    g = parse([start("m1"), model("m1", provider="anthropic", name="claude", timeout=0,
                                  retries=4), end()])
    assert RouteWalk(g, {}, draw=no_draw).next() == CallModel("m1", "anthropic", "claude", 0, 4)


SPLIT = parse([start("p"), pct("p", {"70%": "a", "30%": "b"}), model("a"), model("b"), end()])


def test_percentage_long_run_shares_with_a_seeded_draw() -> None:
    rng = random.Random(20240601)
    counts = Counter(run(SPLIT, {}, draw=rng.random).path[2] for _ in range(20_000))
    assert abs(counts["a"] / 20_000 - 0.70) <= 0.015
    assert abs(counts["b"] / 20_000 - 0.30) <= 0.015


@pytest.mark.parametrize(("u", "branch"), [
    (0.0, "a"), (0.5, "a"), (0.6999, "a"), (0.7, "b"), (0.9999999, "b")])
def test_draw_picks_by_cumulative_range_in_declared_order(u: float, branch: str) -> None:
    walk = run(SPLIT, {}, draw=lambda: u)
    assert walk.path[2] == branch
    assert walk.trace[1].outcome == ("70%" if branch == "a" else "30%")
    assert walk.trace[1].reason.startswith(f"draw {u:.4f} falls in branch ")


@given(st.floats(0, 1, exclude_max=True))
def test_zero_percent_branches_are_never_taken(u: float) -> None:
    g = parse([start("p"), pct("p", {"0%": "z", "40%": "a", "0.0%": "y", "60%": "b"}),
               model("z"), model("a"), model("y"), model("b"), end()])
    assert run(g, {}, draw=lambda: u).path[2] == ("a" if u < 0.4 else "b")


def test_else_branch_takes_the_remainder() -> None:
    g = parse([start("p"), {"id": "p", "type": "percentage",
                            "outputs": {"25%": {"elementId": "a"}, "else": {"elementId": "b"}}},
               model("a"), model("b"), end()])
    assert run(g, {}, draw=lambda: 0.24).path[2] == "a"
    assert run(g, {}, draw=lambda: 0.25).path[2] == "b"


STICKY = parse([start("p"), pct("p", {"70%": "a", "30%": "b"}, sticky="metadata.user_id"),
                model("a"), model("b"), end()])


@given(st.one_of(st.text(min_size=1), st.integers()))
def test_sticky_split_keeps_a_user_on_one_branch(user: Any) -> None:
    rng = random.Random(7)
    branches = {run(STICKY, {"metadata": {"user_id": user}}, draw=rng.random).path[2]
                for _ in range(5)}
    assert len(branches) == 1
    u = sticky_fraction("p", user)
    assert branches == {"a" if u < 0.7 else "b"}


def test_sticky_split_still_splits_users_by_share() -> None:
    counts = Counter(run(STICKY, {"metadata": {"user_id": f"user-{i}"}}).path[2]
                     for i in range(4000))
    assert abs(counts["a"] / 4000 - 0.70) <= 0.03


def test_sticky_without_the_field_falls_back_to_the_draw() -> None:
    walk = run(STICKY, {"metadata": {}}, draw=lambda: 0.9)
    assert walk.path[2] == "b"
    assert "metadata.user_id missing, not sticky" in walk.trace[1].reason


def test_sticky_fraction_is_stable_and_salted_by_element() -> None:
    assert sticky_fraction("p", "u1") == sticky_fraction("p", "u1")
    assert sticky_fraction("p", "u1") != sticky_fraction("q", "u1")
    assert 0 <= sticky_fraction("p", "u1") < 1
    assert sticky_fraction("p", 42) == sticky_fraction("p", "42")


LIMITED = parse([start("rl"), rate("rl", "m1", "m2", limit=10, window=60), model("m1"),
                 model("m2", provider="workers-ai", name="small"), end()])


def test_rate_check_step_and_admitted_path() -> None:
    walk = RouteWalk(LIMITED, {"metadata": {"user_id": "u-7"}}, draw=no_draw)
    step = walk.next()
    assert step == CheckLimit("rl", "count", "support:rl:u-7", 10, 60, "sliding")
    walk.limit_result(True)
    assert walk.next().element_id == "m1"  # type: ignore[union-attr]
    assert walk.admitted_limits == [step] and walk.refused_limits == []


def test_rate_over_the_limit_takes_the_fallback() -> None:
    walk = run(LIMITED, {"metadata": {"user_id": "u-7"}}, limits={"rl": False})
    assert walk.path == ["s", "rl", "m2", "e"]
    assert walk.trace[1] == TraceEntry(
        "rl", "limited", "over the limit of bucket support:rl:u-7, taking fallback")
    assert walk.finished == Finish("e", True, "answered")


@pytest.mark.parametrize(("metadata", "value"), [
    ({}, NONE_VALUE), ({"user_id": None}, NONE_VALUE), ({"user_id": 42}, "42"),
    ({"user_id": True}, "true"), ({"user_id": "a:b"}, "a:b")])
def test_bucket_key_value_forms(metadata: dict[str, Any], value: str) -> None:
    step = RouteWalk(LIMITED, {"metadata": metadata}, draw=no_draw).next()
    assert isinstance(step, CheckLimit) and step.bucket_key == f"support:rl:{value}"


def test_rate_over_the_limit_without_fallback_finishes_rate_limited() -> None:
    g = parse([start("rl"), rate("rl", "m1", limitType="cost", limit=0.5, window=86400,
                                 technique="fixed", key="headers.x-team"), model("m1"), end()])
    walk = RouteWalk(g, {"headers": {"x-team": "blue"}}, draw=no_draw)
    assert walk.next() == CheckLimit("rl", "cost", "support:rl:blue", 0.5, 86400, "fixed")
    walk.limit_result(False)
    assert walk.next() == Finish("rl", False, "rate_limited")
    error = walk.error()
    assert isinstance(error, RateLimited) and error.status == 429
    assert error.message == "route 'support': cost limit rl exceeded (0.5 per 86400 s)"


def test_rate_fallback_straight_to_end_is_rate_limited() -> None:
    g = parse([start("rl"), rate("rl", "m1", "e"), model("m1"), end()])
    walk = run(g, {}, limits={"rl": False})
    assert walk.finished == Finish("e", False, "rate_limited")
    assert isinstance(walk.error(), RateLimited)


CHAIN = parse([start("m1"), model("m1", "e", "m2"),
               model("m2", "e", "m3", provider="anthropic", name="claude"),
               model("m3", provider="workers-ai", name="small"), end()], version=3)


def test_model_fallback_chain_until_one_answers() -> None:
    walk = run(CHAIN, {}, models={"m1": (False, "upstream 503"), "m2": (False, "timeout")})
    assert walk.path == ["s", "m1", "m2", "m3", "e"]
    assert walk.finished == Finish("e", True, "answered")
    assert walk.attempts == [
        ModelAttempt("m1", "openai", "gpt-4o", False, "upstream 503"),
        ModelAttempt("m2", "anthropic", "claude", False, "timeout"),
        ModelAttempt("m3", "workers-ai", "small", True, None)]
    assert walk.answered_by == walk.attempts[2]
    assert walk.error() is None


def test_failure_trace_and_error_message() -> None:
    walk = run(CHAIN, {}, models={"m1": (False, "upstream 503"),
                                  "m2": (False, "timeout after 2000 ms"),
                                  "m3": (False, None)})
    assert walk.finished == Finish("m3", False, "exhausted")
    assert [(t.element_id, t.outcome) for t in walk.trace] == [
        ("s", "next"), ("m1", "failure"), ("m2", "failure"), ("m3", "failure")]
    assert walk.trace[-1].reason == "failed, no fallback"
    error = walk.error()
    assert isinstance(error, RouteExhausted) and error.status == 502
    assert error.message == (
        "route 'support' v3: model m1 (openai/gpt-4o) failed: upstream 503; "
        "model m2 (anthropic/claude) failed: timeout after 2000 ms; "
        "model m3 (workers-ai/small) failed: unknown error")
    assert error.details == {"path": ["s", "m1", "m2", "m3"], "outcome": "exhausted"}


def test_model_fallback_to_end_is_exhausted() -> None:
    g = parse([start("m1"), model("m1", "e", "e"), end()])
    walk = run(g, {}, models={"m1": (False, "upstream 500")})
    assert walk.finished == Finish("e", False, "exhausted")
    assert isinstance(walk.error(), RouteExhausted)


def test_end_without_any_model_is_no_model() -> None:
    g = parse([start("c"), cond("c", {"metadata.plan": "free"}, "e", "m1"), model("m1"), end()])
    walk = run(g, {"metadata": {"plan": "free"}})
    assert walk.finished == Finish("e", False, "no_model")
    assert walk.failure_message() == "route 'support': reached end e without calling a model"


def test_finish_is_repeated_once_reached() -> None:
    walk = run(PLANS, {"metadata": {"plan": "pro"}})
    assert walk.next() is walk.finished and walk.next() is walk.finished


def test_results_must_match_the_pending_step() -> None:
    walk = RouteWalk(LIMITED, {}, draw=no_draw)
    with pytest.raises(GatewayError, match="no CheckLimit step is waiting"):
        walk.limit_result(True)
    walk.next()
    with pytest.raises(GatewayError, match="next\\(\\) called before the result of CheckLimit"):
        walk.next()
    with pytest.raises(GatewayError, match="no CallModel step is waiting"):
        walk.model_result(True)
    walk.limit_result(True)
    assert isinstance(walk.next(), CallModel)


def test_step_limit_guards_a_cyclic_graph_built_without_validation() -> None:
    cyclic = RouteGraph((Start("s", "m1"), Model("m1", "openai", "x", 0, 0, "e", "m1"), End("e")))
    walk = RouteWalk(cyclic, {}, draw=no_draw)
    with pytest.raises(GatewayError, match="walk exceeded its step limit"):
        while True:
            walk.next()
            walk.model_result(False, "boom")


@given(st.lists(st.booleans(), min_size=1, max_size=6))
def test_fallback_chain_property(results: list[bool]) -> None:
    ids = [f"m{i}" for i in range(len(results))]
    elements = [start(ids[0]), *(model(m, "e", nxt) for m, nxt in
                                 zip(ids, [*ids[1:], None], strict=True)), end()]
    walk = run(parse(elements), {}, models={m: (ok, None if ok else "boom")
                                            for m, ok in zip(ids, results, strict=True)})
    tried = results.index(True) + 1 if True in results else len(results)
    assert [a.element_id for a in walk.attempts] == ids[:tried]
    assert walk.finished is not None and walk.finished.answered is (True in results)
    assert walk.path == ["s", *ids[:tried], *(["e"] if True in results else [])]


@given(st.sampled_from(["PLANS", "SPLIT", "STICKY", "LIMITED", "CHAIN"]),
       st.sampled_from([None, "pro", "free"]), st.sampled_from([None, "u-1", "u-2"]),
       st.floats(0, 1, exclude_max=True), st.booleans(), st.booleans())
def test_an_untraced_walk_takes_the_same_path_to_the_same_end(
        name: str, plan: str | None, user: str | None, u: float, admitted: bool,
        first_ok: bool) -> None:
    # the executor walks with trace=False (no reason text is built); only the trace differs
    graph = globals()[name]
    ctx = {"metadata": {"plan": plan, "user_id": user}}
    kw: dict[str, Any] = dict(draw=lambda: u, limits={"rl": admitted},
                              models={"m1": (first_ok, None if first_ok else "upstream 503")})
    traced, untraced = run(graph, ctx, **kw), run(graph, ctx, trace=False, **kw)
    assert untraced.path == traced.path and untraced.finished == traced.finished
    assert untraced.attempts == traced.attempts
    assert (untraced.error() is None) == (traced.error() is None)
    if traced.error() is not None:
        assert str(untraced.error()) == str(traced.error())
    assert traced.trace and untraced.trace == []
