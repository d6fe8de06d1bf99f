"""Human-readable differences between two versions of a route (``crossroads routes diff``).

Elements are matched by id, so reordering is not a change and a renamed id shows as one
removal plus one addition. Old-schema spellings are read as their current-schema equivalents
(``rate_limit`` -> ``rate``, ``interval`` -> ``window``, ``condition`` -> ``conditions``, a
missing end ``outputs`` -> ``{}``) so converting a route between schemas is not reported.
Lines start with ``+`` (added), ``-`` (removed) or ``~`` (changed); no differences -> ``[]``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_RENAMED_PROPERTIES = {"interval": "window", "condition": "conditions"}


def diff_routes(a_elements: list[Any], b_elements: list[Any]) -> list[str]:
    """Differences from version ``a`` to version ``b``, one line each, in ``b``'s order."""
    a, b = _by_id(a_elements), _by_id(b_elements)
    lines: list[str] = []
    for eid, element in b.items():
        if eid not in a:
            lines.append(f'+ element "{eid}" added ({_summary(element)})')
        else:
            lines.extend(_element_changes(eid, a[eid], element))
    lines.extend(f'- element "{eid}" removed ({_summary(element)})'
                 for eid, element in a.items() if eid not in b)
    return lines


def _by_id(elements: list[Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    for index, raw in enumerate(elements):
        element = _normalise(raw) if isinstance(raw, Mapping) else {"type": repr(raw)}
        eid = element.get("id")
        result.setdefault(eid if isinstance(eid, str) else f"#{index}", element)
    return result


def _normalise(raw: Mapping[str, Any]) -> dict[str, Any]:
    element = dict(raw)
    if element.get("type") == "rate_limit":
        element["type"] = "rate"
    props = element.get("properties")
    if isinstance(props, Mapping):
        element["properties"] = {_RENAMED_PROPERTIES.get(k, k): v for k, v in props.items()}
    if element.get("type") == "end" and element.get("outputs") is None:
        element["outputs"] = {}
    return element


def _summary(element: Mapping[str, Any]) -> str:
    kind = element.get("type")
    props = element.get("properties")
    props = props if isinstance(props, Mapping) else {}
    if kind == "model":
        return f"model {props.get('provider')}/{props.get('model')}"
    if kind == "rate":
        return (f"rate {props.get('limitType')} {props.get('limit')} per "
                f"{props.get('window')} s on {props.get('key')}")
    return str(kind)


def _element_changes(eid: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    lines = []
    if old.get("type") != new.get("type"):
        lines.append(f'~ element "{eid}": type {_show(old.get("type"))} → '
                     f'{_show(new.get("type"))}')
    for change in _value_changes("properties", old.get("properties") or {},
                                 new.get("properties") or {}):
        lines.append(f'~ element "{eid}": {change}')
    lines.extend(_wiring_changes(eid, _targets(old), _targets(new)))
    return lines


def _value_changes(path: str, old: Any, new: Any) -> list[str]:
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        changes: list[str] = []
        for key in [*old, *(k for k in new if k not in old)]:
            sub = f"{path}{_segment(key)}"
            if key not in new:
                changes.append(f"{sub} removed (was {_show(old[key])})")
            elif key not in old:
                changes.append(f"{sub} added: {_show(new[key])}")
            else:
                changes.extend(_value_changes(sub, old[key], new[key]))
        return changes
    if old == new and type(old) is type(new):
        return []
    return [f"{path} {_show(old)} → {_show(new)}"]


def _segment(key: Any) -> str:
    text = str(key)
    return f"[{json.dumps(text)}]" if "." in text or not text else f".{text}"


def _targets(element: Mapping[str, Any]) -> dict[str, Any]:
    outputs = element.get("outputs")
    if not isinstance(outputs, Mapping):
        return {}
    return {str(port): value.get("elementId") if isinstance(value, Mapping) else value
            for port, value in outputs.items()}


def _wiring_changes(eid: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    lines = []
    for port, target in new.items():
        if port not in old:
            lines.append(f'+ element "{eid}": outputs.{port} → {_show(target)}')
        elif old[port] != target:
            lines.append(f'~ element "{eid}": outputs.{port} → {_show(target)} '
                         f"(was {_show(old[port])})")
    lines.extend(f'- element "{eid}": outputs.{port} removed (was → {_show(target)})'
                 for port, target in old.items() if port not in new)
    return lines


def _show(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=repr)
    return text if len(text) <= limit else text[: limit - 1] + "…"
