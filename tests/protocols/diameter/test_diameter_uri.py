"""DiameterURI: text on the wire, parsed on demand."""

import pytest

from protocols.diameter.constants import ResultCode
from protocols.diameter.datatypes.uri import (
    DiameterUri,
    parse_uri,
    pull_diameter_uri,
    push_diameter_uri,
)
from protocols.diameter.errors import DiameterError


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        pytest.param(
            "aaa://ocs.example.net",
            DiameterUri(False, "ocs.example.net", 3868, "tcp", "diameter"),
            id="defaults",
        ),
        pytest.param(
            "aaas://ocs.example.net:5868;transport=sctp;protocol=diameter",
            DiameterUri(True, "ocs.example.net", 5868, "sctp", "diameter"),
            id="all-parts",
        ),
        pytest.param(
            "aaas://ocs.example.net",
            DiameterUri(True, "ocs.example.net", 5658, "tcp", "diameter"),
            id="secure-default-port",
        ),
        pytest.param(
            "aaa://[2001:db8::1]:3868",
            DiameterUri(False, "[2001:db8::1]", 3868, "tcp", "diameter"),
            id="ipv6-literal",
        ),
    ],
)
def test_parse(text: str, parsed: DiameterUri) -> None:
    assert pull_diameter_uri(push_diameter_uri(text)) == text
    assert parse_uri(text) == parsed


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("http://ocs.example.net", id="scheme"),
        pytest.param("aaa://", id="no-host"),
        pytest.param("aaa://ocs.example.net:99999", id="port-range"),
        pytest.param("aaa://ocs.example.net;transport", id="bad-param"),
    ],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(DiameterError) as caught:
        parse_uri(text)
    assert caught.value.result_code == ResultCode.DIAMETER_INVALID_AVP_VALUE


def test_non_ascii_payload_is_5004() -> None:
    with pytest.raises(DiameterError) as caught:
        pull_diameter_uri("aaa://bücher.example".encode())
    assert caught.value.result_code == ResultCode.DIAMETER_INVALID_AVP_VALUE
    with pytest.raises(ValueError):
        push_diameter_uri("aaa://bücher.example")
