"""Routing benchmarks: route decisions per second and memory, on one core.

    python bench/lcr.py [--carriers 5] [--prefixes 1000000] [--calls 200000] [--ported 5000000]
                        [--history]

Builds N carrier decks of P distinct prefixes each (country codes followed by 1-8 random
digits, different per carrier), a route plan with every carrier for every country code, and
prices each call first at the customer's chain (as the charging service does) and then
routes it: portability lookup, plan, 5 carrier deck lookups, typical-call costs, margin guard
at each level, ranking, number and caller-ID translation. Also builds a ported-number index of
R rows and reports its memory and lookup rate. ``--history``: carrier decks as they are after a
second import (every rate ended and replaced, a few new prices scheduled), which the router
walks on the rates in force.

Rates are given in wall-clock time (``*_per_s``, ``*_us``) and in CPU time of this process
(``*_cpu``): on a shared machine the CPU figures are the ones to compare between runs, and
``route_decisions_per_s_cpu_best_round`` (the fastest of the rounds of 10,000 calls) the
least disturbed by other work.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lcr.catalog import Catalog
from lcr.model import Binding, BindingKind, Carrier, RouteEntry, RoutePlan
from lcr.portability import PortabilityBuilder
from lcr.router import Router, RouteRequest
from lcr.settings import LcrSettings
from ocsd.daemon import tune_gc
from rating.deck import Deck, Rate
from rating.engine import Party, Rater
from rating.plan import TariffPlan

COUNTRY_CODES = ["1", "7", "20", "27", "31", "33", "34", "39", "44", "49", "52", "55", "61"]
COUNTRY_CODES += ["62", "63", "81", "86", "90", "91", "92", "234", "254", "351", "880", "971"]


ROUND = 10_000
"""Calls per timed round of route decisions."""


def rss_mb() -> float:
    """Peak resident memory of this process in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


AT = 1_767_225_600
"""The calls' start time."""


