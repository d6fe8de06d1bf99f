"""The translating adapters, by ``ProviderSpec.kind``: each turns the canonical OpenAI
chat-completions request into the provider's own API and the answer back.

Every class is constructed as ``Cls(spec)``; ``clock`` (seconds since the epoch, for the
``created`` field and SigV4 signing) and ``new_id`` (ids the provider does not supply) may be
passed as keywords to make the output deterministic.
"""

from __future__ import annotations

from crossroads.providers.anthropic import AnthropicProvider
from crossroads.providers.bedrock import BedrockProvider
from crossroads.providers.cohere import CohereProvider
from crossroads.providers.google import GoogleAIStudioProvider, VertexAIProvider

ADAPTERS: dict[str, type] = {
    "anthropic": AnthropicProvider,
    "google-ai-studio": GoogleAIStudioProvider,
    "google-vertex-ai": VertexAIProvider,
    "aws-bedrock": BedrockProvider,
    "cohere": CohereProvider,
}
