"""Provider adapters, looked up by slug. The only place provider names decide behaviour."""

from __future__ import annotations

from crossroads.providers.base import Credentials, Provider, UpstreamRequest, Usage
from crossroads.providers.catalog import BUILTIN, COMPAT_ALIASES, ProviderSpec, custom_spec
from crossroads.providers.openai_compat import OpenAICompatProvider


def _adapter_classes() -> dict[str, type]:
    from crossroads.providers.translating import ADAPTERS

    return {"openai": OpenAICompatProvider, **ADAPTERS}


def build_adapter(spec: ProviderSpec) -> Provider:
    return _adapter_classes()[spec.kind](spec)


__all__ = ["BUILTIN", "COMPAT_ALIASES", "Credentials", "Provider", "ProviderSpec",
           "UpstreamRequest", "Usage", "build_adapter", "custom_spec"]
