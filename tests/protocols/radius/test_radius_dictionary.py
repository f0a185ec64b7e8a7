"""FreeRADIUS-format dictionary parser and the dictionary ocsd ships."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocols.radius.dictionary import (
    DataType,
    DictionaryBuilder,
    DictionaryError,
    default_dictionary,
    load_dictionary,
)
from protocols.radius.packet import Code, decode_packet, encode_request

FREERADIUS = Path("/usr/share/freeradius/dictionary")

# (name, vendor, number, type) that the brief and the RFCs fix
SHIPPED = [
    ("User-Name", 0, 1, DataType.STRING),
    ("User-Password", 0, 2, DataType.STRING),
    ("NAS-IP-Address", 0, 4, DataType.IPADDR),
    ("Session-Timeout", 0, 27, DataType.INTEGER),
    ("Proxy-State", 0, 33, DataType.OCTETS),
    ("Acct-Status-Type", 0, 40, DataType.INTEGER),
    ("Acct-Session-Id", 0, 44, DataType.STRING),
    ("Acct-Terminate-Cause", 0, 49, DataType.INTEGER),
    ("Event-Timestamp", 0, 55, DataType.DATE),
    ("Message-Authenticator", 0, 80, DataType.OCTETS),
    ("Acct-Interim-Interval", 0, 85, DataType.INTEGER),
    ("NAS-IPv6-Address", 0, 95, DataType.IPV6ADDR),
    ("Framed-IPv6-Prefix", 0, 97, DataType.IPV6PREFIX),
    ("Error-Cause", 0, 101, DataType.INTEGER),
    ("Cisco-AVPair", 9, 1, DataType.STRING),
    ("h323-remote-address", 9, 23, DataType.STRING),
    ("h323-conf-id", 9, 24, DataType.STRING),
    ("h323-setup-time", 9, 25, DataType.STRING),
    ("h323-call-origin", 9, 26, DataType.STRING),
    ("h323-call-type", 9, 27, DataType.STRING),
    ("h323-connect-time", 9, 28, DataType.STRING),
    ("h323-disconnect-time", 9, 29, DataType.STRING),
    ("h323-disconnect-cause", 9, 30, DataType.STRING),
    ("h323-voice-quality", 9, 31, DataType.STRING),
    ("h323-gw-id", 9, 33, DataType.STRING),
    ("h323-credit-amount", 9, 101, DataType.STRING),
    ("h323-credit-time", 9, 102, DataType.STRING),
    ("h323-return-code", 9, 103, DataType.STRING),
    ("h323-prompt-id", 9, 104, DataType.STRING),
    ("h323-time-and-day", 9, 105, DataType.STRING),
    ("h323-redirect-number", 9, 106, DataType.STRING),
    ("h323-preferred-lang", 9, 107, DataType.STRING),
    ("h323-redirect-ip-address", 9, 108, DataType.STRING),
    ("h323-billing-model", 9, 109, DataType.STRING),
    ("h323-currency", 9, 110, DataType.STRING),
]


@pytest.mark.parametrize(("name", "vendor", "number", "data_type"), SHIPPED)
def test_shipped_dictionary(name: str, vendor: int, number: int, data_type: DataType) -> None:
    definition = default_dictionary().attribute(name)
    assert (definition.vendor, definition.number, definition.data_type) == (
        vendor,
        number,
        data_type,
    )
    assert default_dictionary().find(vendor, number) == definition


def test_shipped_values_and_flags() -> None:
    d = default_dictionary()
    assert d.value("Acct-Status-Type", "Interim-Update") == 3
    assert d.value_name("Acct-Terminate-Cause", 1) == "User-Request"
    assert d.value_name("Error-Cause", 503) == "Session-Context-Not-Found"
    assert d.attribute("user-password").encrypt == 1
    assert d.attribute("EAP-Message").concat
    assert d.vendor("Cisco").number == 9
    assert d.vendor(9).name == "Cisco"
    assert "h323-conf-id" in d and "No-Such" not in d
    with pytest.raises(KeyError):
        d.attribute("No-Such")
    with pytest.raises(KeyError):
        d.value("Acct-Status-Type", "Nope")


def test_shipped_files_are_package_data() -> None:
    """pyproject packages files named dictionary* in every package, this folder included."""
    folder = Path(__file__).parents[3] / "protocols" / "radius" / "dictionaries"
    assert (folder / "__init__.py").exists()
    names = sorted(p.name for p in folder.iterdir() if p.suffix != ".py" and p.is_file())
    assert names and all(n.startswith("dictionary") for n in names)
    for name in names:
        text = (folder / name).read_text()
        assert "SPDX-License-Identifier: Apache-2.0" in text
        assert "Source:" in text or name == "dictionary"


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_include_and_vendor_blocks(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "dictionary.acme",
        "VENDOR Acme 12345\nBEGIN-VENDOR Acme\nATTRIBUTE Acme-Rate 1 integer\n"
        "ATTRIBUTE Acme-Name 2 string\nEND-VENDOR Acme\nVALUE Acme-Rate Fast 2\n",
    )
    (tmp_path / "sub").mkdir()
    _write(tmp_path, "sub/dictionary.more", "ATTRIBUTE Acme-Old 3 octets Acme\n")
    main = _write(
        tmp_path,
        "dictionary",
        "# top\n$INCLUDE dictionary.acme\n$INCLUDE sub/dictionary.more\n"
        "$INCLUDE- dictionary.absent\nATTRIBUTE Local-Thing 0xf0 byte  # trailing comment\n",
    )
    d = load_dictionary(main, include_default=False)
    assert d.attribute("Acme-Rate").key == (12345, 1)
    assert d.attribute("Acme-Old").key == (12345, 3)
    assert d.attribute("Local-Thing").key == (0, 240)
    assert d.value("Acme-Rate", "Fast") == 2
    with pytest.raises(KeyError):
        d.attribute("User-Name")  # without ocsd's own set


@pytest.mark.parametrize(
    ("text", "lineno", "fragment"),
    [
        pytest.param("ATTRIBUTE A 1 string\nATTRIBUTE B x integer\n", 2, "bad attribute number", id="number"),  # noqa: E501
        pytest.param("\n\nATTRIBUTE B 2 float\n", 3, "unknown data type", id="type"),
        pytest.param("ATTRIBUTE B 2 integer encrypt=9\n", 1, "encrypt", id="encrypt"),
        pytest.param("ATTRIBUTE B 2 integer Nobody\n", 1, "unknown vendor", id="vendor"),
        pytest.param("ATTRIBUTE B 2\n", 1, "expected", id="fields"),
        pytest.param("VALUE A B\n", 1, "expected", id="value-fields"),
        pytest.param("VALUE A B x\n", 1, "bad value", id="value-number"),
        pytest.param("FROB x\n", 1, "unknown keyword", id="keyword"),
        pytest.param("BEGIN-VENDOR Nobody\n", 1, "unknown vendor", id="begin-unknown"),
        pytest.param("VENDOR V 7\nBEGIN-VENDOR V\n", 2, "without END-VENDOR", id="unclosed"),
        pytest.param("VENDOR V 7\nEND-VENDOR V\n", 2, "does not close", id="stray-end"),
        pytest.param("VENDOR V 7 format=3,1\n", 1, "bad vendor format", id="format"),
        pytest.param("VENDOR V 7\nBEGIN-VENDOR V\nATTRIBUTE X 256 string\nEND-VENDOR V\n", 3, "too large", id="vsa-256"),  # noqa: E501
        pytest.param("$INCLUDE dictionary.none\n", 1, "cannot read", id="include-missing"),
        pytest.param("ATTRIBUTE B 2 integer has_tag,frob\n", 1, "unknown flag", id="flag"),
        pytest.param("END-TLV X\n", 1, "does not close", id="tlv"),
    ],
)  # fmt: skip
def test_errors_name_file_and_line(tmp_path: Path, text: str, lineno: int, fragment: str) -> None:
    path = _write(tmp_path, "dictionary.bad", text)
    with pytest.raises(DictionaryError) as caught:
        load_dictionary(path, include_default=False)
    assert caught.value.filename == str(path)
    assert caught.value.lineno == lineno
    assert fragment in str(caught.value)
    assert str(caught.value).startswith(f"{path}:{lineno}: ")


def test_error_in_included_file_names_that_file(tmp_path: Path) -> None:
    inner = _write(tmp_path, "dictionary.inner", "ATTRIBUTE Ok 1 string\n\nATTRIBUTE Bad\n")
    outer = _write(tmp_path, "dictionary", "$INCLUDE dictionary.inner\n")
    with pytest.raises(DictionaryError) as caught:
        load_dictionary(outer, include_default=False)
    assert (caught.value.filename, caught.value.lineno) == (str(inner), 3)


def test_include_loop_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "dictionary", "$INCLUDE dictionary\n")
    with pytest.raises(DictionaryError, match="nested deeper"):
        load_dictionary(path, include_default=False)


def test_operator_renumbering_wins_for_decoding(tmp_path: Path) -> None:
    """A SIP proxy dictionary that reuses 101..105 for SIP fields, loaded after ours."""
    sip = _write(
        tmp_path,
        "dictionary.sip",
        "ATTRIBUTE Sip-Method 101 integer\nATTRIBUTE Sip-Response-Code 102 integer\n"
        "ATTRIBUTE Sip-CSeq 103 string\nATTRIBUTE Sip-To-Tag 104 string\n"
        "ATTRIBUTE Sip-From-Tag 105 string\nVALUE Sip-Method INVITE 1\n",
    )
    d = load_dictionary(sip)
    assert d.find(0, 101) == d.attribute("Sip-Method")
    assert d.attribute("Error-Cause").number == 101  # the standard name still resolves
    raw = encode_request(Code.ACCOUNTING_REQUEST, 1, [(101, b"\0\0\0\1"), (103, b"1 INVITE")], b"k")
    packet = decode_packet(raw, d)
    assert packet.get_int("Sip-Method") == 1
    assert packet.get_str("Sip-CSeq") == "1 INVITE"


def test_text_source_and_tlv_blocks() -> None:
    text = (
        "VENDOR WiMAX 24757 format=1,1,c\nBEGIN-VENDOR WiMAX\n"
        "ATTRIBUTE WiMAX-Capability 1 tlv\nBEGIN-TLV WiMAX-Capability\n"
        "ATTRIBUTE WiMAX-Release 1 string\nEND-TLV WiMAX-Capability\nEND-VENDOR WiMAX\n"
        "ATTRIBUTE Frag-Status 241.1 integer\nATTRIBUTE Internal-Thing 1000 integer\n"
        "ATTRIBUTE Typed 77 octets[16]\n"
    )
    d = DictionaryBuilder().load_text(text, "inline").build()
    assert d.attribute("WiMAX-Capability").on_wire
    assert not d.attribute("WiMAX-Release").on_wire
    assert not d.attribute("Frag-Status").on_wire
    assert not d.attribute("Internal-Thing").on_wire
    assert d.attribute("Typed").data_type is DataType.OCTETS
    assert not d.vendor("WiMAX").standard_format


@pytest.mark.skipif(not FREERADIUS.exists(), reason="FreeRADIUS dictionaries not installed")
def test_the_whole_freeradius_dictionary_loads() -> None:
    d = load_dictionary(FREERADIUS)
    assert d.attribute("h323-credit-time").key == (9, 102)
    assert d.find(0, 4) == d.attribute("NAS-IP-Address")  # not its alias Client-Id
    assert d.attribute("Client-Id").number == 4
