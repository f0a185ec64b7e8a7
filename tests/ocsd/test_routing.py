"""The charging service's routing holder: the router in force reads the refreshed quality board."""

from __future__ import annotations

from lcr.catalog import Catalog
from lcr.decision import SkipReason
from lcr.model import Binding, BindingKind, Carrier, RouteEntry, RoutePlan
from lcr.quality import Figures, QualityEntry, QualitySnapshot, QualityState
from lcr.quality_store import MemoryRoutingState
from lcr.router import Router, RouteRequest
from lcr.settings import LcrSettings
from ocsd.routing import Routing
from rating.deck import Deck, Rate

T0 = 1_767_225_600


def test_a_router_swapped_in_reads_the_board_the_refresh_writes() -> None:
    settings = LcrSettings(enabled=True)
    routing = Routing(settings, MemoryRoutingState(settings))
    deck = Deck("deck-a", "USD", [Rate("44", "uk", 5_000, 0, 60, 60, 0, 0, None)])
    catalog = Catalog(
        carriers=[Carrier("a", deck_id="deck-a")],
        plans=[RoutePlan("plan", entries=(RouteEntry("44", "a"),))],
        bindings=[Binding(BindingKind.ACCOUNT, "acct", "plan")],
        decks={"deck-a": deck},
    )
    routing.router = Router(catalog, settings)
    call = RouteRequest("acct", "447700900123", T0)
    assert [r.carrier_id for r in routing.router.route(call).routes] == ["a"]
    # What the quality refresh does: swap the board's snapshot.
    demoted = QualityEntry(Figures(50, 0.1, 20.0, 0.3, None), QualityState.DEMOTED, T0 + 600)
    routing.board.snapshot = QualitySnapshot(T0, {("a", "44"): demoted})
    decision = routing.router.route(call)
    assert decision.routes == () and decision.skipped[0].reason is SkipReason.DEMOTED


def test_a_carrier_deck_with_history_routes_on_the_fast_walk_until_its_rates_change() -> None:
    from rating.deck import NEVER

    settings = LcrSettings(enabled=True)
    # The import at T0 ended the old rate and scheduled a new one an hour later.
    old = Rate("44", "uk", 9_000, 0, 60, 60, 0, 0, T0)
    now = Rate("44", "uk", 5_000, 0, 60, 60, 0, T0, T0 + 3600)
    later = Rate("44", "uk", 4_000, 0, 60, 60, 0, T0 + 3600, None)
    deck = Deck("deck-a", "USD", [old, now, later])
    catalog = Catalog(
        carriers=[Carrier("a", deck_id="deck-a")],
        plans=[RoutePlan("plan", entries=(RouteEntry("44", "a"),))],
        bindings=[Binding(BindingKind.ACCOUNT, "acct", "plan")],
        decks={"deck-a": deck},
    )
    router = Router(catalog, settings, now=T0 + 10)
    assert router.rates_change_at == T0 + 3600  # when the daemon builds the index again
    for at, micros in ((T0 + 10, 5_000), (T0 + 3600, 4_000), (T0 - 1, 9_000)):
        [route] = router.route(RouteRequest("acct", "447700900123", at)).routes
        assert route.rate_micros == micros, at
    rebuilt = Router(catalog, settings, reuse=router, now=T0 + 3600)
    assert rebuilt.rates_change_at == NEVER
    [route] = rebuilt.route(RouteRequest("acct", "447700900123", T0 + 4000)).routes
    assert route.rate_micros == 4_000
