"""The one SSE decoder: any split of the byte stream gives the same events."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from crossroads.sse import DONE, SSEDecoder, SSEEvent, encode

STREAM = (b": comment\n"
          b"event: message_start\r\ndata: {\"a\": 1}\r\n\r\n"
          b"data: first line\ndata: second \xc3\xa9 line\n\n"
          b"id: 7\ndata:no-space\n\n"
          b"data: {\"usage\": null}\r\rdata: [DONE]\n\n")
EXPECTED = [SSEEvent("message_start", b'{"a": 1}', None),
            SSEEvent(None, "first line\nsecond é line".encode(), None),
            SSEEvent(None, b"no-space", "7"),
            SSEEvent(None, b'{"usage": null}', "7"),
            SSEEvent(None, b"[DONE]", "7")]


def decode(pieces: list[bytes]) -> list[SSEEvent]:
    dec = SSEDecoder()
    out: list[SSEEvent] = []
    for p in pieces:
        out.extend(dec.feed(p))
    out.extend(dec.flush())
    return out


def test_whole_stream() -> None:
    assert decode([STREAM]) == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=40))
def test_any_split_gives_the_same_events(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(STREAM)]
    pieces = [STREAM[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    assert decode(pieces) == EXPECTED


def test_byte_by_byte() -> None:
    assert decode([STREAM[i:i + 1] for i in range(len(STREAM))]) == EXPECTED


def test_flush_dispatches_an_unterminated_event_and_pending_reports_it() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: tail") == []
    assert dec.pending
    assert dec.flush() == [SSEEvent(None, b"tail", None)]
    assert not dec.pending


@given(st.lists(st.binary(min_size=1).filter(lambda b: b"\n" not in b and b"\r" not in b),
                max_size=10))
def test_encode_decode_round_trip(payloads: list[bytes]) -> None:
    stream = b"".join(encode(p) for p in payloads) + DONE
    events = decode([stream])
    assert [e.data for e in events] == payloads + [b"[DONE]"]
