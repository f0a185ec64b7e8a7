"""RADIUS for ocsd: sans-IO packet codec, FreeRADIUS dictionaries, typed request views.

The asyncio server adapter (in ``ocsd``) uses, per datagram::

    packet = decode_packet(data)                      # RadiusError(DropReason) -> drop + count
    key = retransmission_key(addr, packet)            # duplicate cache (RFC 5080 §2.2.2)
    verify_request(packet, client.secret, require_message_authenticator=...)
    view = decode_accounting(packet)                  # or decode_access(packet, secret)
    reply = encode_reply(packet, Code.ACCOUNTING_RESPONSE, [], client.secret)

Standard library only; no IO besides reading dictionary files, no clock reads.
"""

from protocols.radius.attribute import (
    Attribute,
    MalformedAttribute,
    cisco_avpair,
    date_attribute,
    encode_attribute,
    h323_attribute,
    integer_attribute,
    ipaddr_attribute,
    octets_attribute,
    parse_avpair,
    string_attribute,
    vendor_attribute,
)
from protocols.radius.dictionary import (
    Dictionary,
    DictionaryError,
    default_dictionary,
    load_dictionary,
)
from protocols.radius.h323 import H323Time, format_h323_time, parse_h323_time
from protocols.radius.packet import (
    MAX_PACKET_OCTETS,
    Code,
    DropReason,
    Packet,
    RadiusError,
    RetransmissionKey,
    decode_packet,
    decrypt_user_password,
    encode_reply,
    encode_request,
    encrypt_user_password,
    retransmission_key,
    verify_reply,
    verify_request,
)
from protocols.radius.view import (
    AccessRequest,
    AccountingRequest,
    AcctStatusType,
    decode_access,
    decode_accounting,
)

__all__ = [
    "MAX_PACKET_OCTETS",
    "AccessRequest",
    "AccountingRequest",
    "AcctStatusType",
    "Attribute",
    "Code",
    "Dictionary",
    "DictionaryError",
    "DropReason",
    "H323Time",
    "MalformedAttribute",
    "Packet",
    "RadiusError",
    "RetransmissionKey",
    "cisco_avpair",
    "date_attribute",
    "decode_access",
    "decode_accounting",
    "decode_packet",
    "decrypt_user_password",
    "default_dictionary",
    "encode_attribute",
    "encode_reply",
    "encode_request",
    "encrypt_user_password",
    "format_h323_time",
    "h323_attribute",
    "integer_attribute",
    "ipaddr_attribute",
    "load_dictionary",
    "octets_attribute",
    "parse_avpair",
    "parse_h323_time",
    "retransmission_key",
    "string_attribute",
    "vendor_attribute",
    "verify_reply",
    "verify_request",
]
