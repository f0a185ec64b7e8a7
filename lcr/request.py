"""What the router is asked about a call."""

from __future__ import annotations

from typing import NamedTuple

from lcr.decision import NumberResolution
from rating.engine import CallPrice


class RouteRequest(NamedTuple):
    """What the router needs to know about a call."""

    account_id: str
    number: str
    """The dialled number, normalised to E.164 digits."""
    at: int
    """The call's start, UTC epoch seconds."""
    tariff_plan_id: str = ""
    """The account's tariff plan (for plans bound to a tariff plan)."""
    calling: str = ""
    price: CallPrice | None = None
    """The customer's price at every level; without it no margin is checked."""
    seed: int = 0
    """A hash of the call id: weighted choices are the same for the same call."""
    resolution: NumberResolution | None = None
    """The portability lookup already made (else the router makes it)."""