def make_deck(
    deck_id: str, prefixes: int, rnd: random.Random, base_rate: int, history: bool = False
) -> Deck:
    """A deck of ``prefixes`` distinct prefixes; with ``history``, as a deck is after its
    second import: every rate ended a day before the calls and replaced, and one prefix in a
    hundred with a new price scheduled a month after them."""
    names = {cc: f"country {cc}" for cc in COUNTRY_CODES}
    seen: set[str] = set()
    rates: list[Rate] = []
    for cc in COUNTRY_CODES:
        seen.add(cc)
        rates.append(Rate(cc, names[cc], base_rate, 0, 60, 60, 0, 0, None))
    while len(rates) < prefixes:
        cc = rnd.choice(COUNTRY_CODES)
        prefix = cc + str(rnd.randrange(10 ** rnd.randint(1, 8)))
        if prefix in seen:
            continue
        seen.add(prefix)
        per_min = base_rate + rnd.randrange(-base_rate // 2, base_rate)
        rates.append(Rate(prefix, names[cc], per_min, rnd.choice((0, 0, 1000)), 60, 60, 0, 0, None))
    if history:
        imported, scheduled = AT - 86_400, AT + 30 * 86_400
        dated: list[Rate] = []
        for rate in rates:
            dated.append(replace(rate, effective_to=imported, rate_micros=rate.rate_micros + 1))
            if rnd.random() < 0.01:
                dated.append(replace(rate, effective_from=imported, effective_to=scheduled))
                dated.append(
                    replace(rate, effective_from=scheduled, rate_micros=rate.rate_micros - 1)
                )
            else:
                dated.append(replace(rate, effective_from=imported))
        rates = dated
    return Deck(deck_id, "USD", rates)


def main() -> None:
    """Run the benchmark and print figures as JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--carriers", type=int, default=5)
    parser.add_argument("--prefixes", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--ported", type=int, default=5_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--history",
        action="store_true",
        help="carrier decks after a second import: ended rates, and a few scheduled",
    )
    parser.add_argument(
        "--default-gc",
        action="store_true",
        help="keep Python's collector settings instead of the daemon's",
    )
    args = parser.parse_args()
    rnd = random.Random(args.seed)
    figures: dict[str, object] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
    }

    start_rss = rss_mb()
    t0 = time.perf_counter()
    decks = {
        f"deck-c{i}": make_deck(
            f"deck-c{i}", args.prefixes, rnd, 8_000 + 1_000 * i, history=args.history
        )
        for i in range(args.carriers)
    }
    decks["sell"] = make_deck("sell", 1_000, rnd, 40_000)
    figures["deck_build_s"] = round(time.perf_counter() - t0, 1)
    figures["decks_rss_mib"] = round(rss_mb() - start_rss, 0)

    carriers = [
        Carrier(f"c{i}", deck_id=f"deck-c{i}", tech_prefix="99") for i in range(args.carriers)
    ]
    entries = [RouteEntry(cc, c.carrier_id) for cc in COUNTRY_CODES for c in carriers]
    catalog = Catalog(
        carriers=carriers,
        plans=[RoutePlan("wholesale", entries=tuple(entries))],
        bindings=[Binding(BindingKind.ACCOUNT, "acct", "wholesale")],
        decks=decks,
    )
    t0 = time.perf_counter()
    router = Router(catalog, LcrSettings(), home_currency="USD", now=AT)
    figures["router_build_s"] = round(time.perf_counter() - t0, 1)
    rater = Rater(decks, {"retail": TariffPlan("retail", deck_id="sell")})
    chain = (Party("op", "acct", "retail", "USD"),)
    at = AT
    figures["history"] = args.history
    numbers = [rnd.choice(COUNTRY_CODES) + str(rnd.randrange(10**9, 10**10)) for _ in range(10_000)]
    prices = [rater.price(chain, n, at) for n in numbers]
    requests = [
        RouteRequest("acct", n, at, calling="441632960001", price=p, seed=i)
        for i, (n, p) in enumerate(zip(numbers, prices, strict=True))
    ]

    # The daemon collects the youngest generation less often and freezes what it loaded
    # (ocsd.daemon.tune_gc, then gc.freeze once ready): measure under the same settings.
    gc.collect()
    if not args.default_gc:
        tune_gc()
        gc.freeze()
    figures["gc"] = "default" if args.default_gc else "daemon"
    routed = 0
    route = router.route
    # Rounds of 10,000 calls: the fastest round's CPU time is the least disturbed figure.
    best_cpu = float("inf")
    t0 = time.perf_counter()
    c0 = time.process_time()
    for start in range(0, args.calls, ROUND):
        r0 = time.process_time()
        for i in range(start, min(start + ROUND, args.calls)):
            routed += len(route(requests[i % len(requests)]).routes)
        if start + ROUND <= args.calls:
            best_cpu = min(best_cpu, (time.process_time() - r0) / ROUND)
    cpu = time.process_time() - c0
    elapsed = time.perf_counter() - t0
    if best_cpu == float("inf"):
        best_cpu = cpu / args.calls
    figures["route_decisions_per_s"] = round(args.calls / elapsed)
    figures["route_decisions_per_s_cpu"] = round(args.calls / cpu)
    figures["route_decisions_per_s_cpu_best_round"] = round(1 / best_cpu)
    figures["route_decision_us"] = round(elapsed / args.calls * 1e6, 1)
    figures["route_decision_us_cpu"] = round(cpu / args.calls * 1e6, 1)
    figures["routes_per_decision"] = round(routed / args.calls, 2)

    # What routing adds to an authorization: the decision (portability lookup included) next
    # to the rating the authorization does anyway.
    t0 = time.perf_counter()
    c0 = time.process_time()
    for i in range(args.calls // 4):
        rater.price(chain, numbers[i % len(numbers)], at)
    cpu = time.process_time() - c0
    figures["rating_us"] = round((time.perf_counter() - t0) / (args.calls // 4) * 1e6, 1)
    figures["rating_us_cpu"] = round(cpu / (args.calls // 4) * 1e6, 1)
    figures["added_to_authorization_us"] = figures["route_decision_us"]
    figures["added_to_authorization_us_cpu"] = figures["route_decision_us_cpu"]

    del decks, catalog, router, rater, requests, prices
    gc.collect()
    before = rss_mb()
    t0 = time.perf_counter()
    builder = PortabilityBuilder()
    operators = [f"net{i}" for i in range(40)]
    lrns = [str(447400000000 + i) for i in range(3000)]
    for _ in range(args.ported):
        builder.add(
            str(rnd.randrange(447000000000, 448000000000)), rnd.choice(lrns), rnd.choice(operators)
        )
    index = builder.build()
    figures["portability_rows"] = len(index)
    figures["portability_build_s"] = round(time.perf_counter() - t0, 1)
    figures["portability_index_mib"] = round(index.nbytes() / 2**20, 1)
    figures["portability_peak_rss_growth_mib"] = round(rss_mb() - before, 0)
    probe = [str(rnd.randrange(447000000000, 448000000000)) for _ in range(100_000)]
    t0 = time.perf_counter()
    hits = sum(1 for n in probe if index.lookup(n) is not None)
    figures["portability_lookups_per_s"] = round(len(probe) / (time.perf_counter() - t0))
    figures["portability_hit_rate"] = round(hits / len(probe), 3)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
