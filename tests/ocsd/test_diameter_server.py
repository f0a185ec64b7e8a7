"""The Diameter server over TCP: full calls, duplicates, refusals, events, bad input, ASR/RAR.

Money and CDRs are checked against hand-computed values (rates in ``tests/ocsd/world.py``).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from balances.settings import DEFAULT_MAX_RECORD_QUEUE
from cdr_writer.record import CdrKind
from ocsd.diameter_server import DiameterPeerSettings, DiameterServer, DiameterSettings
from ocsd.metrics import Metrics
from protocols.diameter.constants import (
    AvpCode,
    CcRequestType,
    CheckBalanceResult,
    CommandFlag,
    FinalUnitAction,
    RequestedAction,
    ResultCode,
)
from protocols.diameter.gy import decode_cca, encode_ccr
from protocols.diameter.message import Message, decode_message, encode_message
from tests.ocsd.diameter_client import CLIENT_HOST, Client, ccr, connect
from tests.ocsd.world import World, world_fixture

DEBIT = RequestedAction.DIRECT_DEBITING
INI, UPD, TRM, EVT = (
    CcRequestType.INITIAL_REQUEST,
    CcRequestType.UPDATE_REQUEST,
    CcRequestType.TERMINATION_REQUEST,
    CcRequestType.EVENT_REQUEST,
)


@pytest.fixture(
    params=[
        pytest.param("embedded", id="embedded"),
        pytest.param("redis", id="redis", marks=pytest.mark.integration),
    ]
)
async def world(
    request: pytest.FixtureRequest, tmp_path: Path, max_record_queue: int
) -> AsyncIterator[World]:
    if request.param == "redis":
        request.getfixturevalue("redis_available")
    async for value in world_fixture(request.param, tmp_path, max_record_queue):
        yield value


@pytest.fixture
def max_record_queue() -> int:
    """The store's record queue bound (a test parametrizes it to make it small)."""
    return DEFAULT_MAX_RECORD_QUEUE


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def server(world: World) -> AsyncIterator[DiameterServer]:
    settings = DiameterSettings(
        port=free_port(),
        peers=(DiameterPeerSettings(CLIENT_HOST, ("127.0.0.1",)),),
        stall_timeout_s=1.0,
        max_in_flight_per_peer=64,
    )
    diameter = DiameterServer(settings, world.service, Metrics())
    await diameter.start()
    yield diameter
    diameter.stop_listening()
    await diameter.drain(2)
    await diameter.close()


@pytest.fixture
async def client(server: DiameterServer) -> AsyncIterator[Client]:
    assert server.address is not None
    switch = await connect(*server.address)
    yield switch
    await switch.close()


async def test_a_full_call_over_tcp(world: World, client: Client) -> None:
    await world.topup("alice", 1_000_000)
    _, start = await client.ccr(ccr(INI, 0))
    assert start.result_code == ResultCode.DIAMETER_SUCCESS
    [mscc] = start.mscc
    assert mscc.result_code == ResultCode.DIAMETER_SUCCESS
    assert mscc.granted is not None and mscc.granted.cc_time == 600
    assert mscc.validity_time == 1800 and mscc.final_unit_indication is None
    _, update = await client.ccr(ccr(UPD, 1, used=95))
    assert update.mscc[0].granted is not None and update.mscc[0].granted.cc_time == 600
    _, stop = await client.ccr(ccr(TRM, 2, used=30, requested=None))
    assert stop.result_code == ResultCode.DIAMETER_SUCCESS
    # 125 s on 60/60 at 0.010/min: 0.03 USD, in Cost-Information.
    assert stop.cost_information is not None
    assert str(stop.cost_information.unit_value.to_decimal()) in ("0.03", "0.030000")
    assert stop.cost_information.currency_code == 840
    assert await world.balance("alice") == 970_000
    [(cdr, _)] = await world.cdrs()
    assert (cdr.kind, cdr.duration_s, cdr.charge_micros, cdr.protocol, cdr.peer) == (
        CdrKind.CALL,
        125,
        30_000,
        "diameter",
        CLIENT_HOST,
    )


