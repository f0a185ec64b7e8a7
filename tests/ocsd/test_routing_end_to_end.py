"""Routing end to end: RADIUS and HTTP give the same ranked routes; the CDR names the carrier.

Two carriers terminate the United Kingdom (carrierB cheaper than carrierA); alice pays
0.010/min to 4420. The switch authorizes over RADIUS, asks the HTTP route API, then reports
in accounting that it used carrierA (the second route): the CDR records carrierA and its cost
next to the sell price.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.ocsd.test_daemon import ROOT, Daemon, _env, start_daemon
from tests.ocsd.world import build_master

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONF = "h323-conf-id=AB CD 01 02"
SESSION = "radius:127.0.0.1:abcd0102"


def cli(data: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ocsd", *args],
        cwd=ROOT,
        env=_env(data),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def daemon(tmp_path: Path) -> Daemon:
    data = tmp_path / "data"
    data.mkdir()
    build_master(data / "ocsd.sqlite3")
    for carrier, rate in (("carrierA", "0.004"), ("carrierB", "0.003")):
        deck = tmp_path / f"{carrier}.csv"
        deck.write_text(f"prefix,destination,rate\n44,United Kingdom,{rate}\n")
        cli(data, "carrier", "add", carrier, "--currency", "USD")
        cli(data, "carrier", "deck", "import", carrier, str(deck), "--effective-from", "2020-01-01")
    cli(data, "route-plan", "add", "uk", "--strategy", "least_cost")
    cli(data, "route-plan", "entry", "uk", "44", "carrierA")
    cli(data, "route-plan", "entry", "uk", "44", "carrierB")
    cli(data, "route-plan", "bind", "uk", "--account", "alice")
    running = start_daemon(
        tmp_path, extra="lcr: {enabled: true, quality: {refresh_interval_s: 0.2}}\n"
    )
    running.topup("alice", 1_000_000, "t1")
    yield running  # type: ignore[misc]
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait()


def route_quality(daemon: Daemon, carrier: str) -> dict[str, object]:
    """The carrier's quality figures in the HTTP route answer, once an ended call shows."""
    deadline = time.monotonic() + 10
    while True:
        url = daemon.url("/v1/route?to=442071234567&account=alice")
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
        quality: dict[str, object] = next(
            route["quality"] for route in body["routes"] if route["carrier"] == carrier
        )
        if quality["samples"] or time.monotonic() > deadline:
            return quality
        time.sleep(0.1)


def test_radius_and_http_rank_alike_and_the_cdr_names_the_carrier(daemon: Daemon) -> None:
    base = f'User-Name = "alice", Called-Station-Id = "442071234567", h323-conf-id = "{CONF}"'
    out = daemon.radclient("auth", base)
    assert "Access-Accept" in out, out
    radius_routes = [
        line.split("ocsd-route-", 1)[1]
        for line in out.splitlines()
        if "Cisco-AVPair" in line and "ocsd-route-" in line and "count" not in line
    ]
    radius_carriers = [entry.split("=", 1)[1].split(";")[0] for entry in radius_routes]
    assert radius_carriers == ["carrierB", "carrierA"]

    url = daemon.url(f"/v1/route?to=442071234567&account=alice&session_id={SESSION}")
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.loads(response.read())
    assert [route["carrier"] for route in body["routes"]] == radius_carriers
    assert body["routes"][0]["rate_per_minute"] == "0.003000"

    # The Stop says carrierA carried the call and, the Cisco way, when the far end started
    # ringing: 2.35 s after the setup, the post-dial delay that carrierA's quality counts.
    for status in (
        "Start",
        "Stop, Acct-Session-Time = 95, "
        'h323-setup-time = "h323-setup-time=10:00:00.000 UTC Mon Nov 2 2026", '
        'Cisco-AVPair = "alert-timepoint=10:00:02.350 UTC Mon Nov 2 2026"',
    ):
        out = daemon.radclient(
            "acct",
            base + f', Acct-Session-Id = "x1", Acct-Status-Type = {status}, '
            'Cisco-AVPair = "ocsd-carrier=carrierA"',
        )
        assert "Accounting-Response" in out, out
    q = route_quality(daemon, "carrierA")
    assert q["pdd_ms"] == 2350.0
    assert daemon.stop() == 0
    with sqlite3.connect(daemon.data / "ocsd.sqlite3") as db:
        rows = db.execute(
            "SELECT carrier, carrier_cost_micros, carrier_currency, charge_micros, billed_s "
            "FROM cdrs"
        ).fetchall()
    # 95 s bill 120 s: the customer pays 0.010/min (0.02), carrierA costs 0.004/min (0.008).
    assert rows == [("carrierA", 8_000, "USD", 20_000, 120)]


