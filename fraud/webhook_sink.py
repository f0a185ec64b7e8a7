"""Alerts to an HTTP endpoint: a bounded queue, one sender task, retries with backoff.

``submit`` never waits: it puts the alert on the queue, or drops it (counted, logged) when the
queue is full, so a slow or dead endpoint never slows a call. The sender POSTs each alert as
JSON and retries connection errors, timeouts, 408, 429 and 5xx answers with exponential
backoff (``backoff_initial_s`` doubling up to ``backoff_max_s``), at most ``max_attempts``
times; other answers are final. Every request carries ``X-Ocsd-Delivery`` (the same id on
every retry, for receivers that deduplicate) and, with a secret, ``X-Ocsd-Signature:
sha256=<HMAC-SHA256 of the body>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import structlog

from fraud.metrics import DROPPED, WEBHOOK, MetricRegistry
from fraud.settings import WebhookSettings

log = structlog.get_logger(component="fraud.webhook")

RETRY_STATUSES = frozenset({408, 429})


class WebhookSender:
    """Sends alerts to one URL, in order, off the call's path."""

    def __init__(
        self,
        url: str,
        *,
        queue_size: int = 1000,
        timeout_s: float = 5.0,
        max_attempts: int = 5,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        secret: str = "",
        headers: Mapping[str, str] | None = None,
        metrics: MetricRegistry | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.secret = secret.encode()
        self.headers = dict(headers or {})
        self.metrics = metrics or MetricRegistry()
        self._sleep = sleep
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(queue_size)
        self._session: aiohttp.ClientSession | None = None
        self._worker: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls, settings: WebhookSettings, metrics: MetricRegistry | None = None
    ) -> WebhookSender:
        """A sender configured by the ``fraud.webhook`` section."""
        return cls(
            settings.url,
            queue_size=settings.queue_size,
            timeout_s=settings.timeout_s,
            max_attempts=settings.max_attempts,
            backoff_initial_s=settings.backoff_initial_s,
            backoff_max_s=settings.backoff_max_s,
            secret=settings.secret,
            headers=settings.headers,
            metrics=metrics,
        )

    # -- on the call's path --------------------------------------------------------------

    def submit(self, event: Mapping[str, Any]) -> bool:
        """Queue an alert; False (counted) when the queue is full."""
        body = json.dumps(event, separators=(",", ":"), sort_keys=True, default=str).encode()
        try:
            self._queue.put_nowait((uuid.uuid4().hex, body))
        except asyncio.QueueFull:
            self.metrics.inc(DROPPED, queue="webhook")
            log.error("fraud alert dropped: webhook queue full", url=self.url)
            return False
        return True

    async def alert(self, event: Mapping[str, Any]) -> None:
        """``FraudActions.alert``: queue it, never wait for delivery."""
        self.submit(event)

    @property
    def pending(self) -> int:
        """Alerts waiting to be sent."""
        return self._queue.qsize()

    # -- the sender ----------------------------------------------------------------------

    def backoff(self, attempt: int) -> float:
        """The pause after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.backoff_max_s, self.backoff_initial_s * 2 ** (attempt - 1)))

    def _headers(self, delivery: str, body: bytes) -> dict[str, str]:
        headers = {**self.headers, "Content-Type": "application/json"}
        headers["X-Ocsd-Delivery"] = delivery
        if self.secret:
            digest = hmac.new(self.secret, body, hashlib.sha256).hexdigest()
            headers["X-Ocsd-Signature"] = f"sha256={digest}"
        return headers

    async def deliver(self, delivery: str, body: bytes) -> bool:
        """POST one alert, retrying as configured; True once the endpoint accepted it."""
        session = self._session
        if session is None:
            session = self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        headers = self._headers(delivery, body)
        for attempt in range(1, self.max_attempts + 1):
            retry = True
            try:
                async with session.post(self.url, data=body, headers=headers) as response:
                    status = response.status
                    await response.read()
                if 200 <= status < 300:
                    self.metrics.inc(WEBHOOK, result="sent")
                    return True
                retry = status >= 500 or status in RETRY_STATUSES
                problem = f"HTTP {status}"
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if not retry or attempt == self.max_attempts:
                self.metrics.inc(WEBHOOK, result="failed")
                log.error(
                    "fraud alert not delivered",
                    url=self.url,
                    attempts=attempt,
                    problem=problem,
                    delivery=delivery,
                )
                return False
            self.metrics.inc(WEBHOOK, result="retried")
            log.warning(
                "fraud alert delivery failed, retrying",
                url=self.url,
                attempt=attempt,
                problem=problem,
            )
            await self._sleep(self.backoff(attempt))
        return False

    async def _run(self) -> None:
        while True:
            delivery, body = await self._queue.get()
            try:
                await self.deliver(delivery, body)
            finally:
                self._queue.task_done()

    def start(self) -> None:
        """Start the sender task (in the running loop)."""
        if self._worker is None and self.url:
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="fraud-webhook")

    async def close(self, deadline_s: float = 5.0) -> None:
        """Send what is queued (within ``deadline_s``), then stop and close connections."""
        worker, self._worker = self._worker, None
        if worker is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), deadline_s)
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if self._session is not None:
            await self._session.close()
            self._session = None


__all__ = ["WebhookSender"]
