"""A softswitch for tests: a Diameter client over TCP on the sans-IO peer (initiator role)."""

from __future__ import annotations

import asyncio
import ipaddress
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from protocols.diameter.constants import (
    CcRequestType,
    CommandCode,
    RequestedAction,
    ResultCode,
    SubscriptionIdType,
)
from protocols.diameter.gy import (
    CreditControlAnswer,
    CreditControlRequest,
    ImsInformation,
    MsccRequest,
    RequestedUnits,
    SubscriptionId,
    UsedUnits,
    decode_cca,
    encode_ccr,
    encode_session_answer,
)
from protocols.diameter.message import LocalIdentity, Message
from protocols.diameter.peer import (
    AllowedPeer,
    AnswerReceived,
    Peer,
    PeerClosed,
    PeerConfig,
    PeerOpened,
    PeerRole,
    RequestReceived,
)

CLIENT_HOST = "switch.test.example"
CLIENT_REALM = "test.example"


@dataclass
class Client:
    """One connection to ocsd."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    peer: Peer
    answers: dict[int, asyncio.Future[Message]] = field(default_factory=dict)
    server_requests: list[Message] = field(default_factory=list)
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    answer_server_requests: int = ResultCode.DIAMETER_SUCCESS
    _task: asyncio.Task[None] | None = None

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _pump(self) -> None:
        while (event := self.peer.next_event()) is not None:
            if isinstance(event, PeerOpened):
                self.opened.set()
            elif isinstance(event, AnswerReceived):
                future = self.answers.pop(event.message.hop_by_hop_id, None)
                if future is not None and not future.done():
                    future.set_result(event.message)
            elif isinstance(event, RequestReceived):
                self.server_requests.append(event.message)
                if event.message.command_code in (CommandCode.ABORT_SESSION, CommandCode.RE_AUTH):
                    self.peer.send_answer(
                        encode_session_answer(
                            event.message, self.peer.config.identity, self.answer_server_requests
                        ),
                        self._now(),
                    )
            elif isinstance(event, PeerClosed):
                self.closed.set()
        data = self.peer.data_to_send()
        if data:
            self.writer.write(data)

    async def _read(self) -> None:
        try:
            while data := await self.reader.read(65536):
                self.peer.receive_data(data, self._now())
                self._pump()
        finally:
            if not self.peer.is_closed:
                self.peer.connection_lost(self._now())
            self._pump()
            self.closed.set()

    async def send(
        self, message: Message, wait_s: float = 5.0, *, keep_end_to_end_id: bool = False
    ) -> Message:
        sent = self.peer.send_request(message, self._now(), keep_end_to_end_id=keep_end_to_end_id)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self.answers[sent.hop_by_hop_id] = future
        self._pump()
        return await asyncio.wait_for(future, wait_s)

    async def ccr(self, request: CreditControlRequest) -> tuple[Message, CreditControlAnswer]:
        answer = await self.send(encode_ccr(request))
        return answer, decode_cca(answer)

    async def close(self) -> None:
        if self.peer.is_open:
            self.peer.close(self._now())
            self._pump()
            await asyncio.wait_for(self.closed.wait(), 10)
        self.writer.close()
        if self._task is not None:
            self._task.cancel()


async def connect(host: str, port: int, origin_host: str = CLIENT_HOST) -> Client:
    reader, writer = await asyncio.open_connection(host, port)
    identity = LocalIdentity(
        origin_host=origin_host,
        origin_realm=CLIENT_REALM,
        host_ip_addresses=(ipaddress.ip_address("127.0.0.1"),),
        product_name="test-switch",
    )
    config = PeerConfig(
        identity=identity,
        allowed_peers=(AllowedPeer.of("*", "127.0.0.0/8"),),
    )
    peer = Peer(config, PeerRole.INITIATOR, host, rng=random.Random(1))
    client = Client(reader, writer, peer)
    client._task = asyncio.ensure_future(client._read())
    peer.start(client._now())
    client._pump()
    opened = asyncio.ensure_future(client.opened.wait())
    closed = asyncio.ensure_future(client.closed.wait())
    await asyncio.wait({opened, closed}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
    opened.cancel()
    closed.cancel()
    if not client.opened.is_set():
        writer.close()
        await writer.wait_closed()
        if client._task is not None:
            client._task.cancel()
        raise ConnectionRefusedError("the capabilities exchange failed")
    return client


def ccr(
    kind: CcRequestType,
    number: int,
    *,
    session: str = "switch.test.example;1;1",
    subscriber: str | None = "441632960001",
    called: str | None = "tel:+442071234567",
    requested: int | None = 600,
    used: int | None = None,
    rating_group: int | None = 100,
    action: RequestedAction | None = None,
    ims: bool = True,
    event_time: datetime | None = None,
) -> CreditControlRequest:
    subscription = (
        (SubscriptionId(SubscriptionIdType.END_USER_E164, subscriber),) if subscriber else ()
    )
    mscc: Sequence[MsccRequest] = ()
    if rating_group is not None:
        mscc = (
            MsccRequest(
                rating_group=rating_group,
                requested=RequestedUnits(cc_time=requested) if requested is not None else None,
                used=(UsedUnits(cc_time=used),) if used is not None else (),
            ),
        )
    return CreditControlRequest(
        session_id=session,
        origin_host=CLIENT_HOST,
        origin_realm=CLIENT_REALM,
        destination_realm="localdomain",
        service_context_id="32260@3gpp.org",
        request_type=kind,
        request_number=number,
        subscription_ids=subscription,
        mscc=tuple(mscc),
        requested=RequestedUnits(cc_time=requested) if rating_group is None and requested else None,
        used=(UsedUnits(cc_time=used),) if rating_group is None and used is not None else (),
        requested_action=action,
        event_timestamp=event_time or datetime.now(UTC),
        ims=ImsInformation(called_party_address=called) if ims and called else None,
    )
