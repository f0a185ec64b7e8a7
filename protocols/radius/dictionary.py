"""RADIUS dictionaries in the FreeRADIUS format: attribute names, numbers, data types, values.

Operators already keep FreeRADIUS dictionaries for their gateways, so ocsd reads that format:
``ATTRIBUTE``, ``VALUE``, ``VENDOR``, ``BEGIN-VENDOR``/``END-VENDOR``, ``BEGIN-TLV``/``END-TLV``
and ``$INCLUDE`` (``$INCLUDE-`` skips a missing file). Rules:

- A name resolves case-insensitively. A number may carry several names (FreeRADIUS' own
  ``dictionary.compat`` does that); the definition loaded last names the number when decoding,
  so an operator's dictionary loaded after ours can renumber what a switch sends.
- Types the codec does not interpret (``abinary``, ``ifid``, ``combo-ip``, ``tlv``, ...) are
  kept as raw octets. Attributes inside TLVs, extended attributes (RFC 6929, dotted numbers)
  and FreeRADIUS-internal numbers above 255 are read so that the file loads, but they never
  match a wire attribute.
- Every error names the file and the line.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TypeVar, cast

__all__ = [
    "AttributeDef",
    "DataType",
    "Dictionary",
    "DictionaryBuilder",
    "DictionaryError",
    "VendorDef",
    "default_dictionary",
    "load_dictionary",
]

_T = TypeVar("_T")
_MAX_INCLUDE_DEPTH = 16


class DataType(enum.Enum):
    """How an attribute value is interpreted (FreeRADIUS type names)."""

    STRING = "string"
    OCTETS = "octets"
    IPADDR = "ipaddr"
    IPV6ADDR = "ipv6addr"
    IPV6PREFIX = "ipv6prefix"
    INTEGER = "integer"
    INTEGER64 = "integer64"
    DATE = "date"
    BYTE = "byte"
    SHORT = "short"
    SIGNED = "signed"
    ETHER = "ether"


# FreeRADIUS type names (v3 and the v4 spellings) mapped onto the types the codec decodes;
# anything without a typed form here is raw octets.
_TYPE_NAMES: dict[str, DataType] = {
    **{t.value: t for t in DataType},
    "uint8": DataType.BYTE,
    "uint16": DataType.SHORT,
    "uint32": DataType.INTEGER,
    "uint64": DataType.INTEGER64,
    "int32": DataType.SIGNED,
    "ipv4addr": DataType.IPADDR,
    "abinary": DataType.OCTETS,
    "ifid": DataType.OCTETS,
    "ipv4prefix": DataType.OCTETS,
    "combo-ip": DataType.OCTETS,
    "tlv": DataType.OCTETS,
    "vsa": DataType.OCTETS,
    "evs": DataType.OCTETS,
    "extended": DataType.OCTETS,
    "long-extended": DataType.OCTETS,
    "struct": DataType.OCTETS,
    "time_delta": DataType.INTEGER,
}
_CONTAINER_TYPES = frozenset({"tlv", "vsa", "evs", "extended", "long-extended", "struct"})
_BOOLEAN_FLAGS = frozenset({"has_tag", "array", "concat", "virtual", "internal", "secret", "long"})


class DictionaryError(ValueError):
    """A dictionary file could not be read; the message starts with ``file:line``."""

    def __init__(self, filename: str, lineno: int, message: str) -> None:
        super().__init__(f"{filename}:{lineno}: {message}")
        self.filename = filename
        self.lineno = lineno
        self.reason = message


@dataclass(frozen=True, slots=True)
class VendorDef:
    """A vendor of Vendor-Specific attributes (RFC 2865 §5.26) and its sub-attribute layout."""

    name: str
    number: int
    type_size: int = 1
    length_size: int = 1
    continuation: bool = False

    @property
    def standard_format(self) -> bool:
        """True when sub-attributes have RFC 2865's recommended one-octet type and length."""
        return self.type_size == 1 and self.length_size == 1 and not self.continuation


@dataclass(frozen=True, slots=True)
class AttributeDef:
    """One ``ATTRIBUTE`` line: where the attribute sits on the wire and how to read its value."""

    name: str
    number: int
    data_type: DataType
    vendor: int = 0
    type_name: str = ""
    encrypt: int = 0
    has_tag: bool = False
    concat: bool = False
    on_wire: bool = True
    source: str = field(default="", compare=False)

    @property
    def key(self) -> tuple[int, int]:
        """``(vendor, number)``, the lookup key of wire attributes (vendor 0: not a VSA)."""
        return (self.vendor, self.number)


