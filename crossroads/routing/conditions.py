"""The Mongo-style condition matcher of conditional route elements.

``compile_condition`` validates a condition object once (at route parse time) and returns an
immutable ``Matcher``; ``Matcher.match(ctx)`` then runs without any further parsing. ``ctx`` is
a mapping ``{"metadata": {...}, "body": {...}, "headers": {...}}``.

Semantics chosen where Cloudflare's docs are silent (they name only ``$eq $ne $in $and $or``):

* Field paths are dotted and must start with ``metadata``, ``body`` or ``headers``; anything
  else is a validation error (catches typos such as ``user_plan``). ``metadata.a.b`` and
  ``body.a.b`` descend into nested objects; a segment that is an integer (``body.messages.0``,
  also negative: ``body.messages.-1``) indexes a list. After ``headers.`` the whole rest is one
  header name, lowercased (``headers.X-Tier`` reads header ``x-tier``); header values are not
  descended into.
* A bare value means ``$eq``; several fields (or operators) in one object are ANDed; an empty
  condition is true. An object whose keys all start with ``$`` is an operator object, one with
  no ``$`` keys is a literal value to compare with; mixing both is a validation error.
* Types: a number never equals a string, a boolean never equals a number (``true`` is not
  ``1``), ``null`` equals only ``null``. One coercion: when the operand is a number and the field
  holds a string that reads as a number (``"42"``, ``"-1.5"``, ``"1e3"``), they compare
  numerically, because metadata and header values often arrive as strings. The reverse (a
  numeric field against a string operand) is not coerced: the route author typed a string.
  ``$gt/$gte/$lt/$lte`` compare numbers numerically and strings by code point; any other mix is
  false. Lists and objects compare structurally with the same strict rules; there is no Mongo
  "array contains" matching (use an index path instead).
* Missing field: ``$eq`` and ``$in`` and the ordering operators are false, ``$ne`` and ``$nin``
  are true, ``$exists: false`` is true. ``$eq: null`` matches an explicit ``null`` only.
* ``$ne`` is exactly ``not $eq`` and ``$nin`` exactly ``not $in``. ``$regex`` searches (not
  full-matches) string fields only; optional ``$options`` takes the letters ``i m s x``.
  ``$not`` works at the top level (``{"$not": {cond}}``) and per field
  (``{"f": {"$not": {"$gt": 3}}}``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from crossroads.errors import InvalidRoute

ROOTS = ("metadata", "body", "headers")
MAX_DEPTH = 32
_NUMBER = re.compile(r"\s*-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")
_INT = re.compile(r"\s*-?\d+\s*")
_REGEX_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
FIELD_OPERATORS = frozenset(
    {"$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte", "$exists", "$regex", "$not"})
LOGICAL_OPERATORS = frozenset({"$and", "$or", "$not"})


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


@dataclass(frozen=True, slots=True)
class FieldPath:
    """A validated dotted path; ``resolve`` returns the value or ``MISSING``."""

    text: str
    parts: tuple[str, ...]

    def resolve(self, ctx: Mapping[str, Any]) -> Any:
        if self.parts[0] == "headers":
            return _header(ctx.get("headers"), self.parts[1])
        current: Any = ctx
        for part in self.parts:
            if type(current) is dict or isinstance(current, Mapping):
                current = current.get(part, MISSING)
            elif isinstance(current, Sequence) and not isinstance(current, str | bytes):
                current = _index(current, part)
            else:
                return MISSING
            if current is MISSING:
                return MISSING
        return current


def _header(headers: Any, name: str) -> Any:
    if type(headers) is not dict and not isinstance(headers, Mapping):
        return MISSING
    value = headers.get(name, MISSING)
    if value is MISSING:
        for key, candidate in headers.items():
            if isinstance(key, str) and key.lower() == name:
                return candidate
    return value


def _index(items: Sequence[Any], part: str) -> Any:
    if not _INT.fullmatch(part):
        return MISSING
    i = int(part)
    return items[i] if -len(items) <= i < len(items) else MISSING


def parse_path(text: Any) -> FieldPath:
    """Validate a dotted field path (see the module docstring); raises InvalidRoute."""
    if not isinstance(text, str) or not text:
        raise InvalidRoute(f"field path must be a non-empty string, got {_show(text)}")
    root, _, rest = text.partition(".")
    if root not in ROOTS or not rest:
        raise InvalidRoute(
            f'field path "{text}" must start with metadata., body. or headers. and name a field')
    if root == "headers":
        return FieldPath(text, (root, rest.lower()))
    parts = tuple(rest.split("."))
    if any(not p for p in parts):
        raise InvalidRoute(f'field path "{text}" has an empty segment')
    return FieldPath(text, (root, *parts))


# ---------------------------------------------------------------- value comparisons


_SIMPLE_KINDS = {int: "num", float: "num", str: "str", bool: "bool", type(None): "NoneType",
                 dict: "map", list: "list"}


def _is_num(value: Any) -> bool:
    cls = type(value)
    if cls is int or cls is float:
        return True
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_number(text: str) -> int | float | None:
    if _INT.fullmatch(text):
        return int(text)
    if _NUMBER.fullmatch(text):
        return float(text)
    return None


def _kind(value: Any) -> str:
    simple = _SIMPLE_KINDS.get(type(value))
    if simple is not None:
        return simple
    if _is_num(value):
        return "num"
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


def _strict_equal(a: Any, b: Any) -> bool:
    kind = _kind(a)
    if kind != _kind(b):
        return False
    if kind == "list":
        return len(a) == len(b) and all(_strict_equal(x, y) for x, y in zip(a, b, strict=True))
    if kind == "map":
        return a.keys() == b.keys() and all(_strict_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def values_equal(value: Any, operand: Any) -> bool:
    """``$eq`` on a present field value (the numeric-string coercion included)."""
    if _is_num(operand) and isinstance(value, str):
        number = _as_number(value)
        return number is not None and number == operand
    return _strict_equal(value, operand)


def _ordered(value: Any, operand: Any) -> tuple[Any, Any] | None:
    if _is_num(operand):
        if _is_num(value):
            return value, operand
        number = _as_number(value) if isinstance(value, str) else None
        return None if number is None else (number, operand)
    if isinstance(operand, str) and isinstance(value, str):
        return value, operand
    return None


_ORDER = {
    "$gt": lambda a, b: a > b, "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b, "$lte": lambda a, b: a <= b,
}


# ---------------------------------------------------------------- compiled expression tree


@dataclass(frozen=True, slots=True)
class OpTest:
    """One operator applied to a field value; ``inner`` holds the tests negated by ``$not``."""

    op: str
    operand: Any
    pattern: re.Pattern[str] | None = None
    inner: tuple[OpTest, ...] = ()
    options: str = ""

    def test(self, value: Any) -> bool:
        op, operand = self.op, self.operand
        if op == "$eq":
            if type(operand) is str:  # the usual literal: equal only to the same plain string
                return type(value) is str and value == operand
            return value is not MISSING and values_equal(value, operand)
        if op == "$ne":
            return value is MISSING or not values_equal(value, operand)
        if op == "$in":
            return value is not MISSING and any(values_equal(value, x) for x in operand)
        if op == "$nin":
            return value is MISSING or not any(values_equal(value, x) for x in operand)
        if op == "$exists":
            return bool((value is not MISSING) == operand)
        if op == "$regex":
            return isinstance(value, str) and self.pattern is not None and bool(
                self.pattern.search(value))
        if op == "$not":
            return not all(t.test(value) for t in self.inner)
        pair = None if value is MISSING else _ordered(value, operand)
        return pair is not None and bool(_ORDER[op](*pair))

    def describe(self) -> str:
        if self.op == "$not":
            return "$not {" + ", ".join(t.describe() for t in self.inner) + "}"
        if self.options:
            return f"$regex {_show(self.operand)} $options {_show(self.options)}"
        return f"{self.op} {_show(self.operand)}"


@dataclass(frozen=True, slots=True)
class FieldExpr:
    path: FieldPath
    tests: tuple[OpTest, ...]

    def evaluate(self, ctx: Mapping[str, Any], notes: list[str] | None, depth: int = 0) -> bool:
        value = self.path.resolve(ctx)
        if notes is None:
            for t in self.tests:
                if not t.test(value):
                    return False
            return True
        shown = "is missing" if value is MISSING else f"= {_show(value)}"
        results = []
        for t in self.tests:
            ok = t.test(value)
            results.append(ok)
            notes.append(f"{'  ' * depth}{self.path.text} {shown} ({t.describe()}) → {_tf(ok)}")
        return all(results)


@dataclass(frozen=True, slots=True)
class LogicExpr:
    """``$and`` / ``$or`` / ``$not`` (one item); ``implicit`` marks a plain multi-field object."""

    op: str
    items: tuple[Expr, ...]
    implicit: bool = False

    def evaluate(self, ctx: Mapping[str, Any], notes: list[str] | None, depth: int = 0) -> bool:
        if notes is None:
            if self.op == "$not":
                return not self.items[0].evaluate(ctx, None)
            wanted = self.op == "$or"  # the result that short-circuits
            for item in self.items:
                if item.evaluate(ctx, None) is wanted:
                    return wanted
            return not wanted
        if self.implicit:
            return all([i.evaluate(ctx, notes, depth) for i in self.items])
        at = len(notes)
        results = [i.evaluate(ctx, notes, depth + 1) for i in self.items]
        ok = all(results) if self.op == "$and" else any(results) if self.op == "$or" \
            else not results[0]
        notes.insert(at, f"{'  ' * depth}{self.op} of {len(results)} → {_tf(ok)}")
        return ok


Expr = FieldExpr | LogicExpr


@dataclass(frozen=True)
class Matcher:
    """A compiled condition. ``source`` gives back (a copy of) the JSON it was compiled from."""

    source_json: str
    root: Expr = field(compare=False, repr=False)

    @property
    def source(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.source_json)
        return result

    def match(self, ctx: Mapping[str, Any]) -> bool:
        return self.root.evaluate(ctx, None)


def explain_condition(matcher: Matcher, ctx: Mapping[str, Any]) -> list[str]:
    """One human-readable line per test, e.g. ``metadata.plan = "free" ($eq "free") → true``.

    Unlike ``match`` nothing is short-circuited, so every test of the condition is listed;
    ``$and``/``$or``/``$not`` get a summary line followed by their indented parts.
    """
    notes: list[str] = []
    ok = matcher.root.evaluate(ctx, notes)
    return notes or [f"(empty condition) → {_tf(ok)}"]


# ---------------------------------------------------------------- compilation


def compile_condition(cond: Any) -> Matcher:
    """Validate and compile a condition object; raises InvalidRoute naming the bad operator."""
    if not isinstance(cond, Mapping):
        raise InvalidRoute(f"a condition must be an object, got {_show(cond)}")
    root = _compile_object(cond, 0)
    return Matcher(json.dumps(cond, ensure_ascii=False), root)


def _compile_object(cond: Mapping[str, Any], depth: int) -> Expr:
    if depth > MAX_DEPTH:
        raise InvalidRoute(f"condition is nested deeper than {MAX_DEPTH} levels")
    items: list[Expr] = []
    for key, value in cond.items():
        if not isinstance(key, str):
            raise InvalidRoute(f"condition key {_show(key)} must be a string")
        if key.startswith("$"):
            items.append(_compile_logic(key, value, depth))
        else:
            items.append(FieldExpr(parse_path(key), _compile_tests(key, value)))
    if len(items) == 1:
        return items[0]
    return LogicExpr("$and", tuple(items), implicit=True)


def _compile_logic(op: str, value: Any, depth: int) -> Expr:
    if op not in LOGICAL_OPERATORS:
        hint = " (field operators go inside a field: {\"f\": {...}})" \
            if op in FIELD_OPERATORS else ""
        raise InvalidRoute(f'operator "{op}" is not supported at the top level{hint}')
    if op == "$not":
        if not isinstance(value, Mapping):
            raise InvalidRoute('operator "$not" needs a condition object')
        return LogicExpr(op, (_compile_object(value, depth + 1),))
    if not isinstance(value, list) or not value:
        raise InvalidRoute(f'operator "{op}" needs a non-empty list of condition objects')
    if not all(isinstance(v, Mapping) for v in value):
        raise InvalidRoute(f'operator "{op}" needs a list of condition objects')
    return LogicExpr(op, tuple(_compile_object(v, depth + 1) for v in value))


def _compile_tests(path: str, value: Any) -> tuple[OpTest, ...]:
    if not isinstance(value, Mapping):
        return (OpTest("$eq", value),)
    dollar = [k for k in value if isinstance(k, str) and k.startswith("$")]
    if not dollar:
        return (OpTest("$eq", dict(value)),)
    if len(dollar) != len(value):
        raise InvalidRoute(f'condition on "{path}" mixes operators and plain keys')
    if "$options" in value and "$regex" not in value:
        raise InvalidRoute(f'operator "$options" on "{path}" needs "$regex"')
    return tuple(_compile_op(path, op, operand, value.get("$options"))
                 for op, operand in value.items() if op != "$options")


def _compile_op(path: str, op: str, operand: Any, options: Any) -> OpTest:
    where = f'operator "{op}" on "{path}"'
    if op not in FIELD_OPERATORS:
        raise InvalidRoute(f'operator "{op}" on "{path}" is not supported')
    if op in ("$in", "$nin") and not isinstance(operand, list):
        raise InvalidRoute(f"{where} needs a list")
    if op in _ORDER and not (_is_num(operand) or isinstance(operand, str)):
        raise InvalidRoute(f"{where} needs a number or a string")
    if op == "$exists" and not isinstance(operand, bool):
        raise InvalidRoute(f"{where} needs true or false")
    if op == "$not":
        if not isinstance(operand, Mapping) or not operand:
            raise InvalidRoute(f"{where} needs an operator object")
        return OpTest(op, dict(operand), inner=_compile_tests(path, operand))
    if op == "$regex":
        pattern = _compile_regex(where, operand, options)
        return OpTest(op, operand, pattern=pattern, options=options or "")
    return OpTest(op, operand)


def _compile_regex(where: str, pattern: Any, options: Any) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise InvalidRoute(f"{where} needs a string pattern")
    if options is None:
        options = ""
    if not isinstance(options, str) or any(c not in _REGEX_FLAGS for c in options):
        raise InvalidRoute(f'{where}: "$options" may only contain the letters i, m, s, x')
    flags = 0
    for letter in options:
        flags |= _REGEX_FLAGS[letter]
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise InvalidRoute(f"{where}: {_show(pattern)} is not a valid pattern: {exc}") from None


def _tf(ok: bool) -> str:
    return "true" if ok else "false"


def _show(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= limit else text[: limit - 1] + "…"
