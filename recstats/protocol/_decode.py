"""Reading framed documents: hardened parsing (several documents of one read in one
lxml call) and the small element helpers both connections decode with."""

from __future__ import annotations

import math
import re
from types import MappingProxyType

from lxml import etree

from .._xml import MAX_FIELDS, fields_of, parse_document, safe_parser
from ..errors import CDRParseError, ProtocolError

__all__ = ["call_fields", "child", "messages", "name", "parse", "parse_many",
           "plain_notification", "seconds"]


def name(element) -> str | None:
    """Lower-case local name of an element (None for comments and the like)."""
    tag = element.tag
    local = _names.get(tag)
    if local is None:
        if not isinstance(tag, str):
            return None
        local = tag.rpartition("}")[2].lower()
        if len(_names) > 1024:  # peers choose names: keep the memo small
            _names.clear()
        _names[tag] = local
    return local


_names: dict[str, str] = {}  # tag -> lower-case local name, memoised (hot path)


def child(element, wanted: str):
    """The first child element whose lower-case local name is ``wanted``, or None."""
    for item in element:
        if name(item) == wanted:
            return item
    return None


def seconds(text: str | None) -> float | None:
    """A keep-alive ``time`` (decimal seconds) -> float; None when absent or invalid."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value


def call_fields(element) -> MappingProxyType:
    """The read-only raw fields of a call element.

    Raises :class:`CDRParseError` when they name no call (no ``id``/``ccdr_id``) or
    break the field caps of :func:`recstats._xml.fields_of`.
    """
    fields = fields_of(element)
    if not (fields.get("id") or fields.get("ccdr_id")):
        raise CDRParseError("not a CDR: no id or ccdr_id field")
    return MappingProxyType(fields)


def parse(document: bytes, offset: int) -> etree._Element:
    """Hardened parse of one framed document; malformed -> ProtocolError at ``offset``.

    The framer already bounded the size, so only the parse rules apply here."""
    try:
        return parse_document(document, max_bytes=len(document))
    except CDRParseError as exc:
        raise ProtocolError(exc.reason, offset) from None


# A document that is a UTF-8 declaration (or none), whitespace and its root element
_PLAIN_PROLOG = re.compile(rb'(<\?xml version=(?:"1\.0" encoding="(?:UTF|utf)-8"|'
                           rb"'1\.0' encoding='(?:UTF|utf)-8')\?>)?[ \t\r\n]*<[^!?]")


def parse_many(located: list[tuple[int, bytes]]) -> list | None:
    """Parse several framed documents with one lxml call, or None if that is not sure
    to give what parsing each alone gives (then each is parsed alone).

    libxml2's fixed cost per document is about half of parsing a notification, so the
    documents of one read are parsed as the children of one wrapper element. Only
    documents made of a UTF-8 declaration (or none), whitespace and a root element take
    part: stripped of their declaration they are well-formed alone exactly when they
    are well-formed side by side. Any doubt (a comment or PI before the root, another
    encoding, a parse error anywhere) returns None.
    """
    parts: list[bytes | memoryview] = [b"<_>"]
    match = _PLAIN_PROLOG.match
    for _, raw in located:
        head = match(raw)
        if head is None:
            return None
        parts.append(memoryview(raw)[head.end(1):] if head.end(1) > 0 else raw)
    parts.append(b"</_>")
    try:
        wrapper = etree.fromstring(b"".join(parts), safe_parser())
    except (etree.XMLSyntaxError, ValueError):
        return None
    roots = list(wrapper)
    return roots if len(roots) == len(located) else None


def messages(root) -> list:
    """The message elements of a document: the root's children, or the root itself
    when a peer leaves out the ``VerbaApi`` envelope."""
    if name(root) in ("response", "notification", "request"):
        return [root]
    return [item for item in root if isinstance(item.tag, str)]


# The usual notification: a UTF-8 declaration (or none), the envelope, one
# Notification whose Call holds only leaf fields with plain text (no attribute, entity,
# CDATA, comment, carriage return or character XML forbids). Such a document is
# well-formed XML by construction (the tag pairs are checked to match and the leaves
# to cover the whole Call), so its fields are read straight from the bytes, exactly as
# fields_of would read them.
_PLAIN_HEAD = re.compile(
    rb"(?:<\?xml version=(?:\"1\.0\" encoding=\"(?:UTF|utf)-8\"|"
    rb"'1\.0' encoding='(?:UTF|utf)-8')\?>)?[ \t\n]*"
    rb"<VerbaApi><Notification type=\"([A-Za-z_ -]*)\"><Call>")
_PLAIN_TAIL = b"</Call></Notification></VerbaApi>"
_LEAF_NAME = re.compile(r"[A-Za-z_][\w.-]*", re.ASCII)
# bytes a usual notification never holds: "&" (an entity: the parser expands it), CR
# (the parser normalises it) and the control characters XML forbids
_FORBIDDEN = bytes([*range(0x09), 0x0B, 0x0C, 0x0D, *range(0x0E, 0x20), 0x26])
_leaf_names: set[str] = set()  # names known to be plain leaf names


def _plain_names(names: list[str]) -> bool:
    if _leaf_names.issuperset(names):
        return True
    for name in names:
        if _LEAF_NAME.fullmatch(name) is None:
            return False  # "x/", "!--", "?pi", "a b='1'": not a plain leaf
        if len(_leaf_names) < 4096:  # peers choose names: keep the memo bounded
            _leaf_names.add(name)
    return True


def plain_notification(raw: bytes) -> tuple[str, MappingProxyType] | None:
    """``(notification type, fields)`` of a usual notification read without a parser,
    or None when the document is anything else (the general path then decides).

    Split at every ``<``, the text after ``<Call>`` alternates ``name>value`` and
    ``/name>``; whole-list operations check that, so no Python loop runs per field.
    Anything else (whitespace between fields included) takes the general path."""
    head = _PLAIN_HEAD.match(raw)
    if head is None or not raw.endswith(_PLAIN_TAIL) \
            or len(raw.translate(None, _FORBIDDEN)) != len(raw) \
            or b"\xef\xbf" in raw:  # U+FFFE and U+FFFF are not XML characters either
        return None
    try:
        text = raw[head.end():len(raw) - len(_PLAIN_TAIL)].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if "]]>" in text:  # not allowed in character data
        return None
    pieces = text.split("<")
    opens = pieces[1::2]
    tags = [piece.partition(">") for piece in opens]
    # each field's end tag right after its value: "/" + name + ">" (an open piece
    # without ">" gives no ">" here, so it cannot match either)
    if pieces[2::2] != [f"/{tag[0]}{tag[1]}" for tag in tags]:
        return None  # an attribute, a nested element, text after a field...
    names = [tag[0] for tag in tags]
    if not _plain_names(names):
        return None
    values: list[str | None] = [tag[2].strip() for tag in tags]
    fields = dict(zip(names, values, strict=True))
    if len(fields) != len(names) or len(fields) > MAX_FIELDS:
        return None  # repeated fields are joined (and capped) the general way
    while "" in values:  # empty fields are left out
        at = values.index("")
        del fields[names[at]]
        values[at] = None
    if not (fields.get("id") or fields.get("ccdr_id")):
        return None
    return head.group(1).decode("ascii"), MappingProxyType(fields)
