"""Dynamic routes: the pure core.

* ``graph``      route JSON (current or old Cloudflare schema) -> validated ``RouteGraph``;
                 ``route_to_json`` for the canonical current-schema JSON
* ``elements``   the typed immutable elements of a graph
* ``conditions`` the Mongo-style matcher of conditional elements
* ``plan``       ``RouteWalk``: the step-wise walk driven by the executor
* ``explain``    the dry run behind the "explain" endpoint
* ``diff``       human-readable differences between two route versions
"""

from crossroads.routing.conditions import Matcher, compile_condition, explain_condition
from crossroads.routing.diff import diff_routes
from crossroads.routing.elements import RouteGraph
from crossroads.routing.explain import Explanation, explain
from crossroads.routing.graph import parse_route, route_to_json
from crossroads.routing.plan import (
    CallModel,
    CheckLimit,
    Finish,
    ModelAttempt,
    RouteWalk,
    Step,
    TraceEntry,
)

__all__ = [
    "CallModel", "CheckLimit", "Explanation", "Finish", "Matcher", "ModelAttempt", "RouteGraph",
    "RouteWalk", "Step", "TraceEntry", "compile_condition", "diff_routes", "explain",
    "explain_condition", "parse_route", "route_to_json",
]
