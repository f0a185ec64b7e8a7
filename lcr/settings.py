"""Settings of least-cost and quality routing, composed into ``Config.lcr`` by ``ocsd``."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal


@dataclass(frozen=True, slots=True)
class QualitySettings:
    """The sliding window of call outcomes per carrier and destination, and demotion."""

    window_s: int = 900
    """Outcomes older than this no longer count (15 minutes)."""
    bucket_s: int = 60
    """The window is kept in buckets of this many seconds (it slides bucket by bucket)."""
    min_samples: int = 20
    """Attempts needed before a carrier's figures can demote it."""
    min_asr: float = 0.2
    """Answer-seizure ratio (answered / attempts) below which a carrier is demoted; 0: off."""
    min_ner: float = 0.5
    """Network effectiveness ratio below which a carrier is demoted; 0: off."""
    min_acd_s: int = 0
    """Average duration of answered calls below which a carrier is demoted; 0: off."""
    max_pdd_ms: int = 0
    """Average post-dial delay above which a carrier is demoted; 0: off."""
    cooldown_s: int = 300
    """A demoted carrier is skipped this long, then one probe call is let through."""
    refresh_interval_s: float = 5.0
    """How often a worker reads the shared statistics (never per call)."""
    prior_asr: float = 0.5
    """Assumed ASR of a carrier with fewer than ``min_samples`` attempts (quality ranking)."""
    prior_acd_s: int = 120
    """Assumed ACD of a carrier with fewer than ``min_samples`` attempts."""

    def __post_init__(self) -> None:
        if self.bucket_s <= 0 or self.window_s < self.bucket_s:
            raise ValueError("bucket_s must be positive and window_s at least one bucket")
        if self.window_s % self.bucket_s:
            raise ValueError("window_s must be a whole number of buckets (bucket_s)")
        if self.min_samples < 1 or self.cooldown_s <= 0 or self.refresh_interval_s <= 0:
            raise ValueError("min_samples, cooldown_s and refresh_interval_s must be positive")
        for name in ("min_asr", "min_ner", "prior_asr"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.min_acd_s < 0 or self.max_pdd_ms < 0 or self.prior_acd_s < 0:
            raise ValueError("min_acd_s, max_pdd_ms and prior_acd_s must not be negative")


@dataclass(frozen=True, slots=True)
class CapacitySettings:
    """Shared counters of concurrent calls and calls per second per carrier and trunk."""

    slot_ttl_s: int = 14_400
    """A call whose end is never reported frees its slot after this long."""

    def __post_init__(self) -> None:
        if self.slot_ttl_s <= 0:
            raise ValueError("slot_ttl_s must be positive")


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    """How the ranked routes are handed to the switch."""

    radius_routes: bool = True
    """Put the routes in the RADIUS Access-Accept (Cisco-AVPair entries)."""
    radius_format: Literal["ocsd", "sippy", "both"] = "ocsd"
    """``ocsd``: ``ocsd-route-N=...`` entries; ``sippy``: ``h323-ivr-in=Routing:...``."""
    diameter_routes: bool = False
    """Add the vendor-specific OCSD-Route AVPs to the Diameter CCA (off: standard peers)."""
    diameter_vendor_id: int = 32473
    """Vendor-Id of the route AVPs; 32473 is IANA's example enterprise number (RFC 5612):
    set your own Private Enterprise Number in production."""

    def __post_init__(self) -> None:
        if not 0 < self.diameter_vendor_id < 2**32:
            raise ValueError("diameter_vendor_id must be a 32-bit enterprise number")


@dataclass(frozen=True, slots=True)
class LcrSettings:
    """Least-cost and quality routing."""

    enabled: bool = False
    """Route calls (and refuse those with no route). Off: ocsd rates and charges only."""
    require_plan: bool = False
    """Refuse calls of accounts that no route plan applies to (else they go unrouted)."""
    default_route_plan: str = ""
    """The route plan of accounts and tariff plans without their own; empty: none."""
    typical_duration_s: int = 120
    """The call length whose full cost (connection fee, first block, increments) ranks
    carriers and is checked against the price; a route plan may set its own."""
    margin_check_durations_s: tuple[int, ...] = ()
    """Further call lengths the margin must hold at (e.g. [6, 600]); empty: typical only."""
    min_margin_micros: int = 0
    """Least margin per call, in micro-units of the operator's currency."""
    min_margin_percent: Decimal = Decimal(0)
    """Least margin as a percentage of what each level pays."""
    max_routes: int = 5
    """Routes handed to the switch per call."""
    portability_mode: Literal["replace", "prefix"] = "replace"
    """How a ported number's routing number is used for rating and routing: ``replace``
    (an LRN, the number to rate on) or ``prefix`` (a routing prefix put before the number)."""
    quality: QualitySettings = field(default_factory=QualitySettings)
    capacity: CapacitySettings = field(default_factory=CapacitySettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)

    def __post_init__(self) -> None:
        if self.typical_duration_s <= 0:
            raise ValueError("typical_duration_s must be positive")
        if any(d <= 0 for d in self.margin_check_durations_s):
            raise ValueError("margin_check_durations_s must be positive")
        if self.min_margin_micros < 0 or self.min_margin_percent < 0:
            raise ValueError("min_margin_micros and min_margin_percent must not be negative")
        if self.min_margin_percent >= 100:
            raise ValueError("min_margin_percent must be below 100")
        if self.max_routes < 1:
            raise ValueError("max_routes must be at least 1")
