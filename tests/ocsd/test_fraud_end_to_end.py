"""A premium-range burst from one account, stopped by a real ``ocsd serve``.

The story, as an operator would tell it: alice may call the premium range +882 16 (she opted
in with ``ocsd fraud optin``) and has one call up over Diameter and one over RADIUS. Then her
switch fires a burst of calls to the range. Past the threshold of the velocity rule the calls
are refused (Diameter 4010, RADIUS Access-Reject), the account is suspended, its live Diameter
call receives an ASR and its RADIUS call a Disconnect-Request at the NAS, an alert reaches the
webhook, and the audit log tells the story: the rule, the values, the actions and how to undo
each of them. The two cut calls are still charged for what they used, and the money agrees
with the CDRs.

Runs on the embedded store and on the real Redis (a key prefix of its own, deleted after).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from protocols.diameter.constants import AvpCode, CcRequestType, CommandCode, ResultCode
from protocols.radius.packet import Code
from tests.ocsd.diameter_client import Client, ccr, connect
from tests.ocsd.live_daemon import (
    SECRET,
    FakeNas,
    LiveDaemon,
    RadiusPeer,
    prepare,
    wait_until_async,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREMIUM = "88216"
"""+882 16: in a high-risk range by default (882 is in ``fraud.settings.DEFAULT_HIGH_RISK``)."""
MAX_CALLS = 5
LIVE_DIAMETER = "switch.test.example;live;1"
LIVE_CONF_ID = "h323-conf-id=0A0B0C0D 11223344 55667788 99AABBCC"
LIVE_RADIUS = "radius:127.0.0.1:0a0b0c0d112233445566778899aabbcc"
"""How ocsd keys the RADIUS call: the NAS address and the h323-conf-id."""
FRAUD = """
fraud:
  rules:
    calls_per_minute:
      max_calls: {max_calls}
      window_s: 60
      actions: [refuse, suspend_account, terminate_sessions, alert]
  webhook:
    url: "{webhook}"
    backoff_initial_s: 0.2
    backoff_max_s: 1.0
