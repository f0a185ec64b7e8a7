"""DiameterIdentity: ASCII FQDN/realm."""

import pytest

from protocols.diameter.constants import ResultCode
from protocols.diameter.datatypes.identity import (
    pull_diameter_identity,
    push_diameter_identity,
    same_identity,
)
from protocols.diameter.errors import DiameterError


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("ocs.example.net", id="fqdn"),
        pytest.param("xn--bcher-kva.example", id="idna"),
    ],
)
def test_round_trip(text: str) -> None:
    assert pull_diameter_identity(push_diameter_identity(text)) == text


def test_non_ascii_payload_is_5004() -> None:
    with pytest.raises(DiameterError) as caught:
        pull_diameter_identity("bücher.example".encode())
    assert caught.value.result_code == ResultCode.DIAMETER_INVALID_AVP_VALUE


def test_non_ascii_identity_cannot_be_sent() -> None:
    with pytest.raises(ValueError, match="IDNA"):
        push_diameter_identity("bücher.example")


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        pytest.param("SCSCF.ims.Example.NET", "scscf.ims.example.net", True, id="case"),
        pytest.param("a.example", "b.example", False, id="different"),
    ],
)
def test_identities_compare_like_dns_names(left: str, right: str, same: bool) -> None:
    assert same_identity(left, right) is same