class Dictionary:
    """An immutable set of attribute, vendor and value definitions."""

    __slots__ = (
        "_attributes",
        "_by_key",
        "_derived",
        "_value_names",
        "_values",
        "_vendor_numbers",
        "_vendors",
    )

    def __init__(
        self,
        attributes: Mapping[str, AttributeDef],
        by_key: Mapping[tuple[int, int], AttributeDef],
        vendors: Mapping[str, VendorDef],
        values: Mapping[str, Mapping[str, int]],
    ) -> None:
        self._attributes = dict(attributes)
        self._by_key = dict(by_key)
        self._vendors = dict(vendors)
        self._vendor_numbers: dict[int, VendorDef] = {}
        for vendor in self._vendors.values():
            self._vendor_numbers.setdefault(vendor.number, vendor)
        self._values = {k: dict(v) for k, v in values.items()}
        self._value_names: dict[str, dict[int, str]] = {}
        for attr, names in self._values.items():
            reverse: dict[int, str] = {}
            for name, number in names.items():
                reverse.setdefault(number, name)
            self._value_names[attr] = reverse
        self._derived: dict[object, object] = {}

    def attribute(self, name: str) -> AttributeDef:
        """The definition named ``name`` (case-insensitive); ``KeyError`` if there is none."""
        try:
            return self._attributes[name.lower()]
        except KeyError:
            raise KeyError(f"unknown RADIUS attribute {name!r}") from None

    def find(self, vendor: int, number: int) -> AttributeDef | None:
        """The definition that names wire attribute ``number`` of ``vendor`` (0: IETF), if any."""
        return self._by_key.get((vendor, number))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._attributes

    def vendor(self, name_or_number: str | int) -> VendorDef:
        """The vendor with this name (case-insensitive) or number; ``KeyError`` if unknown."""
        if isinstance(name_or_number, int):
            found = self._vendor_numbers.get(name_or_number)
        else:
            found = self._vendors.get(name_or_number.lower())
        if found is None:
            raise KeyError(f"unknown RADIUS vendor {name_or_number!r}")
        return found

    def vendor_format(self, number: int) -> VendorDef | None:
        """The vendor with this number, or None when the dictionary does not define it."""
        return self._vendor_numbers.get(number)

    def value(self, attribute: str, name: str) -> int:
        """The number of ``VALUE attribute name``; ``KeyError`` if not defined."""
        try:
            return self._values[attribute.lower()][name]
        except KeyError:
            raise KeyError(f"no VALUE {name!r} for RADIUS attribute {attribute!r}") from None

    def value_name(self, attribute: str, number: int) -> str | None:
        """The first name given to ``number`` by a ``VALUE`` of ``attribute``, if any."""
        names = self._value_names.get(attribute.lower())
        return None if names is None else names.get(number)

    def attributes(self) -> Iterable[AttributeDef]:
        """Every definition, in load order (aliases included)."""
        return self._attributes.values()

    def derived(self, factory: Callable[[Dictionary], _T]) -> _T:
        """``factory(self)``, computed once per dictionary (for lookup tables built from it)."""
        try:
            return cast(_T, self._derived[factory])
        except KeyError:
            made = factory(self)
            self._derived[factory] = made
            return made


