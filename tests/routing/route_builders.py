"""Builders of route JSON elements for the routing tests (current schema unless named old_)."""

from __future__ import annotations

from typing import Any

from crossroads.routing.graph import RouteGraph, parse_route

KNOWN = {"openai", "anthropic", "workers-ai", "google-vertex-ai"}


def known_provider(slug: str) -> bool:
    return slug in KNOWN or slug.startswith("custom-")


def port(target: str) -> dict[str, str]:
    return {"elementId": target}


def start(next_: str, eid: str = "s") -> dict[str, Any]:
    return {"id": eid, "type": "start", "outputs": {"next": port(next_)}}


def end(eid: str = "e") -> dict[str, Any]:
    return {"id": eid, "type": "end", "outputs": {}}


def cond(eid: str, conditions: Any, true: str, false: str) -> dict[str, Any]:
    return {"id": eid, "type": "conditional", "properties": {"conditions": conditions},
            "outputs": {"true": port(true), "false": port(false)}}


def pct(eid: str, outputs: dict[str, str], **props: Any) -> dict[str, Any]:
    element: dict[str, Any] = {"id": eid, "type": "percentage",
                               "outputs": {k: port(v) for k, v in outputs.items()}}
    if props:
        element["properties"] = props
    return element


def rate(eid: str, success: str, fallback: str | None = None, **props: Any) -> dict[str, Any]:
    properties = {"limitType": "count", "key": "metadata.user_id", "limit": 100,
                  "window": 3600, **props}
    outputs = {"success": port(success)}
    if fallback:
        outputs["fallback"] = port(fallback)
    return {"id": eid, "type": "rate", "properties": properties, "outputs": outputs}


def model(eid: str, success: str = "e", fallback: str | None = None, *,
          provider: str = "openai", name: str = "gpt-4o", timeout: Any = 2000,
          retries: Any = 1) -> dict[str, Any]:
    outputs = {"success": port(success)}
    if fallback:
        outputs["fallback"] = port(fallback)
    return {"id": eid, "type": "model",
            "properties": {"provider": provider, "model": name, "timeout": timeout,
                           "retries": retries},
            "outputs": outputs}


def parse(elements: list[dict[str, Any]], **kw: Any) -> RouteGraph:
    kw.setdefault("name", "support")
    return parse_route(elements, known_provider, **kw)


def simple(first: str = "m1") -> list[dict[str, Any]]:
    """start -> one model -> end."""
    return [start(first), model(first), end()]
