"""Requests to every worker of every node: end an account's calls, re-authorize its sessions.

A Diameter peer is connected to one worker of one node, and only that worker can send it an
ASR or a RAR; a fraud action or a top-up reaches some other worker. With a Redis hot store the
worker that acts publishes the request on a channel of the store's key prefix; every other
worker (on any node) receives it and does its part for the peers connected to it. A message
is fire-and-forget: a worker that is restarting misses it, as it would miss the peer's
requests. With the embedded store there is one worker, and nothing to tell.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis.asyncio as aioredis

from ocsd.logs import get_logger

log = get_logger("control")

RETRY_S = 1.0


@dataclass(frozen=True, slots=True)
class ControlMessage:
    """What another worker is asked to do."""

    kind: str
    """``terminate`` or ``reauthorize``."""
    account_id: str
    reason: str = ""


Handler = Callable[[ControlMessage], Awaitable[None]]


class ControlBus:
    """Publish to, and listen on, the channel ``<prefix>:control`` of the hot store."""

    def __init__(self, url: str, prefix: str) -> None:
        self.channel = f"{prefix}:control"
        self._client: aioredis.Redis = aioredis.from_url(url)
        self._origin = f"{os.uname().nodename}:{os.getpid()}"
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    async def publish(self, message: ControlMessage) -> None:
        """Tell the others; a failure is logged (the local worker has acted already)."""
        body = json.dumps(
            {
                "origin": self._origin,
                "kind": message.kind,
                "account": message.account_id,
                "reason": message.reason,
            }
        )
        try:
            await self._client.publish(self.channel, body)
        except Exception as exc:
            log.warning("control message not sent", kind=message.kind, error=str(exc))

    def start(self, handler: Handler) -> None:
        """Listen in the background, reconnecting after a failure."""
        self._task = asyncio.ensure_future(self._listen(handler))

    async def _listen(self, handler: Handler) -> None:
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed.set()
                async for raw in pubsub.listen():
                    message = _decode(raw.get("data"), self._origin)
                    if message is None:
                        continue
                    try:
                        await handler(message)
                    except Exception:
                        log.exception("control message failed", kind=message.kind)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.subscribed.clear()
                log.warning("control channel lost; listening again", error=str(exc))
                await asyncio.sleep(RETRY_S)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._client.aclose()


def _decode(data: object, origin: str) -> ControlMessage | None:
    """The message, or None if it is our own or unreadable."""
    if not isinstance(data, bytes | str):
        return None
    try:
        fields = json.loads(data)
        if fields.get("origin") == origin:
            return None
        return ControlMessage(str(fields["kind"]), str(fields["account"]), str(fields["reason"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("unreadable control message dropped")
        return None
