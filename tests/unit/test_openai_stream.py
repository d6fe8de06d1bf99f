"""The OpenAI-style stream relay: its pass-through fast path must answer byte for byte as the
full SSE decoder does, for any split of the upstream bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossroads.errors import UpstreamProtocolError
from crossroads.providers.openai_compat import OpenAIStream


def chunk(i: int, finish: str | None = None) -> bytes:
    reason = "null" if finish is None else f'"{finish}"'
    return (b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,'
            b'"delta":{"content":"w%d "},"finish_reason":%s}],"usage":null}\n\n'
            % (i, reason.encode()))


USAGE = (b'data: {"id":"c1","object":"chat.completion.chunk","choices":[],'
         b'"usage":{"prompt_tokens":12,"completion_tokens":20,"total_tokens":32}}\n\n')
PLAIN = b"".join(chunk(i) for i in range(5)) + chunk(5, "stop") + USAGE + b"data: [DONE]\n\n"
# the same stream with what only the full decoder handles: a comment, an event line, CRLF
ODD = b": keep-alive\n\n" + PLAIN.replace(b"\n\n", b"\r\n\r\n", 2) + b""


def relay(pieces: list[bytes], include_usage: bool, slow: bool = False
          ) -> tuple[bytes, int, int]:
    s = OpenAIStream(include_usage)
    if slow:
        s._plain = False
    out = b"".join(s.feed(p) for p in pieces) + s.close()
    return out, s.usage.prompt_tokens, s.usage.completion_tokens


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False) if b > a]


@pytest.mark.parametrize("include_usage", [True, False])
def test_plain_stream_passes_through_and_reads_usage(include_usage: bool) -> None:
    out, tin, tout = relay([PLAIN], include_usage)
    assert (tin, tout) == (12, 20)
    expected = PLAIN if include_usage else PLAIN.replace(USAGE, b"")
    assert out == expected


@given(cuts=st.lists(st.integers(min_value=0, max_value=len(ODD) + 5), max_size=30),
       include_usage=st.booleans(), odd=st.booleans())
def test_fast_path_equals_full_decoder_for_any_split(cuts: list[int], include_usage: bool,
                                                     odd: bool) -> None:
    data = ODD if odd else PLAIN
    pieces = split(data, cuts)
    assert relay(pieces, include_usage) == relay(pieces, include_usage, slow=True)


def test_stream_that_never_finishes_is_an_error_on_both_paths() -> None:
    cut = PLAIN[: PLAIN.index(b"data: ", 40)]  # two chunks, no finish reason, no [DONE]
    for slow in (False, True):
        s = OpenAIStream(True)
        s._plain = not slow
        s.feed(cut)
        with pytest.raises(UpstreamProtocolError):
            s.close()


def test_error_event_mid_stream_is_raised_on_the_fast_path() -> None:
    s = OpenAIStream(True)
    s.feed(chunk(0))
    with pytest.raises(UpstreamProtocolError, match="error mid-stream"):
        s.feed(b'data: {"error":{"message":"overloaded"}}\n\n')


def test_plain_streams_stay_on_the_fast_path_and_odd_ones_leave_it() -> None:
    plain, odd = OpenAIStream(True), OpenAIStream(True)
    plain.feed(PLAIN)
    odd.feed(ODD)
    assert plain._plain and not odd._plain
