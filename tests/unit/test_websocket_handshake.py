"""What a WebSocket handshake says: the browser's subprotocol token, and which paths are the
universal endpoint's (the rest of ``/v1/...`` is the realtime passthrough)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from crossroads.server.call import BROWSER_TOKEN, subprotocols
from crossroads.server.universal_socket import is_universal_path

NAME = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters=","),
               min_size=1, max_size=12)


def test_subprotocols() -> None:
    assert subprotocols("") == ([], None)
    assert subprotocols("realtime, cf-aig-authorization.cxr_abc, openai-beta.realtime-v1") == (
        ["realtime", "openai-beta.realtime-v1"], "cxr_abc")
    assert subprotocols(" cf-aig-authorization.t1 ") == ([], "t1")


@given(st.lists(NAME, max_size=5), st.one_of(st.none(), NAME))
def test_subprotocols_split_the_token_from_the_rest(others: list[str], token: str | None
                                                    ) -> None:
    others = [p for p in others if not p.startswith(BROWSER_TOKEN)]
    offered = others + ([BROWSER_TOKEN + token] if token is not None else [])
    assert subprotocols(", ".join(offered)) == (others, token)


def test_universal_paths() -> None:
    assert is_universal_path("/v1/acct/gw") and is_universal_path("/v1/acct/gw/")
    for path in ("/v1/acct", "/v1/acct/", "/v1//gw", "/v1/acct/gw/openai",
                 "/v1/acct/gw/openai/realtime", "/v1/acct/gw//"):
        assert not is_universal_path(path), path
