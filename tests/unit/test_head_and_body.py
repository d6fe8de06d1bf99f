"""HeadAndBody: a held head goes out with the next write, or at the end of the response."""

from __future__ import annotations

from typing import Any

from crossroads.server.http_protocol import HeadAndBody


class Recorder:
    """Records what reaches the socket, one entry per write call."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, parts: Any) -> None:
        self.writes.append(b"".join(parts))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def holding(head: bytes = b"head") -> tuple[Recorder, HeadAndBody]:
    """A connection's writer that was asked to hold, then given ``head``."""
    t = Recorder()
    hb = HeadAndBody(t)  # type: ignore[arg-type]
    hb.hold()
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
    hb.hold()
    hb.flush()  # the response ended without writing (the client went away)
    hb.write(b"next")
    assert t.writes == [b"next"]


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
    hb = HeadAndBody(Recorder())  # type: ignore[arg-type]
    assert hb.get_extra_info("peername") == "info:peername"
