"""The disconnect sweep: one timer for all requests in flight, driven by a fake loop."""

from __future__ import annotations

from typing import Any

from crossroads.server.dataplane import DisconnectSweep, DisconnectWatch


class FakeLoop:
    def __init__(self) -> None:
        self.timers: list[tuple[float, Any]] = []
        self.tasks: list[Any] = []

    def call_later(self, delay: float, fn: Any) -> object:
        self.timers.append((delay, fn))
        return object()

    def create_task(self, coro: Any) -> object:
        coro.close()  # never run: the test only checks that a watcher was started
        self.tasks.append(coro)
        return _Task()

    def fire(self) -> None:
        _, fn = self.timers.pop(0)
        fn()


class _Task:
    cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Out:
    finished = False


def watch(sweep: DisconnectSweep) -> DisconnectWatch:
    async def receive() -> dict:
        return {"type": "http.disconnect"}
    w = DisconnectWatch(receive, _Task(), Out(), sweep)  # type: ignore[arg-type]
    w.arm()
    return w


def test_one_timer_for_many_requests_and_none_when_idle() -> None:
    loop = FakeLoop()
    sweep = DisconnectSweep(loop)  # type: ignore[arg-type]
    ws = [watch(sweep) for _ in range(5)]
    assert len(loop.timers) == 1 and loop.timers[0][0] == DisconnectSweep.DELAY
    for w in ws:
        w.disarm()
    loop.fire()  # nothing in flight: the timer is not armed again
    assert loop.timers == [] and loop.tasks == []
    watch(sweep)
    assert len(loop.timers) == 1


def test_watcher_starts_only_for_requests_running_a_whole_tick() -> None:
    loop = FakeLoop()
    sweep = DisconnectSweep(loop)  # type: ignore[arg-type]
    slow, quick = watch(sweep), watch(sweep)
    loop.fire()  # first tick: both armed less than DELAY ago, none started
    assert loop.tasks == [] and len(loop.timers) == 1
    quick.disarm()
    late = watch(sweep)  # armed after the first tick
    loop.fire()  # second tick: ``slow`` has run DELAY..2*DELAY, gets its watcher
    assert len(loop.tasks) == 1 and slow._watcher is not None and quick._watcher is None
    assert late._watcher is None
    loop.fire()
    assert late._watcher is not None and len(loop.tasks) == 2
    slow.disarm()
    assert slow._watcher.cancelled  # type: ignore[attr-defined]
    late._out.finished = True  # type: ignore[attr-defined]
    late.disarm()
    assert loop.timers == []  # nothing left in flight after the third tick


def test_finished_answer_gets_no_watcher() -> None:
    loop = FakeLoop()
    sweep = DisconnectSweep(loop)  # type: ignore[arg-type]
    w = watch(sweep)
    w._out.finished = True  # type: ignore[attr-defined]
    loop.fire()
    loop.fire()
    assert loop.tasks == [] and w._watcher is None
