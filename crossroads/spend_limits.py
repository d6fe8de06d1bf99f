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

A rule's counter is named by its ``id``; a rule without one by what it counts (its filters,
window and technique), so that reordering the rules, or changing a limit, keeps each budget's
spend, while a rule that counts something else starts a budget of its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from crossroads.routing.plan import key_text

MAX_RULES = 20


class Budget(NamedTuple):
    key: str  # the counter's key: one per rule (and per partition value)
    rule: str  # the rule's id (or its position, ``rule-<n>``, when it has none), as shown
    limit: float  # USD
    window: float  # seconds
    technique: str  # "fixed" | "sliding"


def _listed(flt: Any, *names: str) -> bool:
    """Whether a ``{"mode": "filter", "values": [...]}`` admits any of ``names``."""
    values = flt.get("values") if isinstance(flt, Mapping) else None
    return isinstance(values, list) and any(n in values for n in names)


# what a rule without an id counts: the counter is named after these (not its limit, its
# ``enabled`` or its place among the rules)
_SCOPE = ("provider", "model", "metadata", "window", "technique")
# rules list (by identity: a gateway's settings are replaced whole when they change) -> the
# counter name of each of its rules; bounded, as settings come and go
_NAMES: dict[int, tuple[Sequence[Any], list[str]]] = {}
_NAMES_KEPT = 256


def counter_names(rules: Sequence[Any]) -> list[str]:
    """The counter name of each rule: its ``id``, or ``auto-<digest of what it counts>`` (the
    second and later of identical rules get ``-2``, ``-3``, ...: each keeps a budget)."""
    found = _NAMES.get(id(rules))
    if found is not None and found[0] is rules:
        return found[1]
    names: list[str] = []
    seen: dict[str, int] = {}
    for rule in rules:
        if not isinstance(rule, Mapping):
            names.append("")
            continue
        if rule.get("id"):
            names.append(str(rule["id"]))
            continue
        scope = {k: rule.get(k) for k in _SCOPE}
        scope["window"] = float(scope["window"] or 0)
        scope["technique"] = scope["technique"] or "fixed"
        digest = hashlib.sha256(orjson.dumps(scope, option=orjson.OPT_SORT_KEYS,
                                              default=str)).hexdigest()[:16]
        n = seen[digest] = seen.get(digest, 0) + 1
        names.append(f"auto-{digest}" + (f"-{n}" if n > 1 else ""))
    if len(_NAMES) >= _NAMES_KEPT:
        _NAMES.clear()
    _NAMES[id(rules)] = (rules, names)
    return names


def budgets(setting: Mapping[str, Any] | None, account: str, gateway_id: str, provider: str,
            model: str, metadata: Mapping[str, Any]) -> list[Budget]:
    """The budgets of ``setting`` (the gateway's ``spend_limits``) that a call to ``provider``
    / ``model`` with ``metadata`` counts against, in rule order."""
    if not setting or setting.get("enabled") is False:
        return []
    out: list[Budget] = []
    rules = setting.get("rules") or ()
    names = counter_names(rules)
    for i, rule in enumerate(rules):
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
        key = f"spend:{account}:{gateway_id}:{names[i]}" + "".join(":" + p for p in parts)
        out.append(Budget(key, rule_id, float(rule["limit"]), float(rule["window"]),
                          str(rule.get("technique") or "fixed")))
    return out
