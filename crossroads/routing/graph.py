"""Route JSON -> a validated, immutable route graph (and back).

``parse_route`` accepts both the current Cloudflare schema and the older one, element by
element, and normalises them into one internal form:

* conditional: ``properties.conditions`` (current) or ``properties.condition`` (old);
* percentage: outputs keyed ``"10%"``/``"37.5%"``; the old ``"else"`` output takes the
  remainder up to 100%;
* rate: type ``rate`` (current, ``window``) or ``rate_limit`` (old, ``interval`` and
  ``technique``). Both become ``Rate`` with ``window`` (seconds) and ``technique``.
  The current schema has no technique; we default to ``"sliding"`` (no burst of 2x the limit
  at a window edge, which is what users expect of "N per window"), and accept ``technique``
  as an optional property in either schema;
* end: ``outputs`` may be ``{}`` (current) or absent (old).

Choices where Cloudflare's docs are silent, all enforced as InvalidRoute at parse time:

* Unknown element types, unknown ports and unknown property names are rejected (a typo such as
  ``"retry"`` must not be silently ignored). Unknown top-level keys of an element (editor
  positions and the like) are ignored.
* Every element must be reachable from ``start``: an unreachable element is an error, not a
  warning, so a wiring mistake cannot silently disable a branch.
* A port may not point at the start element, and the graph must be acyclic.
* A model's ``success`` output is final (the response is already streaming), so no model or
  rate element may be reachable from it; only conditional, percentage and end may follow.
* ``percentage`` has 1 to 5 outputs in total (``else`` included); a 0% branch is allowed.
  Our extension: ``properties.sticky`` (a field path such as ``"metadata.user_id"``) makes the
  split stable per value of that field (see ``plan``).
* ``rate.limit`` is a whole number of requests for ``count`` (``100.0`` is read as 100) and
  any positive number (USD, inferred) for ``cost``; ``window`` is seconds, any positive number.
* ``model.timeout`` is milliseconds, an integer >= 0, 0 meaning no per-node timeout;
  ``retries`` is an integer 0..10 (extra tries after the first).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from crossroads.errors import InvalidRoute
from crossroads.routing.conditions import FieldPath, Matcher, compile_condition, parse_path
from crossroads.routing.elements import (
    Branch,
    Conditional,
    Element,
    End,
    LimitType,
    Model,
    Percentage,
    Rate,
    RouteGraph,
    Start,
    Technique,
)

__all__ = [
    "Branch", "Conditional", "Element", "End", "LimitType", "Model", "Percentage", "Rate",
    "RouteGraph", "Start", "Technique", "parse_route", "route_to_json",
]

MAX_RETRIES = 10
MAX_BRANCHES = 5
_PERCENT = re.compile(r"(\d{1,3}(?:\.\d+)?)%")


# ---------------------------------------------------------------- parsing elements


def _fail(eid: str, what: str) -> InvalidRoute:
    return InvalidRoute(f'element "{eid}": {what}')


_PORTS: dict[str, tuple[frozenset[str], frozenset[str]]] = {  # type -> (required, optional)
    "start": (frozenset({"next"}), frozenset()),
    "conditional": (frozenset({"true", "false"}), frozenset()),
    "rate": (frozenset({"success"}), frozenset({"fallback"})),
    "model": (frozenset({"success"}), frozenset({"fallback"})),
    "end": (frozenset(), frozenset()),
}
_PROPERTIES: dict[str, frozenset[str]] = {
    "start": frozenset(), "end": frozenset(),
    "conditional": frozenset({"conditions", "condition"}),
    "percentage": frozenset({"sticky"}),
    "rate": frozenset({"limitType", "key", "limit", "window", "interval", "technique"}),
    "model": frozenset({"provider", "model", "timeout", "retries"}),
}
_TYPE_ALIASES = {"rate_limit": "rate"}


def _parse_element(index: int, raw: Any, known_providers: Callable[[str], bool]) -> Element:
    if not isinstance(raw, Mapping):
        raise InvalidRoute(f"element #{index}: must be an object")
    eid = raw.get("id")
    if not isinstance(eid, str) or not eid.strip():
        raise InvalidRoute(f"element #{index}: id must be a non-empty string")
    raw_type = raw.get("type")
    kind = _TYPE_ALIASES.get(raw_type, raw_type) if isinstance(raw_type, str) else None
    if kind not in _PROPERTIES:
        raise _fail(eid, f"type {raw_type!r} is not one of start, conditional, percentage, "
                         "rate (or rate_limit), model, end")
    props = raw.get("properties") or {}
    if not isinstance(props, Mapping):
        raise _fail(eid, "properties must be an object")
    unknown = sorted(set(props) - _PROPERTIES[kind])
    if unknown:
        raise _fail(eid, f"properties.{unknown[0]} is not a property of a {kind} element")
    outputs = _outputs(eid, kind, raw)
    if kind == "percentage":
        return _parse_percentage(eid, props, outputs)
    ports = _check_ports(eid, kind, outputs)
    if kind == "start":
        return Start(eid, ports["next"])
    if kind == "end":
        return End(eid)
    if kind == "conditional":
        return Conditional(eid, _parse_conditions(eid, props), ports["true"], ports["false"])
    if kind == "rate":
        return _parse_rate(eid, props, ports)
    return _parse_model(eid, props, ports, known_providers)


def _outputs(eid: str, kind: str, raw: Mapping[str, Any]) -> dict[str, str]:
    outputs = raw.get("outputs")
    if outputs is None and kind == "end":
        return {}
    if not isinstance(outputs, Mapping):
        raise _fail(eid, "outputs must be an object")
    result: dict[str, str] = {}
    for port, value in outputs.items():
        target = value.get("elementId") if isinstance(value, Mapping) else None
        if not isinstance(target, str) or not target:
            raise _fail(eid, f"outputs.{port}.elementId must be a non-empty string")
        result[port] = target
    return result


def _check_ports(eid: str, kind: str, outputs: dict[str, str]) -> dict[str, str]:
    required, optional = _PORTS[kind]
    for port in outputs:
        if port not in required | optional:
            raise _fail(eid, f"outputs.{port} is not a port of a {kind} element")
    for port in sorted(required):
        if port not in outputs:
            raise _fail(eid, f"outputs.{port} is required")
    return outputs


def _parse_conditions(eid: str, props: Mapping[str, Any]) -> Matcher:
    if "conditions" in props and "condition" in props:
        raise _fail(eid, "properties.conditions and properties.condition are both set")
    name = "condition" if "condition" in props else "conditions"
    cond = props.get(name)
    try:
        return compile_condition({} if cond is None else cond)
    except InvalidRoute as exc:
        raise _fail(eid, f"properties.{name}: {exc.message}") from None


def _parse_percentage(eid: str, props: Mapping[str, Any], outputs: dict[str, str]) -> Percentage:
    if not 1 <= len(outputs) <= MAX_BRANCHES:
        raise _fail(eid, f"outputs must have 1 to {MAX_BRANCHES} branches, got {len(outputs)}")
    shares: dict[str, Decimal] = {}
    for label in outputs:
        found = _PERCENT.fullmatch(label)
        if label != "else" and (not found or Decimal(found.group(1)) > 100):
            raise _fail(eid, f'outputs."{label}" is not a percentage like "37%" or "37.5%" '
                             '(or "else")')
        if found:
            shares[label] = Decimal(found.group(1))
    total = sum(shares.values(), Decimal(0))
    has_else = "else" in outputs
    if total > 100 or (total != 100 and not has_else):
        raise _fail(eid, f"outputs percentages sum to {total:f}%, must be exactly 100% "
                         '(or at most 100% with an "else" output)')
    branches, cumulative = [], Decimal(0)
    for label, target in outputs.items():
        share = shares.get(label, 100 - total)
        cumulative += share
        branches.append(Branch(label, share, target, float(cumulative / 100)))
    sticky = props.get("sticky")
    return Percentage(eid, tuple(branches), None if sticky is None else
                      _path(eid, "properties.sticky", sticky))


def _path(eid: str, where: str, value: Any) -> FieldPath:
    try:
        return parse_path(value)
    except InvalidRoute as exc:
        raise _fail(eid, f"{where}: {exc.message}") from None


def _positive(eid: str, where: str, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 \
            or value == float("inf"):
        raise _fail(eid, f"{where} must be a positive number")
    return value


def _parse_rate(eid: str, props: Mapping[str, Any],
                ports: dict[str, str]) -> Rate:
    limit_type = props.get("limitType")
    if limit_type not in ("count", "cost"):
        raise _fail(eid, 'properties.limitType must be "count" or "cost"')
    if "key" not in props:
        raise _fail(eid, "properties.key is required")
    key = _path(eid, "properties.key", props["key"])
    limit = _positive(eid, "properties.limit", props.get("limit"))
    if limit_type == "count":
        limit = _whole_number(limit) or 0
        if limit <= 0:
            raise _fail(eid, "properties.limit must be a whole number of requests for a count "
                             "limit")
    if "window" in props and "interval" in props:
        raise _fail(eid, "properties.window and properties.interval are both set")
    where = "properties.interval" if "interval" in props else "properties.window"
    window = _positive(eid, where, props.get(where.removeprefix("properties.")))
    technique = props.get("technique", "sliding")
    if technique not in ("sliding", "fixed"):
        raise _fail(eid, 'properties.technique must be "sliding" or "fixed"')
    return Rate(eid, limit_type, key, limit, window, technique, ports["success"],
                ports.get("fallback"))


def _whole_number(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _parse_model(eid: str, props: Mapping[str, Any], ports: dict[str, str],
                 known_providers: Callable[[str], bool]) -> Model:
    provider = props.get("provider")
    if not isinstance(provider, str) or not provider:
        raise _fail(eid, "properties.provider must be a non-empty string")
    if not known_providers(provider):
        raise _fail(eid, f'properties.provider "{provider}" is not a known provider')
    model = props.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _fail(eid, "properties.model must be a non-empty string")
    timeout = _whole_number(props.get("timeout"))
    if timeout is None or timeout < 0:
        raise _fail(eid, "properties.timeout must be an integer number of milliseconds >= 0")
    retries = props.get("retries")
    if isinstance(retries, bool) or not isinstance(retries, int) \
            or not 0 <= retries <= MAX_RETRIES:
        raise _fail(eid, f"properties.retries must be an integer from 0 to {MAX_RETRIES}")
    return Model(eid, provider, model, timeout, retries, ports["success"],
                 ports.get("fallback"))


# ---------------------------------------------------------------- whole-graph checks


def parse_route(elements: Any, known_providers: Callable[[str], bool], *, name: str = "",
                version: str | int | None = None) -> RouteGraph:
    """Validate route ``elements`` (either schema) into a ``RouteGraph``; raises InvalidRoute.

    ``known_providers(slug)`` says whether a model element's provider exists (it decides about
    ``custom-*`` slugs too). ``name``/``version`` are carried for bucket keys and messages.
    """
    if not isinstance(elements, list) or not elements:
        raise InvalidRoute("route elements must be a non-empty list")
    parsed: list[Element] = []
    seen: set[str] = set()
    for index, raw in enumerate(elements):
        element = _parse_element(index, raw, known_providers)
        if element.id in seen:
            raise _fail(element.id, "id is used by more than one element")
        seen.add(element.id)
        parsed.append(element)
    graph = RouteGraph(tuple(parsed), name, version)
    start = _check_start(parsed)
    _check_targets(graph, start)
    _check_acyclic(graph)
    _check_reachable(graph, start)
    _check_success_is_final(graph)
    if not any(isinstance(e, End) for e in parsed):
        raise InvalidRoute("route has no end element")
    return graph


def _check_start(elements: list[Element]) -> str:
    starts = [e.id for e in elements if isinstance(e, Start)]
    if len(starts) != 1:
        named = ", ".join(f'"{s}"' for s in starts) or "none"
        raise InvalidRoute(f"route must have exactly one start element, found {named}")
    return starts[0]


def _check_targets(graph: RouteGraph, start: str) -> None:
    for element in graph.elements:
        for port, target in element.ports().items():
            if target not in graph:
                raise _fail(element.id, f'outputs.{port}.elementId "{target}" is not an '
                                        "element of the route")
            if target == start:
                raise _fail(element.id, f'outputs.{port}.elementId points at the start element')


def _check_acyclic(graph: RouteGraph) -> None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for element in graph.elements:
        if element.id not in state:
            cycle = _find_cycle(graph, element.id, state, [])
            if cycle:
                shown = " → ".join(f'"{i}"' for i in cycle)
                raise _fail(cycle[0], f"outputs form a cycle: {shown}")


def _find_cycle(graph: RouteGraph, eid: str, state: dict[str, int],
                path: list[str]) -> list[str] | None:
    state[eid] = 1
    path.append(eid)
    for target in graph.element(eid).ports().values():
        if state.get(target) == 1:
            return path[path.index(target):] + [target]
        if target not in state:
            cycle = _find_cycle(graph, target, state, path)
            if cycle:
                return cycle
    state[eid] = 2
    path.pop()
    return None


def _descendants(graph: RouteGraph, roots: list[str]) -> Iterator[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        eid = stack.pop()
        if eid not in seen:
            seen.add(eid)
            yield eid
            stack.extend(graph.element(eid).ports().values())


def _check_reachable(graph: RouteGraph, start: str) -> None:
    reached = set(_descendants(graph, [start]))
    for element in graph.elements:
        if element.id not in reached:
            raise _fail(element.id, f'is not reachable from the start element "{start}"')


def _check_success_is_final(graph: RouteGraph) -> None:
    for element in graph.elements:
        if isinstance(element, Model):
            for eid in _descendants(graph, [element.success]):
                follower = graph.element(eid)
                if isinstance(follower, Model | Rate):
                    raise _fail(element.id, f'outputs.success leads to {follower.kind} "{eid}"; '
                                            "a model's success is final (the response is "
                                            "already streaming)")


# ---------------------------------------------------------------- back to JSON


def route_to_json(graph: RouteGraph) -> list[dict[str, Any]]:
    """The canonical current-schema elements of ``graph``; ``parse_route`` accepts them back.

    Old-schema input comes out modernised (``conditions``, ``rate`` + ``window``, end with
    ``outputs: {}``). An ``else`` branch becomes an explicit ``"<remainder>%"`` key unless that
    key is taken, in which case ``else`` stays. ``technique`` is written only when ``fixed``;
    ``sticky`` only when set (both are our extensions to the current schema).
    """
    return [_element_json(e) for e in graph.elements]


def _ports_json(ports: Mapping[str, str]) -> dict[str, Any]:
    return {port: {"elementId": target} for port, target in ports.items()}


def _element_json(e: Element) -> dict[str, Any]:
    out: dict[str, Any] = {"id": e.id, "type": e.kind}
    if isinstance(e, Conditional):
        out["properties"] = {"conditions": e.matcher.source}
    elif isinstance(e, Percentage):
        if e.sticky is not None:
            out["properties"] = {"sticky": e.sticky.text}
        out["outputs"] = _ports_json(_percentage_outputs(e))
        return out
    elif isinstance(e, Rate):
        props: dict[str, Any] = {"limitType": e.limit_type, "key": e.key.text,
                                 "limit": e.limit, "window": e.window}
        if e.technique != "sliding":
            props["technique"] = e.technique
        out["properties"] = props
    elif isinstance(e, Model):
        out["properties"] = {"provider": e.provider, "model": e.model,
                             "timeout": e.timeout_ms, "retries": e.retries}
    out["outputs"] = _ports_json(e.ports())
    return out


def _percentage_outputs(e: Percentage) -> dict[str, str]:
    labels = {b.label for b in e.branches}
    outputs: dict[str, str] = {}
    for b in e.branches:
        label = b.label
        if label == "else":
            explicit = f"{b.share.normalize():f}%"
            label = explicit if explicit not in labels else "else"
        outputs[label] = b.target
    return outputs
