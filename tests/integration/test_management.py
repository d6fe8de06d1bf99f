"""The management API, driven by the official `cloudflare` Python SDK, unchanged."""

from __future__ import annotations

import cloudflare
import httpx
import openai
import pytest
from harness import RunningGateway, StandinServer
from standins.openai import STATE


def cf(gw: RunningGateway) -> cloudflare.Cloudflare:
    return cloudflare.Cloudflare(api_token=gw.admin_token, base_url=gw.api, max_retries=0)


GW_SETTINGS = dict(cache_invalidate_on_update=False, cache_ttl=None, collect_logs=True,
                   rate_limiting_interval=None, rate_limiting_limit=None)


def test_gateway_crud_with_the_sdk(gateway: RunningGateway) -> None:
    c = cf(gateway)
    created = c.ai_gateway.create(account_id="local", id="team-a", authentication=True,
                                  **GW_SETTINGS)
    assert created.id == "team-a" and created.collect_logs is True
    ids = [g.id for g in c.ai_gateway.list(account_id="local")]
    assert ids == ["default", "team-a"]
    got = c.ai_gateway.get("team-a", account_id="local")
    assert got.authentication is True and got.created_at is not None
    updated = c.ai_gateway.update("team-a", account_id="local", **dict(
        GW_SETTINGS, cache_ttl=600, rate_limiting_limit=10, rate_limiting_interval=60),
        rate_limiting_technique="sliding", authentication=False)
    assert (updated.cache_ttl, updated.rate_limiting_limit, updated.authentication) == (
        600, 10, False)
    c.ai_gateway.delete("team-a", account_id="local")
    with pytest.raises(cloudflare.NotFoundError):
        c.ai_gateway.get("team-a", account_id="local")


def test_gateway_validation_and_auth(gateway: RunningGateway) -> None:
    c = cf(gateway)
    with pytest.raises(cloudflare.BadRequestError) as ei:
        c.ai_gateway.create(account_id="local", id="bad", **dict(GW_SETTINGS, cache_ttl=-5))
    assert "cache_ttl" in str(ei.value)
    with pytest.raises(cloudflare.ConflictError):
        c.ai_gateway.create(account_id="local", id="default", **GW_SETTINGS)
    wrong = cloudflare.Cloudflare(api_token="nope", base_url=gateway.api, max_retries=0)
    with pytest.raises(cloudflare.AuthenticationError):
        wrong.ai_gateway.list(account_id="local")
    gw_token = gateway.token()
    r = httpx.get(gateway.api + "/accounts/local/ai-gateway/gateways",
                  headers={"authorization": f"Bearer {gw_token}"})
    assert r.status_code == 401, "a gateway token does not manage anything"


def test_provider_configs_store_keys_used_by_requests(gateway: RunningGateway,
                                                      openai_up: StandinServer) -> None:
    c = cf(gateway)
    pc = c.ai_gateway.provider_configs.create("default", account_id="local", alias="team",
                                              default_config=False, provider_slug="openai",
                                              secret="sk-team-key-987654")
    assert pc.secret_preview.endswith("7654") and "sk-team-key-987654" not in pc.secret_preview
    listed = list(c.ai_gateway.provider_configs.list("default", account_id="local"))
    assert {(p.provider_slug, p.alias) for p in listed} == {("openai", "default"),
                                                            ("openai", "team")}
    client = openai.OpenAI(base_url=gateway.compat(), api_key=gateway.token(), max_retries=0)
    client.chat.completions.create(model="openai/gpt-4o-mini", messages=[
        {"role": "user", "content": "hi"}], extra_headers={"cf-aig-byok-alias": "team"})
    assert openai_up.app[STATE].calls[-1]["headers"]["Authorization"] == \
        "Bearer sk-team-key-987654"
    body = httpx.get(gateway.api + "/accounts/local/ai-gateway/gateways/default/provider_configs",
                     headers={"authorization": f"Bearer {gateway.admin_token}"}).text
    assert "sk-team-key-987654" not in body


def test_logs_list_and_get_with_the_sdk(gateway: RunningGateway) -> None:
    client = openai.OpenAI(base_url=gateway.compat(), api_key=gateway.token(), max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    log_id = raw.headers["cf-aig-log-id"]
    gateway.drain_logs()
    c = cf(gateway)
    logs = list(c.ai_gateway.logs.list("default", account_id="local"))
    assert [x.id for x in logs] == [log_id]
    one = c.ai_gateway.logs.get(log_id, account_id="local", gateway_id="default")
    assert (one.provider, one.model, one.success, one.tokens_in, one.tokens_out) == (
        "openai", "gpt-4o-mini", True, 12, 7)
    assert one.duration >= 0 and one.path == "/compat/chat/completions"


def test_openapi_document_is_served(gateway: RunningGateway) -> None:
    doc = httpx.get(gateway.api + "/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert "/client/v4/accounts/{account_id}/ai-gateway/gateways" in doc["paths"]
    assert "/client/v4/accounts/{account_id}/ai-gateway/gateways/{gateway_id}/routes" in doc[
        "paths"]


def test_settings_kept_for_round_trips_never_keep_their_secrets(gateway: RunningGateway
                                                                ) -> None:
    """``otel`` and ``stripe`` are stored (the SDK's full-replace update sends them back) but
    not acted on: their ``authorization`` is kept as a preview only, in the database too."""
    import sqlalchemy as sa

    from crossroads.store import schema

    secret = "Bearer otel-collector-secret-9876"
    common = dict(account_id="local", cache_invalidate_on_update=False, cache_ttl=None,
                  collect_logs=True, rate_limiting_interval=0, rate_limiting_limit=0)
    client = cf(gateway)
    client.ai_gateway.update("default", otel=[{  # type: ignore[arg-type]
        "url": "https://collector.example/v1/traces", "headers": {"x-team": "a"},
        "authorization": secret, "content_type": "json"}], **common)
    got = client.ai_gateway.get("default", account_id="local")
    assert got.otel is not None and got.otel[0].authorization == "Bea…9876"
    assert got.otel[0].url == "https://collector.example/v1/traces"
    client.ai_gateway.update("default", otel=[{  # what a full-replace update sends back
        "url": got.otel[0].url, "headers": {"x-team": "a"},
        "authorization": got.otel[0].authorization or ""}], **common)
    again = client.ai_gateway.get("default", account_id="local")
    assert again.otel is not None and again.otel[0].authorization == "Bea…9876"

    async def stored() -> str:
        async with gateway.rt.store.engine.connect() as c:
            rows = await c.execute(sa.select(schema.gateways.c.settings))
            return repr([r[0] for r in rows])

    assert "otel-collector-secret" not in gateway.thread.run(stored())
