"""What the fraud checks see and what they decide: attempts, usage reports, hits, verdicts.

A ``Verdict`` is a value: the charging service refuses the call when ``verdict.refused`` and
maps ``verdict.refusal`` to its denial code; everything else a hit asks for (alerts, blocking,
suspension, cutting live calls) is carried out by the ``Responder`` off the call's path.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from fraud.rule import Action, Refusal

Value = int | str


class Stage(enum.Enum):
    """When a verdict was reached."""

    ATTEMPT = "attempt"
    """Authorization of a new call: the verdict may refuse it."""
    USAGE = "usage"
    """A usage report (interim or end of call): refusing is moot, the other actions run."""


@dataclass(frozen=True, slots=True)
class CallAttempt:
    """A call asking to start, as the fraud checks see it."""

    account_id: str
    called: str
    """Normalised E.164 digits, no ``+``."""
    now: float
    """Epoch seconds on the daemon's clock."""
    session_id: str = ""
    calling: str = ""
    """Normalised calling number (CLI), when the request carries one."""
    source_ip: str = ""
    """The address the request came from (the switch, SBC or NAS)."""
    caller_ip: str = ""
    """The end user's address, when the switch passes it."""
    peer: str = ""
    """The Diameter peer (Origin-Host) or RADIUS client (NAS) name."""


@dataclass(frozen=True, slots=True)
class CallUsage:
    """What a call used since its previous report; ``final`` when it has ended."""

    account_id: str
    session_id: str
    called: str
    now: float
    spend_micros: int = 0
    """Charged since the previous report, account currency."""
    seconds: int = 0
    """Seconds used since the previous report."""
    final: bool = True
    duration_s: int = 0
    """The whole call's duration (on the final report)."""
    connected: bool = True
    """False when ocsd itself refused the call after the fraud check passed it (rating,
    balance): it leaves the live calls but does not count as a short call."""


@dataclass(frozen=True, slots=True)
class Hit:
    """One rule that tripped, with the values that tripped it."""

    rule_id: str
    actions: tuple[Action, ...]
    refusal: Refusal
    message: str
    values: Mapping[str, Value] = field(default_factory=dict)
    target: str = ""
    """The destination prefix the block action adds for the account."""

    @property
    def refuses(self) -> bool:
        """Whether this hit refuses the call."""
        return Action.REFUSE in self.actions


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of the fraud checks for one attempt or usage report."""

    stage: Stage
    account_id: str
    session_id: str
    called: str
    country: str
    at: float
    hits: tuple[Hit, ...] = ()
    counters: Mapping[str, int] = field(default_factory=dict)
    """The counter values the checks read, by name (for ``ocsd fraud test`` and the audit)."""
    degraded: bool = False
    """The counters could not be read: only the static lists were checked."""

    @property
    def refusal(self) -> Hit | None:
        """The first hit that refuses the call (at an attempt), or None."""
        if self.stage is Stage.ATTEMPT:
            for hit in self.hits:
                if hit.refuses:
                    return hit
        return None

    @property
    def refused(self) -> bool:
        """Whether the call must be refused."""
        return self.refusal is not None

    @property
    def outcome(self) -> str:
        """``refuse``, ``alert`` (rules tripped, the call goes on) or ``allow``."""
        if self.refused:
            return "refuse"
        return "alert" if self.hits else "allow"


@dataclass(frozen=True, slots=True)
class Decision:
    """One hit and what was done about it: the audit entry."""

    at: float
    account_id: str
    rule_id: str
    actions: tuple[Action, ...]
    message: str
    values: Mapping[str, Value]
    stage: Stage
    session_id: str = ""
    called: str = ""
    target: str = ""
    undo: tuple[str, ...] = ()
    """Who can undo each action and how (operator commands)."""
    suppressed: tuple[Action, ...] = ()
    """Actions not repeated because the same one was taken moments ago."""


__all__ = ["CallAttempt", "CallUsage", "Decision", "Hit", "Stage", "Value", "Verdict"]
