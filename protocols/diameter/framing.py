"""Cut a TCP byte stream into whole Diameter messages (RFC 6733 §3), with a bounded buffer.

The first four octets of every message are its version and 24-bit length, so framing needs
nothing else.  The
reader refuses, as soon as the first four octets of a message are in, a length smaller than
the 20-octet header or larger than ``max_message_bytes``: after either the stream cannot be
trusted (or would make us buffer without bound) and the connection must be dropped, so the
error is raised rather than answered.  It never holds more than one partial message, i.e. at
most ``max_message_bytes - 1`` octets; :attr:`FrameReader.pending` tells the caller that a
message is stuck half-way so it can drop a peer that stalls.
"""

from __future__ import annotations

import struct

from protocols.diameter.constants import HEADER_LENGTH, ResultCode
from protocols.diameter.errors import DiameterError

_WORD = struct.Struct("!I")
DEFAULT_MAX_MESSAGE_BYTES = 65_536


class FrameReader:
    """Incremental message splitter: ``feed(data) -> [message, ...]``."""

    __slots__ = ("_buffer", "_max", "_needed")

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        if max_message_bytes < HEADER_LENGTH:
            raise ValueError("max_message_bytes must be at least the 20-octet header")
        self._max = max_message_bytes
        self._buffer = bytearray()
        self._needed = 0  # length of the message being buffered, once known

    @property
    def max_message_bytes(self) -> int:
        """The largest message accepted."""
        return self._max

    @property
    def pending(self) -> bool:
        """True when part of a message has been received and the rest has not."""
        return bool(self._buffer)

    @property
    def buffered_bytes(self) -> int:
        """Octets held for the message not yet complete."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received octets; return the messages they complete, in order.

        Raises DiameterError (5015 DIAMETER_INVALID_MESSAGE_LENGTH) for a length below 20 or
        above the maximum; the reader is unusable afterwards.
        """
        frames: list[bytes] = []
        buffer = self._buffer
        if buffer:
            buffer += data
            if not self._needed:
                if len(buffer) < 4:
                    return frames
                self._needed = self._check_length(buffer, 0)
            if len(buffer) < self._needed:
                return frames
            data = bytes(buffer)
            buffer.clear()
            self._needed = 0
        size = len(data)
        pos = 0
        while size - pos >= 4:
            length = self._check_length(data, pos)
            if size - pos < length:
                break
            frames.append(data[pos : pos + length] if pos or length != size else data)
            pos += length
        if pos < size:
            buffer += data[pos:]
            if len(buffer) >= 4:
                self._needed = self._check_length(buffer, 0)
        return frames

    def _check_length(self, data: bytes | bytearray, pos: int) -> int:
        length: int = _WORD.unpack_from(data, pos)[0] & 0xFFFFFF
        if length < HEADER_LENGTH:
            raise DiameterError(
                ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH,
                f"Message Length {length} is shorter than the Diameter header",
            )
        if length > self._max:
            raise DiameterError(
                ResultCode.DIAMETER_INVALID_MESSAGE_LENGTH,
                f"Message Length {length} exceeds the maximum of {self._max} octets",
            )
        return length
