"""Captured RADIUS packets, each with its decoded dump.

RFC 2865 section 7.1 (secret ``xyzzy5461``) and packets FreeRADIUS 3.2.1 ``radclient`` sent to
a UDP socket (secret ``testing123``), captured byte for byte.
"""

from __future__ import annotations

RFC_SECRET = b"xyzzy5461"

# RFC 2865 7.1: Access-Request id 0 from NAS 192.168.1.16 port 3
#   User-Name = "nemo"
#   User-Password = "arctangent"  (hidden)
#   NAS-IP-Address = 192.168.1.16
#   NAS-Port = 3
RFC_7_1_REQUEST = bytes.fromhex(
    "010000380f403f9473978057bd83d5cb98f4227a01066e656d6f02120dbe708d93d413ce3196e43f782a0aee"
    "0406c0a80110050600000003"
)
# RFC 2865 7.1: Access-Accept id 0
#   Service-Type = Login-User, Login-Service = Telnet, Login-IP-Host = 192.168.1.3
RFC_7_1_ACCEPT = bytes.fromhex(
    "0200002686fe220e7624ba2a1005f6bf9b55e0b20606000000010f06000000000e06c0a80103"
)
# RFC 2865 7.2: Access-Request id 1 (CHAP), and its Access-Accept
#   User-Name = "flopsy", CHAP-Password, NAS-IP-Address = 192.168.1.16, NAS-Port = 20,
#   Service-Type = Framed-User, Framed-Protocol = PPP
RFC_7_2_REQUEST = bytes.fromhex(
    "010100472aee86f08d0d55969ca5978e0d3367a20108666c6f707379031316e97557c316185895f293ff6344"
    "0772750406c0a80110050600000014060600000002070600000001"
)

RADCLIENT_SECRET = b"testing123"

# radclient auth: Access-Request id 8, Message-Authenticator first
#   Message-Authenticator, User-Name = "alice", User-Password = "secret",
#   NAS-IP-Address = 10.1.2.3, Calling-Station-Id = "4412345",
#   Cisco-AVPair = "h323-ivr-out=x", h323-conf-id = "h323-conf-id=1 2 3 4"
RADCLIENT_ACCESS_REQUEST = bytes.fromhex(
    "0108008058bf12263b2cf4cacc83d62c2318c9e00107616c6963650212638f93a275688da967b65027e9daf4"
    "255012da54aa1eb0f14093faec536ab60f375f04060a0102031f09343431323334351a160000000901106833"
    "32332d6976722d6f75743d781a1c000000091816683332332d636f6e662d69643d31203220332034"
)
# radclient acct: Accounting-Request id 6
#   Acct-Status-Type = Stop, Acct-Session-Id = "abc", Acct-Session-Time = 60,
#   h323-setup-time = "h323-setup-time=*15:31:22.123 UTC Wed Dec 4 2024",
#   Event-Timestamp = 1733326282 (2024-12-04 15:31:22 UTC)
RADCLIENT_ACCOUNTING_REQUEST = bytes.fromhex(
    "04060063c88388effebd9192f5455f50da6c80062806000000022c056162632e060000003c1a380000000919"
    "32683332332d73657475702d74696d653d2a31353a33313a32322e313233205554432057656420446563203420"
    "323032343706675075ca"
)
# radclient status: Status-Server id 153, Message-Authenticator only
RADCLIENT_STATUS_SERVER = bytes.fromhex(
    "0c990026219c7d3736672f402d415a6d8d5de9675012d97943b1e50c0d1d8943c615fda05253"
)
# radclient disconnect: Disconnect-Request id 191
#   Acct-Session-Id = "abc", User-Name = "alice"
RADCLIENT_DISCONNECT_REQUEST = bytes.fromhex(
    "28bf00201d82f68fd5ccfdbd295c6e411232e4532c056162630107616c696365"
)
# radclient coa: CoA-Request id 73
#   Acct-Session-Id = "abc", Session-Timeout = 30, Message-Authenticator (zero vector)
RADCLIENT_COA_REQUEST = bytes.fromhex(
    "2b490031c617733acf57af23d05ab49149016c332c056162631b060000001e5012bc72003304d978eac091"
    "07a4e0d48322"
)