class DictionaryBuilder:
    """Reads dictionary files one after another into one :class:`Dictionary`."""

    def __init__(self) -> None:
        self._attributes: dict[str, AttributeDef] = {}
        self._by_key: dict[tuple[int, int], AttributeDef] = {}
        self._vendors: dict[str, VendorDef] = {}
        self._values: dict[str, dict[str, int]] = {}
        self._vendor_block: VendorDef | None = None
        self._vendor_block_extended = False
        self._tlv_stack: list[str] = []

    def build(self) -> Dictionary:
        """The dictionary read so far."""
        return Dictionary(self._attributes, self._by_key, self._vendors, self._values)

    def load_file(self, path: str | Path) -> DictionaryBuilder:
        """Read the dictionary file ``path`` (and what it includes)."""
        self._load_path(Path(path), depth=0, optional=False, where=None)
        return self

    def load_text(
        self, text: str, filename: str = "<string>", include_dir: Path | None = None
    ) -> DictionaryBuilder:
        """Read dictionary lines from ``text``; ``$INCLUDE`` resolves against ``include_dir``."""
        self._load_lines(text, filename, include_dir, depth=0)
        return self

    # -- reading ------------------------------------------------------------------------

    def _load_path(
        self, path: Path, depth: int, optional: bool, where: tuple[str, int] | None
    ) -> None:
        if depth > _MAX_INCLUDE_DEPTH:
            assert where is not None
            raise DictionaryError(*where, f"$INCLUDE nested deeper than {_MAX_INCLUDE_DEPTH}")
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            if optional:
                return
            if where is None:
                raise DictionaryError(str(path), 0, f"cannot read: {exc.strerror}") from exc
            raise DictionaryError(*where, f"cannot read {path}: {exc.strerror}") from exc
        self._load_lines(text, str(path), path.parent, depth)

    def _load_lines(self, text: str, filename: str, include_dir: Path | None, depth: int) -> None:
        saved = (self._vendor_block, self._vendor_block_extended, list(self._tlv_stack))
        self._vendor_block, self._vendor_block_extended, self._tlv_stack = None, False, []
        lineno = 0
        for lineno, raw in enumerate(text.splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            tokens = line.split()
            try:
                self._line(tokens, filename, lineno, include_dir, depth)
            except DictionaryError:
                raise
            except (ValueError, KeyError) as exc:
                reason = exc.args[0] if exc.args else str(exc)
                raise DictionaryError(filename, lineno, str(reason)) from exc
        if self._vendor_block is not None:
            raise DictionaryError(
                filename, lineno, f"BEGIN-VENDOR {self._vendor_block.name} without END-VENDOR"
            )
        if self._tlv_stack:
            raise DictionaryError(
                filename, lineno, f"BEGIN-TLV {self._tlv_stack[-1]} without END-TLV"
            )
        self._vendor_block, self._vendor_block_extended, self._tlv_stack = saved

    def _line(
        self,
        tokens: list[str],
        filename: str,
        lineno: int,
        include_dir: Path | None,
        depth: int,
    ) -> None:
        keyword = tokens[0]
        if keyword in ("$INCLUDE", "$INCLUDE-"):
            if len(tokens) != 2:
                raise ValueError(f"{keyword} takes one file name")
            target = Path(tokens[1])
            if not target.is_absolute():
                if include_dir is None:
                    raise ValueError("$INCLUDE of a relative path without a directory")
                target = include_dir / target
            self._load_path(target, depth + 1, keyword == "$INCLUDE-", (filename, lineno))
        elif keyword == "ATTRIBUTE":
            self._attribute(tokens, f"{filename}:{lineno}")
        elif keyword == "VALUE":
            self._value(tokens)
        elif keyword == "VENDOR":
            self._vendor(tokens)
        elif keyword == "BEGIN-VENDOR":
            self._begin_vendor(tokens)
        elif keyword == "END-VENDOR":
            if len(tokens) != 2:
                raise ValueError("END-VENDOR takes a vendor name")
            if self._vendor_block is None or self._vendor_block.name.lower() != tokens[1].lower():
                raise ValueError(f"END-VENDOR {tokens[1]} does not close a BEGIN-VENDOR")
            self._vendor_block, self._vendor_block_extended = None, False
        elif keyword == "BEGIN-TLV":
            if len(tokens) != 2:
                raise ValueError("BEGIN-TLV takes an attribute name")
            self._tlv_stack.append(tokens[1])
        elif keyword == "END-TLV":
            if len(tokens) != 2 or not self._tlv_stack or self._tlv_stack[-1] != tokens[1]:
                raise ValueError(f"{' '.join(tokens)} does not close a BEGIN-TLV")
            self._tlv_stack.pop()
        else:
            raise ValueError(f"unknown keyword {keyword!r}")

    def _attribute(self, tokens: list[str], source: str) -> None:
        if len(tokens) not in (4, 5):
            raise ValueError("expected: ATTRIBUTE name number type [flags|vendor]")
        _, name, number_text, type_text = tokens[:4]
        type_name = type_text.split("[", 1)[0].lower()
        data_type = _TYPE_NAMES.get(type_name)
        if data_type is None:
            raise ValueError(f"unknown data type {type_text!r}")
        vendor = self._vendor_block
        encrypt, has_tag, concat, on_wire = 0, False, False, True
        if len(tokens) == 5:
            option = tokens[4]
            if "=" in option or option.split(",")[0] in _BOOLEAN_FLAGS:
                for flag in option.split(","):
                    key, _, arg = flag.partition("=")
                    if key == "encrypt":
                        encrypt = _number(arg, "encrypt=")
                        if encrypt not in (1, 2, 3):
                            raise ValueError(f"unknown encrypt={arg}")
                    elif key == "has_tag":
                        has_tag = True
                    elif key == "concat":
                        concat = True
                    elif key in ("virtual", "internal"):
                        on_wire = False
                    elif key in _BOOLEAN_FLAGS:
                        pass
                    else:
                        raise ValueError(f"unknown flag {flag!r}")
            else:
                vendor = self._vendors.get(option.lower())
                if vendor is None:
                    raise ValueError(f"unknown vendor {option!r}")
        if self._tlv_stack or "." in number_text or self._vendor_block_extended:
            # inside a TLV or an extended attribute (RFC 6929): loaded, never a wire attribute
            on_wire = False
            number = _number(number_text.split(".")[-1], "attribute number")
        else:
            number = _number(number_text, "attribute number")
        limit = 255 if vendor is None else (1 << (8 * vendor.type_size)) - 1
        if number > limit:
            if vendor is not None:
                raise ValueError(f"attribute number {number} too large for vendor {vendor.name}")
            on_wire = False  # FreeRADIUS-internal attribute
        if type_name in _CONTAINER_TYPES and type_name != "vsa":
            on_wire = on_wire and type_name == "tlv"
        definition = AttributeDef(
            name=name,
            number=number,
            data_type=data_type,
            vendor=0 if vendor is None else vendor.number,
            type_name=type_name,
            encrypt=encrypt,
            has_tag=has_tag,
            concat=concat,
            on_wire=on_wire,
            source=source,
        )
        self._attributes[name.lower()] = definition
        if on_wire:
            self._by_key[definition.key] = definition

    def _value(self, tokens: list[str]) -> None:
        if len(tokens) != 4:
            raise ValueError("expected: VALUE attribute name number")
        _, attribute, name, number_text = tokens
        self._values.setdefault(attribute.lower(), {})[name] = _number(number_text, "value")

    def _vendor(self, tokens: list[str]) -> None:
        if len(tokens) not in (3, 4):
            raise ValueError("expected: VENDOR name number [format=t,l]")
        name, number = tokens[1], _number(tokens[2], "vendor number")
        type_size, length_size, continuation = 1, 1, False
        if len(tokens) == 4:
            key, _, arg = tokens[3].partition("=")
            parts = arg.split(",")
            if key != "format" or len(parts) not in (2, 3):
                raise ValueError(f"bad vendor format {tokens[3]!r}")
            type_size = _number(parts[0], "vendor type size")
            length_size = _number(parts[1], "vendor length size")
            continuation = len(parts) == 3 and parts[2] == "c"
            if type_size not in (1, 2, 4) or length_size not in (0, 1, 2):
                raise ValueError(f"bad vendor format {tokens[3]!r}")
        self._vendors[name.lower()] = VendorDef(name, number, type_size, length_size, continuation)

    def _begin_vendor(self, tokens: list[str]) -> None:
        if len(tokens) not in (2, 3):
            raise ValueError("expected: BEGIN-VENDOR name [format=...]")
        if self._vendor_block is not None:
            raise ValueError(f"BEGIN-VENDOR inside BEGIN-VENDOR {self._vendor_block.name}")
        vendor = self._vendors.get(tokens[1].lower())
        if vendor is None:
            raise ValueError(f"unknown vendor {tokens[1]!r}")
        self._vendor_block = vendor
        self._vendor_block_extended = len(tokens) == 3 and tokens[2].startswith(
            "format=Extended-Vendor-Specific"
        )


def _number(text: str, what: str) -> int:
    try:
        value = int(text, 16) if text[:2].lower() == "0x" else int(text, 10)
    except ValueError:
        raise ValueError(f"bad {what} {text!r}") from None
    if value < 0:
        raise ValueError(f"bad {what} {text!r}")
    return value


def load_dictionary(*paths: str | Path, include_default: bool = True) -> Dictionary:
    """ocsd's dictionary (unless ``include_default`` is false) followed by the files ``paths``."""
    builder = DictionaryBuilder()
    if include_default:
        _load_default(builder)
    for path in paths:
        builder.load_file(path)
    return builder.build()


def _load_default(builder: DictionaryBuilder) -> None:
    package = resources.files("protocols.radius.dictionaries")
    with resources.as_file(package / "dictionary") as main:
        builder.load_file(main)


@functools.cache
def default_dictionary() -> Dictionary:
    """The dictionary shipped with ocsd (RFC 2865/2866/2869/3162/5176 and Cisco voice VSAs)."""
    builder = DictionaryBuilder()
    _load_default(builder)
    return builder.build()
