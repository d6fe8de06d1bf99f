"""cf-aig-* header parsing and the pricing table: pure functions."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossroads.errors import InvalidHeader
from crossroads.headers import OPTION_HEADERS, parse_metadata, parse_options
from crossroads.providers.base import Usage
from crossroads.providers.pricing import Rates, cost_of, parse_custom_cost, rates_for


def test_defaults() -> None:
    o = parse_options({})
    assert o.metadata == {} and o.byok_alias == "default" and o.cache_ttl is None


# a valid value for every option header, and the field it sets
_VALID = {
    "cf-aig-metadata": ('{"user": "u1"}', "metadata", {"user": "u1"}),
    "cf-aig-cache-ttl": ("120", "cache_ttl", 120),
    "cf-cache-ttl": ("180", "cache_ttl", 180),
    "cf-aig-skip-cache": ("true", "skip_cache", True),
    "cf-skip-cache": ("yes", "skip_cache", True),
    "cf-aig-cache-key": ("k1", "cache_key", "k1"),
    "cf-aig-collect-log": ("false", "collect_log", False),
    "cf-aig-collect-log-payload": ("false", "collect_log_payload", False),
    "cf-aig-custom-cost": ('{"per_token_in": 1, "per_token_out": 2}', "custom_cost",
                           parse_custom_cost('{"per_token_in": 1, "per_token_out": 2}')),
    "cf-aig-request-timeout": ("1500", "request_timeout_ms", 1500),
    "cf-aig-max-attempts": ("3", "max_attempts", 3),
    "cf-aig-retry-delay": ("250", "retry_delay_ms", 250),
    "cf-aig-backoff": ("linear", "backoff", "linear"),
    "cf-aig-event-id": ("e1", "event_id", "e1"),
    "cf-aig-byok-alias": ("team-a", "byok_alias", "team-a"),
}


def test_every_option_header_is_read() -> None:
    # parse_options looks only at the headers of OPTION_HEADERS: each must set its field,
    # alone and among the others, and this table must know every one of them
    assert set(_VALID) == OPTION_HEADERS
    for name, (value, attr, expected) in _VALID.items():
        assert getattr(parse_options({name: value, "authorization": "Bearer x"}), attr) == expected
    everything = {name: value for name, (value, _, _) in _VALID.items()}
    o = parse_options(everything)
    for name, (_, attr, expected) in _VALID.items():
        if name not in ("cf-cache-ttl", "cf-skip-cache"):  # given way to the cf-aig-* ones
            assert getattr(o, attr) == expected, name


@pytest.mark.parametrize("legacy,value,modern,attr", [
    ("cf-cache-ttl", "120", "cf-aig-cache-ttl", "cache_ttl"),
    ("cf-skip-cache", "false", "cf-aig-skip-cache", "skip_cache"),
])
def test_cf_aig_names_win_over_the_older_ones(legacy: str, value: str, modern: str,
                                              attr: str) -> None:
    winner = "600" if attr == "cache_ttl" else "true"
    expected = 600 if attr == "cache_ttl" else True
    for headers in ({legacy: value, modern: winner}, {modern: winner, legacy: value},
                    {legacy: "not valid", modern: winner}):  # the loser is not even checked
        assert getattr(parse_options(headers), attr) == expected


def test_several_bad_headers_report_the_first_by_name() -> None:
    bad = {"cf-aig-retry-delay": "-1", "cf-aig-backoff": "random", "cf-aig-max-attempts": "9"}
    with pytest.raises(InvalidHeader) as ei:
        parse_options(bad)
    assert "cf-aig-backoff" in ei.value.message


def test_requests_without_option_headers_get_defaults() -> None:
    h = {"authorization": "Bearer x", "cf-aig-authorization": "Bearer y",
         "content-type": "application/json"}
    o = parse_options(h)
    assert o is parse_options({}) and o.collect_log is None and o.metadata == {}
    # one shared instance, which is why it cannot be changed
    with pytest.raises(AttributeError):
        o.collect_log = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        o.metadata["k"] = "v"  # type: ignore[index]
    assert parse_options({}).metadata == {}


@pytest.mark.parametrize("name,value", [
    ("cf-aig-cache-ttl", "30"), ("cf-aig-cache-ttl", "2592001"), ("cf-aig-cache-ttl", "x"),
    ("cf-aig-max-attempts", "0"), ("cf-aig-max-attempts", "6"),
    ("cf-aig-retry-delay", "5001"), ("cf-aig-retry-delay", "-1"),
    ("cf-aig-request-timeout", "0"), ("cf-aig-backoff", "random"),
    ("cf-aig-skip-cache", "maybe"), ("cf-aig-collect-log", "2"),
    ("cf-aig-custom-cost", '{"per_token_in": -1, "per_token_out": 0}'),
    ("cf-aig-custom-cost", "[]"), ("cf-aig-metadata", "{"),
])
def test_bad_values_name_the_header(name: str, value: str) -> None:
    with pytest.raises(InvalidHeader) as ei:
        parse_options({name: value})
    assert name in ei.value.message


def test_cache_ttl_zero_and_bounds_accepted() -> None:
    assert parse_options({"cf-aig-cache-ttl": "0"}).cache_ttl == 0
    assert parse_options({"cf-aig-cache-ttl": "60"}).cache_ttl == 60
    assert parse_options({"cf-cache-ttl": "2592000"}).cache_ttl == 2592000


@given(st.dictionaries(st.one_of(st.text(min_size=1, max_size=8),
                                 st.text(max_size=4).map(lambda t: "cf." + t)),
                       st.one_of(st.text(max_size=5), st.integers(), st.booleans(),
                                 st.floats(allow_nan=False, allow_infinity=False),
                                 st.none()),
                       max_size=9))
def test_metadata_keeps_first_five_non_reserved(meta: dict) -> None:
    out = parse_metadata(json.dumps(meta))
    expected = [k for k, v in meta.items() if not k.startswith("cf.") and v is not None][:5]
    assert list(out) == expected
    assert all(out[k] == as_json_number(meta[k]) for k in out)


def as_json_number(value: object) -> object:
    """A value as read from JSON: an integer beyond 64 bits is read as a double (as
    JavaScript's ``JSON.parse``, so as Cloudflare, reads every number), the rest as sent."""
    if type(value) is int and not -(2**63) <= value < 2**64:
        return float(value)
    return value


def as_received(text: str) -> str:
    """A header value as an ASGI server gives it: the bytes a client sent (UTF-8) read one
    character a byte."""
    return text.encode("utf-8").decode("latin-1")


@given(st.text(min_size=1, max_size=60).filter(lambda t: t.strip() == t and "\r" not in t
                                                and "\n" not in t and "\x00" not in t))
def test_text_options_read_a_header_s_utf_8_bytes_as_text(text: str) -> None:
    options = parse_options({"cf-aig-event-id": as_received(text),
                             "cf-aig-metadata": as_received(json.dumps({"who": text},
                                                                       ensure_ascii=False))})
    assert options.event_id == text
    assert options.metadata == {"who": text}


def test_a_header_value_that_is_not_utf_8_is_kept_as_read() -> None:
    assert parse_options({"cf-aig-event-id": "caf\xe9"}).event_id == "caf\xe9"  # latin-1 é
    assert parse_metadata('{"a": "\xe9"}') == {"a": "\xe9"}


def test_metadata_nested_is_refused() -> None:
    with pytest.raises(InvalidHeader, match="flat"):
        parse_metadata('{"a": [1]}')


def test_pricing_prefix_match_and_cache_rates() -> None:
    r = rates_for("openai", "gpt-4o-mini-2024-07-18")
    assert r == rates_for("openai", "gpt-4o-mini")
    assert rates_for("anthropic", "claude-3-5-haiku-latest") is not None
    assert rates_for("aws-bedrock", "us.anthropic.claude-3-5-haiku-20241022-v1:0") is not None
    assert rates_for("openai", "no-such-model") is None
    u = Usage(prompt_tokens=1000, completion_tokens=100, cached_tokens=400,
              cache_write_tokens=100)
    rates = rates_for("anthropic", "claude-sonnet-4")
    assert rates is not None
    expected = (500 * 3 + 400 * 0.3 + 100 * 3.75 + 100 * 15) / 1e6
    assert cost_of("anthropic", "claude-sonnet-4", u) == pytest.approx(expected)


def test_claude_on_vertex_is_priced_as_anthropic_lists_it() -> None:
    """By the compat name (``anthropic/...``) and by the native path's (``claude-...@date``);
    Gemini on Vertex keeps Vertex's own table."""
    sonnet = rates_for("anthropic", "claude-sonnet-4-5")
    assert sonnet is not None
    assert rates_for("google-vertex-ai", "anthropic/claude-sonnet-4-5@20250929") == sonnet
    assert rates_for("google-vertex-ai", "claude-sonnet-4-5@20250929") == sonnet
    assert rates_for("google-vertex-ai", "google/gemini-2.5-pro") == rates_for(
        "google-vertex-ai", "gemini-2.5-pro") != rates_for("google-ai-studio", "nothing")
    assert rates_for("google-vertex-ai", "meta/llama-3.3-70b") is None


def test_custom_cost_overrides_and_defaults_cache_rates_to_input() -> None:
    rates = parse_custom_cost('{"per_token_in": 0.001, "per_token_out": 0.002}')
    assert rates == Rates(0.001, 0.002, None, None)
    u = Usage(prompt_tokens=10, completion_tokens=5, cached_tokens=4)
    assert cost_of("openai", "anything", u, rates) == pytest.approx(10 * 0.001 + 5 * 0.002)
