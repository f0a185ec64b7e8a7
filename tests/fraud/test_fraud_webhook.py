"""Alerts to a local HTTP server: delivery, retries with backoff, signature, bounded queue."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fraud.metrics import DROPPED, WEBHOOK
from fraud.settings import WebhookSettings
from fraud.webhook_sink import WebhookSender


class Endpoint:
    """A receiver that answers the statuses it is given, then 200."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.received: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status)


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[Endpoint, str]]:
    receiver = Endpoint()
    app = web.Application()
    app.router.add_post("/alerts", receiver.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield receiver, str(server.make_url("/alerts"))
    finally:
        await server.close()


class Pauses:
    """An injected sleep: records the backoff, never waits."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


EVENT = {"event": "fraud.rule_tripped", "account": "alice", "rule": "calls_per_minute"}


async def test_an_alert_is_posted_as_signed_json(endpoint: tuple[Endpoint, str]) -> None:
    receiver, url = endpoint
    sender = WebhookSender(url, secret="s3cret", headers={"Authorization": "Bearer t"})
    sender.start()
    assert sender.submit(EVENT)
    await sender.close()
    ((headers, body),) = receiver.received
    assert json.loads(body) == EVENT
    assert headers["Content-Type"] == "application/json"
    assert headers["Authorization"] == "Bearer t"
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Ocsd-Signature"] == f"sha256={expected}"
    assert sender.metrics.value(WEBHOOK, result="sent") == 1


@pytest.mark.parametrize(
    ("statuses", "delivered", "attempts", "delays"),
    [
        pytest.param([500, 503], True, 3, [1.0, 2.0], id="retried-until-accepted"),
        pytest.param([429], True, 2, [1.0], id="rate-limited"),
        pytest.param([500] * 9, False, 5, [1.0, 2.0, 4.0, 4.0], id="gives-up-after-max"),
        pytest.param([400], False, 1, [], id="client-error-is-final"),
    ],
)
async def test_retries_with_backoff(
    endpoint: tuple[Endpoint, str],
    statuses: list[int],
    delivered: bool,
    attempts: int,
    delays: list[float],
) -> None:
    receiver, url = endpoint
    receiver.statuses = list(statuses)
    pauses = Pauses()
    sender = WebhookSender(url, max_attempts=5, backoff_initial_s=1, backoff_max_s=4, sleep=pauses)
    assert await sender.deliver("d1", b"{}") is delivered
    assert len(receiver.received) == attempts
    assert pauses.delays == delays
    assert {h["X-Ocsd-Delivery"] for h, _ in receiver.received} == {"d1"}, "same id on retries"
    assert sender.metrics.value(WEBHOOK, result="failed") == (0 if delivered else 1)
    await sender.close()


async def test_an_unreachable_endpoint_is_retried_then_given_up() -> None:
    pauses = Pauses()
    # Port 9 (discard) on localhost: connection refused.
    sender = WebhookSender("http://127.0.0.1:9/x", max_attempts=3, sleep=pauses, timeout_s=2)
    assert not await sender.deliver("d1", b"{}")
    assert pauses.delays == [1.0, 2.0]
    assert sender.metrics.value(WEBHOOK, result="retried") == 2
    await sender.close()


async def test_the_queue_is_bounded() -> None:
    sender = WebhookSender("http://127.0.0.1:9/x", queue_size=2)
    assert sender.submit(EVENT) and sender.submit(EVENT)
    assert not sender.submit(EVENT)
    assert sender.pending == 2
    assert sender.metrics.value(DROPPED, queue="webhook") == 1
    await sender.close()


async def test_alerts_are_sent_in_order_by_the_background_task(
    endpoint: tuple[Endpoint, str],
) -> None:
    receiver, url = endpoint
    sender = WebhookSender.from_settings(WebhookSettings(url=url))
    sender.start()
    for i in range(5):
        await sender.alert({**EVENT, "n": i})
    await sender.close()
    assert [json.loads(body)["n"] for _, body in receiver.received] == [0, 1, 2, 3, 4]