async def test_two_rating_groups_in_one_session(world: World, client: Client) -> None:
    from dataclasses import replace

    from protocols.diameter.gy import (
        CreditControlRequest,
        MsccRequest,
        RequestedUnits,
        UsedUnits,
    )

    def two(kind: CcRequestType, number: int, used: tuple[int, int] | None) -> CreditControlRequest:
        services = tuple(
            MsccRequest(
                rating_group=group,
                requested=RequestedUnits(cc_time=300) if kind is not TRM else None,
                used=(UsedUnits(cc_time=used[i]),) if used is not None else (),
            )
            for i, group in enumerate((100, 200))
        )
        return replace(ccr(kind, number, session="switch.test.example;rg;1"), mscc=services)

    await world.topup("alice", 1_000_000)
    _, start = await client.ccr(two(INI, 0, None))
    assert start.result_code == ResultCode.DIAMETER_SUCCESS
    granted = {m.rating_group: m.granted.cc_time for m in start.mscc if m.granted is not None}
    assert granted == {100: 300, 200: 300}
    _, update = await client.ccr(two(UPD, 1, (65, 10)))
    assert [m.result_code for m in update.mscc] == [ResultCode.DIAMETER_SUCCESS] * 2
    _, stop = await client.ccr(two(TRM, 2, (0, 20)))
    assert stop.result_code == ResultCode.DIAMETER_SUCCESS
    # Each service is rated on its own, 60/60 at 0.010/min: 65 s -> 0.02, 30 s -> 0.01.
    assert await world.balance("alice") == 970_000
    [(cdr, _)] = await world.cdrs()
    assert (cdr.duration_s, cdr.charge_micros) == (95, 30_000)


async def test_a_retransmission_gets_the_original_answer(world: World, client: Client) -> None:
    await world.topup("alice", 1_000_000)
    await client.ccr(ccr(INI, 0))
    _, first = await client.ccr(ccr(UPD, 1, used=60))
    _, again = await client.ccr(ccr(UPD, 1, used=60))
    assert again.mscc == first.mscc
    _, stop = await client.ccr(ccr(TRM, 2, used=1))
    _, stop_again = await client.ccr(ccr(TRM, 2, used=1))
    assert stop_again.cost_information == stop.cost_information
    assert await world.balance("alice") == 980_000
    assert len(await world.cdrs()) == 1


async def test_a_ccr_t_replayed_after_the_duplicate_window_moves_no_money(
    world: World, client: Client
) -> None:
    await world.topup("alice", 1_000_000)
    await client.ccr(ccr(INI, 0))
    _, stop = await client.ccr(ccr(TRM, 1, used=61))
    assert stop.result_code == ResultCode.DIAMETER_SUCCESS
    world.clock.advance(world.service.settings.duplicate_window_s + 3_600)
    await world.other_call_ends()
    _, again = await client.ccr(ccr(TRM, 1, used=61))
    assert again.result_code == ResultCode.DIAMETER_SUCCESS
    assert again.cost_information == stop.cost_information
    assert await world.balance("alice") == 980_000
    assert len(await world.cdrs_of("alice")) == 1


async def test_a_ccr_i_retransmitted_after_the_call_closed_opens_nothing(
    world: World, server: DiameterServer, client: Client
) -> None:
    await world.topup("alice", 1_000_000)
    opening = encode_ccr(ccr(INI, 0))
    answer = await client.send(opening)
    first = decode_cca(answer)
    assert first.result_code == ResultCode.DIAMETER_SUCCESS
    _, stop = await client.ccr(ccr(TRM, 1, used=61))
    assert stop.result_code == ResultCode.DIAMETER_SUCCESS
    # The CCR-I again, with the T flag and its End-to-End Identifier (RFC 6733 §5.5.4), after
    # the duplicate window: a client that failed over and back, a replaying proxy.
    world.clock.advance(world.service.settings.duplicate_window_s + 3_600)
    await world.other_call_ends()
    again = opening.replace(
        flags=opening.flags | CommandFlag.RETRANSMITTED, end_to_end_id=answer.end_to_end_id
    )
    late = decode_cca(await client.send(again, keep_end_to_end_id=True))
    assert late.result_code == ResultCode.DIAMETER_UNKNOWN_SESSION_ID
    assert late.error_message == "session already closed"
    assert not late.mscc
    state = await world.store.get_account("alice")
    assert state is not None
    assert (state.balance_micros, state.held_micros, state.sessions) == (980_000, 0, 0)
    assert len(await world.cdrs_of("alice")) == 1
    denials = server.metrics.registry.get_sample_value(
        "ocsd_denials_total", {"protocol": "diameter", "reason": "unknown_session"}
    )
    assert denials == 1


