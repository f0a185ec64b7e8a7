"""The daemon's HTTP port: health, readiness, metrics and the JSON charging API.

For switches that route and charge by HTTP (Kamailio http_client, FreeSWITCH mod_curl):

- ``POST /v1/calls``: authorize a call (JSON: ``session_id``, ``from``, ``to``, and an
  identity: ``account`` or ``username`` / ``number`` / ``source_ip``); answers the granted
  seconds (and the routes when routing is configured), or the refusal with its reason.
- ``POST /v1/calls/{session_id}/update`` with ``used_s`` (seconds since the last report) or
  ``total_s``; ``POST /v1/calls/{session_id}/stop`` likewise; each with a ``request_number``
  that grows, so a repeated request gets its first answer and moves no money.
- ``POST /v1/events``: one-off debit / refund / balance check / price enquiry.

Bad input is a 400 with a message naming the field; a refusal is a 200 with ``"allowed":
false`` and the reason (the switch decides what to play); a store failure is a 503 so that a
switch with several ocsd nodes fails over.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from lcr.delivery import route_json
from ocsd.charging import ChargingService
from ocsd.charging_types import (
    ChargingRequest,
    Denial,
    DenialCode,
    EventAction,
    Grant,
    Outcome,
    RequestType,
    UnitRequest,
)
from ocsd.directory import Candidate
from ocsd.logs import get_logger
from ocsd.master import IdentityKind
from ocsd.metrics import Metrics, registry_for_export

log = get_logger("http")

PROTOCOL = "http"
MAX_BODY_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """The HTTP listener."""

    enabled: bool = True
    listen: str = "127.0.0.1"
    port: int = 8088
    charging_api: bool = True
    """Serve ``/v1/calls`` and ``/v1/events`` (health and metrics are always served)."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be a TCP port")


class BadRequest(Exception):
    """A request body that cannot be used; the message names the field."""


def _int(body: Mapping[str, Any], name: str, default: int | None = None) -> int | None:
    value = body.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"{name} must be a whole number >= 0")
    return value


