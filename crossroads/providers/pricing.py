"""Cost of an answer from the pricing table shipped with the package, or a per-request
``cf-aig-custom-cost`` override. Pure."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from crossroads.errors import InvalidHeader
from crossroads.providers.base import Usage

_REGION_PREFIXES = ("us.", "eu.", "apac.", "global.")


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per token."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None

    def cost(self, usage: Usage) -> float:
        cached = usage.cached_tokens
        written = usage.cache_write_tokens
        plain = max(usage.prompt_tokens - cached - written, 0)
        read_rate = self.input if self.cache_read is None else self.cache_read
        write_rate = self.input if self.cache_write is None else self.cache_write
        return (plain * self.input + cached * read_rate + written * write_rate
                + usage.completion_tokens * self.output)


@functools.cache
def _table() -> dict[str, dict[str, Rates]]:
    raw = json.loads(resources.files("crossroads.providers").joinpath("pricing.json").read_text())
    table: dict[str, dict[str, Rates]] = {}
    for provider, models in raw.items():
        if provider.startswith("_"):
            continue
        table[provider] = {
            name: Rates(v[0] / 1e6, v[1] / 1e6,
                        None if v[2] is None else v[2] / 1e6,
                        None if v[3] is None else v[3] / 1e6)
            for name, v in models.items()
        }
    return table


@functools.lru_cache(maxsize=4096)
def rates_for(provider: str, model: str) -> Rates | None:
    if not model:
        return None
    name = model
    if provider == "google-vertex-ai":
        publisher, sep, rest = model.partition("/")
        if sep:
            name = rest
        if (publisher == "anthropic" and sep) or name.startswith("claude-"):
            # Claude on Vertex: Anthropic's list prices (Vertex's global endpoint); names
            # like ``claude-sonnet-4-5@20250929`` match by their longest known prefix
            provider = "anthropic"
    models = _table().get(provider)
    if not models:
        return None
    for prefix in _REGION_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix):]
    if name.startswith("models/"):
        name = name[len("models/"):]
    if name in models:
        return models[name]
    best = max((k for k in models if name.startswith(k)), key=len, default=None)
    return models[best] if best else None


def cost_of(provider: str, model: str, usage: Usage, custom: Rates | None = None) -> float | None:
    rates = custom or rates_for(provider, model)
    if rates is None:
        return None
    return round(rates.cost(usage), 10)


def parse_custom_cost(value: str) -> Rates:
    """``cf-aig-custom-cost: {"per_token_in":..., "per_token_out":..., ...}`` (USD per token)."""
    try:
        obj: Any = json.loads(value)
    except ValueError as exc:
        raise InvalidHeader("cf-aig-custom-cost must be a JSON object") from exc
    if not isinstance(obj, dict):
        raise InvalidHeader("cf-aig-custom-cost must be a JSON object")

    def num(key: str, required: bool) -> float | None:
        v = obj.get(key)
        if v is None:
            if required:
                raise InvalidHeader(f"cf-aig-custom-cost needs a number '{key}'")
            return None
        if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
            raise InvalidHeader(f"cf-aig-custom-cost '{key}' must be a number >= 0")
        return float(v)

    return Rates(num("per_token_in", True) or 0.0, num("per_token_out", True) or 0.0,
                 num("per_cache_read_token", False), num("per_cache_write_token", False))
