"""RFC 9651 Structured Field Values: the Dictionary parser that AIPREF needs.

Sans-IO and pure: :func:`parse_dictionary` takes a field value (a ``str``; the caller joins
several field lines with ``", "``) and returns a frozen :class:`SfDictionary`, or ``None`` when
the value does not parse.  RFC 9651 §4.2: "If parsing fails, either the entire field value MUST be
ignored (i.e., treat it as if the field were not present in the section) or alternatively the
complete HTTP message MUST be treated as malformed."  There is no partial result.

Every bare item type of RFC 9651 is parsed (Integer, Decimal, String, Token, Byte Sequence,
Boolean, Date, Display String) so that invalid input is rejected exactly where the RFC rejects
it.  Python types: ``int`` (Integer), :class:`decimal.Decimal` (Decimal), ``str`` (String),
:class:`Token` (a ``str`` subclass), ``bytes`` (Byte Sequence), ``bool`` (Boolean), :class:`Date`
(an ``int`` subclass) and :class:`DisplayString` (a ``str`` subclass).  Test a String with
``type(v) is str`` or ``not isinstance(v, (Token, DisplayString))``: a Token *is* a ``str``.

The parser walks the string once with an index (no slicing per character), so a 100 KB value
costs linear time; inner lists cannot nest, so there is no recursion on remote input.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

__all__ = [
    "BareItem",
    "Date",
    "DisplayString",
    "InnerList",
    "Item",
    "Member",
    "Params",
    "SfDictionary",
    "Token",
    "parse_dictionary",
]


class Token(str):
    """An RFC 9651 Token (§3.3.4), kept distinct from a String: ``Token("n") != "n"`` is False
    (it compares equal as text), so check the type with ``isinstance(v, Token)``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Token({str.__repr__(self)})"


class DisplayString(str):
    """An RFC 9651 Display String (§3.3.8): Unicode text written ``%"..."``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"DisplayString({str.__repr__(self)})"


class Date(int):
    """An RFC 9651 Date (§3.3.7): seconds since 1970-01-01T00:00:00Z, written ``@<integer>``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Date({int.__repr__(self)})"


BareItem = int | Decimal | str | bytes | bool
#: Parameters in order of first appearance; a repeated key keeps its place, the last value wins.
Params = tuple[tuple[str, BareItem], ...]


def _param(params: Params, key: str) -> BareItem | None:
    for name, value in params:
        if name == key:
            return value
    return None


@dataclass(frozen=True, slots=True)
class Item:
    """A bare item with its parameters."""

    value: BareItem
    params: Params = ()

    def param(self, key: str) -> BareItem | None:
        return _param(self.params, key)


@dataclass(frozen=True, slots=True)
class InnerList:
    """An Inner List (§3.1.1): items in parentheses, with parameters of its own."""

    items: tuple[Item, ...]
    params: Params = ()

    def param(self, key: str) -> BareItem | None:
        return _param(self.params, key)


Member = Item | InnerList


