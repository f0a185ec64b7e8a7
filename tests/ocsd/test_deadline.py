"""One timer cancels the request tasks that outlive their deadline, and only those."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
import uvloop

from ocsd.deadline import DeadlineWatch


async def answer(watch: DeadlineWatch, work_s: float, log: list[str]) -> str:
    log.append("entered")
    try:
        await asyncio.sleep(work_s)
    except asyncio.CancelledError as exc:
        if not watch.absorb(exc):
            log.append("cancelled")
            raise
        return "deadline"
    return "answered"


async def test_a_late_task_is_cancelled_with_the_deadline_and_a_quick_one_is_not() -> None:
    loop = asyncio.get_running_loop()
    watch = DeadlineWatch(loop, 0.05, slack_s=0.01)
    log: list[str] = []
    quick = loop.create_task(answer(watch, 0.0, log))
    late = loop.create_task(answer(watch, 10.0, log))
    watch.add(quick)
    watch.add(late)
    assert len(watch) == 2
    started = time.monotonic()
    assert await quick == "answered"
    assert await late == "deadline"
    assert 0.05 <= time.monotonic() - started < 1.0
    assert not late.cancelling()  # absorbed: the task is not left half-cancelled
    assert len(watch) == 0
    watch.close()


async def test_a_shutdown_cancellation_is_not_taken_for_the_deadline() -> None:
    loop = asyncio.get_running_loop()
    watch = DeadlineWatch(loop, 5.0)
    log: list[str] = []
    task = loop.create_task(answer(watch, 10.0, log))
    watch.add(task)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert log == ["entered", "cancelled"]
    assert len(watch) == 0
    watch.close()


async def stalled_loop_case() -> list[str]:
    loop = asyncio.get_running_loop()
    watch = DeadlineWatch(loop, 0.01, slack_s=0.0)
    log: list[str] = []
    task = loop.create_task(answer(watch, 10.0, log))
    watch.add(task)
    # The loop stalls: the sweep comes due before the task's first step has run.
    time.sleep(0.05)  # noqa: ASYNC251
    log.append(await task)
    watch.close()
    return log


@pytest.mark.parametrize(
    "loop_factory", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"]
)
def test_a_task_whose_deadline_passed_before_it_ran_still_enters_its_body(
    loop_factory: Callable[[], asyncio.AbstractEventLoop],
) -> None:
    # uvloop runs due timers before the callbacks queued earlier: the daemon's loop.
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        assert runner.run(stalled_loop_case()) == ["entered", "deadline"]


async def test_tasks_watched_later_are_swept_in_turn() -> None:
    loop = asyncio.get_running_loop()
    watch = DeadlineWatch(loop, 0.03, slack_s=0.005)
    log: list[str] = []
    results = []
    for _ in range(3):
        task = loop.create_task(answer(watch, 10.0, log))
        watch.add(task)
        results.append(task)
        await asyncio.sleep(0.02)
    assert await asyncio.gather(*results) == ["deadline"] * 3
    assert len(watch) == 0
    watch.close()
