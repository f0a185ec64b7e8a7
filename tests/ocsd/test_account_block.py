"""An operator blocks an account while it has calls up: the calls are cut at once.

``ocsd account set alice --status suspended`` changes the master data; the running daemon
picks the change up, refuses new calls and asks the switches to end the live ones: an ASR
for the Diameter call, a Disconnect-Request for the RADIUS call. What the calls used until
then is charged when the switches report it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from protocols.diameter.constants import AvpCode, CcRequestType, CommandCode, ResultCode
from protocols.radius.packet import Code
from tests.ocsd.diameter_client import Client, ccr, connect
from tests.ocsd.live_daemon import (
    SECRET,
    FakeNas,
    RadiusPeer,
    prepare,
    wait_until_async,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DIAMETER_CALL = "switch.test.example;block;1"
CONF_ID = "h323-conf-id=01020304 05060708 090A0B0C 0D0E0F10"


async def test_suspending_an_account_cuts_its_live_calls(
    tmp_path: Path, hot: tuple[str, str]
) -> None:
    nas = await FakeNas().open()
    daemon = prepare(
        tmp_path,
        radius_clients=[
            f"{{address: 127.0.0.1, secret: {SECRET}, name: nas-1, "
            f"require_message_authenticator: false, disconnect_port: {nas.port}}}"
        ],
        hot_url=hot[0],
        redis_key_prefix=hot[1],
    )
    await daemon.acli("account", "topup", "alice", "20.00", "--reference", "card-1")
    radius = await RadiusPeer("127.0.0.1", daemon.auth_port, daemon.acct_port).open()
    client: Client | None = None
    try:
        await asyncio.to_thread(daemon.start)
        client = await connect("127.0.0.1", daemon.diameter_port)
        _, answer = await client.ccr(
            ccr(CcRequestType.INITIAL_REQUEST, 0, session=DIAMETER_CALL, requested=600)
        )
        assert answer.result_code == ResultCode.DIAMETER_SUCCESS
        call: list[tuple[str, Any]] = [
            ("User-Name", "alice"),
            ("Called-Station-Id", "442071234567"),
            ("h323-conf-id", CONF_ID),
        ]
        accept = await radius.request(Code.ACCESS_REQUEST, call)
        assert accept is not None and accept.code is Code.ACCESS_ACCEPT
        call.append(("Acct-Session-Id", "rad-block-1"))
        started = await radius.request(Code.ACCOUNTING_REQUEST, [*call, ("Acct-Status-Type", 1)])
        assert started is not None and started.code is Code.ACCOUNTING_RESPONSE
        assert not nas.requests

        await daemon.acli("account", "set", "alice", "--status", "suspended")

        def aborts() -> list[Any]:
            return [
                m for m in client.server_requests if m.command_code == CommandCode.ABORT_SESSION
            ]

        (asr,) = await wait_until_async(aborts, "an ASR for the Diameter call")
        session_id = asr.find(AvpCode.SESSION_ID)
        assert session_id is not None and session_id.value == DIAMETER_CALL
        (request,) = await wait_until_async(lambda: nas.requests, "a Disconnect-Request")
        assert nas.values(request, "h323-conf-id") == [CONF_ID]
        (cut,) = await wait_until_async(
            lambda: daemon.events("sessions terminated"), "the sessions terminated"
        )
        assert (cut["account"], cut["reason"], cut["count"]) == ("alice", "account blocked", 2)

        # New calls are refused; the cut ones are charged for what they used.
        _, refused = await client.ccr(
            ccr(CcRequestType.INITIAL_REQUEST, 0, session="switch.test.example;block;2")
        )
        assert refused.result_code == ResultCode.DIAMETER_END_USER_SERVICE_DENIED
        _, end = await client.ccr(
            ccr(
                CcRequestType.TERMINATION_REQUEST, 1, session=DIAMETER_CALL, used=60, requested=None
            )
        )
        assert end.result_code == ResultCode.DIAMETER_SUCCESS
        stop = [("Acct-Status-Type", 2), ("Acct-Session-Time", 60), ("Acct-Terminate-Cause", 6)]
        stopped = await radius.request(Code.ACCOUNTING_REQUEST, [*call, *stop])
        assert stopped is not None and stopped.code is Code.ACCOUNTING_RESPONSE
        # Two minutes at 0.010/min.
        out = await daemon.acli("account", "show", "alice")
        assert "balance: 19.980000" in out, out
        assert len(aborts()) == 1 and len(nas.requests) == 1
    finally:
        if client is not None:
            client.writer.close()
            if client._task is not None:
                client._task.cancel()
        radius.close()
        nas.close()
        await asyncio.to_thread(daemon.kill)
