"""Errors of the Diameter layer.

Two kinds, as in h11:

- :class:`DiameterError` is a *remote* protocol error: something the peer sent is wrong.  It
  carries the Result-Code the peer must be told, the Failed-AVP content (RFC 6733 §7.5) and an
  Error-Message.  Decoders and validators raise it;
  :func:`protocols.diameter.message.answer_for_error` is the one place where it becomes an
  answer.
- :class:`LocalProtocolError` is a mistake of *our* caller (sending on a closed peer, answering a
  request that was never received).  It is never sent on the wire.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from protocols.diameter.avp import Avp


class DiameterError(Exception):
    """A received message violates the protocol; carries what the answer must say."""

    __slots__ = ("error_message", "failed_avps", "result_code")

    def __init__(
        self,
        result_code: int,
        error_message: str = "",
        failed_avps: tuple[Avp, ...] = (),
    ) -> None:
        super().__init__(result_code, error_message)
        self.result_code = result_code
        self.error_message = error_message
        self.failed_avps = failed_avps

    @property
    def failed_avp(self) -> Avp | None:
        """The first (usually the only) AVP of the Failed-AVP, if any."""
        return self.failed_avps[0] if self.failed_avps else None

    def with_failed_avps(self, failed_avps: tuple[Avp, ...]) -> DiameterError:
        """Return a copy of this error whose Failed-AVP content is *failed_avps*."""
        return DiameterError(self.result_code, self.error_message, failed_avps)

    def __str__(self) -> str:
        return f"{self.result_code}: {self.error_message}"

    def __repr__(self) -> str:
        return (
            f"DiameterError({self.result_code!r}, {self.error_message!r}, "
            f"failed_avps={self.failed_avps!r})"
        )


class LocalProtocolError(Exception):
    """Our own caller used the API in a way the protocol does not allow."""
