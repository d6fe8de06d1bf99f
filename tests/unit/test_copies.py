"""What a relay keeps of the pieces it sends: the log's copy cut at the cap, the cache's all."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from crossroads.server.answers import Copies


@given(st.lists(st.binary(max_size=40), max_size=30), st.integers(min_value=0, max_value=300),
       st.booleans())
def test_logged_copy_is_the_stream_cut_at_the_cap(pieces: list[bytes], cap: int,
                                                  cached: bool) -> None:
    copies = Copies(cap, cached)
    for piece in pieces:
        copies.add(piece)
    assert copies.logged() == b"".join(pieces)[:cap]
    assert sum(map(len, copies.kept)) < cap + 40 or not copies.kept  # stops keeping at the cap
    if cached:
        assert copies.whole == pieces
    else:
        assert copies.whole is None