async def test_a_ccr_t_after_the_reaper_is_told_the_session_is_closed(
    world: World, client: Client
) -> None:
    await world.topup("alice", 1_000_000)
    await client.ccr(ccr(INI, 0))
    await client.ccr(ccr(UPD, 1, used=60))
    world.clock.advance(2 * 1_800 + 60 + 3_600)
    assert await world.service.reap() == 1
    world.clock.advance(3_600)
    _, late = await client.ccr(ccr(TRM, 2, used=600))
    assert late.result_code == ResultCode.DIAMETER_UNKNOWN_SESSION_ID
    assert late.error_message == "session already closed"
    assert await world.balance("alice") == 990_000
    [(cdr, _)] = await world.cdrs()
    assert cdr.kind is CdrKind.REAPED


async def test_final_units_when_the_money_runs_out(world: World, client: Client) -> None:
    await world.topup("alice", 25_000)
    _, start = await client.ccr(ccr(INI, 0))
    [mscc] = start.mscc
    assert mscc.granted is not None and mscc.granted.cc_time == 120
    assert mscc.final_unit_indication is not None
    assert mscc.final_unit_indication.action is FinalUnitAction.TERMINATE


@pytest.mark.parametrize(
    ("request_factory", "result_code"),
    [
        pytest.param(
            lambda: ccr(INI, 0, subscriber="999"),
            ResultCode.DIAMETER_USER_UNKNOWN,
            id="unknown-user",
        ),
        pytest.param(lambda: ccr(INI, 0), ResultCode.DIAMETER_CREDIT_LIMIT_REACHED, id="no-credit"),
        pytest.param(
            lambda: ccr(INI, 0, called="tel:+8613800000000"),
            ResultCode.DIAMETER_RATING_FAILED,
            id="no-rate",
        ),
        pytest.param(
            lambda: ccr(UPD, 1, session="nope;1", used=5),
            ResultCode.DIAMETER_UNKNOWN_SESSION_ID,
            id="unknown-session",
        ),
    ],
)
async def test_refusals(
    world: World, client: Client, request_factory: object, result_code: int
) -> None:
    _, answer = await client.ccr(request_factory())  # type: ignore[operator]
    assert answer.result_code == result_code
    if result_code == ResultCode.DIAMETER_RATING_FAILED:
        assert answer.failed_avps, "5031 carries Failed-AVP"


async def test_a_missing_avp_is_5005_with_failed_avp(world: World, client: Client) -> None:
    from protocols.diameter.gy import encode_ccr

    full = encode_ccr(ccr(INI, 0))
    without = Message(
        full.command_code,
        full.flags,
        full.application_id,
        0,
        0,
        tuple(a for a in full.avps if a.code != AvpCode.CC_REQUEST_NUMBER),
    )
    answer = await client.send(without)
    codes = [a.value for a in answer.avps if a.code == AvpCode.RESULT_CODE]
    assert codes == [ResultCode.DIAMETER_MISSING_AVP]
    failed = [a for a in answer.avps if a.code == AvpCode.FAILED_AVP]
    assert failed and failed[0].value[0].code == AvpCode.CC_REQUEST_NUMBER


@pytest.mark.parametrize(("mandatory", "result"), [(True, 5001), (False, 2001)])
async def test_an_unknown_avp_is_refused_by_its_m_bit(
    world: World, client: Client, mandatory: bool, result: int
) -> None:
    from protocols.diameter.avp import Avp, AvpFlag
    from protocols.diameter.gy import encode_ccr

    await world.topup("alice", 1_000_000)
    full = encode_ccr(ccr(INI, 0))
    stranger = Avp(64999, 0, AvpFlag.MANDATORY if mandatory else 0, b"\x00\x00\x00\x01")
    message = Message(
        full.command_code, full.flags, full.application_id, 0, 0, (*full.avps, stranger)
    )
    answer = await client.send(message)
    codes = [a.value for a in answer.avps if a.code == AvpCode.RESULT_CODE]
    assert codes == [result]
    failed = [a for a in answer.avps if a.code == AvpCode.FAILED_AVP]
    if mandatory:
        assert failed and failed[0].value[0].code == 64999
    else:
        assert not failed


