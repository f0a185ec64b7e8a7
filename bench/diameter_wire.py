"""Shared by the Diameter bench scripts: a TCP connection whose capabilities exchange goes
through our sans-IO ``Peer`` and whose application traffic then bypasses it.

``Peer.send_request`` and ``Peer.send_answer`` encode a ``Message`` per call (~10 µs), which
would make a load generator or a trivial answerer the bottleneck of what they measure. So once
CER/CEA is done, :class:`Link` cuts the stream with ``FrameReader`` and hands each application
frame over as octets (``on_request`` / ``on_answer``); it still answers the base protocol
itself (DWR -> DWA, DPR -> DPA then close, ASR/RAR -> 2001) so a long run is not dropped by the
other side's watchdog.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import struct
from typing import cast

from protocols.diameter.avp import new_avp
from protocols.diameter.constants import (
    ApplicationId,
    AvpCode,
    CommandCode,
    DisconnectCause,
    ResultCode,
)
from protocols.diameter.errors import DiameterError
from protocols.diameter.framing import FrameReader
from protocols.diameter.message import (
    LocalIdentity,
    Message,
    decode_message,
    encode_message,
    make_answer,
)
from protocols.diameter.peer import (
    AllowedPeer,
    AnswerDropped,
    Peer,
    PeerClosed,
    PeerConfig,
    PeerOpened,
    PeerRole,
    RequestReceived,
)

IDS = struct.Struct("!II")  # hop-by-hop and end-to-end ids at offset 12
U32 = struct.Struct("!I")
AVP_HEADER = struct.Struct("!II")
CCR = int(CommandCode.CREDIT_CONTROL)
_DPR = int(CommandCode.DISCONNECT_PEER)


def identity(origin_host: str, origin_realm: str) -> LocalIdentity:
    """A loopback identity."""
    return LocalIdentity(
        origin_host=origin_host,
        origin_realm=origin_realm,
        host_ip_addresses=(ipaddress.ip_address("127.0.0.1"),),
        product_name="ocsd-bench",
    )


def peer_config(local: LocalIdentity) -> PeerConfig:
    """Any peer on loopback, credit control, generous bounds."""
    return PeerConfig(
        identity=local,
        allowed_peers=(AllowedPeer.of("*", "127.0.0.0/8", "::1"),),
        max_pending_requests=1_000_000,
        max_outstanding_requests=1_000_000,
        decode_lazily=True,
    )


def avp_value_offsets(frame: bytes) -> dict[int, int]:
    """Offset of the value of each top-level IETF AVP (first occurrence) of a message."""
    offsets: dict[int, int] = {}
    pos, end = 20, len(frame)
    while pos + 8 <= end:
        code, word = AVP_HEADER.unpack_from(frame, pos)
        length = word & 0xFFFFFF
        if length < 8:
            break
        if not word >> 31:
            offsets.setdefault(code, pos + 8)
        pos += (length + 3) & ~3
    return offsets


def result_code(frame: bytes) -> int:
    """The command-level Result-Code of an answer (-1 if it has none)."""
    pos, end = 20, len(frame)
    while pos + 12 <= end:
        code, word = AVP_HEADER.unpack_from(frame, pos)
        if code == 268 and not word >> 31:
            value: int = U32.unpack_from(frame, pos + 8)[0]
            return value
        length = word & 0xFFFFFF
        if length < 8:
            break
        pos += (length + 3) & ~3
    return -1


class Link(asyncio.Protocol):
    """One Diameter connection: CER/CEA through ``Peer``, then raw application frames."""

    def __init__(self, config: PeerConfig, role: PeerRole) -> None:
        self.config = config
        self.role = role
        self.transport: asyncio.Transport | None = None
        self.peer: Peer | None = None
        self.reader: FrameReader | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._out: list[bytes | bytearray] | None = None
        self._rng = random.Random()
        self._hop_by_hop = self._rng.getrandbits(32)
        self._end_to_end = self._rng.getrandbits(32)
        self._dpr_hop_by_hop = -1

    # -- what subclasses implement -------------------------------------------------------

    def on_request(self, frame: bytes) -> None:
        """A Credit-Control-Request arrived (responder side)."""

    def on_answer(self, frame: bytes) -> None:
        """An application answer arrived (initiator side)."""

    def on_closed(self) -> None:
        """The connection is gone."""

    # -- sending -------------------------------------------------------------------------

    def next_ids(self) -> tuple[int, int]:
        """Fresh hop-by-hop and end-to-end ids."""
        hop, end = self._hop_by_hop, self._end_to_end
        self._hop_by_hop = (hop + 1) & 0xFFFFFFFF
        self._end_to_end = (end + 1) & 0xFFFFFFFF
        return hop, end

    def send(self, data: bytes | bytearray) -> None:
        """Write now, or at the end of the data_received() being handled (one write)."""
        if self._out is not None:
            self._out.append(data)
        elif self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def disconnect(self) -> None:
        """Send DPR (the other side answers DPA and we close), or close if not open yet."""
        if self.transport is None or self.transport.is_closing():
            return
        if not self.opened.done() or self.peer is not None:
            self.transport.close()
            return
        hop, end = self.next_ids()
        self._dpr_hop_by_hop = hop
        local = self.config.identity
        dpr = Message(
            CommandCode.DISCONNECT_PEER,
            0x80,
            ApplicationId.COMMON_MESSAGES,
            hop,
            end,
            (*local.origin_avps, new_avp(AvpCode.DISCONNECT_CAUSE, int(DisconnectCause.REBOOTING))),
        )
        self.send(encode_message(dpr))

    # -- transport -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peername = transport.get_extra_info("peername")
        self.peer = Peer(self.config, self.role, peername[0] if peername else "127.0.0.1")
        self.peer.start(asyncio.get_running_loop().time())
        self._pump_peer()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed during the capabilities exchange"))
        if not self.closed.done():
            self.closed.set_result(None)
        self.on_closed()

    def data_received(self, data: bytes) -> None:
        self._out = []
        try:
            if self.peer is not None:
                self.peer.receive_data(data, asyncio.get_running_loop().time())
                self._pump_peer()
                return
            assert self.reader is not None
            try:
                frames = self.reader.feed(data)
            except DiameterError:
                self.transport.close()  # type: ignore[union-attr]
                return
            for frame in frames:
                flags = frame[4]
                command = U32.unpack_from(frame, 4)[0] & 0xFFFFFF
                if command == CCR:
                    if flags & 0x80:
                        self.on_request(frame)
                    else:
                        self.on_answer(frame)
                else:
                    self._base(frame, command, flags)
        finally:
            out, self._out = self._out, None
            if out and self.transport is not None and not self.transport.is_closing():
                self.transport.write(b"".join(out))

    # -- internals -----------------------------------------------------------------------

    def _pump_peer(self) -> None:
        peer = self.peer
        assert peer is not None
        while (event := peer.next_event()) is not None:
            if isinstance(event, PeerOpened):
                self.reader = FrameReader(self.config.max_message_bytes)
                if not self.opened.done():
                    self.opened.set_result(None)
            elif isinstance(event, RequestReceived) and event.message.raw is not None:
                self.on_request(event.message.raw)
            elif isinstance(event, AnswerDropped) and event.message.raw is not None:
                self.on_answer(event.message.raw)
            elif isinstance(event, PeerClosed) and self.transport is not None:
                self.transport.write(peer.data_to_send())
                self.transport.close()
                return
        data = peer.data_to_send()
        if data and self.transport is not None:
            self.transport.write(data)
        if peer.is_open:
            self.peer = None  # from here on, application frames bypass the state machine

    def _base(self, frame: bytes, command: int, flags: int) -> None:
        if not flags & 0x80:
            if command == _DPR and IDS.unpack_from(frame, 12)[0] == self._dpr_hop_by_hop:
                assert self.transport is not None
                self.transport.close()
            return
        try:
            request = decode_message(frame)
        except DiameterError:
            return
        # DWR, DPR, ASR, RAR (and a repeated CER) are all simply answered 2001.
        self.send(
            encode_message(make_answer(request, self.config.identity, ResultCode.DIAMETER_SUCCESS))
        )
        if command == _DPR:
            out, self._out = self._out or [], None
            assert self.transport is not None
            self.transport.write(b"".join(out))
            self.transport.close()