"""
FIT_4010 = ResultCode.DIAMETER_END_USER_SERVICE_DENIED


class _Webhook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """An alert receiver: its URL and what it received."""
    received: list[dict[str, Any]] = []
    handler = type("Webhook", (_Webhook,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_a_premium_burst_is_refused_and_the_account_cut_off(
    tmp_path: Path, hot: tuple[str, str], webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    hot_url, prefix = hot
    url, alerts = webhook
    nas = await FakeNas().open()
    daemon = prepare(
        tmp_path,
        radius_clients=[
            f"{{address: 127.0.0.1, secret: {SECRET}, name: nas-1, "
            f"require_message_authenticator: false, disconnect_port: {nas.port}}}"
        ],
        hot_url=hot_url,
        redis_key_prefix=prefix,
        extra=FRAUD.format(max_calls=MAX_CALLS, webhook=url),
    )
    # The operator's side: a rate for the range, alice's opt-in, her money.
    deck = tmp_path / "premium.csv"
    deck.write_text("prefix,destination,rate\n882,International Networks,1.20\n")
    await daemon.acli("tariff", "import", "retail", str(deck), "--mode", "update")
    await daemon.acli("fraud", "optin", "--account", "alice", PREMIUM)
    await daemon.acli("account", "topup", "alice", "50.00", "--reference", "card-1")
    client: Client | None = None
    radius = await RadiusPeer("127.0.0.1", daemon.auth_port, daemon.acct_port).open()
    try:
        await asyncio.to_thread(daemon.start)
        client = await connect("127.0.0.1", daemon.diameter_port)
        await _scenario(daemon, client, radius, nas, alerts)
    finally:
        if client is not None:
            client.writer.close()
            if client._task is not None:
                client._task.cancel()
        radius.close()
        nas.close()
        await asyncio.to_thread(daemon.kill)


async def _scenario(
    daemon: LiveDaemon,
    client: Client,
    radius: RadiusPeer,
    nas: FakeNas,
    alerts: list[dict[str, Any]],
) -> None:
    # Two calls up: one over Diameter, one over RADIUS (authorized, then started).
    _, live = await client.ccr(
        ccr(CcRequestType.INITIAL_REQUEST, 0, session=LIVE_DIAMETER, called="tel:+442071234567")
    )
    assert live.result_code == ResultCode.DIAMETER_SUCCESS
    call = [
        ("User-Name", "alice"),
        ("Called-Station-Id", "442071234567"),
        ("h323-conf-id", LIVE_CONF_ID),
    ]
    accept = await radius.request(Code.ACCESS_REQUEST, call)
    assert accept is not None and accept.code is Code.ACCESS_ACCEPT
    call.append(("Acct-Session-Id", "rad-live-1"))
    started = await radius.request(Code.ACCOUNTING_REQUEST, [*call, ("Acct-Status-Type", 1)])
    assert started is not None and started.code is Code.ACCOUNTING_RESPONSE

    # The burst. The live calls were attempts 1 and 2, so attempts 3 to MAX_CALLS pass and
    # every later one is refused. Each call that gets through is hung up after 3 s.
    passed = MAX_CALLS - 2
    codes = []
    for i in range(MAX_CALLS + 1):
        session, called = f"switch.test.example;burst;{i}", f"tel:+{PREMIUM}{i:06d}"
        _, answer = await client.ccr(
            ccr(CcRequestType.INITIAL_REQUEST, 0, session=session, called=called)
        )
        codes.append(int(answer.result_code))
        if answer.result_code == ResultCode.DIAMETER_SUCCESS:
            _, end = await client.ccr(
                ccr(
                    CcRequestType.TERMINATION_REQUEST,
                    1,
                    session=session,
                    called=called,
                    used=3,
                    requested=None,
                )
            )
            assert end.result_code == ResultCode.DIAMETER_SUCCESS
    assert codes == [2001] * passed + [FIT_4010] * (MAX_CALLS + 1 - passed), codes
    # The same account over RADIUS, past the threshold: Access-Reject (h323-return-code 7).
    reject = await radius.request(
        Code.ACCESS_REQUEST,
        [("User-Name", "alice"), ("Called-Station-Id", f"{PREMIUM}999999")],
    )
    assert reject is not None and reject.code is Code.ACCESS_REJECT
    assert radius.text(reject, "h323-return-code") == "h323-return-code=7"
    # The first refusal was the rule's; later ones are the rule's, or the suspension's once
    # it is in force (the actions run beside the calls, not in their path).
    denied = [e for e in daemon.events("denied") if e.get("account") == "alice"]
    assert len(denied) == MAX_CALLS + 2 - passed
    assert denied[0]["session_id"] == f"switch.test.example;burst;{passed}"
    assert (denied[0]["reason"], denied[0]["rule"]) == ("fraud_suspected", "calls_per_minute")
    assert {e["reason"] for e in denied} <= {"fraud_suspected", "account_suspended"}
    by_rule = [e["session_id"] for e in denied if e["reason"] == "fraud_suspected"]

    # The live Diameter call gets an ASR naming it (the burst calls were already over).
    def aborts() -> list[Any]:
        return [m for m in client.server_requests if m.command_code == CommandCode.ABORT_SESSION]

    (asr,) = await wait_until_async(aborts, "an ASR for the live Diameter call")
    session_id = asr.find(AvpCode.SESSION_ID)
    assert session_id is not None and session_id.value == LIVE_DIAMETER

    # The NAS gets a Disconnect-Request naming the live RADIUS call (verified by the NAS with
    # the shared secret before it answered Disconnect-ACK).
    (request,) = await wait_until_async(lambda: nas.requests, "a Disconnect-Request at the NAS")
    assert nas.values(request, "h323-conf-id") == [LIVE_CONF_ID]
    assert nas.values(request, "User-Name") == ["alice"]

    # The account is suspended: the records say so, and a new call is refused at once.
    async def suspended() -> str:
        out = await daemon.acli("account", "show", "alice")
        return out if "status: suspended" in out else ""

    await wait_until_async(suspended, "alice suspended in the master data")
    _, again = await client.ccr(
        ccr(CcRequestType.INITIAL_REQUEST, 0, session="switch.test.example;after;1")
    )
    assert again.result_code == FIT_4010

    # One alert reached the webhook, with the rule and its values.
    (alert,) = await wait_until_async(lambda: alerts, "the alert at the webhook")
    assert (alert["event"], alert["rule"], alert["account"]) == (
        "fraud.rule_tripped",
        "calls_per_minute",
        "alice",
    )
    assert alert["values"] == {"calls": MAX_CALLS + 1, "max_calls": MAX_CALLS, "window_s": 60}

    # What ocsd did, from its log: both calls were asked to end, and both switches agreed.
    aborted = await wait_until_async(
        lambda: daemon.events("abort session"), "the ASA in the daemon's log"
    )
    assert [(e["session_id"], e["result_code"]) for e in aborted] == [(LIVE_DIAMETER, 2001)]
    (disconnected,) = await wait_until_async(
        lambda: daemon.events("disconnect"), "the Disconnect-ACK in the daemon's log"
    )
    assert (disconnected["result"], disconnected["nas"]) == ("ack", "nas-1")
    (cut,) = await wait_until_async(
        lambda: daemon.events("sessions terminated"), "the sessions terminated"
    )
    assert (cut["account"], cut["count"]) == ("alice", 2)

    # The switches hang up the cut calls and report what was used.
    _, end = await client.ccr(
        ccr(CcRequestType.TERMINATION_REQUEST, 1, session=LIVE_DIAMETER, used=42, requested=None)
    )
    assert end.result_code == ResultCode.DIAMETER_SUCCESS
    stop = [("Acct-Status-Type", 2), ("Acct-Session-Time", 42), ("Acct-Terminate-Cause", 6)]
    stopped = await radius.request(Code.ACCOUNTING_REQUEST, [*call, *stop])
    assert stopped is not None and stopped.code is Code.ACCOUNTING_RESPONSE

    # The audit log tells the story: the rule, the values, the actions, how to undo them.
    # One decision per call the rule refused; they are written off the call's path.
    async def audited() -> str:
        out = await daemon.acli(
            "fraud", "audit", "--account", "alice", "--rule", "calls_per_minute"
        )
        return out if all(f"session {s}," in out for s in by_rule) else ""

    story = await wait_until_async(audited, "a decision per refused call in the audit log")
    decisions = story.split("\n#")  # newest first
    assert len(decisions) == len(by_rule), story
    first = decisions[-1]
    assert (
        "account alice rule calls_per_minute at attempt: "
        "refuse,suspend_account,terminate_sessions,alert\n"
    ) in first, first
    assert f"{MAX_CALLS + 1} call attempts in 60 s, more than {MAX_CALLS}" in first
    assert f"values: calls={MAX_CALLS + 1}, max_calls={MAX_CALLS}, window_s=60" in first
    assert f"session switch.test.example;burst;{passed}, called {PREMIUM}{passed:06d}" in first
    assert "undo: refuse: only this call" in first
    assert "undo: suspend_account: operator: ocsd account set alice --status active" in first
    assert "undo: terminate_sessions: cannot be undone (the calls were cut)" in first
    for later in decisions[:-1]:
        assert "(not repeated: suspend_account,terminate_sessions,alert)" in later, later
    # The master data's audit log says who suspended the account.
    changes = await daemon.acli("audit", "--entity", "account", "--id", "alice", "--limit", "1")
    (row,) = changes.splitlines()[1:]
    assert row.split()[3:] == ["fraud", "account", "alice", "status", "active", "suspended"]

    # After a clean stop, CDRs and money agree: the cut calls pay their 42 s (a minute at
    # 0.010/min each), the burst calls that got through their 3 s (a minute at 1.20/min
    # each); refused attempts cost nothing.
    assert await asyncio.to_thread(daemon.stop) == 0
    await daemon.acli("cdr-writer", "--until-empty")
    with sqlite3.connect(daemon.data / "ocsd.sqlite3") as db:
        rows = db.execute(
            "SELECT session_id, protocol, duration_s, charge_micros, debited_micros FROM cdrs "
            "WHERE account_id = 'alice'"
        ).fetchall()
    assert sorted(rows) == sorted(
        [
            (LIVE_RADIUS, "radius", 42, 10_000, 10_000),
            (LIVE_DIAMETER, "diameter", 42, 10_000, 10_000),
            *[
                (f"switch.test.example;burst;{i}", "diameter", 3, 1_200_000, 1_200_000)
                for i in range(passed)
            ],
        ]
    )
    reconciled = await daemon.acli("account", "reconcile", "alice")
    line = next(x for x in reconciled.splitlines() if x.startswith("alice "))
    assert line.split() == ["alice", "50.000000", "3.620000", "46.380000", "46.380000", "ok"]