@dataclass(frozen=True, slots=True)
class SfDictionary(Mapping[str, Member]):
    """A parsed Dictionary: an ordered, read-only mapping of key -> :class:`Item` or
    :class:`InnerList`.  ``members`` keeps the order of first appearance."""

    members: tuple[tuple[str, Member], ...]
    _index: dict[str, Member] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", dict(self.members))

    def __getitem__(self, key: str) -> Member:
        return self._index[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __hash__(self) -> int:
        return hash(self.members)


class _ParseError(Exception):
    """Internal: the value does not parse; never leaves this module."""


_LCALPHA = frozenset("abcdefghijklmnopqrstuvwxyz")
_DIGITS = frozenset("0123456789")
_ALPHA = _LCALPHA | frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_KEY_FIRST = _LCALPHA | {"*"}
_KEY_CHARS = _LCALPHA | _DIGITS | frozenset("_-.*")
# RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" /
# "_" / "`" / "|" / "~" / DIGIT / ALPHA
_TCHAR = _ALPHA | _DIGITS | frozenset("!#$%&'*+-.^_`|~")
_TOKEN_CHARS = _TCHAR | {":", "/"}
_BASE64_CHARS = _ALPHA | _DIGITS | frozenset("+/=")
_LOWER_HEX = frozenset("0123456789abcdef")
_OWS = " \t"


def _visible(char: str) -> bool:
    """VCHAR or SP: not in ``%x00-1f`` or ``%x7f-ff``."""
    return " " <= char <= "~"


class _Parser:
    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip(self, chars: str) -> None:
        text, pos, end = self.text, self.pos, len(self.text)
        while pos < end and text[pos] in chars:
            pos += 1
        self.pos = pos

    # §4.2.2 Parsing a Dictionary
    def dictionary(self) -> SfDictionary:
        members: dict[str, Member] = {}
        end = len(self.text)
        while self.pos < end:
            key = self.key()
            if self.peek() == "=":
                self.pos += 1
                member = self.item_or_inner_list()
            else:
                # "Otherwise: Let value be Boolean true. Let parameters be the result of running
                # Parsing Parameters with input_string."
                member = Item(True, self.params())
            # "If dictionary already contains a key this_key (comparing character for
            # character), overwrite its value with member."
            members[key] = member
            self.skip(_OWS)
            if self.pos >= end:
                return SfDictionary(tuple(members.items()))
            # "Consume the first character of input_string; if it is not ",", fail parsing."
            if self.text[self.pos] != ",":
                raise _ParseError("expected ','")
            self.pos += 1
            self.skip(_OWS)
            # "If input_string is empty, there is a trailing comma; fail parsing."
            if self.pos >= end:
                raise _ParseError("trailing comma")
        # "No structured data has been found; return dictionary (which is empty)."
        return SfDictionary(tuple(members.items()))

    # §4.2.1.1 Parsing an Item or Inner List
    def item_or_inner_list(self) -> Member:
        if self.peek() == "(":
            return self.inner_list()
        return self.item()

    # §4.2.1.2 Parsing an Inner List
    def inner_list(self) -> InnerList:
        self.pos += 1  # "("
        items: list[Item] = []
        end = len(self.text)
        while self.pos < end:
            self.skip(" ")
            if self.peek() == ")":
                self.pos += 1
                return InnerList(tuple(items), self.params())
            items.append(self.item())
            # "If the first character of input_string is not SP or ")", fail parsing."
            if self.peek() not in (" ", ")"):
                raise _ParseError("inner list item not followed by SP or ')'")
        # "The end of the Inner List was not found; fail parsing."
        raise _ParseError("unterminated inner list")

    # §4.2.3 Parsing an Item
    def item(self) -> Item:
        value = self.bare_item()
        return Item(value, self.params())

    # §4.2.3.1 Parsing a Bare Item
    def bare_item(self) -> BareItem:
        char = self.peek()
        if char == "-" or char in _DIGITS:
            return self.number()
        if char == '"':
            return self.string()
        if char == "*" or char in _ALPHA:
            return self.token()
        if char == ":":
            return self.byte_sequence()
        if char == "?":
            return self.boolean()
        if char == "@":
            return self.date()
        if char == "%":
            return self.display_string()
        # "Otherwise, the item type is unrecognized; fail parsing."
        raise _ParseError("unrecognised item type")

    # §4.2.3.2 Parsing Parameters
    def params(self) -> Params:
        params: dict[str, BareItem] = {}
        while self.peek() == ";":
            self.pos += 1
            self.skip(" ")
            key = self.key()
            value: BareItem = True
            if self.peek() == "=":
                self.pos += 1
                value = self.bare_item()
            # "If parameters already contains a key param_key (comparing character for
            # character), overwrite its value with param_value."
            params[key] = value
        return tuple(params.items())

    # §4.2.3.3 Parsing a Key
    def key(self) -> str:
        text, start, end = self.text, self.pos, len(self.text)
        # "If the first character of input_string is not lcalpha or "*", fail parsing."
        if start >= end or text[start] not in _KEY_FIRST:
            raise _ParseError("key must start with a-z or '*'")
        pos = start + 1
        while pos < end and text[pos] in _KEY_CHARS:
            pos += 1
        self.pos = pos
        return text[start:pos]

    # §4.2.4 Parsing an Integer or a Decimal
    def number(self) -> int | Decimal:
        text, end = self.text, len(self.text)
        sign = 1
        if self.peek() == "-":
            self.pos += 1
            sign = -1
        # "If input_string is empty, there is an empty integer; fail parsing."
        # "If the first character of input_string is not a DIGIT, fail parsing."
        if self.pos >= end or text[self.pos] not in _DIGITS:
            raise _ParseError("number without digits")
        start = self.pos
        dot = -1
        pos = start
        while pos < end:
            char = text[pos]
            if char in _DIGITS:
                pos += 1
            elif dot < 0 and char == ".":
                # "If input_number contains more than 12 characters, fail parsing."
                if pos - start > 12:
                    raise _ParseError("decimal with more than 12 integer digits")
                dot = pos
                pos += 1
            else:
                break
            # "If type is "integer" and input_number contains more than 15 characters, fail
            # parsing."  "If type is "decimal" and input_number contains more than 16
            # characters, fail parsing."
            if pos - start > (15 if dot < 0 else 16):
                raise _ParseError("number too long")
        self.pos = pos
        digits = text[start:pos]
        if dot < 0:
            return sign * int(digits)
        # "If the final character of input_number is ".", fail parsing."
        # "If the number of characters after "." in input_number is greater than three, fail
        # parsing."
        fraction = pos - dot - 1
        if fraction == 0 or fraction > 3:
            raise _ParseError("decimal needs 1 to 3 fractional digits")
        value = Decimal(digits)
        return -value if sign < 0 else value

    # §4.2.5 Parsing a String
    def string(self) -> str:
        text, end = self.text, len(self.text)
        pos = self.pos + 1
        out: list[str] = []
        run = pos
        while pos < end:
            char = text[pos]
            if char == "\\":
                out.append(text[run:pos])
                pos += 1
                # "If next_char is not DQUOTE or "\", fail parsing."
                if pos >= end or text[pos] not in '"\\':
                    raise _ParseError("bad escape in string")
                out.append(text[pos])
                pos += 1
                run = pos
            elif char == '"':
                out.append(text[run:pos])
                self.pos = pos + 1
                return "".join(out)
            elif not _visible(char):
                # "Else, if char is in the range %x00-1f or %x7f-ff (i.e., it is not in VCHAR or
                # SP), fail parsing."
                raise _ParseError("control character in string")
            else:
                pos += 1
        # "Reached the end of input_string without finding a closing DQUOTE; fail parsing."
        raise _ParseError("unterminated string")

    # §4.2.6 Parsing a Token
    def token(self) -> Token:
        text, start, end = self.text, self.pos, len(self.text)
        pos = start + 1
        # "If the first character of input_string is not in tchar, ":", or "/", return
        # output_string."
        while pos < end and text[pos] in _TOKEN_CHARS:
            pos += 1
        self.pos = pos
        return Token(text[start:pos])

    # §4.2.7 Parsing a Byte Sequence
    def byte_sequence(self) -> bytes:
        start = self.pos + 1
        close = self.text.find(":", start)
        # "If there is not a ":" character before the end of input_string, fail parsing."
        if close < 0:
            raise _ParseError("unterminated byte sequence")
        content = self.text[start:close]
        self.pos = close + 1
        # "If b64_content contains a character not included in ALPHA, DIGIT, "+", "/", and "=",
        # fail parsing."
        if not _BASE64_CHARS.issuperset(content):
            raise _ParseError("invalid base64 character")
        # "parsers SHOULD NOT fail when "=" padding is not present" and "SHOULD NOT fail when
        # non-zero pad bits are present": strip padding, re-pad, decode leniently.
        data = content.rstrip("=")
        if "=" in data or len(data) % 4 == 1:
            raise _ParseError("malformed base64")
        try:
            return binascii.a2b_base64(data + "=" * (-len(data) % 4))
        except (binascii.Error, ValueError) as exc:  # pragma: no cover - guarded above
            raise _ParseError("malformed base64") from exc

    # §4.2.8 Parsing a Boolean
    def boolean(self) -> bool:
        char = self.text[self.pos + 1 : self.pos + 2]
        if char == "1" or char == "0":
            self.pos += 2
            return char == "1"
        # "No value has matched; fail parsing."
        raise _ParseError("boolean must be ?0 or ?1")

    # §4.2.9 Parsing a Date
    def date(self) -> Date:
        self.pos += 1
        value = self.number()
        # "If output_date is a Decimal, fail parsing."
        if isinstance(value, Decimal):
            raise _ParseError("date must be an integer")
        return Date(value)

    # §4.2.10 Parsing a Display String
    def display_string(self) -> DisplayString:
        text, end = self.text, len(self.text)
        # "If the first two characters of input_string are not "%" followed by DQUOTE, fail
        # parsing."
        if text[self.pos + 1 : self.pos + 2] != '"':
            raise _ParseError("display string must start with %\"")
        pos = self.pos + 2
        out = bytearray()
        while pos < end:
            char = text[pos]
            pos += 1
            if not _visible(char):
                raise _ParseError("control character in display string")
            if char == "%":
                octet = text[pos : pos + 2]
                # "If octet_hex contains characters outside the range %x30-39 or %x61-66 (i.e.,
                # it is not in 0-9 or lowercase a-f), fail parsing."
                if len(octet) != 2 or not _LOWER_HEX.issuperset(octet):
                    raise _ParseError("bad percent-escape in display string")
                out.append(int(octet, 16))
                pos += 2
            elif char == '"':
                self.pos = pos
                try:
                    return DisplayString(out.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    # "Fail parsing if decoding fails."
                    raise _ParseError("display string is not UTF-8") from exc
            else:
                out.append(ord(char))
        raise _ParseError("unterminated display string")


def parse_dictionary(value: str) -> SfDictionary | None:
    """Parse ``value`` as an RFC 9651 Dictionary (§4.2 with ``field_type`` "dictionary").

    Returns ``None`` when the value does not parse -- the whole field then counts as absent.
    An empty (or all-space) value is an empty Dictionary.  Never raises for ``str`` input.
    """
    if not isinstance(value, str):
        raise TypeError(f"value must be str, not {type(value).__name__}")
    # §4.2: "Convert input_bytes into an ASCII string input_string; if conversion fails, fail
    # parsing."
    if not value.isascii():
        return None
    parser = _Parser(value)
    try:
        # "Discard any leading SP characters from input_string."
        parser.skip(" ")
        result = parser.dictionary()
        # "Discard any leading SP characters from input_string. If input_string is not empty,
        # fail parsing."
        parser.skip(" ")
        if parser.pos != len(value):
            return None
    except _ParseError:
        return None
    return result
