"""The shared routing state: capacity slots, quality windows, demotions; interface and rules.

One store holds all of it (Redis for several workers and nodes, in-process for one), so an
authorization costs one round trip (``admit``) and an ended call one more (``finish``):

- ``admit(call_id, routes, now)`` walks the ranked routes in order, removes those whose
  carrier or trunk is at its concurrent-call or calls-per-second limit, claims the probe of a
  demoted carrier (only one call gets it), and takes a concurrent-call slot and a
  calls-per-second count on the first route left, the one the switch will try first.
  A repeated authorization of the same call takes nothing twice.
- ``carried(call_id, carrier, trunk, now)`` moves the slot when accounting says the switch
  completed the call on another route (after a failover).
- ``finish(outcome)`` frees the slot, adds the outcome to its quality bucket and settles a
  probe (lift the demotion or extend it), atomically.
- ``window(now)`` returns the raw window for ``lcr.quality.evaluate``; ``demote`` records the
  demotions a worker decided (the first writer wins). Workers call ``refresh`` every
  ``refresh_interval_s``: reads are never per call.

A slot whose call never reports its end expires after ``slot_ttl_s``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lcr.decision import Route, SkipReason
from lcr.quality import CallOutcome, Pair, QualityBoard, WindowData, evaluate
from lcr.settings import LcrSettings

log = logging.getLogger("ocsd.lcr")


class HotStoreUnavailable(Exception):
    """The routing state store cannot be reached or did not answer in time."""


class AdmitCode:
    """Per-route answers of ``admit`` (the Lua script returns these numbers)."""

    OK = 0
    CARRIER_CALLS = 2
    CARRIER_CPS = 3
    TRUNK_CALLS = 4
    TRUNK_CPS = 5
    PROBE_TAKEN = 6


_DETAILS = {
    AdmitCode.CARRIER_CALLS: (SkipReason.OVER_CAPACITY, "carrier at its concurrent-call limit"),
    AdmitCode.CARRIER_CPS: (SkipReason.OVER_CAPACITY, "carrier at its calls-per-second limit"),
    AdmitCode.TRUNK_CALLS: (SkipReason.OVER_CAPACITY, "trunk at its concurrent-call limit"),
    AdmitCode.TRUNK_CPS: (SkipReason.OVER_CAPACITY, "trunk at its calls-per-second limit"),
    AdmitCode.PROBE_TAKEN: (SkipReason.DEMOTED, "another call is probing it"),
}


@dataclass(frozen=True, slots=True)
class Admission:
    """What ``admit`` decided for each route of a decision."""

    codes: tuple[int, ...]
    selected: int | None
    """The route holding the call's slot (None: none admitted)."""
    removed: list[tuple[int, SkipReason, str]] = field(default_factory=list)

    @classmethod
    def of(cls, codes: Sequence[int], selected: int | None) -> Admission:
        """Build from the per-route codes."""
        removed = [(i, *_DETAILS[code]) for i, code in enumerate(codes) if code != AdmitCode.OK]
        return cls(tuple(codes), selected, removed)


class RoutingStateStore(Protocol):
    """Capacity counters and quality statistics shared by the workers."""

    async def admit(self, call_id: str, routes: Sequence[Route], now: float) -> Admission:
        """Remove routes over capacity, claim probes, take the call's slot (one round trip)."""

    async def carried(self, call_id: str, carrier_id: str, trunk_id: str, now: float) -> None:
        """Move the call's slot to the route the switch really used."""

    async def finish(self, outcome: CallOutcome) -> None:
        """Free the call's slot and record its outcome (one round trip)."""

    async def window(self, now: float) -> WindowData:
        """The quality window's raw buckets and the demotion state."""

    async def demote(self, pairs: Sequence[tuple[Pair, float]]) -> None:
        """Record demotions (pair, until) unless another worker already did."""

    async def concurrent(self) -> dict[str, int]:
        """Concurrent calls per ``c|carrier`` and ``t|trunk`` (for operators and tests)."""

    async def close(self) -> None:
        """Release connections."""


async def refresh(
    store: RoutingStateStore, board: QualityBoard, settings: LcrSettings, now: float
) -> list[tuple[Pair, str]]:
    """Read the window, decide demotions, record them, swap the board's snapshot."""
    data = await store.window(now)
    snapshot, demote = evaluate(data, settings.quality, now)
    if demote:
        until = now + settings.quality.cooldown_s
        await store.demote([(pair, until) for pair, _ in demote])
        for (carrier, group), reason in demote:
            log.warning(
                "carrier demoted", extra={"carrier": carrier, "group": group, "why": reason}
            )
    board.snapshot = snapshot
    return demote
