"""The carrier leg of a call: kept with the session, priced at its end, written to the CDR.

At authorization the charging service stores ``encode_legs(decision)`` in the session (one
short text); when accounting says which carrier carried the call it picks that leg with
``pick_leg`` and prices the real duration on the carrier's terms: the CDR then holds the
carrier, trunk, routing number and carrier cost next to the sell price.
"""

from __future__ import annotations

from dataclasses import dataclass

from lcr.decision import RouteDecision
from rating.billing import RateTerms
from rating.money import Rounding, RoundingScope


@dataclass(frozen=True, slots=True)
class CarrierLeg:
    """One offered route, as much as the end of the call needs."""

    index: int
    carrier_id: str
    trunk_id: str
    group: str
    probe: bool
    currency: str
    terms: RateTerms | None
    routing_number: str = ""

    def cost(self, duration_s: int) -> int | None:
        """What the carrier charges for ``duration_s`` seconds (None: not known)."""
        return None if self.terms is None else self.terms.cost(duration_s)

    def cdr_fields(self, duration_s: int) -> dict[str, object]:
        """The CDR fields of the carrier side (``cdr_writer.record.Cdr`` names)."""
        return {
            "carrier": self.carrier_id,
            "trunk": self.trunk_id,
            "routing_number": self.routing_number,
            "carrier_cost_micros": self.cost(duration_s),
            "carrier_currency": self.currency,
        }


def encode_legs(decision: RouteDecision) -> str:
    """The offered routes as one text for the session state (``|``-separated fields)."""
    parts: list[str] = []
    for route in decision.routes:
        t = route.terms
        terms = (
            ""
            if t is None
            else f"{t.rate_micros},{t.connect_fee_micros},{t.first_block_s},{t.increment_s},"
            f"{t.grace_s},{t.scope.value},{t.mode.value}"
        )
        parts.append(
            f"{route.carrier_id}|{route.trunk_id}|{route.group}|{int(route.probe)}|"
            f"{route.currency}|{terms}"
        )
    return f"{decision.resolution.routing_number}#" + "/".join(parts)


def decode_legs(text: str) -> list[CarrierLeg]:
    """The legs of ``encode_legs``; raises ValueError on anything else."""
    routing, sep, body = text.partition("#")
    if not sep:
        raise ValueError("not an encoded route list")
    legs: list[CarrierLeg] = []
    for index, part in enumerate(body.split("/") if body else (), 1):
        fields = part.split("|")
        if len(fields) != 6:
            raise ValueError(f"route {index}: expected 6 fields")
        carrier, trunk, group, probe, currency, terms_text = fields
        terms = None
        if terms_text:
            r, c, f, i, g, scope, mode = terms_text.split(",")
            terms = RateTerms(
                int(r), int(c), int(f), int(i), int(g), RoundingScope(scope), Rounding(mode)
            )
        legs.append(
            CarrierLeg(index, carrier, trunk, group, probe == "1", currency, terms, routing)
        )
    return legs


def pick_leg(
    legs: list[CarrierLeg], carrier_id: str = "", trunk_id: str = "", index: int = 0
) -> CarrierLeg | None:
    """The leg accounting reported: by 1-based index, else trunk, else carrier, else the first.

    The first route is the one the switch tries first, so it is the best guess when the switch
    reports nothing; a carrier that was not offered gives None.
    """
    if index and 0 < index <= len(legs):
        return legs[index - 1]
    if trunk_id:
        for leg in legs:
            if leg.trunk_id == trunk_id:
                return leg
    if carrier_id:
        for leg in legs:
            if leg.carrier_id == carrier_id:
                return leg
        return None
    return legs[0] if legs else None
