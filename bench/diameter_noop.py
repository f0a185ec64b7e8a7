"""A Diameter credit-control answerer that does no charging, to compare with ocsd.

    python bench/diameter_noop.py --port 3868          # our codec + peer state machine
    python bench/diameter_noop.py --port 3868 --raw    # a canned answer, no decoding at all

Default: each connection is one sans-IO ``Peer`` (responder, lazy decoding, as
``ocsd.diameter_server`` configures it); every CCR goes through ``decode_ccr`` and is answered
at once with ``encode_cca`` of a fixed 2001 CCA (one MSCC: 600 s granted, Validity-Time), via
``Peer.send_answer``. The difference to ocsd is what charging costs: the task per request,
the charging service, the balance store, metrics.

``--raw``: after CER/CEA (through ``Peer``), every CCR gets a pre-encoded CCA with its
hop-by-hop and end-to-end ids patched in: the ceiling of the load generator, not a server.

Prints ``listening <port>`` once ready (``--port 0`` picks a free port); SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# Sibling modules, after the repository root (bench/fraud.py must not hide the fraud package).
sys.path.append(str(Path(__file__).resolve().parent))

from diameter_wire import Link, identity, peer_config

from protocols.diameter.constants import CcRequestType
from protocols.diameter.errors import DiameterError
from protocols.diameter.gy import (
    CreditControlAnswer,
    CreditControlRequest,
    GrantedUnits,
    MsccAnswer,
    decode_ccr,
    encode_cca,
)
from protocols.diameter.message import encode_message
from protocols.diameter.peer import (
    Peer,
    PeerClosed,
    PeerConfig,
    PeerRole,
    RequestReceived,
)

LOCAL = identity("noop.localdomain", "localdomain")
ANSWER = CreditControlAnswer(
    result_code=2001,
    mscc=(
        MsccAnswer(
            rating_group=100,
            result_code=2001,
            granted=GrantedUnits(cc_time=600),
            validity_time=1800,
        ),
    ),
)


class NoopConnection(asyncio.Protocol):
    """One peer, answered by the codec alone (the shape of ocsd's ``_Connection``)."""

    def __init__(self, config: PeerConfig) -> None:
        self.config = config
        self.transport: asyncio.Transport | None = None
        self.peer: Peer | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        address = transport.get_extra_info("peername")[0]
        self.peer = Peer(self.config, PeerRole.RESPONDER, address)
        self.peer.start(asyncio.get_running_loop().time())
        self.pump()

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None
        self.peer.receive_data(data, asyncio.get_running_loop().time())
        self.pump()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.peer is not None and not self.peer.is_closed:
            self.peer.connection_lost(asyncio.get_running_loop().time())

    def pump(self) -> None:
        peer = self.peer
        assert peer is not None and self.transport is not None
        loop = asyncio.get_running_loop()
        closing = False
        while (event := peer.next_event()) is not None:
            if isinstance(event, RequestReceived):
                try:
                    ccr = decode_ccr(event.message)
                except DiameterError as error:
                    peer.reject_request(event.message, error, loop.time())
                    continue
                peer.send_answer(encode_cca(ccr, ANSWER, LOCAL), loop.time())
            elif isinstance(event, PeerClosed):
                closing = True
        data = peer.data_to_send()
        if data:
            self.transport.write(data)
        if closing:
            self.transport.close()
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        when = peer.get_timer()
        if when is not None:
            self.timer = loop.call_at(when, self.on_timer)

    def on_timer(self) -> None:
        self.timer = None
        assert self.peer is not None
        self.peer.handle_timer(asyncio.get_running_loop().time())
        self.pump()


def canned_answer() -> bytes:
    """The CCA the raw answerer sends to every CCR (ids patched in)."""
    request = CreditControlRequest(
        session_id="noop;0;0",
        origin_host="bench.load.example",
        origin_realm="load.example",
        destination_realm="localdomain",
        service_context_id="32260@3gpp.org",
        request_type=CcRequestType.UPDATE_REQUEST,
        request_number=1,
    )
    return encode_message(encode_cca(request, ANSWER, LOCAL))


class RawLink(Link):
    """Answers every CCR with the canned CCA, without decoding it."""

    answer = b""

    def on_request(self, frame: bytes) -> None:
        buf = bytearray(self.answer)
        buf[12:20] = frame[12:20]
        self.send(buf)


async def serve(port: int, raw: bool, host: str = "127.0.0.1") -> None:
    loop = asyncio.get_running_loop()
    config = peer_config(LOCAL)
    RawLink.answer = canned_answer()
    factory = (
        (lambda: RawLink(config, PeerRole.RESPONDER)) if raw else (lambda: NoopConnection(config))
    )
    server = await loop.create_server(factory, host, port, backlog=512)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"listening {server.sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3868)
    parser.add_argument("--raw", action="store_true", help="canned answers, no decoding")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.port, args.raw, args.host))


if __name__ == "__main__":
    main()
