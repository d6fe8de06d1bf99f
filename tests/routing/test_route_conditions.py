"""The Mongo-style matcher: operators, dotted paths, type rules, errors, explanations."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossroads.errors import InvalidRoute
from crossroads.routing.conditions import compile_condition, explain_condition

CTX = {
    "metadata": {"plan": "free", "tier": 3, "score": "42", "beta": True, "none": None,
                 "tags": ["a", "b"]},
    "body": {"model": "dynamic/support", "temperature": 0.2,
             "messages": [{"role": "system", "content": "be brief"},
                          {"role": "user", "content": "hi"}]},
    "headers": {"x-tier": "gold", "user-agent": "curl/8"},
}


def match(cond: dict[str, Any], ctx: dict[str, Any] = CTX) -> bool:
    return compile_condition(cond).match(ctx)


@pytest.mark.parametrize(("cond", "expected"), [
    ({}, True),
    ({"metadata.plan": "free"}, True),
    ({"metadata.plan": "paid"}, False),
    ({"metadata.plan": {"$eq": "free"}}, True),
    ({"metadata.plan": {"$ne": "free"}}, False),
    ({"metadata.plan": {"$ne": "paid"}}, True),
    ({"metadata.plan": {"$in": ["paid", "free"]}}, True),
    ({"metadata.plan": {"$in": []}}, False),
    ({"metadata.plan": {"$nin": ["paid", "free"]}}, False),
    ({"metadata.plan": {"$nin": ["paid"]}}, True),
    ({"metadata.tier": {"$gt": 2}}, True),
    ({"metadata.tier": {"$gt": 3}}, False),
    ({"metadata.tier": {"$gte": 3}}, True),
    ({"metadata.tier": {"$lt": 3}}, False),
    ({"metadata.tier": {"$lte": 3}}, True),
    ({"metadata.tier": {"$gte": 1, "$lt": 5}}, True),
    ({"metadata.tier": {"$gte": 1, "$lt": 3}}, False),
    ({"metadata.plan": {"$gt": "apple"}}, True),
    ({"metadata.plan": {"$exists": True}}, True),
    ({"metadata.nope": {"$exists": False}}, True),
    ({"metadata.none": {"$exists": True}}, True),
    ({"metadata.plan": {"$regex": "^fr"}}, True),
    ({"metadata.plan": {"$regex": "^FR"}}, False),
    ({"metadata.plan": {"$regex": "^FR", "$options": "i"}}, True),
    ({"metadata.plan": {"$regex": "re"}}, True),
    ({"metadata.tier": {"$not": {"$gt": 5}}}, True),
    ({"metadata.tier": {"$not": {"$gt": 1}}}, False),
    ({"$and": [{"metadata.plan": "free"}, {"metadata.tier": 3}]}, True),
    ({"$and": [{"metadata.plan": "free"}, {"metadata.tier": 4}]}, False),
    ({"$or": [{"metadata.plan": "paid"}, {"metadata.tier": 3}]}, True),
    ({"$or": [{"metadata.plan": "paid"}, {"metadata.tier": 4}]}, False),
    ({"$not": {"metadata.plan": "paid"}}, True),
    ({"metadata.plan": "free", "metadata.tier": 3}, True),
    ({"metadata.plan": "free", "metadata.tier": 4}, False),
    ({"metadata.tags": ["a", "b"]}, True),
    ({"metadata.tags": ["b", "a"]}, False),
    ({"body.messages.0": {"role": "system", "content": "be brief"}}, True),
])
def test_operators(cond: dict[str, Any], expected: bool) -> None:
    assert match(cond) is expected


@pytest.mark.parametrize(("path", "value"), [
    ("body.model", "dynamic/support"),
    ("body.messages.0.role", "system"),
    ("body.messages.1.content", "hi"),
    ("body.messages.-1.role", "user"),
    ("headers.x-tier", "gold"),
    ("headers.X-Tier", "gold"),
    ("headers.User-Agent", "curl/8"),
])
def test_dotted_paths(path: str, value: Any) -> None:
    assert match({path: value})
    assert match({path: {"$exists": True}})


@pytest.mark.parametrize("path", [
    "body.messages.2.role", "body.messages.-3.role", "body.messages.x.role",
    "body.model.length", "metadata.plan.x", "headers.x-missing", "metadata.nope",
    "body.temperature.0",
])
def test_paths_that_lead_nowhere_are_missing(path: str) -> None:
    assert match({path: {"$exists": False}})
    assert not match({path: {"$eq": None}})
    assert match({path: {"$ne": "anything"}})


def test_headers_with_mixed_case_keys_in_the_context_are_found() -> None:
    assert match({"headers.x-tier": "gold"}, {"headers": {"X-Tier": "gold"}})


def test_missing_sections_of_the_context_are_missing_fields() -> None:
    assert match({"metadata.plan": {"$ne": "free"}}, {})
    assert not match({"headers.x": {"$exists": True}}, {"headers": None})


class TestTypeRules:
    def test_numeric_string_field_compares_with_number_operand(self) -> None:
        assert match({"metadata.score": 42})
        assert match({"metadata.score": 42.0})
        assert match({"metadata.score": {"$gt": 41.5}})
        assert match({"metadata.score": {"$in": [1, 42]}})
        assert not match({"metadata.score": {"$lt": 42}})

    def test_number_field_never_equals_string_operand(self) -> None:
        assert not match({"metadata.tier": "3"})
        assert match({"metadata.tier": {"$ne": "3"}})
        assert not match({"metadata.tier": {"$gt": "1"}})

    def test_non_numeric_string_never_compares_with_number(self) -> None:
        assert not match({"metadata.plan": {"$gt": 0}})
        assert not match({"metadata.plan": {"$lte": 0}})
        assert match({"metadata.plan": {"$ne": 0}})

    @pytest.mark.parametrize("text", ["nan", "inf", "1_000", "0x10", "", " "])
    def test_only_plain_decimal_strings_read_as_numbers(self, text: str) -> None:
        assert not match({"metadata.v": {"$gte": 0}}, {"metadata": {"v": text}})

    def test_booleans_are_not_numbers(self) -> None:
        assert match({"metadata.beta": True})
        assert not match({"metadata.beta": 1})
        assert not match({"metadata.tier": True}, {"metadata": {"tier": 1}})
        assert not match({"metadata.beta": {"$gte": 1}})

    def test_null_matches_only_explicit_null(self) -> None:
        assert match({"metadata.none": None})
        assert not match({"metadata.nope": None})
        assert not match({"metadata.plan": None})

    def test_missing_field_semantics(self) -> None:
        for op, expected in [("$eq", False), ("$ne", True), ("$in", False), ("$nin", True),
                             ("$gt", False), ("$lte", False), ("$regex", False)]:
            operand = ["x"] if op in ("$in", "$nin") else "x"
            assert match({"metadata.nope": {op: operand}}) is expected, op

    def test_regex_only_matches_strings(self) -> None:
        assert not match({"metadata.tier": {"$regex": "3"}})
        assert match({"metadata.score": {"$regex": "^4"}})

    def test_nested_structures_compare_strictly(self) -> None:
        ctx = {"body": {"x": [1, {"a": True}]}}
        assert match({"body.x": [1.0, {"a": True}]}, ctx)
        assert not match({"body.x": [True, {"a": True}]}, ctx)
        assert not match({"body.x": [1, {"a": 1}]}, ctx)
        assert not match({"body.x": [1]}, ctx)


@pytest.mark.parametrize(("cond", "message"), [
    ({"metadata.plan": {"$like": "x"}}, 'operator "$like" on "metadata.plan" is not supported'),
    ({"$eq": 1}, 'operator "$eq" is not supported at the top level'),
    ({"$nor": []}, 'operator "$nor" is not supported'),
    ({"metadata.plan": {"$in": "free"}}, 'operator "$in" on "metadata.plan" needs a list'),
    ({"metadata.plan": {"$nin": 1}}, 'operator "$nin" on "metadata.plan" needs a list'),
    ({"metadata.plan": {"$gt": [1]}}, 'operator "$gt" on "metadata.plan" needs a number or'),
    ({"metadata.plan": {"$lt": True}}, 'operator "$lt" on "metadata.plan" needs a number or'),
    ({"metadata.plan": {"$exists": 1}}, 'operator "$exists" on "metadata.plan" needs true'),
    ({"metadata.plan": {"$regex": "("}}, 'operator "$regex" on "metadata.plan": "(" is not a'),
    ({"metadata.plan": {"$regex": 1}}, 'operator "$regex" on "metadata.plan" needs a string'),
    ({"metadata.plan": {"$regex": "a", "$options": "q"}}, '"$options" may only contain'),
    ({"metadata.plan": {"$options": "i"}}, 'operator "$options" on "metadata.plan" needs'),
    ({"metadata.plan": {"$not": 1}}, 'operator "$not" on "metadata.plan" needs an operator'),
    ({"metadata.plan": {"$eq": 1, "x": 2}}, 'condition on "metadata.plan" mixes operators'),
    ({"$and": []}, 'operator "$and" needs a non-empty list'),
    ({"$or": {"a": 1}}, 'operator "$or" needs a non-empty list'),
    ({"$or": [1]}, 'operator "$or" needs a list of condition objects'),
    ({"$not": [1]}, 'operator "$not" needs a condition object'),
    ({"plan": "free"}, 'field path "plan" must start with metadata., body. or headers.'),
    ({"metadata.": "x"}, 'field path "metadata." must start with'),
    ({"body.a..b": "x"}, 'field path "body.a..b" has an empty segment'),
])
def test_compile_errors_name_the_operator(cond: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRoute) as info:
        compile_condition(cond)
    assert message in info.value.message


def test_regex_is_compiled_once_at_parse_time() -> None:
    matcher = compile_condition({"metadata.plan": {"$regex": "^f"}})
    test = matcher.root.tests[0]  # type: ignore[union-attr]
    assert test.pattern is not None and test.pattern.pattern == "^f"


def test_too_deep_nesting_is_rejected() -> None:
    cond: dict[str, Any] = {"metadata.a": 1}
    for _ in range(40):
        cond = {"$not": cond}
    with pytest.raises(InvalidRoute, match="nested deeper than 32"):
        compile_condition(cond)


def test_source_is_a_copy_of_the_input() -> None:
    original = {"metadata.plan": {"$in": ["a"]}}
    matcher = compile_condition(original)
    original["metadata.plan"]["$in"].append("b")
    assert matcher.source == {"metadata.plan": {"$in": ["a"]}}
    assert matcher == compile_condition({"metadata.plan": {"$in": ["a"]}})


def test_explain_lists_every_test_with_its_result() -> None:
    matcher = compile_condition({
        "metadata.plan": {"$eq": "free"},
        "$or": [{"metadata.tier": {"$gt": 5}}, {"headers.X-Tier": {"$in": ["gold"]}}],
        "metadata.nope": {"$exists": False, "$ne": 1}})
    assert explain_condition(matcher, CTX) == [
        'metadata.plan = "free" ($eq "free") → true',
        "$or of 2 → true",
        "  metadata.tier = 3 ($gt 5) → false",
        '  headers.X-Tier = "gold" ($in ["gold"]) → true',
        "metadata.nope is missing ($exists false) → true",
        "metadata.nope is missing ($ne 1) → true",
    ]


def test_explain_of_not_and_regex_options_and_empty() -> None:
    matcher = compile_condition({"$not": {"metadata.plan": {"$regex": "^F", "$options": "i"}}})
    assert explain_condition(matcher, CTX) == [
        "$not of 1 → false", '  metadata.plan = "free" ($regex "^F" $options "i") → true']
    field_not = compile_condition({"metadata.tier": {"$not": {"$gt": 5}}})
    assert explain_condition(field_not, CTX) == ["metadata.tier = 3 ($not {$gt 5}) → true"]
    assert explain_condition(compile_condition({}), CTX) == ["(empty condition) → true"]


def test_explain_truncates_long_values() -> None:
    line = explain_condition(compile_condition({"body.messages": []}), CTX)[0]
    assert "…" in line and line.endswith("→ false") and len(line) < 120


# ---------------------------------------------------------------- properties

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5),
                    st.floats(-5, 5, allow_nan=False), st.sampled_from(["a", "b", "1", "2.5"]))
fields = st.sampled_from(["metadata.x", "metadata.y", "body.z"])


def ctx_of(values: dict[str, Any]) -> dict[str, Any]:
    ctx: dict[str, Any] = {"metadata": {}, "body": {}}
    for path, value in values.items():
        root, key = path.split(".")
        ctx[root][key] = value
    return ctx


contexts = st.dictionaries(fields, scalars).map(ctx_of)


@given(contexts, fields, st.lists(scalars, max_size=4))
def test_in_is_any_of_eq(ctx: dict[str, Any], path: str, options: list[Any]) -> None:
    expected = any(match({path: {"$eq": o}}, ctx) for o in options)
    assert match({path: {"$in": options}}, ctx) is expected
    assert match({path: {"$nin": options}}, ctx) is not expected


@given(contexts, fields, scalars)
def test_ne_is_the_negation_of_eq(ctx: dict[str, Any], path: str, operand: Any) -> None:
    assert match({path: {"$ne": operand}}, ctx) is not match({path: {"$eq": operand}}, ctx)


@given(contexts, fields, scalars)
def test_bare_value_means_eq(ctx: dict[str, Any], path: str, operand: Any) -> None:
    assert match({path: operand}, ctx) is match({path: {"$eq": operand}}, ctx)


conditions = st.builds(lambda path, op, v: {path: {op: v}}, fields,
                       st.sampled_from(["$eq", "$ne", "$gt", "$lte"]),
                       st.one_of(st.integers(-5, 5), st.sampled_from(["a", "2.5"])))


@given(contexts, conditions, conditions)
def test_and_or_not_algebra(ctx: dict[str, Any], a: dict, b: dict) -> None:
    ma, mb = match(a, ctx), match(b, ctx)
    assert match({"$and": [a, b]}, ctx) is (ma and mb)
    assert match({"$or": [a, b]}, ctx) is (ma or mb)
    assert match({"$not": a}, ctx) is (not ma)
    # De Morgan
    assert match({"$not": {"$and": [a, b]}}, ctx) is match(
        {"$or": [{"$not": a}, {"$not": b}]}, ctx)
    # several fields in one object are ANDed (same as $and)
    if set(a).isdisjoint(b):
        assert match(a | b, ctx) is (ma and mb)


@given(st.one_of(st.integers(-10**6, 10**6), st.floats(-1e6, 1e6, allow_nan=False)),
       st.one_of(st.integers(-10**6, 10**6), st.floats(-1e6, 1e6, allow_nan=False)),
       st.booleans())
def test_numbers_compare_numerically_as_numbers_or_numeric_strings(
        value: float, operand: float, as_string: bool) -> None:
    field = repr(value) if as_string else value
    ctx = {"metadata": {"v": field}}
    assert match({"metadata.v": {"$gt": operand}}, ctx) is (value > operand)
    assert match({"metadata.v": {"$lte": operand}}, ctx) is (value <= operand)
    assert match({"metadata.v": operand}, ctx) is (value == operand)
