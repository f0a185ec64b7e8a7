"""The charging service end to end on both balance stores: money, CDRs, duplicates, denials.

Hand-computed values use the rates of ``tests/ocsd/world.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from cdr_writer.record import CdrKind
from ocsd.charging import ChargingSettings, _pack
from ocsd.charging_types import (
    ChargingRequest,
    Denial,
    DenialCode,
    EventAction,
    Grant,
    RequestType,
    UnitRequest,
)
from ocsd.directory import Candidate
from ocsd.master import IdentityKind
from tests.ocsd.world import World, make_world, world_fixture

ALICE = (Candidate(IdentityKind.E164, "441632960001"),)


@pytest.fixture(
    params=[
        pytest.param("embedded", id="embedded"),
        pytest.param("redis", id="redis", marks=pytest.mark.integration),
    ]
)
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    if request.param == "redis":
        request.getfixturevalue("redis_available")
    async for value in world_fixture(request.param, tmp_path):
        yield value


@pytest.fixture(
    params=[
        pytest.param("embedded", id="embedded"),
        pytest.param("redis", id="redis", marks=pytest.mark.integration),
    ]
)
async def bounded_world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    """A world whose record queue is full once it holds one record (of alice's shard)."""
    if request.param == "redis":
        request.getfixturevalue("redis_available")
    async for value in world_fixture(request.param, tmp_path, max_record_queue=1):
        yield value


def req(
    kind: RequestType,
    number: int,
    *,
    session: str = "s1",
    identities: tuple[Candidate, ...] = ALICE,
    to: str = "+442071234567",
    requested: int | None = 600,
    used: int = 0,
    action: EventAction | None = None,
    units: int = 0,
) -> ChargingRequest:
    return ChargingRequest(
        session_id=session,
        request_number=number,
        request_type=kind,
        protocol="test",
        peer="switch-1",
        identities=identities,
        calling="441632960001",
        called=to,
        units=(UnitRequest(requested_s=requested, used_s=used, units=units),),
        action=action,
    )


def granted(outcome: object) -> int:
    assert isinstance(outcome, Grant), outcome
    return outcome.units[0].granted_s


async def test_a_full_call_moves_exactly_its_cost_and_writes_one_cdr(world: World) -> None:
    await world.topup("alice", 1_000_000)
    start = await world.service.handle(req(RequestType.INITIAL, 0))
    assert granted(start) == 600
    assert not start.units[0].final  # type: ignore[union-attr]
    world.clock.advance(95)
    update = await world.service.handle(req(RequestType.UPDATE, 1, used=95))
    assert granted(update) == 600
    world.clock.advance(30)
    stop = await world.service.handle(req(RequestType.TERMINATE, 2, used=30, requested=None))
    # 125 s on 60/60 bills 180 s at 0.010/min: 0.03.
    assert isinstance(stop, Grant)
    assert stop.cost_micros == 30_000 and stop.debited_micros == 30_000
    assert await world.balance("alice") == 970_000
    cdrs = await world.cdrs()
    assert len(cdrs) == 1
    cdr, record = cdrs[0]
    assert (cdr.kind, cdr.duration_s, cdr.billed_s, cdr.charge_micros) == (
        CdrKind.CALL,
        125,
        180,
        30_000,
    )
    assert (cdr.prefix, cdr.destination, cdr.called, cdr.account_id) == (
        "4420",
        "UK London",
        "442071234567",
        "alice",
    )
    assert record.amount_micros == 30_000 and record.balance_micros == 970_000
    assert any("prefix 4420" in step for step in cdr.trace)


async def test_a_full_record_queue_refuses_new_calls_and_lets_calls_up_end(
    bounded_world: World,
) -> None:
    world = bounded_world
    await world.topup("alice", 1_000_000)
    await world.cdrs()  # the writer keeps up: the top-up's record is stored
    assert granted(await world.service.handle(req(RequestType.INITIAL, 0))) == 600
    debit = req(RequestType.EVENT, 0, session="e1", to="33123", requested=60)
    assert isinstance(await world.service.handle(debit), Grant)
    # The records database stops taking records: the event's CDR stays queued.
    with capture_logs() as logs:
        refused = await world.service.handle(req(RequestType.INITIAL, 0, session="s2"))
    assert isinstance(refused, Denial) and refused.code is DenialCode.SERVICE_UNAVAILABLE
    denied = [e for e in logs if e["event"] == "denied"]
    assert [(e["log_level"], e["session_id"], e["store_reason"]) for e in denied] == [
        ("info", "s2", "record_queue_full")
    ]
    assert refused.message == "record_queue_full"
    again = await world.service.handle(
        req(RequestType.EVENT, 0, session="e2", to="33123", requested=60)
    )
    assert isinstance(again, Denial) and again.code is DenialCode.SERVICE_UNAVAILABLE
    state = await world.store.get_account("alice")
    assert state is not None and state.sessions == 1, "the refused call holds nothing"
    held = state.held_micros
    world.clock.advance(95)
    assert granted(await world.service.handle(req(RequestType.UPDATE, 1, used=95))) == 600
    world.clock.advance(30)
    stop = await world.service.handle(req(RequestType.TERMINATE, 2, used=30, requested=None))
    assert isinstance(stop, Grant) and stop.debited_micros == 30_000
    state = await world.store.get_account("alice")
    assert state is not None and (state.sessions, state.held_micros) == (0, 0) and held > 0
    cdrs = [cdr for cdr, _ in await world.cdrs()]
    assert [(c.session_id, c.charge_micros) for c in cdrs] == [("e1", 20_000), ("s1", 30_000)]
    assert await world.balance("alice") == 1_000_000 - 20_000 - 30_000
    # Drained: calls are taken again.
    assert granted(await world.service.handle(req(RequestType.INITIAL, 0, session="s2"))) == 600


async def test_repeated_requests_move_money_once_and_answer_the_same(world: World) -> None:
    await world.topup("alice", 1_000_000)
    first = await world.service.handle(req(RequestType.INITIAL, 0))
    again = await world.service.handle(req(RequestType.INITIAL, 0))
    assert isinstance(again, Grant) and again.duplicate and granted(again) == granted(first)
    update = await world.service.handle(req(RequestType.UPDATE, 1, used=60))
    other_worker = world.new_service()
    repeat = await other_worker.handle(req(RequestType.UPDATE, 1, used=60))
    assert isinstance(repeat, Grant) and repeat.duplicate
    assert granted(repeat) == granted(update)
    stop = await world.service.handle(req(RequestType.TERMINATE, 2, used=10))
    for service in (world.service, other_worker):
        repeat_stop = await service.handle(req(RequestType.TERMINATE, 2, used=10))
        assert isinstance(repeat_stop, Grant) and repeat_stop.duplicate
        assert repeat_stop.cost_micros == stop.cost_micros == 20_000  # type: ignore[union-attr]
    assert await world.balance("alice") == 980_000
    assert len(await world.cdrs()) == 1


async def test_the_grant_is_what_the_balance_pays_for_and_final(world: World) -> None:
    await world.topup("alice", 25_000)
    outcome = await world.service.handle(req(RequestType.INITIAL, 0))
    # 0.025 pays two minutes at 0.010 (the third would cost 0.030).
    assert granted(outcome) == 120
    assert outcome.units[0].final  # type: ignore[union-attr]


async def test_concurrent_sessions_share_the_balance(world: World) -> None:
    await world.topup("alice", 25_000)
    first = await world.service.handle(req(RequestType.INITIAL, 0, session="a"))
    second = await world.service.handle(req(RequestType.INITIAL, 0, session="b"))
    assert granted(first) == 120
    # Nothing left that pays for the first minute of another call.
    assert isinstance(second, Denial) and second.code is DenialCode.CREDIT_LIMIT_REACHED


@pytest.mark.parametrize(
    ("identities", "to", "code"),
    [
        pytest.param(
            (Candidate(IdentityKind.E164, "999"),),
            "4420",
            DenialCode.USER_UNKNOWN,
            id="unknown-user",
        ),
        pytest.param(
            (Candidate(IdentityKind.USERNAME, "mallory"),),
            "4420",
            DenialCode.ACCOUNT_SUSPENDED,
            id="suspended",
        ),
        pytest.param(ALICE, "+8613800000000", DenialCode.NO_RATE, id="no-rate"),
        pytest.param(ALICE, "not a number", DenialCode.INVALID_NUMBER, id="bad-number"),
        pytest.param(ALICE, "4420", DenialCode.CREDIT_LIMIT_REACHED, id="no-money"),
    ],
)
async def test_refusals_have_their_reason(
    world: World, identities: tuple[Candidate, ...], to: str, code: DenialCode
) -> None:
    outcome = await world.service.handle(req(RequestType.INITIAL, 0, identities=identities, to=to))
    assert isinstance(outcome, Denial) and outcome.code is code
    assert await world.cdrs() == []


async def test_an_update_for_an_unknown_session(world: World) -> None:
    outcome = await world.service.handle(req(RequestType.UPDATE, 1, session="nope", used=5))
    assert isinstance(outcome, Denial) and outcome.code is DenialCode.UNKNOWN_SESSION


async def test_postpaid_goes_down_to_its_credit_limit(world: World) -> None:
    bob = (Candidate(IdentityKind.USERNAME, "bob"),)
    # Credit limit 1.00 at 0.010/min: 100 minutes.
    start = await world.service.handle(req(RequestType.INITIAL, 0, identities=bob, requested=3600))
    assert granted(start) == 3600
    other = await world.service.handle(
        req(RequestType.INITIAL, 0, session="s2", identities=bob, requested=3600)
    )
    assert granted(other) == 2400 and other.units[0].final  # type: ignore[union-attr]
    await world.service.handle(req(RequestType.TERMINATE, 1, identities=bob, used=3600))
    await world.service.handle(
        req(RequestType.TERMINATE, 1, session="s2", identities=bob, used=2400)
    )
    assert await world.balance("bob") == -1_000_000


async def test_a_prepaid_overrun_stops_at_zero_and_the_cdr_says_so(world: World) -> None:
    await world.topup("alice", 25_000)
    await world.service.handle(req(RequestType.INITIAL, 0))
    stop = await world.service.handle(req(RequestType.TERMINATE, 1, used=600))
    assert isinstance(stop, Grant)
    assert stop.cost_micros == 100_000 and stop.debited_micros == 25_000
    assert await world.balance("alice") == 0
    [(cdr, record)] = await world.cdrs()
    assert cdr.charge_micros == 100_000 and record.amount_micros == 25_000


async def test_events(world: World) -> None:
    await world.topup("alice", 1_000_000)
    # France 1/1 at 0.020/min: 90 s cost 0.030.
    price = await world.service.handle(
        req(
            RequestType.EVENT,
            0,
            session="e0",
            to="33123",
            requested=90,
            action=EventAction.PRICE_ENQUIRY,
        )
    )
    assert isinstance(price, Grant) and price.cost_micros == 30_000
    check = await world.service.handle(
        req(
            RequestType.EVENT,
            0,
            session="e1",
            to="33123",
            requested=90,
            action=EventAction.CHECK_BALANCE,
        )
    )
    assert isinstance(check, Grant) and check.enough_credit is True
    debit = await world.service.handle(
        req(
            RequestType.EVENT,
            0,
            session="e2",
            to="33123",
            requested=90,
            action=EventAction.DIRECT_DEBIT,
        )
    )
    again = await world.service.handle(
        req(
            RequestType.EVENT,
            0,
            session="e2",
            to="33123",
            requested=90,
            action=EventAction.DIRECT_DEBIT,
        )
    )
    assert isinstance(debit, Grant) and debit.debited_micros == 30_000
    assert isinstance(again, Grant) and again.duplicate
    refund = await world.service.handle(
        req(RequestType.EVENT, 0, session="e3", to="33123", requested=30, action=EventAction.REFUND)
    )
    assert isinstance(refund, Grant) and refund.cost_micros == 10_000
    assert await world.balance("alice") == 1_000_000 - 30_000 + 10_000
    kinds = sorted(cdr.kind.value for cdr, _ in await world.cdrs())
    assert kinds == ["event", "refund"]


async def test_a_silent_session_is_reaped_with_a_cdr_for_what_it_used(world: World) -> None:
    await world.topup("alice", 1_000_000)
    await world.service.handle(req(RequestType.INITIAL, 0))
    world.clock.advance(60)
    await world.service.handle(req(RequestType.UPDATE, 1, used=60))
    world.clock.advance(600)
    assert await world.service.reap() == 0
    world.clock.advance(2 * 600 + 60)
    assert await world.service.reap() == 1
    assert await world.balance("alice") == 990_000
    [(cdr, _)] = await world.cdrs()
    assert cdr.kind is CdrKind.REAPED and cdr.duration_s == 60 and "reaped" in cdr.flags
    late = await world.service.handle(req(RequestType.UPDATE, 2, used=60))
    assert isinstance(late, Denial) and late.code is DenialCode.UNKNOWN_SESSION


async def test_a_bundle_pays_first_then_money(world: World) -> None:
    carol = (Candidate(IdentityKind.USERNAME, "carol"),)
    await world.topup("carol", 1_000_000)
    start = await world.service.handle(req(RequestType.INITIAL, 0, identities=carol))
    assert granted(start) >= 120
    update = await world.service.handle(req(RequestType.UPDATE, 1, identities=carol, used=120))
    assert granted(update) > 0
    stop = await world.service.handle(req(RequestType.TERMINATE, 2, identities=carol, used=30))
    # 150 s bills 180 s: 120 s from the bundle, 60 s at 0.010/min.
    assert isinstance(stop, Grant) and stop.cost_micros == 10_000
    [(cdr, _)] = await world.cdrs()
    assert (cdr.bundle_id, cdr.bundle_s, cdr.billed_s) == ("uk", 120, 180)


async def test_a_stop_without_its_start_is_charged_once(world: World) -> None:
    await world.topup("alice", 1_000_000)
    stop = req(RequestType.TERMINATE, 5, session="lost", used=61)
    first = await world.service.handle(stop)
    assert isinstance(first, Grant) and first.cost_micros == 20_000
    for service in (world.service, world.new_service()):
        again = await service.handle(stop)
        assert isinstance(again, Grant) and again.duplicate
    assert await world.balance("alice") == 980_000
    [(cdr, _)] = await world.cdrs()
    assert "no_start" in cdr.flags


async def test_another_worker_continues_a_session(world: World) -> None:
    await world.topup("alice", 1_000_000)
    await world.service.handle(req(RequestType.INITIAL, 0))
    other = world.new_service()
    update = await other.handle(req(RequestType.UPDATE, 1, used=60))
    assert granted(update) == 600
    # The first worker's view is now stale: it must not count the first minute twice.
    stop = await world.service.handle(req(RequestType.TERMINATE, 2, used=60))
    assert isinstance(stop, Grant) and stop.cost_micros == 20_000


def test_spend_periods_follow_the_accounts_midnight_across_dst() -> None:
    import tempfile

    from ocsd.charging import ChargingService
    from tests.ocsd.world import build_master, load_directory

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "r.sqlite3"
        build_master(path)
        directory = load_directory(path)
    periods = ChargingService._periods
    # London: 25 October 2026, clocks go back at 02:00 BST. 23:30 UTC on the 25th is 23:30 GMT
    # (still the 25th); 23:30 UTC on the 24th is 00:30 BST on the 25th.
    before = datetime(2026, 10, 24, 22, 59, 59, tzinfo=UTC).timestamp()
    after = datetime(2026, 10, 24, 23, 0, 0, tzinfo=UTC).timestamp()
    end = datetime(2026, 10, 25, 23, 59, 59, tzinfo=UTC).timestamp()
    assert periods(None, directory, "Europe/London", before) == ("2026-10-24", "2026-10")  # type: ignore[arg-type]
    assert periods(None, directory, "Europe/London", after) == ("2026-10-25", "2026-10")  # type: ignore[arg-type]
    assert periods(None, directory, "Europe/London", end) == ("2026-10-25", "2026-10")  # type: ignore[arg-type]


async def test_the_daily_cap_starts_again_at_local_midnight_across_dst(world: World) -> None:
    from dataclasses import replace

    account = world.directory.accounts["alice"]
    await world.store.put_account(replace(account.limits(False), daily_cap_micros=20_000))
    await world.topup("alice", 1_000_000)

    def at(*fields: int) -> None:
        world.clock.now = datetime(*fields, tzinfo=UTC).timestamp()

    async def call(session: str, seconds: int) -> object:
        start = await world.service.handle(req(RequestType.INITIAL, 0, session=session))
        if isinstance(start, Grant):
            stop = req(RequestType.TERMINATE, 1, session=session, used=seconds, requested=None)
            assert isinstance(await world.service.handle(stop), Grant)
        return start

    # Europe/London. 24 October, 23:40 BST: two minutes at 0.010/min use up the 0.02 cap,
    # so the grant is two minutes and the next call of the same day is refused.
    at(2026, 10, 24, 22, 40)
    assert granted(await call("d1", 120)) == 120
    at(2026, 10, 24, 22, 55)
    refused = await call("d2", 60)
    assert isinstance(refused, Denial) and refused.code is DenialCode.SPEND_CAP_REACHED
    # 00:00:30 BST on the 25th (23:00:30 UTC on the 24th): a new local day.
    at(2026, 10, 24, 23, 0, 30)
    assert granted(await call("d3", 120)) == 120
    # The clocks went back at 02:00 BST: 23:30 UTC on the 25th is 23:30 GMT, still the 25th
    # (a fixed UTC+1 would already be on the 26th).
    at(2026, 10, 25, 23, 30)
    refused = await call("d4", 60)
    assert isinstance(refused, Denial) and refused.code is DenialCode.SPEND_CAP_REACHED
    at(2026, 10, 26, 0, 0, 30)
    assert granted(await call("d5", 60)) == 120
    assert await world.balance("alice") == 1_000_000 - 2 * 20_000 - 10_000


# -- late repeats of a stop: the closed-session horizon ----------------------------------

WINDOW_S = ChargingSettings().duplicate_window_s
HORIZON_S = ChargingSettings().closed_horizon_s


async def test_a_stop_repeated_after_the_duplicate_window_moves_no_money(world: World) -> None:
    await world.topup("alice", 1_000_000)
    await world.service.handle(req(RequestType.INITIAL, 0))
    world.clock.advance(61)
    stop = req(RequestType.TERMINATE, 1, used=61)
    first = await world.service.handle(stop)
    assert isinstance(first, Grant) and (first.cost_micros, first.debited_micros) == (
        20_000,
        20_000,
    )
    # a NAS buffer or a proxy's detail file: the same stop, minutes, hours, a day later
    closed_at = world.clock()
    for later in (WINDOW_S + 100, 3_600, 86_400, HORIZON_S - 60):
        world.clock.now = closed_at + later
        for service in (world.service, world.new_service()):
            again = await service.handle(stop)
            assert isinstance(again, Grant) and again.duplicate, (later, again)
            assert (again.cost_micros, again.debited_micros) == (20_000, 20_000)
    assert await world.balance("alice") == 980_000
    assert len(await world.cdrs()) == 1


async def test_a_stop_without_start_repeated_after_the_window_moves_no_money(
    world: World,
) -> None:
    await world.topup("alice", 1_000_000)
    stop = req(RequestType.TERMINATE, 5, session="lost", used=61)
    first = await world.service.handle(stop)
    assert isinstance(first, Grant) and first.cost_micros == 20_000
    world.clock.advance(WINDOW_S + 100)
    again = await world.new_service().handle(stop)
    assert isinstance(again, Grant) and again.duplicate
    assert (again.cost_micros, again.debited_micros) == (20_000, 20_000)
    assert await world.balance("alice") == 980_000
    assert len(await world.cdrs()) == 1


async def test_after_the_horizon_the_same_stop_is_charged_as_new(world: World) -> None:
    await world.topup("alice", 1_000_000)
    stop = req(RequestType.TERMINATE, 5, session="lost", used=61)
    await world.service.handle(stop)
    # The store forgets a closed session after the horizon (the Redis store up to an hour
    # later): a stop arriving later still is a stop without start, charged.
    world.clock.advance(HORIZON_S + 3_600 + 1)
    late = await world.new_service().handle(stop)
    assert isinstance(late, Grant) and not late.duplicate and late.debited_micros == 20_000
    assert await world.balance("alice") == 960_000
    assert len(await world.cdrs()) == 2


@pytest.mark.parametrize("later", [pytest.param(60, id="soon"), pytest.param(7_200, id="hours")])
async def test_a_late_stop_of_a_reaped_session_moves_no_money(world: World, later: int) -> None:
    await world.topup("alice", 1_000_000)
    await world.service.handle(req(RequestType.INITIAL, 0))
    world.clock.advance(60)
    await world.service.handle(req(RequestType.UPDATE, 1, used=60))
    world.clock.advance(2 * 1_800 + 60)
    assert await world.service.reap() == 1
    assert await world.balance("alice") == 990_000
    # The real stop comes after all, with the real duration: the reaper charged what was
    # reported before it, and the session stays closed.
    world.clock.advance(later)
    late = await world.new_service().handle(req(RequestType.TERMINATE, 2, used=3_000))
    assert isinstance(late, Denial) and late.code is DenialCode.UNKNOWN_SESSION
    assert late.message == "session already closed"
    assert await world.balance("alice") == 990_000
    [(cdr, _)] = await world.cdrs()
    assert cdr.kind is CdrKind.REAPED


@pytest.mark.parametrize(
    "later",
    [
        pytest.param(60, id="within-the-window"),
        pytest.param(WINDOW_S + 100, id="after-the-window"),
        pytest.param(HORIZON_S - 60, id="at-the-horizon"),
    ],
)
async def test_an_initial_request_repeated_after_its_call_closed_opens_nothing(
    world: World, later: int
) -> None:
    await world.topup("alice", 1_000_000)
    start = req(RequestType.INITIAL, 0)
    assert granted(await world.service.handle(start)) == 600
    world.clock.advance(61)
    stop = await world.service.handle(req(RequestType.TERMINATE, 1, used=61))
    assert isinstance(stop, Grant) and stop.debited_micros == 20_000
    # The CCR-I again, retransmitted (T flag) after a failover, to the worker that had the
    # call and to another one.
    world.clock.advance(later)
    await world.other_call_ends()
    start = replace(start, repeated=True)
    for service in (world.service, world.new_service()):
        with capture_logs() as logs:
            again = await service.handle(start)
        assert isinstance(again, Denial), again
        assert (again.code, again.message, again.account_id, again.duplicate) == (
            DenialCode.UNKNOWN_SESSION,
            "session already closed",
            "alice",
            False,
        )
        closed = [e for e in logs if e.get("reason") == "session_closed"]
        assert [(e["event"], e["log_level"], e["session_id"]) for e in closed] == [
            ("denied", "debug", "s1")
        ]
        # Repeats of the repeat are answered from the worker's memory.
        repeat = await service.handle(start)
        assert isinstance(repeat, Denial) and repeat.duplicate
        assert (repeat.code, repeat.message) == (again.code, again.message)
        assert not service.has_session("s1")
    state = await world.store.get_account("alice")
    assert state is not None
    assert (state.balance_micros, state.held_micros, state.sessions) == (980_000, 0, 0)
    # Nothing was opened for the reaper to end with a second CDR.
    world.clock.advance(4 * 3_600)
    assert await world.service.reap() == 0
    assert await world.balance("alice") == 980_000
    assert [cdr.session_id for cdr in await world.cdrs_of("alice")] == ["s1"]


@pytest.mark.parametrize(
    ("repeated", "later"),
    [
        # The store forgets a closed session after the horizon (the Redis store up to an
        # hour later): even a repeat then opens it as a new call.
        pytest.param(True, HORIZON_S + 3_600 + 1, id="a-repeat-after-the-horizon"),
        # Session ids are unique (RFC 6733 §8.8): past the duplicate window only a request
        # the peer marks as a repeat is looked up among closed sessions.
        pytest.param(False, WINDOW_S + 1, id="unmarked-after-the-window"),
    ],
)
async def test_an_initial_request_on_a_closed_session_id_opens_it_again(
    world: World, repeated: bool, later: int
) -> None:
    await world.topup("alice", 1_000_000)
    start = replace(req(RequestType.INITIAL, 0), repeated=repeated)
    await world.service.handle(start)
    world.clock.advance(61)
    await world.service.handle(req(RequestType.TERMINATE, 1, used=61))
    world.clock.advance(later)
    await world.other_call_ends()
    assert granted(await world.new_service().handle(start)) == 600


def test_the_horizon_is_at_least_the_duplicate_window() -> None:
    assert HORIZON_S >= 86_400
    ChargingSettings(closed_horizon_s=0)  # markers off
    with pytest.raises(ValueError, match="closed_horizon_s"):
        ChargingSettings(duplicate_window_s=600, closed_horizon_s=300)


async def test_a_late_stop_on_the_worker_that_still_holds_a_session_another_reaped(
    world: World,
) -> None:
    await world.topup("alice", 1_000_000)
    await world.service.handle(req(RequestType.INITIAL, 0))
    world.clock.advance(60)
    await world.service.handle(req(RequestType.UPDATE, 1, used=60))
    world.clock.advance(2 * 1_800 + 60)
    assert await world.new_service().reap() == 1
    late = await world.service.handle(req(RequestType.TERMINATE, 2, used=3_000))
    assert isinstance(late, Denial) and late.message == "session already closed"
    assert await world.balance("alice") == 990_000
    assert len(await world.cdrs()) == 1


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.text()
    | st.binary(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(msgpack_values)
def test_the_shared_packer_writes_what_packb_writes(value: object) -> None:
    assert _pack(value) == msgpack.packb(value, use_bin_type=True)


def test_a_value_the_packer_refuses_leaves_nothing_behind() -> None:
    with pytest.raises(TypeError):
        _pack([1, object()])
    assert _pack([2]) == msgpack.packb([2], use_bin_type=True)


@pytest.mark.parametrize(
    ("cause", "sip", "q850"),
    [
        ("SIP;cause=486", 486, 0),
        ("Q.850;cause=16", 0, 16),
        ("Q.850;cause=17;text=busy", 0, 17),
        ("3GPP;Cause-Code=0", 0, 0),
        ("RADIUS;Acct-Terminate-Cause=1", 0, 0),
        ("SIP;cause=", 0, 0),
        ("", 0, 0),
    ],
)
def test_the_cdr_reads_sip_and_q850_codes_from_the_hang_up_cause(
    cause: str, sip: int, q850: int
) -> None:
    from ocsd.charging import _cause_code

    assert (_cause_code(cause, "SIP;cause="), _cause_code(cause, "Q.850;cause=")) == (sip, q850)


MALLORY = (Candidate(IdentityKind.USERNAME, "mallory"),)
NOBODY = (Candidate(IdentityKind.USERNAME, "nobody"),)


@pytest.mark.parametrize(
    ("identities", "to"),
    [
        pytest.param(ALICE, "112", id="no-credit"),
        pytest.param(MALLORY, "911", id="suspended"),
        pytest.param(NOBODY, "tel:+112;phone-context=example.net", id="unknown-caller"),
        pytest.param(ALICE, "sip:911@ims.example.net;user=phone", id="sip-uri"),
        pytest.param(ALICE, "urn:service:sos.police", id="ims-emergency"),
    ],
)
async def test_an_emergency_call_goes_ahead_uncharged(
    world: World, identities: tuple[Candidate, ...], to: str
) -> None:
    # alice has no credit, mallory is suspended, nobody is no one: the call still goes ahead.
    start = await world.service.handle(req(RequestType.INITIAL, 0, identities=identities, to=to))
    assert isinstance(start, Grant) and start.not_applicable and not start.units
    # A switch that reports the call anyway (RADIUS accounting) is acknowledged, not charged.
    world.clock.advance(300)
    for kind, number in ((RequestType.UPDATE, 1), (RequestType.TERMINATE, 2)):
        later = await world.service.handle(
            req(kind, number, identities=identities, to=to, used=150, requested=None)
        )
        assert isinstance(later, Grant) and later.not_applicable
    assert await world.balance("alice") == 0
    assert await world.cdrs() == []


async def test_only_the_configured_numbers_are_uncharged(tmp_path: Path) -> None:
    world = await make_world("embedded", tmp_path, ChargingSettings(uncharged_numbers=("999",)))
    try:
        for to, free in (("999", True), ("9990", False), ("112", False), ("+999", True)):
            outcome = await world.service.handle(req(RequestType.INITIAL, 0, session=to, to=to))
            assert isinstance(outcome, Grant) == free, (to, outcome)
        # A balance check for such a number is an ordinary request: rated (no rate for 999).
        check = await world.service.handle(
            req(RequestType.EVENT, 0, session="r", to="999", action=EventAction.CHECK_BALANCE)
        )
        assert isinstance(check, Denial) and check.code is DenialCode.NO_RATE
    finally:
        await world.store.close()


@pytest.mark.parametrize("number", ["+112", " 112", "sip:112@x", "", "112;x"])
def test_uncharged_numbers_are_numbers_as_dialled(number: str) -> None:
    with pytest.raises(ValueError, match="uncharged_numbers"):
        ChargingSettings(uncharged_numbers=(number,))


async def test_a_one_off_charge_to_a_ported_number_is_rated_at_its_routing_number(
    world: World,
) -> None:
    from lcr.catalog import Catalog
    from lcr.portability import PortabilityBuilder
    from lcr.quality_store import MemoryRoutingState
    from lcr.router import Router
    from lcr.settings import LcrSettings
    from ocsd.routing import Routing

    # The London number moved to a network whose routing number is French (0.020/min).
    ported = PortabilityBuilder()
    ported.add("442071234567", "33142278186", "frenchco")
    settings = LcrSettings(enabled=True)
    routing = Routing(settings, MemoryRoutingState(settings))
    routing.router = Router(Catalog(portability=ported.build()), settings)
    world.service.routing = routing
    await world.topup("alice", 1_000_000)
    outcome = await world.service.handle(
        req(
            RequestType.EVENT, 0, session="ev-ported", requested=60, action=EventAction.DIRECT_DEBIT
        )
    )
    assert isinstance(outcome, Grant) and outcome.cost_micros == 20_000
    [(cdr, _)] = await world.cdrs()
    assert (cdr.called, cdr.routing_number, cdr.destination) == (
        "33142278186",
        "33142278186",
        "France",
    )
    assert (cdr.extra["dialled"], cdr.extra["ported_carrier"]) == ("442071234567", "frenchco")
