"""Reading framed documents: hardened parsing (several documents of one read in one
lxml call) and the small element helpers both connections decode with."""

from __future__ import annotations

import math
import operator
import re
from types import MappingProxyType

from lxml import etree

from .._xml import MAX_FIELDS, fields_of, parse_document, safe_parser
from ..errors import CDRParseError, ProtocolError
from ._events import CallEnded, CallStarted
from ._messages import kind_of
from ._plain import SEPARATORS

__all__ = ["call_fields", "child", "messages", "name", "parse", "parse_many",
           "plain_notification", "read_call_notification", "seconds"]


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


def parse_many(located: list[tuple[int, bytes, object]]) -> list | None:
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
    for _, raw, _ in located:
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
# CDATA, comment, carriage return or character XML forbids). One regex checks the whole
# shape (each field's end tag matches its start tag; nothing else stands between them),
# so such a document is well-formed XML by construction, and it also frames it: the
# document is read once, for both. Its fields are then read straight from the text,
# exactly as fields_of would read them.
# "]" (of "]]>") and "\xef" (of U+FFFE, U+FFFF) send a text to the general path too
_TEXT = rb"[^<&\]\xef\x00-\x08\x0b\x0c\x0d\x0e-\x1f]*+"
_SHAPE = re.compile(
    SEPARATORS +
    rb"((?:<\?xml version=(?:\"1\.0\" encoding=\"(?:UTF|utf)-8\"|"
    rb"'1\.0' encoding='(?:UTF|utf)-8')\?>)?[ \t\n]*+"
    rb"<VerbaApi><Notification type=\"([A-Za-z_ -]*+)\"><Call>"
    rb"((?:<([A-Za-z_][\w.-]*+)>" + _TEXT + rb"</\4>)*+)"
    rb"</Call></Notification></VerbaApi>)")
# for a text that holds ">" (the shape is checked: every "<" opens a tag)
_PAIRS = re.compile(r"<([^/>][^>]*)>([^<]*)<")
_text = operator.itemgetter(1)


def read_call_notification(buf: bytes | bytearray, pos: int
                           ) -> tuple[int, int, CallStarted | CallEnded | None] | None:
    """The span of a usual notification at ``pos`` (after separators) and its event,
    or None when no such document starts there.

    The event is None when the document has the shape but needs the general path to
    decide (repeated fields, no call id, an unknown type, a character XML forbids): it
    is still framed. This is the client connection's ``recognise`` (see
    :class:`.Framer`).
    """
    shape = _SHAPE.match(buf, pos)
    if shape is None:
        return None
    start, end = shape.span(1)
    try:
        text = shape.group(3).decode("utf-8")
    except UnicodeDecodeError:
        return start, end, None
    # split at "<": every other piece is a field's "name>text" (C loops, no regex);
    # empty texts are left out, as fields_of leaves them out
    named = text.split("<")[1::2]
    flat = ">".join(named).split(">")
    if len(flat) == 2 * len(named):
        pairs = list(filter(_text, zip(flat[::2], map(str.strip, flat[1::2]),
                                       strict=True)))
    else:  # a text holds ">"
        pairs = [(name, value.strip()) for name, value in _PAIRS.findall(text)
                 if not value.isspace() and value]
    fields = dict(pairs)
    if len(fields) != len(pairs):
        return start, end, None  # repeated fields are joined (and capped) the general way
    if len(fields) > MAX_FIELDS or not (fields.get("id") or fields.get("ccdr_id")):
        return start, end, None
    kind = shape.group(2)
    event = _events[kind] if kind in _events else _event_of(kind)
    return start, end, None if event is None else event(MappingProxyType(fields))


_events: dict[bytes, type[CallStarted | CallEnded] | None] = {}


def _event_of(kind: bytes) -> type[CallStarted | CallEnded] | None:
    """The event class of a notification type, memoised (peers choose types: the memo
    stays small)."""
    event: type[CallStarted | CallEnded] | None = None
    word = kind_of(kind.decode("ascii"))
    if word is not None:
        event = CallStarted if word == "start" else CallEnded
    if len(_events) < 256:
        _events[kind] = event
    return event


def plain_notification(raw: bytes) -> CallStarted | CallEnded | None:
    """The event of a document that is one usual notification read without a parser,
    or None (the general path then decides)."""
    known = read_call_notification(raw, 0)
    if known is None or known[0] != 0 or known[1] != len(raw):
        return None
    return known[2]
