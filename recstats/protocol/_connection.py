"""Connections of both ends: framed documents -> typed events (the package docstring
says how they are used)."""


from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from lxml import etree

from .. import cdr
from .._xml import MAX_DOCUMENT_BYTES, fields_of, parse_document, safe_parser
from ..errors import CDRParseError, ProtocolError
from ._framing import Framer
from ._messages import (
    DETAIL,
    KEEPALIVE_FACTOR,
    ONGOING,
    SUBSCRIBE,
    _kind,
    call_detail_request,
    ongoing_calls_request,
    subscribe_request,
)

# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class SubscribeAccepted:
    """The server accepted a subscription; ``keepalive`` is its interval in seconds,
    ``None`` when keep-alive is off (``time="0"`` or no ``Keepalive`` element)."""
    request_id: str | None
    keepalive: float | None


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """A keep-alive; the next one is due within 1.5 x ``interval`` seconds
    (``interval == 0`` turns keep-alive off)."""
    interval: float


@dataclass(frozen=True, slots=True)
class CallStarted:
    """A call began. ``call`` is a read-only record keyed like
    :func:`recstats.cdr.record_from_fields` (calls-table names + every other field)."""
    call: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CallEnded:
    """A call ended; ``call`` carries every field known at the end (``end_time``...)."""
    call: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class OngoingCalls:
    """The answer to ``GetOngoingCalls``: one read-only record per call in progress."""
    request_id: str | None
    calls: tuple[Mapping[str, Any], ...]


@dataclass(frozen=True, slots=True)
class CallDetail:
    """The answer to ``GetCallDetail``: the call's CDR as a read-only record."""
    request_id: str | None
    cdr: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """A failure response (any non-zero ``code``; the vendor documents 2)."""
    request_id: str | None
    request_type: str | None
    code: int
    description: str
    detail: str


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A well-formed message recstats does not understand, kept with its raw bytes;
    ``request_id`` is set when it answers a request (an answer not understood)."""
    raw: bytes
    reason: str
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed the connection (``receive_data(b"")``)."""


Event = (SubscribeAccepted | KeepAlive | CallStarted | CallEnded | OngoingCalls
         | CallDetail | ErrorResponse | UnknownMessage | ConnectionClosed)


@dataclass(frozen=True, slots=True)
class SubscribeRequest:
    """``SubscribeOnCallEvent``: ``extensions`` empty means every call; ``keepalive`` is
    the interval asked for (``0.0``: none; ``None``: the server's default)."""
    request_id: str | None
    extensions: tuple[str, ...]
    keepalive: float | None


@dataclass(frozen=True, slots=True)
class OngoingCallsRequest:
    """``GetOngoingCalls``, optionally restricted to ``extensions``."""
    request_id: str | None
    extensions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CallDetailRequest:
    """``GetCallDetail`` for ``call_id`` (``None`` when the request names no call)."""
    request_id: str | None
    call_id: str | None


@dataclass(frozen=True, slots=True)
class UnknownRequest:
    """A request the server side does not know or cannot read (``reason`` says which,
    when it is not simply an unknown type); answer it with :func:`error_response`."""
    request_id: str | None
    request_type: str | None
    raw: bytes
    reason: str = ""


RequestEvent = (SubscribeRequest | OngoingCallsRequest | CallDetailRequest | UnknownRequest
                | ConnectionClosed)

# --------------------------------------------------------------------------- helpers


def _name(element) -> str | None:
    """Lower-case local name of an element (None for comments and the like)."""
    tag = element.tag
    name = _names.get(tag)
    if name is None:
        if not isinstance(tag, str):
            return None
        name = tag.rpartition("}")[2].lower()
        if len(_names) > 1024:  # peers choose names: keep the memo small
            _names.clear()
        _names[tag] = name
    return name


_names: dict[str, str] = {}  # tag -> lower-case local name, memoised (hot path)
_kinds: dict[str, str] = {}  # notification type -> "start"/"end", memoised


def _child(element, name: str):
    for child in element:
        if _name(child) == name:
            return child
    return None


def _seconds(text: str | None) -> float | None:
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


def _record(element, tz: str) -> MappingProxyType:
    return MappingProxyType(cdr.record_from_fields(fields_of(element), tz=tz))


def _parse(document: bytes, offset: int) -> etree._Element:
    """Hardened parse of one framed document; malformed -> ProtocolError at ``offset``.

    The framer already bounded the size, so only cdr's parse rules apply here."""
    try:
        return parse_document(document, max_bytes=len(document))
    except CDRParseError as exc:
        raise ProtocolError(exc.reason, offset) from None


