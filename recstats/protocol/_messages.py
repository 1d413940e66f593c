"""The bytes on the wire, writing side: every request and response recstats sends, as a
whole UTF-8 document with the XML declaration (see ``docs/protocol.md``).

:mod:`._framing` is the reading side; :mod:`recstats.protocol` re-exports these
builders beside the typed events. The server-side builders serve the simulator.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from lxml import etree

from .._xml import call_element, parse_document

__all__ = [
    "DECLARATION",
    "KEEPALIVE_FACTOR",
    "ROOT",
    "call_detail_request",
    "call_detail_response",
    "call_notification",
    "error_response",
    "keepalive_message",
    "ongoing_calls_request",
    "ongoing_calls_response",
    "subscribe_request",
    "subscribe_response",
]

#: Every document recstats writes starts with this declaration line.
DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
ROOT = "VerbaApi"
SUBSCRIBE = "SubscribeOnCallEvent"
ONGOING = "GetOngoingCalls"
DETAIL = "GetCallDetail"
#: A session ends when no keep-alive arrives within this many announced intervals.
KEEPALIVE_FACTOR = 1.5

_STARTS = frozenset({"start", "started", "begin", "began", "begun"})
_ENDS = frozenset({"end", "ended", "stop", "stopped"})


def _format_seconds(value: float) -> str:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"an interval must be a finite number of seconds >= 0, not {value}")
    return str(int(value)) if value.is_integer() else repr(value)


def kind_of(text: str | None) -> str | None:
    """Notification type -> "start" / "end" / None (CallStarted, begin, STOP, ...)."""
    if not text:
        return None
    word = text.strip().lower().replace("_", "").replace("-", "").replace(" ", "")
    word = word.removeprefix("call")
    if word in _STARTS:
        return "start"
    if word in _ENDS:
        return "end"
    return None


def _extensions(extensions) -> tuple[str, ...]:
    if extensions is None:
        return ()
    if isinstance(extensions, (str, int)):
        extensions = [extensions]
    out = tuple(str(e).strip() for e in extensions)
    if any(not e for e in out):
        raise ValueError("an extension number cannot be empty")
    return out




def _document(root: etree._Element) -> bytes:
    return DECLARATION + etree.tostring(root, encoding="UTF-8")


def _request(request_type: str, request_id: str | None) -> tuple[etree._Element, Any]:
    root = etree.Element(ROOT)
    attrib = {"type": request_type}
    if request_id is not None:
        attrib["id"] = str(request_id)
    return root, etree.SubElement(root, "Request", attrib)


def _success(request_type: str | None, request_id: str | None):
    root = etree.Element(ROOT)
    response = etree.SubElement(root, "Response", code="0")
    if request_type is not None or request_id is not None:
        attrib = {}
        if request_type is not None:
            attrib["type"] = request_type
        if request_id is not None:
            attrib["id"] = str(request_id)
        etree.SubElement(response, "Request", attrib)
    return root, response


def subscribe_request(request_id: str | None, extensions=None,
                      keepalive: float | None = None) -> bytes:
    """A ``SubscribeOnCallEvent`` request; ``keepalive`` asks for an interval
    (``0``: none), ``None`` leaves it to the server.

    >>> subscribe_request("1", ["1000"])[39:]
    b'<VerbaApi><Request type="SubscribeOnCallEvent" id="1"><Extension number="1000"/></Request></VerbaApi>'
    """
    root, request = _request(SUBSCRIBE, request_id)
    for number in _extensions(extensions):
        etree.SubElement(request, "Extension", number=number)
    if keepalive is not None:
        etree.SubElement(request, "Keepalive", time=_format_seconds(keepalive))
    return _document(root)


def ongoing_calls_request(request_id: str | None, extensions=None) -> bytes:
    """A ``GetOngoingCalls`` request, optionally restricted to ``extensions``.

    >>> ongoing_calls_request("2")[39:]
    b'<VerbaApi><Request type="GetOngoingCalls" id="2"/></VerbaApi>'
    """
    root, request = _request(ONGOING, request_id)
    for number in _extensions(extensions):
        etree.SubElement(request, "Extension", number=number)
    return _document(root)


def call_detail_request(request_id: str | None, call_id: str) -> bytes:
    """A ``GetCallDetail`` request for one call id.

    >>> call_detail_request("3", "c1")[39:]
    b'<VerbaApi><Request type="GetCallDetail" id="3"><Call id="c1"/></Request></VerbaApi>'
    """
    if not call_id or not str(call_id).strip():
        raise ValueError("call_detail_request needs a call id")
    root, request = _request(DETAIL, request_id)
    etree.SubElement(request, "Call", id=str(call_id))
    return _document(root)


def subscribe_response(request_id: str | None, keepalive: float | None) -> bytes:
    """The success answer to a subscription, announcing the keep-alive interval
    (``None`` or ``0``: keep-alive off, written as ``time="0"``).

    >>> subscribe_response("1", 10)[39:]
    b'<VerbaApi><Response code="0"><Request type="SubscribeOnCallEvent" id="1"/><Keepalive time="10"/></Response></VerbaApi>'
    """
    root, response = _success(SUBSCRIBE, request_id)
    etree.SubElement(response, "Keepalive", time=_format_seconds(keepalive or 0))
    return _document(root)


def keepalive_message(interval: float) -> bytes:
    """A keep-alive ("empty response") announcing the next interval.

    >>> keepalive_message(0.2)[39:]
    b'<VerbaApi><Response code="0"><Keepalive time="0.2"/></Response></VerbaApi>'
    """
    root, response = _success(None, None)
    etree.SubElement(response, "Keepalive", time=_format_seconds(interval))
    return _document(root)


def call_notification(kind: str, fields: Mapping[str, Any]) -> bytes:
    """A ``CallStarted`` (``kind="start"``) or ``CallEnded`` (``"end"``) notification;
    ``fields`` are raw CDR fields under their source names (``None`` values left out).

    >>> call_notification("start", {"id": "c1", "location": "NY"})[39:]
    b'<VerbaApi><Notification type="CallStarted"><Call><id>c1</id><location>NY</location></Call></Notification></VerbaApi>'
    """
    which = kind_of(kind)
    if which is None:
        raise ValueError(f"kind must be 'start' or 'end', not {kind!r}")
    body = _flat_call(fields)
    if body is not None:
        return _NOTIFICATIONS[which] % body
    root = etree.Element(ROOT)
    note = etree.SubElement(root, "Notification",
                            type="CallStarted" if which == "start" else "CallEnded")
    note.append(call_element(fields, "Call"))
    return _document(root)


_NOTIFICATIONS = {
    which: DECLARATION + b'<VerbaApi><Notification type="' + name +
    b'"><Call>%s</Call></Notification></VerbaApi>'
    for which, name in (("start", b"CallStarted"), ("end", b"CallEnded"))}
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_plain_names: set[str] = set()
# what lxml writes as a character reference or refuses: the string path leaves it alone
_SPECIAL = re.compile("[\x00-\x08\x0b-\x1f\ud800-\udfff\ufffe\uffff]")


def _flat_call(fields: Mapping[str, Any]) -> bytes | None:
    """The ``Call`` element's content, written as lxml writes it, for flat fields with
    plain names and texts (the simulator's notifications, thousands a second); None
    for anything else, which lxml then builds."""
    parts = []
    for name, value in fields.items():
        if value is None:
            continue
        if name not in _plain_names:
            if _PLAIN_NAME.fullmatch(name) is None:
                return None
            if len(_plain_names) < 4096:
                _plain_names.add(name)
        text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        parts.append(f"<{name}>{text}</{name}>")
    body = "".join(parts)
    if not body or _SPECIAL.search(body) is not None:  # lxml writes an empty <Call/>
        return None
    return body.encode("utf-8")


def ongoing_calls_response(request_id: str | None,
                           calls: Iterable[Mapping[str, Any]]) -> bytes:
    """The success answer to ``GetOngoingCalls``: ``<Calls count="N">`` of ``<Call>``s.

    >>> ongoing_calls_response("2", [{"id": "c1"}])[39:]
    b'<VerbaApi><Response code="0"><Request type="GetOngoingCalls" id="2"/><Calls count="1"><Call><id>c1</id></Call></Calls></Response></VerbaApi>'
    """
    root, response = _success(ONGOING, request_id)
    container = etree.SubElement(response, "Calls")
    count = 0
    for fields in calls:
        container.append(call_element(fields, "Call"))
        count += 1
    container.set("count", str(count))
    return _document(root)


def call_detail_response(request_id: str | None, cdr_document: bytes) -> bytes:
    """The success answer to ``GetCallDetail``: the CDR file's root element after the
    echoed request. ``cdr_document`` is parsed with the hardened parser
    (:class:`recstats.CDRParseError` if it is not a CDR document).

    >>> call_detail_response("3", b"<verbacdr><id>c1</id></verbacdr>")[39:]
    b'<VerbaApi><Response code="0"><Request type="GetCallDetail" id="3"/><verbacdr><id>c1</id></verbacdr></Response></VerbaApi>'
    """
    document = parse_document(bytes(cdr_document))
    root, response = _success(DETAIL, request_id)
    document.tail = None
    response.append(document)
    return _document(root)


def error_response(request_id: str | None, request_type: str | None, code: int = 2,
                   description: str = "Processing Error", detail: str = "",
                   placement: str = "response") -> bytes:
    """A failure answer. ``placement="response"`` puts ``type``/``id`` on ``Response``
    (as in the vendor's sample); ``"request"`` echoes them in a ``Request`` child.

    >>> error_response("7", "GetCallDetail", detail="no such call")[39:]
    b'<VerbaApi><Response code="2" type="GetCallDetail" id="7"><ErrorMessage description="Processing Error">no such call</ErrorMessage></Response></VerbaApi>'
    """
    code = int(code)
    if code == 0:
        raise ValueError("an error response needs a non-zero code")
    if placement not in ("response", "request"):
        raise ValueError(f"placement must be 'response' or 'request', not {placement!r}")
    root = etree.Element(ROOT)
    response = etree.SubElement(root, "Response", code=str(code))
    attrib = {}
    if request_type is not None:
        attrib["type"] = str(request_type)
    if request_id is not None:
        attrib["id"] = str(request_id)
    if placement == "response":
        for key, value in attrib.items():
            response.set(key, value)
    elif attrib:
        etree.SubElement(response, "Request", attrib)
    message = etree.SubElement(response, "ErrorMessage", description=str(description))
    message.text = str(detail) if detail else None
    return _document(root)


