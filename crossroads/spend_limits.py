"""Gateway spend limits (Cloudflare's ``spend_limits`` gateway setting): which budgets a call
counts against. Pure; the counters live in ``crossroads.server.spend``.

A rule is a USD budget over ``window`` seconds (``fixed`` calendar windows or a ``sliding``
estimate, as rate limits). It applies to a call when every filter it has admits the call: its
``provider`` and ``model`` filters list the call's (a model may be written ``model`` or
``provider/model``), and each ``metadata`` filter lists the value the call sent for that key.
A ``metadata`` key with ``mode: "partition"`` splits the rule into one budget per value of that
key (a call without the key shares one budget, ``<none>``); without partitions a rule is one
budget for every call it applies to. A disabled rule, or ``enabled: false`` on the whole
setting, applies to nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from crossroads.routing.plan import key_text

MAX_RULES = 20


class Budget(NamedTuple):
    key: str  # the counter's key: one per rule (and per partition value)
    rule: str  # the rule's id (or its position, ``rule-<n>``, when it has none)
    limit: float  # USD
    window: float  # seconds
    technique: str  # "fixed" | "sliding"


def _listed(flt: Any, *names: str) -> bool:
    """Whether a ``{"mode": "filter", "values": [...]}`` admits any of ``names``."""
    values = flt.get("values") if isinstance(flt, Mapping) else None
    return isinstance(values, list) and any(n in values for n in names)


def budgets(setting: Mapping[str, Any] | None, account: str, gateway_id: str, provider: str,
            model: str, metadata: Mapping[str, Any]) -> list[Budget]:
    """The budgets of ``setting`` (the gateway's ``spend_limits``) that a call to ``provider``
    / ``model`` with ``metadata`` counts against, in rule order."""
    if not setting or setting.get("enabled") is False:
        return []
    out: list[Budget] = []
    for i, rule in enumerate(setting.get("rules") or ()):
        if not isinstance(rule, Mapping) or rule.get("enabled") is False:
            continue
        if rule.get("provider") is not None and not _listed(rule["provider"], provider):
            continue
        if rule.get("model") is not None and not _listed(rule["model"], model,
                                                         f"{provider}/{model}"):
            continue
        parts: list[str] = []
        applies = True
        for key, how in sorted((rule.get("metadata") or {}).items()):
            value = metadata.get(key)
            if isinstance(how, Mapping) and how.get("mode") == "partition":
                parts.append(f"{key}={key_text(value)}")
            elif value is None or not _listed(how, key_text(value)):
                applies = False
                break
        if not applies:
            continue
        rule_id = str(rule.get("id") or f"rule-{i}")
        key = f"spend:{account}:{gateway_id}:{rule_id}" + "".join(":" + p for p in parts)
        out.append(Budget(key, rule_id, float(rule["limit"]), float(rule["window"]),
                          str(rule.get("technique") or "fixed")))
    return out
