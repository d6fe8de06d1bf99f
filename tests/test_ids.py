import time
import uuid

from hypothesis import given
from hypothesis import strategies as st

from crossroads.ids import LogIds, uuid7


@given(st.integers(min_value=0, max_value=2**48 - 1))
def test_uuid7_layout(ms: int) -> None:
    u = uuid.UUID(uuid7(ms))
    assert u.version == 7
    assert u.variant == uuid.RFC_4122
    assert u.int >> 80 == ms


def test_uuid7_sorts_by_time_and_is_unique() -> None:
    ids = [uuid7(1_700_000_000_000 + i) for i in range(100)]
    assert ids == sorted(ids)
    assert len({uuid7(5) for _ in range(1000)}) == 1000


def test_log_ids_sort_in_the_order_made() -> None:
    """Ids made one after another in the same millisecond (and beyond) sort in the order they
    were made: a log listed by id lists requests in order."""
    new_id = LogIds().next
    before = time.time_ns() // 1_000_000
    ids = [new_id() for _ in range(20_000)]
    after = time.time_ns() // 1_000_000
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for text in ids[:: 997]:
        u = uuid.UUID(text)
        assert u.version == 7 and u.variant == uuid.RFC_4122
        assert before <= u.int >> 80 <= after + 1  # +1: a step past the last id may carry


def test_uuid7_from_the_clock_keeps_the_layout_and_the_time() -> None:
    before = time.time_ns() // 1_000_000
    u = uuid.UUID(uuid7())
    assert u.version == 7 and u.variant == uuid.RFC_4122
    assert before <= u.int >> 80 <= time.time_ns() // 1_000_000
