"""diff_routes: human-readable differences between two route versions."""

from __future__ import annotations

import copy

from route_builders import cond, end, model, pct, rate, start

from crossroads.routing.diff import diff_routes

V1 = [start("c"), cond("c", {"metadata.plan": {"$eq": "free"}}, "m1", "rl"),
      rate("rl", "m1", "m2"), model("m1", "e", "m2"), model("m2", provider="anthropic",
                                                             name="claude"), end()]


def test_identical_versions_have_no_differences() -> None:
    assert diff_routes(V1, copy.deepcopy(V1)) == []
    assert diff_routes(V1, list(reversed(V1))) == []


def test_added_and_removed_elements() -> None:
    v2 = [e for e in V1 if e["id"] != "m2"] + [model("m3", provider="workers-ai", name="small")]
    assert diff_routes(V1, v2) == [
        '+ element "m3" added (model workers-ai/small)',
        '- element "m2" removed (model anthropic/claude)',
    ]


def test_property_changes_are_listed_by_dotted_path() -> None:
    v2 = copy.deepcopy(V1)
    v2[3]["properties"]["model"] = "gpt-4o-mini"
    v2[3]["properties"]["retries"] = 3
    v2[2]["properties"]["technique"] = "fixed"
    del v2[2]["properties"]["limit"]
    v2[1]["properties"]["conditions"]["metadata.plan"]["$eq"] = "pro"
    assert diff_routes(V1, v2) == [
        '~ element "c": properties.conditions["metadata.plan"].$eq "free" → "pro"',
        '~ element "rl": properties.limit removed (was 100)',
        '~ element "rl": properties.technique added: "fixed"',
        '~ element "m1": properties.model "gpt-4o" → "gpt-4o-mini"',
        '~ element "m1": properties.retries 1 → 3',
    ]


def test_wiring_changes() -> None:
    v2 = copy.deepcopy(V1)
    v2[0]["outputs"]["next"] = {"elementId": "m1"}
    del v2[3]["outputs"]["fallback"]
    v2[4]["outputs"]["fallback"] = {"elementId": "e"}
    assert diff_routes(V1, v2) == [
        '~ element "s": outputs.next → "m1" (was "c")',
        '- element "m1": outputs.fallback removed (was → "m2")',
        '+ element "m2": outputs.fallback → "e"',
    ]


def test_type_and_value_type_changes() -> None:
    v2 = copy.deepcopy(V1)
    v2[3]["type"] = "rate"
    v2[3]["properties"]["timeout"] = 2000.0
    lines = diff_routes(V1, v2)
    assert lines[0] == '~ element "m1": type "model" → "rate"'
    assert '~ element "m1": properties.timeout 2000 → 2000.0' in lines


def test_old_to_current_schema_conversion_is_not_a_change() -> None:
    old = [
        {"id": "s", "type": "start", "outputs": {"next": {"elementId": "rl"}}},
        {"id": "rl", "type": "rate_limit",
         "properties": {"limitType": "count", "key": "metadata.user_id", "limit": 100,
                        "interval": 3600},
         "outputs": {"success": {"elementId": "e"}}},
        {"id": "e", "type": "end"},
    ]
    new = [start("rl"), rate("rl", "e"), end()]
    assert diff_routes(old, new) == []
    new[1]["properties"]["window"] = 60
    assert diff_routes(old, new) == ['~ element "rl": properties.window 3600 → 60']


def test_split_changes_show_as_wiring() -> None:
    a = [start("p"), pct("p", {"70%": "m1", "30%": "m2"}), model("m1"), model("m2"), end()]
    b = [start("p"), pct("p", {"50%": "m1", "50.0%": "m2"}), model("m1"), model("m2"), end()]
    assert diff_routes(a, b) == [
        '+ element "p": outputs.50% → "m1"', '+ element "p": outputs.50.0% → "m2"',
        '- element "p": outputs.70% removed (was → "m1")',
        '- element "p": outputs.30% removed (was → "m2")']


def test_elements_without_usable_ids_are_matched_by_position() -> None:
    assert diff_routes(["x"], [{"id": 5}]) == ['~ element "#0": type "\'x\'" → null']
