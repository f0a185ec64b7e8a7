"""The counters behind the velocity and spend rules, and the store interface that keeps them.

The engine says *what* to read and change as a ``CounterPlan`` (a few operations on named
counters of one account); a store runs the whole plan atomically in one step — one Lua call
on Redis, one synchronous pass in the embedded store — and answers one integer per operation.

Counters:

- sliding windows (``WINDOW``): a sum over the last ``window_s`` seconds, kept in buckets of
  ``window_s / buckets`` seconds (the window slides by one bucket); ``add`` is added first;
- live calls (``LIVE_ADD``, ``LIVE_TOUCH``, ``LIVE_REMOVE``, ``LIVE_COUNT``): a set of session
  ids, each with an expiry so a call whose end is never reported leaves by itself; the answer
  is the number of live calls (``LIVE_COUNT`` adds ``add`` to it and changes nothing);
- sets (``SET_TEST``, ``SET_SIZE``, ``SET_ADD``): the countries an account has called, each
  remembered for ``window_s`` after the last call to it; ``SET_NEW`` answers 1 when its member
  is not in the set and the set holds at least ``add`` members (a first call to a country,
  as a gate), else 0.

Each operation may carry ``trip_at``: the store counts the operations whose value reached it
(the *gate*) and, when the gate tripped, takes the attempt back out of the live calls. A
caller that folds the counter step into another atomic step (the balance reservation) skips
that step when the gate tripped.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class OpKind(enum.Enum):
    """What one counter operation does; the value is its code in the Lua script."""

    WINDOW = "W"
    LIVE_ADD = "L+"
    LIVE_TOUCH = "L~"
    LIVE_REMOVE = "L-"
    LIVE_COUNT = "L#"
    SET_TEST = "S?"
    SET_SIZE = "S#"
    SET_ADD = "S+"
    SET_NEW = "S!"


@dataclass(frozen=True, slots=True)
class CounterOp:
    """One operation on one counter of the plan's account."""

    kind: OpKind
    name: str
    """The counter's name within the account, e.g. ``calls:60``, ``live``, ``countries``."""
    window_s: int = 0
    """Window length (``WINDOW``); time to live of a live call or of the set (others)."""
    add: int = 0
    member: str = ""
    trip_at: int = -1
    """Gate threshold: the operation trips when its value is at least this (-1: never)."""
    group: str = ""
    """Windows only: ``""`` for the account's own, else the destination country they belong
    to (a store may keep each country's windows apart, to expire them on their own)."""
    label: str = field(init=False, repr=False, compare=False)
    """The key of this operation's value in ``CounterValues``."""
    code: str = field(init=False, repr=False, compare=False)
    """The kind's code (``kind.value``)."""
    spec: str = field(init=False, repr=False, compare=False)
    """``window_ms|add|trip_at|arg`` (arg: the name of a window, else the member): the
    operation as the Redis script reads it. These three are worked out once: most operations
    come from plans the engine keeps, and every check reads them."""

    def __post_init__(self) -> None:
        kind = self.kind
        if kind is OpKind.SET_TEST or kind is OpKind.SET_ADD:
            label = f"{self.name}?{self.member}"
        elif kind is OpKind.SET_SIZE:
            label = f"{self.name}#"
        elif kind is OpKind.SET_NEW:
            label = f"{self.name}!{self.member}"
        else:
            label = self.name
        arg = self.name if kind is OpKind.WINDOW else self.member
        object.__setattr__(self, "label", label)
        object.__setattr__(self, "code", kind.value)
        object.__setattr__(self, "spec", f"{self.window_s * 1000}|{self.add}|{self.trip_at}|{arg}")


@dataclass(frozen=True, slots=True)
class CounterPlan:
    """The operations of one check or usage report, on one account's counters."""

    account_id: str
    now_ms: int
    ops: tuple[CounterOp, ...]
    buckets: int = 12
    """Buckets per sliding window."""


@dataclass(frozen=True, slots=True)
class CounterValues:
    """What a store answered for a plan."""

    values: Mapping[str, int] = field(default_factory=dict)
    """By ``CounterOp.label``."""
    gate_trips: int = 0
    live_registered: bool = False
    """The attempt is in the live calls (it was added and the gate did not take it out)."""

    def get(self, label: str, default: int = 0) -> int:
        """One value."""
        return self.values.get(label, default)

    @classmethod
    def from_reply(cls, plan: CounterPlan, reply: Sequence[int]) -> CounterValues:
        """Decode the store's reply: gate trips, live flag, then one value per operation."""
        values = {op.label: int(v) for op, v in zip(plan.ops, reply[2:], strict=True)}
        return cls(values, int(reply[0]), bool(reply[1]))


EMPTY = CounterValues()


class CounterStoreUnavailable(Exception):
    """The counter store cannot be reached or did not answer in time."""


class CounterStore(Protocol):
    """Runs counter plans atomically; shared by every worker that uses the same backend."""

    async def apply(self, plan: CounterPlan) -> CounterValues:
        """Run the plan's operations in one atomic step and return their values."""

    async def peek(self, plan: CounterPlan) -> CounterValues:
        """The values the plan would read, changing nothing (``ocsd fraud test``)."""

    async def live_sessions(self, account_id: str, now_ms: int) -> list[str]:
        """The sessions an account has up (what ``terminate_sessions`` has to cut)."""

    async def maintain(self, now: float) -> None:
        """Periodic housekeeping (the embedded store drops expired counters and saves)."""

    async def close(self) -> None:
        """Release connections (the embedded store writes its state)."""


@runtime_checkable
class FoldingCounterStore(Protocol):
    """A counter store whose step another script on the same server can run (Redis)."""

    def fold(self, plan: CounterPlan) -> tuple[list[str], list[Any]]:
        """The keys and arguments of the plan's step, for the folding script."""


def read_only(plan: CounterPlan) -> CounterPlan:
    """The plan with every change removed: windows add nothing, live and set ops only read."""
    ops: list[CounterOp] = []
    for op in plan.ops:
        if op.kind is OpKind.WINDOW:
            ops.append(CounterOp(op.kind, op.name, op.window_s, 0, "", op.trip_at, op.group))
        elif op.kind in (OpKind.LIVE_ADD, OpKind.LIVE_TOUCH, OpKind.LIVE_REMOVE):
            # Count the attempt as if it were added, as the real check would.
            extra = 1 if op.kind is OpKind.LIVE_ADD else 0
            ops.append(CounterOp(OpKind.LIVE_COUNT, op.name, op.window_s, extra, "", op.trip_at))
        elif op.kind is OpKind.SET_ADD:
            ops.append(CounterOp(OpKind.SET_TEST, op.name, op.window_s, 0, op.member))
        else:
            ops.append(op)
    return CounterPlan(plan.account_id, plan.now_ms, tuple(ops), plan.buckets)


def as_if_applied(plan: CounterPlan, read: CounterValues) -> CounterValues:
    """The values ``read`` by ``read_only(plan)`` with the plan's additions counted, as if the
    plan had run (what ``peek`` answers)."""
    values = dict(read.values)
    trips = 0
    for op in plan.ops:
        if op.kind is OpKind.WINDOW and op.add:
            values[op.label] = values.get(op.label, 0) + op.add
        if 0 <= op.trip_at <= values.get(op.label, 0):
            trips += 1
    return CounterValues(values, trips, False)


__all__ = [
    "EMPTY",
    "as_if_applied",
    "CounterOp",
    "CounterPlan",
    "CounterStore",
    "CounterStoreUnavailable",
    "CounterValues",
    "FoldingCounterStore",
    "OpKind",
    "read_only",
]
