"""Token helpers: the remembered digest equals the digest, stays bounded; bearer parsing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from crossroads import tokens


@given(st.lists(st.text(min_size=1, max_size=60), min_size=1, max_size=50))
def test_presented_digest_is_the_digest(presented: list[str]) -> None:
    for token in presented + presented:  # each twice: computed, then remembered
        assert tokens.presented_digest(token) == tokens.digest(token)


def test_presented_digests_are_bounded() -> None:
    for i in range(tokens._PRESENTED_MAX * 3 + 7):
        token = f"cxr_made-up-{i}"
        assert tokens.presented_digest(token) == tokens.digest(token)
        assert len(tokens._PRESENTED) <= tokens._PRESENTED_MAX


def test_bearer() -> None:
    assert tokens.bearer("Bearer abc") == "abc"
    assert tokens.bearer("bearer abc ") == "abc"
    assert tokens.bearer("BEARER abc") == "abc"
    assert tokens.bearer("Bearer   ") is None
    assert tokens.bearer("Basic abc") is None
    assert tokens.bearer("abc") is None
    assert tokens.bearer("") is None
    assert tokens.bearer(None) is None
