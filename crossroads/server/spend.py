"""Gateway spend limits on the request path: a call is checked against the budgets it counts
against before it is sent (any spent budget: 429, or, in a route, the model step's fallback),
and its cost is added to them once known. Budgets live in the gateway's counters (in-process,
SQL or Redis: shared by workers and replicas); a cached answer costs nothing and is not
checked. Like every budget here, admission is "spent < limit" and the cost settles after the
answer, so concurrent calls may overshoot by what they cost (docs/decisions.md)."""

from __future__ import annotations

from crossroads.errors import SpendLimited
from crossroads.server.call import Call
from crossroads.spend_limits import Budget, budgets


def _budgets(call: Call, provider: str, model: str) -> list[Budget]:
    return budgets(call.gateway.get("spend_limits"), call.account, call.gateway_id, provider,
                   model, call.options.metadata)


async def check_spend(call: Call, provider: str, model: str) -> None:
    """Raise ``SpendLimited`` if a budget this call counts against is spent."""
    rt = call.rt
    now = rt.clock.now()
    for b in _budgets(call, provider, model):
        try:
            adm = await rt.counters.check_spent(b.key, b.limit, b.window, b.technique, now)
        except Exception as exc:
            call.store_failed("spend-limit", exc)
            continue
        if not adm.admitted:
            rt.metrics.rate_limited(call.gateway_id, "spend")
            raise SpendLimited(
                f"spend limit '{b.rule}' exceeded for {provider}/{model}: its budget of "
                f"${b.limit:.6g} per {b.window:g} s is spent",
                headers={"retry-after": str(max(int(adm.reset_after + 0.999), 1))},
                details={"rule": b.rule, "limit": b.limit, "window": b.window})


def settle_spend(call: Call, provider: str, model: str, cost: float) -> None:
    """Add ``cost`` to every budget the answering provider and model count against (in the
    background: a lost settlement under-counts, it never fails the request)."""
    rt = call.rt
    found = _budgets(call, provider, model)
    if not found:
        return
    counters = rt.counters

    async def add() -> None:
        now = rt.clock.now()
        for b in found:
            try:
                await counters.add(b.key, cost, b.window, b.technique, now)
            except Exception:  # noqa: S112 (a lost settlement under-counts; logged nowhere)
                continue

    rt.spawn(add())
