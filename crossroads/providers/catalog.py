"""Where each provider slug lives and how it authenticates: data, not code.

Base URLs are the ones Cloudflare's provider-specific endpoints stand for. Every one can be
replaced in the config file (``upstreams:``) or by ``CROSSROADS_UPSTREAM_<SLUG>``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    slug: str
    base_url: str
    kind: str  # "openai" (OpenAI-style wire format) or the name of a translating adapter
    chat_path: str | None = "/chat/completions"
    embeddings_path: str | None = None
    auth_header: str = "authorization"
    auth_prefix: str = "Bearer "
    # the headers a caller may use to send its own key on the native path
    key_headers: tuple[str, ...] = ("authorization",)
    # native paths naming a model id (``/@cf/meta/...``) go under this path of the base
    # (Workers AI runs models at ``.../ai/run/{model}``)
    model_run_path: str = ""


_SPECS = [
    ProviderSpec("openai", "https://api.openai.com/v1", "openai", embeddings_path="/embeddings"),
    ProviderSpec("groq", "https://api.groq.com/openai/v1", "openai"),
    ProviderSpec("mistral", "https://api.mistral.ai", "openai", chat_path="/v1/chat/completions",
                 embeddings_path="/v1/embeddings"),
    ProviderSpec("deepseek", "https://api.deepseek.com", "openai"),
    ProviderSpec("grok", "https://api.x.ai", "openai", chat_path="/v1/chat/completions",
                 embeddings_path="/v1/embeddings"),
    ProviderSpec("cerebras", "https://api.cerebras.ai/v1", "openai"),
    ProviderSpec("perplexity-ai", "https://api.perplexity.ai", "openai"),
    ProviderSpec("openrouter", "https://openrouter.ai/api", "openai",
                 chat_path="/v1/chat/completions", embeddings_path="/v1/embeddings"),
    ProviderSpec("azure-openai", "https://{resource}.openai.azure.com/openai/deployments", "openai",
                 auth_header="api-key", auth_prefix="", key_headers=("api-key", "authorization")),
    ProviderSpec("baseten", "https://inference.baseten.co", "openai",
                 chat_path="/v1/chat/completions"),
    ProviderSpec("workers-ai", "https://api.cloudflare.com/client/v4/accounts/{account}/ai",
                 "openai", chat_path="/v1/chat/completions", embeddings_path="/v1/embeddings",
                 model_run_path="/run"),
    ProviderSpec("anthropic", "https://api.anthropic.com", "anthropic", chat_path="/v1/messages",
                 auth_header="x-api-key", auth_prefix="",
                 key_headers=("x-api-key", "authorization")),
    ProviderSpec("google-ai-studio", "https://generativelanguage.googleapis.com",
                 "google-ai-studio", chat_path=None, auth_header="x-goog-api-key", auth_prefix="",
                 key_headers=("x-goog-api-key",)),
    ProviderSpec("google-vertex-ai", "https://aiplatform.googleapis.com", "google-vertex-ai",
                 chat_path=None),
    ProviderSpec("aws-bedrock", "https://bedrock-runtime.{region}.amazonaws.com", "aws-bedrock",
                 chat_path=None, key_headers=("authorization",)),
    ProviderSpec("cohere", "https://api.cohere.com", "cohere", chat_path="/v2/chat",
                 embeddings_path="/v2/embed"),
]

BUILTIN: dict[str, ProviderSpec] = {s.slug: s for s in _SPECS}

# names the compat endpoint accepts for a slug (Cloudflare's compat prefix differs for Perplexity)
COMPAT_ALIASES = {"perplexity": "perplexity-ai"}


def custom_spec(slug: str, base_url: str) -> ProviderSpec:
    """A ``custom-{slug}`` provider: any OpenAI-style base URL (http allowed for local servers)."""
    return ProviderSpec(f"custom-{slug}", base_url.rstrip("/"), "openai",
                        embeddings_path="/embeddings")


def env_var_for(slug: str) -> str:
    return "CROSSROADS_UPSTREAM_" + slug.upper().replace("-", "_")