def test_a_diameter_switch_gets_the_routes_and_reports_the_one_it_used(
    tmp_path: Path, daemon: Daemon
) -> None:
    import asyncio
    import socket
    import struct

    from lcr.delivery import decode_avps
    from protocols.diameter.avp import Avp, AvpFlag
    from protocols.diameter.constants import CcRequestType
    from protocols.diameter.gy import encode_ccr
    from protocols.diameter.message import Message
    from tests.ocsd.diameter_client import ccr as make_ccr
    from tests.ocsd.diameter_client import connect
    from tests.ocsd.test_daemon import free_port

    assert daemon.stop() == 0
    port = free_port(socket.SOCK_STREAM)
    vendor = 32473
    routed = start_daemon(
        tmp_path,
        extra=(
            "lcr: {enabled: true, delivery: {diameter_routes: true},"
            " quality: {refresh_interval_s: 0.2}}\n"
            f"diameter: {{port: {port}}}\n"
        ),
    )
    try:

        async def call() -> list[str]:
            client = await connect("127.0.0.1", port)
            try:
                session = "switch.test.example;routes;1"
                answer, cca = await client.ccr(
                    make_ccr(CcRequestType.INITIAL_REQUEST, 0, session=session)
                )
                assert cca.result_code == 2001
                carriers = [
                    member.data.decode()
                    for avp in answer.avps
                    if avp.vendor_id == vendor and avp.code == 1001 and isinstance(avp.value, bytes)
                    for member in decode_avps(avp.value)
                    if member.code == 1003
                ]
                # The switch used the second route, and says so in its CCR-T with the
                # post-dial delay it saw.
                end = encode_ccr(
                    make_ccr(
                        CcRequestType.TERMINATION_REQUEST,
                        1,
                        session=session,
                        used=95,
                        requested=None,
                    )
                )
                used = Avp(1002, vendor, AvpFlag.VENDOR, struct.pack("!I", 2))
                pdd = Avp(1010, vendor, AvpFlag.VENDOR, struct.pack("!I", 1_800))
                message = Message(
                    end.command_code, end.flags, end.application_id, 0, 0, (*end.avps, used, pdd)
                )
                await client.send(message)
                return carriers
            finally:
                await client.close()

        carriers = asyncio.run(call())
        assert carriers == ["carrierB", "carrierA"]
        assert route_quality(routed, "carrierA")["pdd_ms"] == 1_800.0
        assert routed.stop() == 0
        with sqlite3.connect(routed.data / "ocsd.sqlite3") as db:
            rows = db.execute(
                "SELECT carrier, carrier_cost_micros, charge_micros FROM cdrs "
                "WHERE protocol = 'diameter'"
            ).fetchall()
        assert rows == [("carrierA", 8_000, 20_000)]
    finally:
        if routed.process.poll() is None:
            routed.process.kill()
            routed.process.wait()


def test_an_account_no_route_plan_applies_to(tmp_path: Path, daemon: Daemon) -> None:
    # bob has no route plan: unrouted by default (rated and charged, no routes handed out)...
    ask = 'User-Name = "bob", Called-Station-Id = "442071234567"'
    out = daemon.radclient("auth", ask)
    assert "Access-Accept" in out and "ocsd-route-" not in out, out
    assert daemon.stop() == 0
    # ... and refused when every account must have one. The called number is ported meanwhile.
    ported = tmp_path / "ported.csv"
    ported.write_text("number,routing_number,carrier\n442071234567,442079990000,carrierA\n")
    cli(daemon.data, "portability", "import", str(ported))
    strict = start_daemon(tmp_path, extra="lcr: {enabled: true, require_plan: true}\n")
    try:
        out = strict.radclient("auth", ask)
        assert "Access-Reject" in out, out
        call = ask.replace("bob", "alice") + f', h323-conf-id = "{CONF}"'
        out = strict.radclient("auth", call)
        assert "Access-Accept" in out and "ocsd-route-" in out, out
        for status in ("Start", "Stop, Acct-Session-Time = 30"):
            out = strict.radclient(
                "acct", call + f', Acct-Session-Id = "p1", Acct-Status-Type = {status}'
            )
            assert "Accounting-Response" in out, out
        assert strict.stop() == 0
        with sqlite3.connect(strict.data / "ocsd.sqlite3") as db:
            [(routing_number, extra)] = db.execute(
                "SELECT routing_number, extra FROM cdrs WHERE account_id = 'alice'"
            ).fetchall()
        # The routing number the number was ported to, and the carrier it was ported to.
        assert routing_number == "442079990000"
        assert json.loads(extra)["ported_carrier"] == "carrierA"
    finally:
        if strict.process.poll() is None:
            strict.process.kill()
            strict.process.wait()