async def test_events(world: World, client: Client) -> None:
    await world.topup("alice", 1_000_000)
    _, check = await client.ccr(
        ccr(
            EVT,
            0,
            session="ev;1",
            called="tel:+33123",
            requested=90,
            action=RequestedAction.CHECK_BALANCE,
        )
    )
    assert check.check_balance_result is CheckBalanceResult.ENOUGH_CREDIT
    _, price = await client.ccr(
        ccr(
            EVT,
            0,
            session="ev;2",
            called="tel:+33123",
            requested=90,
            action=RequestedAction.PRICE_ENQUIRY,
        )
    )
    assert price.cost_information is not None
    _, debit = await client.ccr(
        ccr(
            EVT,
            0,
            session="ev;3",
            called="tel:+33123",
            requested=90,
            action=RequestedAction.DIRECT_DEBITING,
        )
    )
    assert debit.result_code == ResultCode.DIAMETER_SUCCESS
    # France 1/1 at 0.020/min: 90 s is 0.03.
    assert await world.balance("alice") == 970_000


@pytest.mark.parametrize("max_record_queue", [pytest.param(1, id="bound-1")])
async def test_a_full_record_queue_is_answered_3004_for_new_calls_only(
    world: World, client: Client
) -> None:
    await world.topup("alice", 1_000_000)
    await world.cdrs()
    _, start = await client.ccr(ccr(INI, 0))
    assert start.result_code == ResultCode.DIAMETER_SUCCESS
    _, debit = await client.ccr(
        ccr(EVT, 0, session="ev;1", called="tel:+33123", requested=90, action=DEBIT)
    )
    assert debit.result_code == ResultCode.DIAMETER_SUCCESS
    # The event's CDR waits in the queue, which is now full: the switch is sent elsewhere.
    _, refused = await client.ccr(ccr(INI, 0, session="switch.test.example;2;1"))
    assert refused.result_code == ResultCode.DIAMETER_TOO_BUSY
    _, refused = await client.ccr(
        ccr(EVT, 0, session="ev;2", called="tel:+33123", requested=90, action=DEBIT)
    )
    assert refused.result_code == ResultCode.DIAMETER_TOO_BUSY
    _, update = await client.ccr(ccr(UPD, 1, used=95))
    assert update.result_code == ResultCode.DIAMETER_SUCCESS
    _, stop = await client.ccr(ccr(TRM, 2, used=30, requested=None))
    assert stop.result_code == ResultCode.DIAMETER_SUCCESS
    assert [cdr.charge_micros for cdr, _ in await world.cdrs()] == [30_000, 30_000]
    assert await world.balance("alice") == 1_000_000 - 30_000 - 30_000
    _, again = await client.ccr(ccr(INI, 0, session="switch.test.example;2;1"))
    assert again.result_code == ResultCode.DIAMETER_SUCCESS


async def test_overload_is_answered_3004(world: World, server: DiameterServer) -> None:
    await world.topup("alice", 10**9)
    assert server.address is not None
    switch = await connect(*server.address)
    try:
        requests = [ccr(INI, 0, session=f"burst;{n}") for n in range(200)]
        answers = await asyncio.gather(*(switch.ccr(r) for r in requests))
        codes = {answer.result_code for _, answer in answers}
        assert ResultCode.DIAMETER_SUCCESS in codes
        assert codes <= {ResultCode.DIAMETER_SUCCESS, ResultCode.DIAMETER_TOO_BUSY}
    finally:
        await switch.close()


async def test_an_unknown_peer_is_refused(server: DiameterServer) -> None:
    assert server.address is not None
    with pytest.raises(ConnectionRefusedError):
        await connect(*server.address, origin_host="intruder.example")


async def test_a_stalled_half_message_drops_the_peer(
    server: DiameterServer, client: Client
) -> None:
    data = encode_message(Message(272, 0x80, 4, 1, 1, ()))
    client.writer.write(data[:10])
    await asyncio.wait_for(client.closed.wait(), 5)