# A document that is a UTF-8 declaration (or none), whitespace and its root element
_PLAIN_PROLOG = re.compile(rb'(<\?xml version=(?:"1\.0" encoding="(?:UTF|utf)-8"|'
                           rb"'1\.0' encoding='(?:UTF|utf)-8')\?>)?[ \t\r\n]*<[^!?]")


def _parse_many(located: list[tuple[int, bytes]]) -> list | None:
    """Parse several framed documents with one lxml call, or None if that is not sure
    to give what parsing each alone gives (then each is parsed alone).

    libxml2's fixed cost per document is about half of parsing a notification, so the
    documents of one read are parsed as the children of one wrapper element. Only
    documents made of a UTF-8 declaration (or none), whitespace and a root element take
    part: stripped of their declaration they are well-formed alone exactly when they
    are well-formed side by side. Any doubt (a comment or PI before the root, another
    encoding, a parse error anywhere) returns None.
    """
    parts = [b"<_>"]
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


def _messages(root) -> list:
    """The message elements of a document: the root's children, or the root itself
    when a peer leaves out the ``VerbaApi`` envelope."""
    if _name(root) in ("response", "notification", "request"):
        return [root]
    return [child for child in root if isinstance(child.tag, str)]


# --------------------------------------------------------------------------- connections


class _Connection:
    """What both ends share: framing, the failed state and the closed state."""

    def __init__(self, max_document_bytes: int,
                 on_document: Callable[[bytes], None] | None = None):
        self._framer = Framer(max_document_bytes)
        self._on_document = on_document
        self._error: ProtocolError | None = None
        self.closed = False

    def _feed(self, data: bytes, decode) -> list:
        """Frame ``data`` and decode every document with ``decode(root, raw)``."""
        if self._error is not None:
            raise ProtocolError(f"the connection already failed: {self._error}")
        if not data:
            events = []
            if not self.closed and self._framer.pending:
                # the peer hung up inside a document: keep what came, typed
                events.append(self._partial(self._framer.unfinished()))
            self.closed = True
            events.append(ConnectionClosed())
            return events
        if self.closed:
            raise ProtocolError("data received after the connection closed",
                                self._framer.offset)
        failure = None
        try:
            located = self._framer.feed_with_offsets(data)
        except ProtocolError as exc:
            failure, located = exc, exc.located
        events: list = []
        on_document = self._on_document
        roots = _parse_many(located) if len(located) > 1 else None
        if roots is not None:  # all well-formed: nothing below can fail
            for (_, raw), root in zip(located, roots):
                if on_document is not None:
                    on_document(raw)
                events.extend(decode(root, raw))
            located = ()
        try:
            for offset, raw in located:
                if on_document is not None:
                    on_document(raw)
                events.extend(decode(_parse(raw, offset), raw))
        except ProtocolError as exc:
            failure = exc
        if failure is not None:
            failure.events = events  # what was understood before the failure
            self._error = failure
            raise failure
        return events

    @property
    def offset(self) -> int:
        """Stream bytes consumed so far (whole documents and separators)."""
        return self._framer.offset

    def _partial(self, raw: bytes):
        return UnknownMessage(raw, "connection closed in the middle of a document")


