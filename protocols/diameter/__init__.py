"""Diameter for ocsd: base protocol (RFC 6733), credit control (RFC 4006/8506), 3GPP Ro (TS 32.299).

Sans-IO and standard library only: nothing here reads a clock, touches a socket or imports
asyncio; time is passed in as ``now`` (seconds on the caller's monotonic clock).

Modules, bottom up:

- :mod:`~protocols.diameter.constants` - command, application, result, AVP codes and
  enumerations, named.
- :mod:`~protocols.diameter.errors` - :class:`DiameterError` (what the peer did wrong, with
  Result-Code and Failed-AVP) and :class:`LocalProtocolError` (what our caller did wrong).
- :mod:`~protocols.diameter.datatypes` - one module per AVP data type, ``pull_*``/``push_*``.
- :mod:`~protocols.diameter.dictionary` - AVP definitions with their M/V/P flag rules.
- :mod:`~protocols.diameter.avp` - :class:`Avp` and the AVP-list codec (Grouped included).
- :mod:`~protocols.diameter.message` - :class:`Message`, ``decode_message``/``encode_message``,
  :class:`CodecOptions`, ``make_answer`` and ``answer_for_error``.
- :mod:`~protocols.diameter.framing` - :class:`FrameReader`, whole messages out of a stream.
- :mod:`~protocols.diameter.peer` - :class:`Peer`, the per-connection state machine.
- :mod:`~protocols.diameter.gy` - CCR/CCA, RAR/RAA, ASR/ASA as typed views.
"""
