"""The async shell around the pure route walk: counters, model calls, fallbacks.

A model element commits once its provider has started answering (status received and the
first bytes read); until then a failure (error status, refused connection, timeout to first
byte, a stream that dies before its first byte) follows the element's ``fallback``. The model
element's ``timeout`` applies to every try (so a fallback is reached), its ``retries`` add tries.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from crossroads.attempts import RetryPolicy
from crossroads.errors import GatewayError, NotFound
from crossroads.routing.plan import CallModel, CheckLimit, Finish, RouteWalk
from crossroads.server.answers import Answer, ProviderErrorAnswer, open_chat
from crossroads.server.call import Call


def route_context(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": call.options.metadata, "body": body, "headers": call.headers}


def _limit_now(call: Call, step: CheckLimit) -> bool | None:
    """A count limit on in-process counters, answered without an await; None otherwise."""
    if step.limit_type != "count":
        return None
    hit_now = getattr(call.rt.counters, "hit_now", None)
    if hit_now is None:
        return None
    rt = call.rt
    adm = hit_now("route:" + call.gateway_id + ":" + step.bucket_key, 1, step.limit,
                  step.window, step.technique, rt.clock.now())
    if not adm.admitted:
        rt.metrics.rate_limited(call.gateway_id, "route")
    return bool(adm.admitted)


async def _check_limit(call: Call, step: CheckLimit) -> bool:
    rt = call.rt
    now = rt.clock.now()
    try:
        if step.limit_type == "count":
            adm = await rt.counters.hit("route:" + call.gateway_id + ":" + step.bucket_key, 1,
                                        step.limit, step.window, step.technique, now)
        else:
            key = "route:" + call.gateway_id + ":" + step.bucket_key
            adm = await rt.counters.check_spent(key, step.limit, step.window, step.technique, now)
            if adm.admitted:
                counters, window, technique = rt.counters, step.window, step.technique
                call.cost_hooks.append(lambda cost: _settle(rt, counters, key, cost, window,
                                                            technique))
    except Exception as exc:
        call.store_failed("limit", exc)
        return True
    if not adm.admitted:
        rt.metrics.rate_limited(call.gateway_id, "route")
    return adm.admitted


def _settle(rt: Any, counters: Any, key: str, cost: float, window: float, technique: str
            ) -> None:
    async def add() -> None:
        try:
            await counters.add(key, cost, window, technique, rt.clock.now())
        except Exception:  # a lost settlement under-counts; it never fails the request
            pass

    rt.spawn(add())


def _call_model(call: Call, body: dict[str, Any], step: CallModel, memo: dict[Any, Any]
                ) -> Coroutine[Any, Any, Answer]:
    """The model step's call, as the coroutine to await (no wrapper coroutine). ``memo``:
    the graph's, where the step's policy is kept with the policy it was made from."""
    base = call.policy()
    key = ("policy", step.element_id)
    kept = memo.get(key)
    if kept is not None and kept[0] is base:  # the usual case: nothing changed
        policy = kept[1]
    else:
        policy = RetryPolicy(max_attempts=step.retries + 1, delay_ms=base.delay_ms,
                             backoff=base.backoff, timeout_ms=step.timeout_ms or None,
                             final_attempt_waits=False)
        memo[key] = (base, policy)
    return open_chat(call, body, step.provider, step.model, policy)


async def open_route(plane: Any, call: Call, body: dict[str, Any], raw: bytes,
                     name: str) -> Answer:
    deployed = call.snap.routes.get((call.account, call.gateway_id, name))
    if deployed is None and (fresh := await call.rt.refreshed(call.snap)) is not None:
        call.snap = fresh  # deployed a moment ago, by the CLI or another replica
        deployed = fresh.routes.get((call.account, call.gateway_id, name))
    if deployed is None:
        raise NotFound(f"dynamic route '{name}' not found on gateway '{call.gateway_id}'")
    rec = call.record
    rec["route"], rec["route_version"] = name, deployed.version_id
    walk = RouteWalk(deployed.graph, route_context(call, body), draw=call.rt.rng.random,
                     trace=False)
    answer: Answer | None = None
    last_error: ProviderErrorAnswer | None = None
    try:
        step = walk.next()
        while not isinstance(step, Finish):
            if isinstance(step, CheckLimit):
                admitted = _limit_now(call, step)
                if admitted is None:
                    admitted = await _check_limit(call, step)
                walk.limit_result(admitted)
            else:
                try:
                    opened = await _call_model(call, body, step, deployed.graph.memo)
                except GatewayError as exc:
                    walk.model_result(False, exc.message)
                else:
                    if isinstance(opened, ProviderErrorAnswer):
                        last_error = opened
                        walk.model_result(False, f"provider answered {opened.err.status}")
                    else:
                        answer = opened
                        walk.model_result(True)
            step = walk.next()
    finally:
        rec["route_path"] = ",".join(walk.path)
    call.response_headers += deployed.headers
    call.response_headers.append((b"cf-aig-route-path", rec["route_path"].encode()))
    if answer is None:
        err = walk.error() or GatewayError("route finished without an answer")
        if last_error is not None and err.details is not None:
            err.details["last_provider_status"] = last_error.err.status
        raise err
    rec["provider"], rec["model"] = answer.provider, answer.model
    call.response_headers += [(b"cf-aig-model", answer.model.encode()),
                              (b"cf-aig-provider", answer.provider.encode())]
    return answer