def _str(body: Mapping[str, Any], name: str, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise BadRequest(f"{name} is required")
        return None
    if not isinstance(value, str) or not value or len(value) > 256:
        raise BadRequest(f"{name} must be a non-empty string of at most 256 characters")
    return value


def _candidates(body: Mapping[str, Any]) -> tuple[Candidate, ...]:
    out: list[Candidate] = []
    for key, kind in (
        ("username", IdentityKind.USERNAME),
        ("sip_uri", IdentityKind.SIP_URI),
        ("number", IdentityKind.E164),
    ):
        value = _str(body, key)
        if value:
            out.append(Candidate(kind, value.removeprefix("+") if key == "number" else value))
    caller = _str(body, "from")
    if caller and caller.removeprefix("+").isdigit():
        out.append(Candidate(IdentityKind.E164, caller.removeprefix("+")))
    return tuple(out)


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    """The JSON form of an answer."""
    if isinstance(outcome, Denial):
        return {
            "allowed": False,
            "reason": outcome.code.value,
            "message": outcome.message,
            "duplicate": outcome.duplicate,
        }
    body: dict[str, Any] = {"allowed": True, "duplicate": outcome.duplicate}
    if outcome.units:
        first = outcome.units[0]
        body["granted_s"] = first.granted_s
        body["final"] = first.final
        if first.denial is not None:
            body["allowed"] = False
            body["reason"] = first.denial.value
    if outcome.cost_micros is not None:
        body["cost_micros"] = outcome.cost_micros
    if outcome.debited_micros is not None:
        body["debited_micros"] = outcome.debited_micros
    if outcome.balance_micros is not None:
        body["balance_micros"] = outcome.balance_micros
    if outcome.enough_credit is not None:
        body["enough_credit"] = outcome.enough_credit
    if outcome.currency:
        body["currency"] = outcome.currency
    if outcome.routes is not None:
        body["routes"] = route_json(outcome.routes)["routes"]
    return body


class HttpServer:
    """aiohttp application for one worker."""

    def __init__(
        self,
        settings: HttpSettings,
        metrics: Metrics,
        service: ChargingService | None,
        ready: Callable[[], Awaitable[tuple[bool, dict[str, str]]]],
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.service = service
        self.ready = ready
        self.app = web.Application(client_max_size=MAX_BODY_BYTES)
        self.app.router.add_get("/healthz", self.healthz)
        self.app.router.add_get("/readyz", self.readyz)
        self.app.router.add_get("/metrics", self.metrics_page)
        if service is not None and settings.charging_api:
            self.app.router.add_post("/v1/calls", self.start_call)
            self.app.router.add_post("/v1/calls/{session_id}/update", self.update_call)
            self.app.router.add_post("/v1/calls/{session_id}/stop", self.stop_call)
            self.app.router.add_post("/v1/events", self.event)
        self.extra_routes: list[tuple[str, str, Callable[..., Any]]] = []
        self._runner: web.AppRunner | None = None
        self.address: tuple[str, int] | None = None

    def add_json_route(
        self,
        method: str,
        path: str,
        handler: Callable[[dict[str, str]], Awaitable[tuple[int, dict[str, Any]]]],
    ) -> None:
        """Add a JSON endpoint before ``start``: the handler gets the query string and path
        parameters as one mapping and returns (HTTP status, body)."""

        async def handle(request: web.Request) -> web.Response:
            params = {**request.query, **request.match_info}
            status, body = await handler(dict(params))
            return web.json_response(body, status=status)

        self.app.router.add_route(method, path, handle)

    async def start(self, *, reuse_port: bool = False) -> None:
        """Listen."""
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner,
            self.settings.listen,
            self.settings.port,
            reuse_port=reuse_port or None,
            backlog=1024,
        )
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            name = sockets[0].getsockname()
            self.address = (name[0], name[1])
        port = self.address[1] if self.address else self.settings.port
        log.info("listening", address=f"{self.settings.listen}:{port}")

    async def close(self) -> None:
        """Stop listening and finish open requests."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- health --------------------------------------------------------------------------

    async def healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(self, _: web.Request) -> web.Response:
        ok, details = await self.ready()
        text = "".join(f"{k}: {v}\n" for k, v in sorted(details.items()))
        return web.Response(
            status=200 if ok else 503, text=("ready\n" if ok else "not ready\n") + text
        )

    async def metrics_page(self, _: web.Request) -> web.Response:
        data = generate_latest(registry_for_export(self.metrics))
        return web.Response(body=data, headers={"Content-Type": CONTENT_TYPE_LATEST})

    # -- charging API --------------------------------------------------------------------

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json(loads=json.loads)
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
            raise BadRequest("the body is not JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        return body

    async def _run(
        self, command: str, request: web.Request, build: Callable[[dict[str, Any]], ChargingRequest]
    ) -> web.Response:
        assert self.service is not None
        try:
            charging = build(await self._body(request))
        except BadRequest as exc:
            self.metrics.requests.labels(PROTOCOL, command, "bad_request").inc()
            return web.json_response({"error": str(exc)}, status=400)
        outcome = await self.service.handle(charging)
        if isinstance(outcome, Denial) and outcome.code is DenialCode.SERVICE_UNAVAILABLE:
            self.metrics.requests.labels(PROTOCOL, command, "unavailable").inc()
            return web.json_response(outcome_json(outcome), status=503)
        result = "ok" if isinstance(outcome, Grant) else outcome.code.value
        self.metrics.requests.labels(PROTOCOL, command, result).inc()
        return web.json_response(outcome_json(outcome))

    @staticmethod
    def _common(body: Mapping[str, Any], session_id: str, number: int) -> dict[str, Any]:
        return {
            "session_id": session_id,
            "request_number": number,
            "protocol": PROTOCOL,
            "peer": _str(body, "peer") or "http",
            "identities": _candidates(body),
            "source_ip": _str(body, "source_ip"),
            "calling": _str(body, "from"),
            "called": _str(body, "to"),
        }

    async def start_call(self, request: web.Request) -> web.Response:
        def build(body: dict[str, Any]) -> ChargingRequest:
            session_id = _str(body, "session_id", required=True)
            assert session_id is not None
            if not _str(body, "to", required=True):
                raise BadRequest("to is required")
            return ChargingRequest(
                request_type=RequestType.INITIAL,
                units=(UnitRequest(requested_s=_int(body, "requested_s")),),
                **self._common(body, session_id, _int(body, "request_number", 0) or 0),
            )

        return await self._run("start", request, build)

    def _usage(self, body: Mapping[str, Any]) -> UnitRequest:
        return UnitRequest(
            requested_s=_int(body, "requested_s"),
            used_s=_int(body, "used_s", 0) or 0,
            total_used_s=_int(body, "total_s"),
        )

    async def update_call(self, request: web.Request) -> web.Response:
        session_id = request.match_info["session_id"]

        def build(body: dict[str, Any]) -> ChargingRequest:
            number = _int(body, "request_number")
            if number is None:
                raise BadRequest("request_number is required")
            return ChargingRequest(
                request_type=RequestType.UPDATE,
                units=(self._usage(body),),
                **self._common(body, session_id, number),
            )

        return await self._run("update", request, build)

    async def stop_call(self, request: web.Request) -> web.Response:
        session_id = request.match_info["session_id"]

        def build(body: dict[str, Any]) -> ChargingRequest:
            number = _int(body, "request_number")
            if number is None:
                raise BadRequest("request_number is required")
            return ChargingRequest(
                request_type=RequestType.TERMINATE,
                units=(self._usage(body),),
                hangup_cause=_str(body, "hangup_cause") or "",
                **self._common(body, session_id, number),
            )

        return await self._run("stop", request, build)

    async def event(self, request: web.Request) -> web.Response:
        def build(body: dict[str, Any]) -> ChargingRequest:
            session_id = _str(body, "session_id", required=True)
            assert session_id is not None
            action_text = _str(body, "action") or EventAction.DIRECT_DEBIT.value
            try:
                action = EventAction(action_text)
            except ValueError:
                allowed = ", ".join(a.value for a in EventAction)
                raise BadRequest(f"action must be one of {allowed}") from None
            return ChargingRequest(
                request_type=RequestType.EVENT,
                action=action,
                units=(
                    UnitRequest(
                        requested_s=_int(body, "seconds"), units=_int(body, "units", 0) or 0
                    ),
                ),
                **self._common(body, session_id, _int(body, "request_number", 0) or 0),
            )

        return await self._run("event", request, build)