class ClientConnection(_Connection):
    """The client end of one connection to a recording server, without I/O.

    Build requests with :meth:`subscribe`, :meth:`get_ongoing_calls` and
    :meth:`get_call_detail` (each returns ``(request_id, bytes to send)``; ids are
    ``"1"``, ``"2"``, ... per connection) and feed what the server sends to
    :meth:`receive_data`, which returns events. Call records are decoded with the
    site time zone ``tz``. ``on_document(raw)`` is called once per framed document,
    before it is decoded (a capture journal uses it).

    A framing or XML error raises :class:`recstats.ProtocolError` (with ``offset``);
    the events decoded before it in the same call are attached as ``error.events``,
    and the connection stays failed (every later call raises a ProtocolError).

    >>> conn = ClientConnection()
    >>> request_id, data = conn.subscribe(keepalive=10)
    >>> conn.receive_data(subscribe_response(request_id, 10), now=100.0)
    [SubscribeAccepted(request_id='1', keepalive=10.0)]
    >>> conn.keepalive_deadline, conn.expired(114.0), conn.expired(115.5)
    (115.0, False, True)
    """

    def __init__(self, tz: str = "UTC", max_document_bytes: int = MAX_DOCUMENT_BYTES,
                 on_document: Callable[[bytes], None] | None = None):
        super().__init__(max_document_bytes, on_document)
        self.tz = tz
        self._next_id = 1
        self._pending: dict[str, str] = {}   # request id -> request type, until answered
        self._deadline: float | None = None
        self._now = 0.0

    # requests ----------------------------------------------------------------------

    def _request(self, request_type: str, build, *args) -> tuple[str, bytes]:
        request_id = str(self._next_id)
        data = build(request_id, *args)  # raises on bad arguments: no id is used up
        self._next_id += 1
        self._pending[request_id] = request_type
        return request_id, data

    def subscribe(self, extensions=None, keepalive: float | None = None) -> tuple[str, bytes]:
        """Subscribe to call events (all calls, or those of ``extensions``); ``keepalive``
        asks for an interval in seconds (``0``: none; ``None``: the server's choice).

        >>> ClientConnection().subscribe(["1000"])[0]
        '1'
        """
        return self._request(SUBSCRIBE, subscribe_request, extensions, keepalive)

    def get_ongoing_calls(self, extensions=None) -> tuple[str, bytes]:
        """Ask for the calls in progress (to resynchronise after connecting).

        >>> ClientConnection().get_ongoing_calls()[1][39:]
        b'<VerbaApi><Request type="GetOngoingCalls" id="1"/></VerbaApi>'
        """
        return self._request(ONGOING, ongoing_calls_request, extensions)

    def get_call_detail(self, call_id: str) -> tuple[str, bytes]:
        """Ask for one call's CDR.

        >>> ClientConnection().get_call_detail("c1")[1][39:]
        b'<VerbaApi><Request type="GetCallDetail" id="1"><Call id="c1"/></Request></VerbaApi>'
        """
        return self._request(DETAIL, call_detail_request, call_id)

    @property
    def pending_requests(self) -> dict[str, str]:
        """Requests sent and not answered yet: ``{request id: request type}``."""
        return dict(self._pending)

    # receiving ---------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        """Feed bytes read from the server (``b""`` when it closed the connection) and
        return the events they complete. ``now`` is the caller's monotonic clock in
        seconds: keep-alive deadlines are computed from it.

        >>> ClientConnection().receive_data(b"", now=0.0)
        [ConnectionClosed()]
        """
        self._now = now
        return self._feed(data, self._decode)

    @property
    def keepalive_deadline(self) -> float | None:
        """Monotonic time by which the next keep-alive must arrive: 1.5 x the interval
        announced last, counted from the keep-alive (or subscribe response) that
        announced it. ``None`` while keep-alive is off or not announced yet."""
        return self._deadline

    def expired(self, now: float) -> bool:
        """True when the keep-alive deadline has passed: the session must be ended."""
        return self._deadline is not None and now > self._deadline

    def _announce(self, interval: float | None) -> None:
        self._deadline = None if not interval else self._now + KEEPALIVE_FACTOR * interval

    def _decode(self, root, raw: bytes) -> list[Event]:
        events: list[Event] = []
        for message in _messages(root):
            name = _name(message)
            if name == "notification":
                events.append(self._notification(message, raw))
            elif name == "response":
                events.extend(self._response(message, raw))
            else:
                events.append(UnknownMessage(raw, f"unknown message element <{message.tag}>"))
        if not events:
            events.append(UnknownMessage(raw, "message without content"))
        return events

    def _notification(self, message, raw: bytes) -> Event:
        text = message.get("type")
        kind = _kinds.get(text)
        if kind is None:
            kind = _kind(text)
            if kind is not None and len(_kinds) < 256:
                _kinds[text] = kind
        if kind is None:
            return UnknownMessage(raw, f"unknown notification type {message.get('type')!r}")
        call = _child(message, "call")
        if call is None:
            return UnknownMessage(raw, "notification without a Call element")
        try:
            record = _record(call, self.tz)
        except CDRParseError as exc:
            return UnknownMessage(raw, f"call not understood: {exc.reason}")
        return CallStarted(record) if kind == "start" else CallEnded(record)

    def _response(self, message, raw: bytes) -> list[Event]:
        code_text = message.get("code")
        echo = _child(message, "request")
        request_id = request_type = None
        if echo is not None:
            request_id, request_type = echo.get("id"), echo.get("type")
        if request_id is None:
            request_id = message.get("id")
        if request_type is None:
            request_type = message.get("type")
        if request_id is not None:
            pending = self._pending.pop(request_id, None)
            if request_type is None:
                request_type = pending
        try:
            code = int(code_text)
        except (TypeError, ValueError):
            return [UnknownMessage(raw, f"response code {code_text!r} is not a number",
                                   request_id)]
        if code != 0:
            error = _child(message, "errormessage")
            description = detail = ""
            if error is not None:
                description = error.get("description") or ""
                detail = "".join(error.itertext()).strip()
            return [ErrorResponse(request_id, request_type, code, description, detail)]
        keepalive = _child(message, "keepalive")
        interval = None if keepalive is None else _seconds(keepalive.get("time"))
        if keepalive is not None and interval is None:
            return [UnknownMessage(raw, f"keep-alive time {keepalive.get('time')!r} "
                                        "is not a number of seconds", request_id)]
        kind = request_type.lower() if request_type else None
        if kind is None:
            if keepalive is None:
                return [UnknownMessage(raw, "success response to no known request")]
            self._announce(interval)
            return [KeepAlive(interval)]
        if kind == SUBSCRIBE.lower():
            self._announce(interval)
            return [SubscribeAccepted(request_id, interval or None)]
        if kind == ONGOING.lower():
            return self._ongoing(message, request_id, raw)
        if kind == DETAIL.lower():
            for child in message:
                if child is not echo and _name(child) not in (None, "keepalive"):
                    try:
                        return [CallDetail(request_id, _record(child, self.tz))]
                    except CDRParseError as exc:
                        return [UnknownMessage(raw, f"call detail not understood: "
                                                    f"{exc.reason}", request_id)]
            return [UnknownMessage(raw, "call detail response without a CDR element",
                                   request_id)]
        return [UnknownMessage(raw, f"response to a {request_type!r} request, which "
                                    "recstats does not know", request_id)]

    def _ongoing(self, message, request_id, raw: bytes) -> list[Event]:
        container = _child(message, "calls")
        if container is None:
            container = message  # tolerate <Call>s straight under <Response>
        calls, rejected = [], []
        for element in container:
            if _name(element) != "call":
                continue
            try:
                calls.append(_record(element, self.tz))
            except CDRParseError as exc:
                # one bad call does not hide the others; it is surfaced on its own
                rejected.append(UnknownMessage(etree.tostring(element, encoding="UTF-8"),
                                               f"ongoing call not understood: {exc.reason}"))
        return [OngoingCalls(request_id, tuple(calls)), *rejected]


class ServerConnection(_Connection):
    """The server end of one connection, without I/O: bytes in, request events out.

    >>> ServerConnection().receive_data(subscribe_request("1", ["1000"], keepalive=0.2))
    [SubscribeRequest(request_id='1', extensions=('1000',), keepalive=0.2)]
    """

    def __init__(self, max_document_bytes: int = MAX_DOCUMENT_BYTES):
        super().__init__(max_document_bytes)

    def receive_data(self, data: bytes) -> list[RequestEvent]:
        """Feed bytes read from the client (``b""`` when it closed) -> request events.

        A document cut short by the client's close comes first as an
        :class:`UnknownRequest` without id or type.
        """
        return self._feed(data, self._decode)

    def _partial(self, raw: bytes):
        return UnknownRequest(None, None, raw)

    def _decode(self, root, raw: bytes) -> list[RequestEvent]:
        events: list[RequestEvent] = []
        for message in _messages(root):
            if _name(message) != "request":
                events.append(UnknownRequest(None, None, raw))
                continue
            request_id, request_type = message.get("id"), message.get("type")
            kind = (request_type or "").lower()
            if kind in (SUBSCRIBE.lower(), ONGOING.lower()):
                numbers = tuple(n for n in (
                    (e.get("number") or e.text or "").strip()
                    for e in message if _name(e) == "extension") if n)
                if kind == ONGOING.lower():
                    events.append(OngoingCallsRequest(request_id, numbers))
                    continue
                keepalive = _child(message, "keepalive")
                interval = None if keepalive is None else _seconds(keepalive.get("time"))
                if keepalive is not None and interval is None:
                    events.append(UnknownRequest(
                        request_id, request_type, raw, f"keep-alive time "
                        f"{keepalive.get('time')!r} is not a number of seconds >= 0"))
                else:
                    events.append(SubscribeRequest(request_id, numbers, interval))
            elif kind == DETAIL.lower():
                call = _child(message, "call")
                call_id = None
                if call is not None:
                    fields = fields_of(call)
                    call_id = fields.get("id") or fields.get("ccdr_id")
                events.append(CallDetailRequest(request_id, call_id))
            else:
                events.append(UnknownRequest(request_id, request_type, raw))
        if not events:
            events.append(UnknownRequest(None, None, raw))
        return events
