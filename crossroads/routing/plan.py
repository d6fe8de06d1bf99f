"""The pure, step-wise walk of a route graph, and its dry run (``explain``).

No awaits, no clock, no sockets: randomness comes in through ``draw`` and the results of rate
checks and model calls are reported back by the executor. Driving a walk::

    walk = RouteWalk(graph, ctx, draw=rng.random)   # trace=False: no reason text (path only)
    step = walk.next()
    while not isinstance(step, Finish):
        if isinstance(step, CheckLimit):
            walk.limit_result(admitted=...)   # count: atomic check-and-increment of bucket_key
        else:                                 # CallModel: all 1 + retries tries, then report
            walk.model_result(ok=..., reason="upstream 503" or None)
        step = walk.next()
    error = walk.error()                      # None when answered, else the GatewayError

Semantics chosen where Cloudflare's docs are silent:

* ``bucket_key`` is ``"{route}:{element}:{value}"`` where value is the ``key`` field's value as
  text (strings as they are, numbers/booleans as JSON, so ``42`` and ``"42"`` share a
  bucket); a missing or null value uses ``NONE_VALUE`` (``"<none>"``), i.e. all requests
  without that field share one bucket.
* Percentage: branches own cumulative ranges of [0, 1) in declared key order; draw ``u`` picks
  the first branch with ``u < upper``. With ``properties.sticky`` (our extension) ``u`` is
  instead ``sha256("{element}\\0{value}")``'s first 8 bytes / 2**64, so one user always lands
  on the same branch of that element (independently of other elements); if the sticky field
  is missing the draw is used.
* A rate element over its limit follows ``fallback``; without one the walk finishes with
  outcome ``rate_limited`` (HTTP 429). Reaching ``end`` after a refused limit and without any
  model attempt is also ``rate_limited``.
* A failed model follows ``fallback``; without one the walk finishes with ``exhausted``.
  Reaching ``end`` with no successful model is ``exhausted`` if a model was tried, else
  ``no_model``. Model success is final (validated in ``graph``); ``answered`` comes at ``end``.
* ``admitted_limits`` lists the limits passed: the executor settles cost into the ``cost``
  buckets after the response, and may refund ``count`` buckets when the walk fails.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from crossroads.errors import GatewayError, RateLimited, RouteExhausted
from crossroads.routing.conditions import MISSING
from crossroads.routing.elements import (
    Branch,
    Conditional,
    End,
    LimitType,
    Model,
    Percentage,
    Rate,
    RouteGraph,
    Start,
    Technique,
)

NONE_VALUE = "<none>"
Outcome = Literal["answered", "rate_limited", "exhausted", "no_model"]


@dataclass(slots=True)  # made per request: a frozen dataclass's __init__ costs 3x
class CheckLimit:
    element_id: str
    limit_type: LimitType
    bucket_key: str
    limit: int | float
    window: int | float
    technique: Technique


@dataclass(frozen=True, slots=True)
class CallModel:
    element_id: str
    provider: str
    model: str
    timeout_ms: int
    retries: int


@dataclass(frozen=True, slots=True)
class Finish:
    element_id: str
    answered: bool
    outcome: Outcome


Step = CheckLimit | CallModel | Finish


class TraceEntry(NamedTuple):
    element_id: str
    outcome: str
    reason: str


@dataclass(slots=True)  # made per request, like CheckLimit
class ModelAttempt:
    element_id: str
    provider: str
    model: str
    ok: bool
    reason: str | None

    def describe(self) -> str:
        what = "succeeded" if self.ok else f"failed: {self.reason or 'unknown error'}"
        return f"model {self.element_id} ({self.provider}/{self.model}) {what}"


def key_text(value: Any) -> str:
    """A field value as bucket/sticky text (see the module docstring)."""
    if value is MISSING or value is None:
        return NONE_VALUE
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def sticky_fraction(element_id: str, value: Any) -> float:
    """A stable number in [0, 1) for ``value`` at percentage element ``element_id``."""
    digest = hashlib.sha256(f"{element_id}\0{key_text(value)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick_branch(element: Percentage, u: float) -> Branch:
    """The branch whose cumulative range holds ``u`` (0% branches are never picked)."""
    for branch in element.branches:
        if u < branch.upper and branch.share > 0:
            return branch
    return [b for b in element.branches if b.share > 0][-1]


def route_label(graph: RouteGraph) -> str:
    version = "" if graph.version is None else f" v{graph.version}"
    return f"route '{graph.name}'{version}"


class RouteWalk:
    """One request's walk through ``graph``; see the module docstring for the protocol."""

    __slots__ = ("graph", "ctx", "_draw", "trace", "_tracing", "path", "attempts",
                 "admitted_limits", "refused_limits", "finished", "_current", "_pending",
                 "_element", "_answer", "_steps_left", "_by_id")

    def __init__(self, graph: RouteGraph, ctx: Mapping[str, Any], *,
                 draw: Callable[[], float], trace: bool = True) -> None:
        self.graph = graph
        self.ctx = ctx
        self._draw = draw
        # each decision with its reason, for explain and the dry run; a request's walk only
        # needs ``path``, so the executor turns tracing off and no reason text is built
        self.trace: list[TraceEntry] = []
        self._tracing = trace
        self.path: list[str] = []
        self.attempts: list[ModelAttempt] = []
        self.admitted_limits: list[CheckLimit] = []
        self.refused_limits: list[CheckLimit] = []
        self.finished: Finish | None = None
        self._current: str | None = graph.start
        self._pending: CheckLimit | CallModel | None = None
        self._element: Rate | Model | None = None  # the element of the pending step
        self._answer: ModelAttempt | None = None  # the successful attempt (success is final)
        self._steps_left = 2 * len(graph.elements) + 2
        self._by_id = graph.by_id

    @property
    def answered_by(self) -> ModelAttempt | None:
        return self._answer

    def next(self) -> Step:
        """Advance to the next step that needs the executor (or to the Finish)."""
        if self.finished is not None:
            return self.finished
        if self._pending is not None:
            raise GatewayError(f"route walk: next() called before the result of "
                               f"{type(self._pending).__name__} {self._pending.element_id}")
        by_id, path = self._by_id, self.path
        while True:
            self._steps_left -= 1
            current = self._current
            if self._steps_left < 0 or current is None:
                raise GatewayError(f"{route_label(self.graph)}: walk exceeded its step limit")
            element = by_id[current]
            path.append(current)
            _ADVANCE[type(element)](self, element)  # one lookup, not a chain of kind tests
            if self._pending is not None:
                return self._pending
            if self.finished is not None:
                return self.finished

    def _conditional(self, element: Conditional) -> None:
        hit = element.matcher.match(self.ctx)
        if self._tracing:
            self.trace.append(TraceEntry(element.id, "true" if hit else "false",
                                         "conditions matched" if hit
                                         else "conditions did not match"))
        self._current = element.true if hit else element.false

    def _model(self, element: Model) -> None:
        # the step is the same every time: made once per graph
        step = self.graph.memo.get(element.id)
        if step is None:
            step = self.graph.memo[element.id] = CallModel(
                element.id, element.provider, element.model, element.timeout_ms,
                element.retries)
        self._pending, self._element = step, element

    def _rate(self, element: Rate) -> None:
        self._pending = CheckLimit(
            element.id, element.limit_type,
            f"{self.graph.name}:{element.id}:{key_text(element.key.resolve(self.ctx))}",
            element.limit, element.window, element.technique)
        self._element = element

    def _start(self, element: Start) -> None:
        if self._tracing:
            self.trace.append(TraceEntry(element.id, "next", "entry point"))
        self._current = element.next

    def _go(self, element_id: str, outcome: str, reason: str, target: str | None) -> None:
        if self._tracing:
            self.trace.append(TraceEntry(element_id, outcome, reason))
        self._current = target

    def _split(self, element: Percentage) -> None:
        value = MISSING if element.sticky is None else element.sticky.resolve(self.ctx)
        if value is MISSING or value is None:
            u = self._draw()
            sticky = False
        else:
            u = sticky_fraction(element.id, value)
            sticky = True
        branch = pick_branch(element, u)
        how = ""
        if self._tracing:
            if sticky:
                how = f"sticky {element.sticky.text} → {u:.4f}"  # type: ignore[union-attr]
            else:
                how = f"draw {u:.4f}"
                if element.sticky is not None:
                    how += f" ({element.sticky.text} missing, not sticky)"
            how += f" falls in branch {branch.label}"
        self._go(element.id, branch.label, how, branch.target)

    def _end(self, element: End) -> None:
        if self._answer is not None:
            outcome: Outcome = "answered"
        elif self.attempts:
            outcome = "exhausted"
        elif self.refused_limits:
            outcome = "rate_limited"
        else:
            outcome = "no_model"
        if self._tracing:
            self.trace.append(TraceEntry(element.id, outcome, "end of route"))
        # frozen, and the same for every walk that ends here this way: made once per graph
        memo_key = (element.id, outcome)
        finish = self.graph.memo.get(memo_key)
        if finish is None:
            finish = self.graph.memo[memo_key] = Finish(element.id, outcome == "answered",
                                                        outcome)
        self.finished = finish

    def limit_result(self, admitted: bool) -> None:
        """Report the CheckLimit just returned by ``next``: admitted or over the limit."""
        step, rate = self._take(CheckLimit)
        if admitted:
            self.admitted_limits.append(step)
            self._go(rate.id, "admitted", f"under the limit of bucket {step.bucket_key}"
                     if self._tracing else "", rate.success)
            return
        self.refused_limits.append(step)
        reason = f"over the limit of bucket {step.bucket_key}"
        if rate.fallback is not None:
            self._go(rate.id, "limited", reason + ", taking fallback", rate.fallback)
        else:
            self._go(rate.id, "limited", reason + ", no fallback", None)
            self.finished = Finish(rate.id, False, "rate_limited")

    def model_result(self, ok: bool, reason: str | None = None) -> None:
        """Report the CallModel just returned by ``next`` (after all its retries)."""
        step, model = self._take(CallModel)
        attempt = ModelAttempt(step.element_id, step.provider, step.model, ok, reason)
        self.attempts.append(attempt)
        if ok:
            if self._answer is None:
                self._answer = attempt
            self._go(model.id, "success", reason or "model answered", model.success)
        elif model.fallback is not None:
            self._go(model.id, "failure", f"{reason or 'failed'}, taking fallback",
                     model.fallback)
        else:
            self._go(model.id, "failure", f"{reason or 'failed'}, no fallback", None)
            self.finished = Finish(model.id, False, "exhausted")

    def _take(self, kind: type[Any]) -> tuple[Any, Any]:
        """The pending step (which must be a ``kind``) and its element; none is pending after."""
        step = self._pending
        if type(step) is not kind:
            raise GatewayError(f"route walk: no {kind.__name__} step is waiting for a result")
        self._pending = None
        return step, self._element

    def failure_message(self) -> str:
        """E.g. ``route 'support' v3: model m1 (openai/gpt-4o) failed: upstream 503; ...``."""
        label = route_label(self.graph)
        finish = self.finished
        if finish is None or finish.answered:
            return f"{label}: no failure"
        if finish.outcome == "rate_limited":
            step = self.refused_limits[-1]
            return (f"{label}: {step.limit_type} limit {step.element_id} exceeded "
                    f"({step.limit} per {step.window} s)")
        if finish.outcome == "no_model":
            return f"{label}: reached end {finish.element_id} without calling a model"
        return f"{label}: " + "; ".join(a.describe() for a in self.attempts)

    def error(self) -> GatewayError | None:
        """The error to answer with: RateLimited (429) or RouteExhausted (502); None if answered."""
        finish = self.finished
        if finish is None or finish.answered:
            return None
        cls = RateLimited if finish.outcome == "rate_limited" else RouteExhausted
        return cls(self.failure_message(), details={"path": list(self.path),
                                                     "outcome": finish.outcome})


# what ``RouteWalk.next`` does on reaching each kind of element
_ADVANCE: dict[type[Any], Callable[[RouteWalk, Any], None]] = {
    Conditional: RouteWalk._conditional,
    Model: RouteWalk._model,
    Rate: RouteWalk._rate,
    Percentage: RouteWalk._split,
    Start: RouteWalk._start,
    End: RouteWalk._end,
}
