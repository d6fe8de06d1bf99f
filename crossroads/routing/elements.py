"""The typed, immutable elements of a validated route graph (built by ``graph.parse_route``).

Every element has an ``id``, a ``kind`` (the current-schema type name) and ``ports()``: output
port name -> target element id. ``RouteGraph`` keeps the declared order of elements.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, Literal

from crossroads.routing.conditions import FieldPath, Matcher

LimitType = Literal["count", "cost"]
Technique = Literal["sliding", "fixed"]


@dataclass(frozen=True, slots=True)
class Start:
    kind: ClassVar[str] = "start"
    id: str
    next: str

    def ports(self) -> dict[str, str]:
        return {"next": self.next}


@dataclass(frozen=True, slots=True)
class Conditional:
    kind: ClassVar[str] = "conditional"
    id: str
    matcher: Matcher
    true: str
    false: str

    def ports(self) -> dict[str, str]:
        return {"true": self.true, "false": self.false}


@dataclass(frozen=True, slots=True)
class Branch:
    """One percentage output: ``share`` in percent, ``upper`` the cumulative bound in [0, 1]."""

    label: str
    share: Decimal
    target: str
    upper: float


@dataclass(frozen=True, slots=True)
class Percentage:
    kind: ClassVar[str] = "percentage"
    id: str
    branches: tuple[Branch, ...]
    sticky: FieldPath | None = None

    def ports(self) -> dict[str, str]:
        return {b.label: b.target for b in self.branches}


@dataclass(frozen=True, slots=True)
class Rate:
    kind: ClassVar[str] = "rate"
    id: str
    limit_type: LimitType
    key: FieldPath
    limit: int | float
    window: int | float
    technique: Technique
    success: str
    fallback: str | None = None

    def ports(self) -> dict[str, str]:
        return _optional_ports(success=self.success, fallback=self.fallback)


@dataclass(frozen=True, slots=True)
class Model:
    kind: ClassVar[str] = "model"
    id: str
    provider: str
    model: str
    timeout_ms: int
    retries: int
    success: str
    fallback: str | None = None

    def ports(self) -> dict[str, str]:
        return _optional_ports(success=self.success, fallback=self.fallback)


@dataclass(frozen=True, slots=True)
class End:
    kind: ClassVar[str] = "end"
    id: str

    def ports(self) -> dict[str, str]:
        return {}


Element = Start | Conditional | Percentage | Rate | Model | End


def _optional_ports(**ports: str | None) -> dict[str, str]:
    return {name: target for name, target in ports.items() if target is not None}


@dataclass(frozen=True)
class RouteGraph:
    """A validated route. ``elements`` keeps the declared order; ``start`` is the start id."""

    elements: tuple[Element, ...]
    name: str = ""
    version: str | int | None = None
    start: str = field(init=False, repr=False, compare=False)
    by_id: Mapping[str, Element] = field(init=False, repr=False, compare=False)
    # per-element values derived once and reused by every walk (crossroads.routing.plan)
    memo: dict[Any, Any] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_id", {e.id: e for e in self.elements})
        starts = [e.id for e in self.elements if isinstance(e, Start)]
        object.__setattr__(self, "start", starts[0] if starts else "")

    def element(self, element_id: str) -> Element:
        return self.by_id[element_id]

    def __contains__(self, element_id: object) -> bool:
        return element_id in self.by_id