async def test_garbage_gets_an_error_answer_or_the_peer_dropped(
    server: DiameterServer, client: Client
) -> None:
    # A header announcing an absurd length: the framing refuses, the peer is dropped.
    client.writer.write(struct.pack("!I", (1 << 24) | 0xFFFFFF) + bytes(16))
    await asyncio.wait_for(client.closed.wait(), 5)
    # The server keeps serving other peers.
    assert server.address is not None
    other = await connect(*server.address)
    await other.close()


async def test_abort_session_reaches_the_switch(
    world: World, server: DiameterServer, client: Client
) -> None:
    await world.topup("alice", 1_000_000)
    await client.ccr(ccr(INI, 0))
    code = await server.abort_session("switch.test.example;1;1", CLIENT_HOST, "test.example")
    assert code == ResultCode.DIAMETER_SUCCESS
    assert client.server_requests[-1].command_code == 274
    sent = await server.reauthorize_account("alice")
    assert sent == 1
    assert client.server_requests[-1].command_code == 258


def test_answers_decode_in_python_diameter() -> None:
    from diameter.message import Message as PyMessage  # python-diameter, independent

    from ocsd.charging_types import Grant, UnitGrant
    from ocsd.diameter_server import Answerer
    from protocols.diameter.gy import decode_ccr, encode_cca, encode_ccr
    from protocols.diameter.message import LocalIdentity

    request = decode_ccr(decode_message(encode_message(encode_ccr(ccr(INI, 0)))))
    answer = Answerer(DiameterSettings()).answer(
        request, Grant((UnitGrant(100, None, 120, 1800, True),), currency="USD")
    )
    identity = LocalIdentity("ocsd.localdomain", "localdomain")
    wire = encode_message(encode_cca(request, answer, identity))
    parsed = PyMessage.from_bytes(wire)
    assert parsed.header.command_code == 272
    assert parsed.result_code == ResultCode.DIAMETER_SUCCESS
    mscc = parsed.multiple_services_credit_control[0]
    assert mscc.granted_service_unit.cc_time == 120
    assert mscc.final_unit_indication.final_unit_action == FinalUnitAction.TERMINATE


async def test_a_request_past_its_deadline_is_answered_3004(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = DiameterSettings(
        port=free_port(),
        peers=(DiameterPeerSettings(CLIENT_HOST, ("127.0.0.1",)),),
        request_deadline_s=0.05,
    )
    diameter = DiameterServer(settings, world.service, Metrics())
    await diameter.start()
    assert diameter.address is not None
    switch = await connect(*diameter.address)
    handle = world.service.handle

    async def hang_once(request: object) -> object:
        monkeypatch.setattr(world.service, "handle", handle)
        await asyncio.sleep(3600)
        raise AssertionError("not cancelled")

    try:
        await world.topup("alice", 1_000_000)
        monkeypatch.setattr(world.service, "handle", hang_once)
        _, late = await switch.ccr(ccr(INI, 0))
        assert late.result_code == ResultCode.DIAMETER_TOO_BUSY
        _, again = await switch.ccr(ccr(INI, 0))
        assert again.result_code == ResultCode.DIAMETER_SUCCESS
        assert len(diameter.tasks) == 0
    finally:
        await switch.close()
        diameter.stop_listening()
        await diameter.drain(2)
        await diameter.close()


async def test_an_emergency_call_is_answered_4011(world: World, client: Client) -> None:
    # alice has no money: a call to 112 still needs no credit control, a call elsewhere does.
    answer, start = await client.ccr(ccr(INI, 0, session="sos;1", called="tel:112"))
    assert start.result_code == ResultCode.DIAMETER_CREDIT_CONTROL_NOT_APPLICABLE
    assert start.mscc == () and start.granted is None
    # RFC 6733 §7.1.4: 4011 is a transient failure: no E bit, and no Failed-AVP.
    assert not answer.is_error
    _, event = await client.ccr(
        ccr(EVT, 0, session="sos;2", called="sip:911@ims.example.net", requested=60, action=DEBIT)
    )
    assert event.result_code == ResultCode.DIAMETER_CREDIT_CONTROL_NOT_APPLICABLE
    _, other = await client.ccr(ccr(INI, 0, session="sos;3"))
    assert other.result_code == ResultCode.DIAMETER_CREDIT_LIMIT_REACHED
    assert await world.balance("alice") == 0
    assert await world.cdrs() == []
