"""Crossroads: a self-hosted, Cloudflare AI Gateway-compatible LLM gateway."""

from crossroads.client import Gateway

__all__ = ["Gateway"]
