"""Small builders for routing tests: decks, carriers, plans and a priced call."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from lcr.catalog import Catalog
from lcr.model import Binding, BindingKind, Carrier, RouteEntry, RoutePlan, Trunk
from lcr.quality import QualityBoard
from lcr.router import Router, RouteRequest
from lcr.settings import LcrSettings
from rating.currency import ExchangeRate, FxTable
from rating.deck import Deck, Rate
from rating.engine import CallPrice, Party, Rater
from rating.plan import Markup, TariffPlan

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def rate(prefix: str, per_min: int, fee: int = 0, billing: tuple[int, int] = (60, 60)) -> Rate:
    """A rate in micro-units per minute."""
    return Rate(prefix, f"dest {prefix}", per_min, fee, billing[0], billing[1], 0, 0, None)


def deck(deck_id: str, rates: Sequence[Rate], currency: str = "USD") -> Deck:
    """A deck of rates in force since the epoch."""
    return Deck(deck_id, currency, rates)


def carrier(carrier_id: str, **kw: object) -> Carrier:
    """A carrier priced by the deck named after it."""
    kw.setdefault("deck_id", f"deck-{carrier_id}")
    return Carrier(carrier_id, **kw)  # type: ignore[arg-type]


def sell_price(
    number: str,
    per_min: int = 20_000,
    markups: Sequence[Decimal] = (),
    currency: str = "USD",
    fx: FxTable | None = None,
) -> CallPrice:
    """The customer's price: the operator sells at ``per_min``, each reseller marks up."""
    decks = {"sell": deck("sell", [rate(number[:2], per_min)])}
    plans = {"wholesale": TariffPlan("wholesale", deck_id="sell")}
    chain = [Party("op", "r0" if markups else "acct", "wholesale", currency)]
    for index, percent in enumerate(markups):
        plan_id = f"m{index}"
        plans[plan_id] = TariffPlan(plan_id, markup=Markup(percent))
        buyer = "acct" if index == len(markups) - 1 else f"r{index + 1}"
        chain.append(Party(chain[-1].buyer, buyer, plan_id, currency))
    return Rater(decks, plans, fx).price(chain, number, T0, check_margins=False)


def router(
    carriers: Sequence[Carrier],
    carrier_decks: dict[str, Deck],
    entries: Sequence[RouteEntry],
    *,
    strategy: str = "least_cost",
    trunks: Sequence[Trunk] = (),
    settings: LcrSettings | None = None,
    plan_kw: dict[str, object] | None = None,
    board: QualityBoard | None = None,
    fx: FxTable | None = None,
    **catalog_kw: object,
) -> Router:
    """A router whose default plan holds ``entries``."""
    plan = RoutePlan("plan", strategy=strategy, entries=tuple(entries), **(plan_kw or {}))  # type: ignore[arg-type]
    bindings = catalog_kw.pop("bindings", ())
    catalog = Catalog(
        carriers=carriers,
        trunks=trunks,
        plans=[plan],
        bindings=bindings or [Binding(BindingKind.ACCOUNT, "acct", "plan")],  # type: ignore[arg-type]
        decks=carrier_decks,
        **catalog_kw,  # type: ignore[arg-type]
    )
    return Router(catalog, settings or LcrSettings(), fx=fx, home_currency="USD", quality=board)


def request(number: str = "447700900123", **kw: object) -> RouteRequest:
    """A call of account ``acct`` at T0."""
    kw.setdefault("at", T0)
    return RouteRequest("acct", number, **kw)  # type: ignore[arg-type]


def usd_eur(rate_text: str = "0.5") -> FxTable:
    """1 EUR = ``rate_text`` ... published as EUR->USD."""
    return FxTable([ExchangeRate("EUR", "USD", Decimal(rate_text), 0)])
