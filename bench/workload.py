"""What the benchmark sends: request bodies, headers, and the Target type that
tells the driver where and how to send one scenario's requests."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

OPENAI_MODEL = "openai/gpt-4o-mini"
ANTHROPIC_MODEL = "anthropic/claude-3-5-haiku-latest"
MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant. Answer briefly."},
    {"role": "user", "content": "Say hello to the benchmark in one short sentence."},
]


def chat_body(model: str = OPENAI_MODEL, stream: bool = False) -> bytes:
    body: dict = {"model": model, "messages": MESSAGES, "max_tokens": 64, "temperature": 0}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass
class Target:
    """Where to send a scenario's requests and what to send."""

    url: str
    body: bytes
    headers: dict = field(default_factory=dict)
    count_header: str | None = None  # response header whose HIT/other values are counted
    stream: bool = False


def route_elements(model_provider: str = "openai", model: str = "gpt-4o-mini") -> list[dict]:
    """start -> conditional(metadata.tier == pro) -> true: rate -> model -> end;
    false: model -> end (Cloudflare's route JSON shape)."""

    def model_node(node_id: str) -> dict:
        return {
            "id": node_id,
            "type": "model",
            "properties": {
                "provider": model_provider,
                "model": model,
                "timeout": 10000,
                "retries": 0,
            },
            "outputs": {"success": {"elementId": "end"}, "fallback": {"elementId": "end"}},
        }

    return [
        {"id": "start", "type": "start", "outputs": {"next": {"elementId": "tier"}}},
        {
            "id": "tier",
            "type": "conditional",
            "properties": {"conditions": {"metadata.tier": {"$eq": "pro"}}},
            "outputs": {"true": {"elementId": "limit"}, "false": {"elementId": "model_free"}},
        },
        {
            "id": "limit",
            "type": "rate",
            "properties": {
                "limitType": "count",
                "key": "metadata.user",
                "limit": 1_000_000_000,
                "window": 60,
            },
            "outputs": {"success": {"elementId": "model_pro"}, "fallback": {"elementId": "end"}},
        },
        model_node("model_pro"),
        model_node("model_free"),
        {"id": "end", "type": "end", "outputs": {}},
    ]
