"""HeadAndBody: a held head goes out with the next write, or at the end of the response; the
app's checked header lines go into the head before its blank line. ``head_lines``: which
headers may be written as they are."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossroads.server.http_protocol import HeadAndBody
from crossroads.server.respond import head_lines


class Recorder:
    """Records what reaches the socket, one entry per write call."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, parts: Any) -> None:
        self.writes.append(b"".join(parts))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> str:
        return f"info:{name}"

    def abort(self) -> None:
        self.aborted = True


def holding(head: bytes = b"head") -> tuple[Recorder, HeadAndBody]:
    """A connection's writer that was asked to hold, then given ``head``."""
    t = Recorder()
    hb = HeadAndBody(t)  # type: ignore[arg-type]
    hb.head(b"", True)
    hb.write(head)
    return t, hb


def test_held_head_is_sent_with_the_body_in_one_write() -> None:
    t, hb = holding(b"HEAD\r\n\r\n")
    assert t.writes == []
    hb.write(b"body")
    assert t.writes == [b"HEAD\r\n\r\nbody"]
    hb.write(b"more")  # nothing held any more: written as it comes
    hb.flush()
    assert t.writes == [b"HEAD\r\n\r\nbody", b"more"]


def test_without_hold_every_write_goes_out_at_once() -> None:
    t = Recorder()
    hb = HeadAndBody(t)  # type: ignore[arg-type]
    hb.write(b"head")
    hb.write(b"body")
    assert t.writes == [b"head", b"body"]


def test_flush_sends_a_head_whose_body_never_came() -> None:
    """An answer to HEAD: uvicorn writes no body; the end of the response sends the head."""
    t, hb = holding()
    hb.flush()
    assert t.writes == [b"head"]
    hb.flush()  # nothing left
    assert t.writes == [b"head"]


def test_hold_without_a_write_does_not_hold_a_later_response() -> None:
    t = Recorder()
    hb = HeadAndBody(t)  # type: ignore[arg-type]
    hb.head(b"x-a: 1\r\n", True)
    hb.flush()  # the response ended without writing (the client went away)
    hb.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert t.writes == [b"HTTP/1.1 200 OK\r\n\r\n"]  # neither held nor given the old lines


def test_large_body_is_joined_by_the_transport_not_copied() -> None:
    t, hb = holding()
    body = b"x" * 100_000
    hb.write(body)
    assert t.writes == [b"head" + body]


def test_close_sends_what_is_held_then_closes_and_a_closing_transport_gets_nothing() -> None:
    t, hb = holding()
    hb.close()
    assert t.writes == [b"head"] and t.closed and hb.is_closing()
    t2, hb2 = holding()
    t2.closed = True  # the connection was lost meanwhile
    hb2.flush()
    assert t2.writes == []


def test_other_transport_calls_pass_through() -> None:
    t = Recorder()
    hb = HeadAndBody(t)  # type: ignore[arg-type]
    assert hb.get_extra_info("peername") == "info:peername"
    hb.abort()
    assert t.aborted


def test_lines_go_before_the_blank_line_of_the_head_and_only_into_it() -> None:
    t = Recorder()
    hb = HeadAndBody(t)  # type: ignore[arg-type]
    hb.head(b"x-a: 1\r\nx-b: 2\r\n", False)  # not held: a stream's head goes out at once
    hb.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    hb.write(b"\r\n\r\n")  # a body that looks like a head's end is left alone
    assert t.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-a: 1\r\nx-b: 2\r\n\r\n",
                        b"\r\n\r\n"]


def test_held_head_with_lines_goes_out_with_the_body() -> None:
    t = Recorder()
    hb = HeadAndBody(t)  # type: ignore[arg-type]
    hb.head(b"x-a: 1\r\n", True)
    hb.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert t.writes == []
    hb.write(b"{}")
    assert t.writes == [b"HTTP/1.1 200 OK\r\nx-a: 1\r\n\r\n{}"]


def test_head_lines_keeps_framing_headers_for_the_server() -> None:
    lines, framing = head_lines([(b"cf-aig-log-id", b"abc"), (b"content-length", b"2"),
                                 (b"server-timing", b"upstream;dur=1.00"),
                                 (b"transfer-encoding", b"chunked"), (b"connection", b"close"),
                                 (b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")]) or (b"", [])
    assert lines == (b"cf-aig-log-id: abc\r\nserver-timing: upstream;dur=1.00\r\n"
                     b"set-cookie: a=1\r\nset-cookie: b=2\r\n")
    assert framing == [(b"content-length", b"2"), (b"transfer-encoding", b"chunked"),
                       (b"connection", b"close")]


@pytest.mark.parametrize("header", [
    (b"x-a", b"1\r\nset-cookie: evil=1"),  # a line break would let a value add headers
    (b"x-a", b"1\n"), (b"x-a", b"\x00"), (b"x-a", b"\x7f"),
    (b"x a", b"1"), (b"x:a", b"1"), (b"", b"1"), (b"X-Upper", b"1"), (b"x-a\r\n", b"1"),
])
def test_head_lines_refuses_what_is_not_a_valid_header_as_it_is(
        header: tuple[bytes, bytes]) -> None:
    """None: the headers then go to the server, whose own checks report (or lower-case) them."""
    assert head_lines([(b"x-ok", b"fine"), header]) is None


def test_head_lines_allows_tab_and_non_ascii_in_values() -> None:
    assert head_lines([(b"x-a", b"a\tb \xe9")]) == (b"x-a: a\tb \xe9\r\n", [])


_TCHAR = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"


_NAMES = st.one_of(st.sampled_from([b"content-length", b"connection", b"cf-aig-log-id",
                                     b"server-timing"]), st.binary(max_size=12),
                   st.text("abc-~!'", max_size=8).map(str.encode))


@given(st.lists(st.tuples(_NAMES, st.binary(max_size=20)), max_size=6))
def test_head_lines_accepts_exactly_the_headers_a_parser_reads_back(
        headers: list[tuple[bytes, bytes]]) -> None:
    """Whatever it accepts reads back, line by line, as the same headers; whatever it refuses
    has a name that is not a lower-case token or a value with a control character (framing
    headers are the server's to check)."""
    split = head_lines(headers)
    ordinary = [h for h in headers
                if h[0] not in (b"content-length", b"transfer-encoding", b"connection")]
    valid = all(n and not n.translate(None, _TCHAR)
                and not any(c < 0x20 and c != 9 or c == 0x7F for c in v) for n, v in ordinary)
    assert (split is not None) == valid
    if split is not None:
        lines = split[0].split(b"\r\n")
        assert lines[-1] == b""
        assert [tuple(line.split(b": ", 1)) for line in lines[:-1]] == ordinary
