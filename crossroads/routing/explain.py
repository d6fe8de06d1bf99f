"""Dry run of a route for the "explain" endpoint: the path and a reason per element, as data.

It drives ``RouteWalk`` itself with assumed results, so the dry run cannot disagree with the
real walk. See ``explain`` for the inputs and ``Explanation`` for the output format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from crossroads.errors import BadRequest
from crossroads.routing.conditions import explain_condition
from crossroads.routing.elements import Conditional, Model, Percentage, Rate, RouteGraph
from crossroads.routing.plan import CheckLimit, Finish, RouteWalk, TraceEntry


class _NeedsDraw(Exception):
    """Raised by the scripted draw of ``explain`` when a split needs a value it was not given."""


@dataclass(frozen=True)
class Explanation:
    """The dry run of a route for one request context; ``as_dict`` is JSON-ready.

    ``outcome`` is a walk outcome, or ``"depends_on_draw"`` when a percentage split was reached
    without a draw: that step then lists every branch with ``"then"``, the rest of the route
    explained as if that branch were picked.
    """

    route: str
    version: str | int | None
    outcome: str
    path: tuple[str, ...]
    answered_by: dict[str, str] | None
    steps: tuple[dict[str, Any], ...]

    def as_dict(self) -> dict[str, Any]:
        return {"route": self.route, "version": self.version, "outcome": self.outcome,
                "path": list(self.path), "answered_by": self.answered_by,
                "steps": list(self.steps)}


def explain(graph: RouteGraph, ctx: Mapping[str, Any], *,
            draw: float | Callable[[], float] | None = None,
            limits: Mapping[str, bool] | None = None,
            models: Mapping[str, bool] | None = None) -> Explanation:
    """Walk ``graph`` for ``ctx`` without calling anything and say why each element went where.

    ``draw`` is one number used for every split, or a callable, or None (each split then lists
    all its branches). Rate elements are admitted and models succeed unless ``limits`` /
    ``models`` (element id -> bool) say otherwise. Uses ``RouteWalk`` itself, so the dry run
    cannot disagree with the real walk. Inputs usually come from an API body, so they are
    checked: a bad ``draw``, a non-boolean result or an unknown element id raises BadRequest.
    """
    dry = _DryRun(graph, ctx, _results(graph, "limits", limits, Rate),
                  _results(graph, "models", models, Model))
    if draw is None:
        return dry.run([])
    if callable(draw):
        return dry.run([], draw=draw)
    if isinstance(draw, bool) or not isinstance(draw, int | float) or not 0 <= draw < 1:
        raise BadRequest(f"draw must be a number in [0, 1), got {draw!r}")
    fixed = float(draw)
    return dry.run([], draw=lambda: fixed)


def _results(graph: RouteGraph, name: str, given: Mapping[str, bool] | None,
             kind: type[Rate] | type[Model]) -> Mapping[str, bool]:
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise BadRequest(f"{name} must be an object of element id -> true/false")
    for eid, value in given.items():
        if eid not in graph or not isinstance(graph.element(eid), kind):
            raise BadRequest(f'{name}: "{eid}" is not a {kind.kind} element of the route')
        if not isinstance(value, bool):
            raise BadRequest(f'{name}: "{eid}" must be true or false, got {value!r}')
    return given


class _DryRun:
    MAX_RUNS = 256

    def __init__(self, graph: RouteGraph, ctx: Mapping[str, Any], limits: Mapping[str, bool],
                 models: Mapping[str, bool]) -> None:
        self.graph, self.ctx, self.limits, self.models = graph, ctx, limits, models
        self.runs = 0

    def run(self, script: list[float], draw: Callable[[], float] | None = None) -> Explanation:
        self.runs += 1
        values = iter(script)

        def scripted() -> float:
            value = next(values, None)
            if value is None:
                raise _NeedsDraw
            return value

        walk = RouteWalk(self.graph, self.ctx, draw=draw or scripted)
        try:
            self._drive(walk)
        except _NeedsDraw:
            return self._fork(walk, script)
        assert walk.finished is not None
        steps = tuple(self._describe(walk, i, e) for i, e in enumerate(walk.trace))
        return self._result(walk, walk.finished.outcome, steps)

    def _drive(self, walk: RouteWalk) -> None:
        step = walk.next()
        while not isinstance(step, Finish):
            if isinstance(step, CheckLimit):
                walk.limit_result(self.limits.get(step.element_id, True))
            else:
                ok = self.models.get(step.element_id, True)
                walk.model_result(ok, "assumed to succeed" if ok else "assumed to fail")
            step = walk.next()

    def _fork(self, walk: RouteWalk, script: list[float]) -> Explanation:
        element = self.graph.element(walk.path[-1])
        assert isinstance(element, Percentage)
        steps = [self._describe(walk, i, e) for i, e in enumerate(walk.trace)]
        branches = []
        for info, branch in zip(_branch_info(element), element.branches, strict=True):
            lower, upper = info["range"]
            if branch.share > 0 and self.runs < self.MAX_RUNS:
                then = self.run(script + [(lower + upper) / 2]).as_dict()
                then["steps"] = then["steps"][len(steps) + 1:]
                del then["route"], then["version"]
                info["then"] = then
            else:
                info["then"] = None
            branches.append(info)
        steps.append({"element": element.id, "type": "percentage", "outcome": "depends_on_draw",
                      "reason": "depends on random draw", "next": None, "branches": branches})
        return self._result(walk, "depends_on_draw", tuple(steps))

    def _result(self, walk: RouteWalk, outcome: str,
                steps: tuple[dict[str, Any], ...]) -> Explanation:
        won = walk.answered_by
        answered = None if won is None else {
            "element": won.element_id, "provider": won.provider, "model": won.model}
        return Explanation(self.graph.name, self.graph.version, outcome, tuple(walk.path),
                           answered, steps)

    def _describe(self, walk: RouteWalk, index: int, entry: TraceEntry) -> dict[str, Any]:
        element = self.graph.element(entry.element_id)
        following = walk.path[index + 1] if index + 1 < len(walk.path) else None
        out: dict[str, Any] = {"element": element.id, "type": element.kind,
                               "outcome": entry.outcome, "reason": entry.reason,
                               "next": following}
        if isinstance(element, Conditional):
            out["conditions"] = element.matcher.source
            out["tests"] = explain_condition(element.matcher, self.ctx)
        elif isinstance(element, Percentage):
            out["branches"] = _branch_info(element)
        elif isinstance(element, Rate):
            step = next(s for s in walk.admitted_limits + walk.refused_limits
                        if s.element_id == element.id)
            out.update(limit_type=step.limit_type, bucket_key=step.bucket_key,
                       limit=step.limit, window=step.window, technique=step.technique,
                       assumed=element.id not in self.limits)
        elif isinstance(element, Model):
            out.update(provider=element.provider, model=element.model,
                       timeout_ms=element.timeout_ms, retries=element.retries,
                       assumed=element.id not in self.models)
        return out


def _branch_info(element: Percentage) -> list[dict[str, Any]]:
    info, lower = [], 0.0
    for branch in element.branches:
        info.append({"label": branch.label, "share": float(branch.share),
                     "range": [lower, branch.upper], "target": branch.target})
        lower = branch.upper
    return info
