"""Request tasks that must finish within a fixed deadline, watched by one loop timer.

``asyncio.timeout`` around each request arms a loop timer and cancels it again: a heap push,
a handle and a context-manager object per request, which showed in profiles of the call path.
Every request of a server gets the same deadline, so the tasks it watches sit in an
insertion-ordered dict oldest first; a task leaves it when it finishes, and one timer, armed
only while tasks are watched, cancels those past their deadline with ``DEADLINE`` as the
cancellation message. The cancellation arrives at most ``slack_s`` after the deadline.

The request's coroutine turns that cancellation into its timeout answer::

    try:
        outcome = await work()
    except asyncio.CancelledError as exc:
        if not watch.absorb(exc):
            raise  # a shutdown, not the deadline
        ...  # answer as timed out

The watch is also the set of the server's request tasks (``len``, iteration) for draining.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

DEADLINE = "ocsd: answer deadline passed"
"""The cancellation message of a task cancelled for its deadline."""


class DeadlineWatch:
    """The request tasks of one server and the deadline they must meet."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, deadline_s: float, *, slack_s: float | None = None
    ) -> None:
        if deadline_s <= 0:
            raise ValueError("deadline_s must be positive")
        self._loop = loop
        self.deadline_s = deadline_s
        self.slack_s = min(0.05, deadline_s / 10) if slack_s is None else slack_s
        self._tasks: dict[asyncio.Task[Any], float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(list(self._tasks))

    def add(self, task: asyncio.Task[Any]) -> None:
        """Watch a task from now until it finishes or its deadline passes."""
        loop = self._loop
        when = loop.time() + self.deadline_s
        self._tasks[task] = when
        task.add_done_callback(self._discard)
        if self._timer is None:
            self._timer = loop.call_at(when + self.slack_s, self._sweep)

    def absorb(self, error: asyncio.CancelledError) -> bool:
        """True if ``error`` is this watch's deadline (the current task is then uncancelled)."""
        if not error.args or error.args[0] != DEADLINE:
            return False
        task = asyncio.current_task(self._loop)
        if task is not None:
            task.uncancel()
        return True

    def close(self) -> None:
        """Stop the timer (the tasks are the server's to wait for or cancel)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _discard(self, task: asyncio.Task[Any]) -> None:
        self._tasks.pop(task, None)

    def _sweep(self) -> None:
        self._timer = None
        now = self._loop.time()
        tasks = self._tasks
        late: list[asyncio.Task[Any]] = []
        for task, when in tasks.items():
            if when > now:
                break
            late.append(task)
        call_soon = self._loop.call_soon
        for task in late:
            del tasks[task]
            # Not cancelled right here: a task whose first step has not run yet (the loop was
            # stalled) would be cancelled before its coroutine enters its try block. Its first
            # step is already queued, so a callback queued now runs after it.
            call_soon(task.cancel, DEADLINE)
        if tasks:
            oldest = next(iter(tasks.values()))
            self._timer = self._loop.call_at(max(oldest, now) + self.slack_s, self._sweep)
