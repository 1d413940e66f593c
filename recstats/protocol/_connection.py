"""The client end of a connection, and what both ends share: framed documents ->
events, request events -> bytes (the package docstring says how they are used)."""

from __future__ import annotations

from collections.abc import Callable

from lxml import etree

from .._xml import MAX_DOCUMENT_BYTES
from ..errors import CDRParseError, ProtocolError
from ._decode import (
    call_fields,
    child,
    messages,
    name,
    parse,
    parse_many,
    read_call_notification,
    seconds,
)
from ._events import (
    CallDetail,
    CallDetailRequest,
    CallEnded,
    CallStarted,
    ConnectionClosed,
    ErrorResponse,
    Event,
    KeepAlive,
    OngoingCalls,
    OngoingCallsRequest,
    ProtocolFailure,
    SubscribeAccepted,
    SubscribeRequest,
    UnknownMessage,
)
from ._framing import Framer
from ._messages import (
    DETAIL,
    KEEPALIVE_FACTOR,
    ONGOING,
    SUBSCRIBE,
    call_detail_request,
    kind_of,
    ongoing_calls_request,
    subscribe_request,
)

__all__ = ["ClientConnection", "ConnectionBase"]

_kinds: dict[str, str] = {}  # notification type -> "start"/"end", memoised (hot path)
TYPES = {SUBSCRIBE.lower(): SUBSCRIBE, ONGOING.lower(): ONGOING, DETAIL.lower(): DETAIL}


class ConnectionBase:
    """What both ends share: framing, the failed state and the closed state."""

    def __init__(self, max_document_bytes: int,
                 on_document: Callable[[bytes], None] | None = None):
        self._framer = Framer(max_document_bytes, self._recognise)
        self._on_document = on_document
        self._error: ProtocolError | None = None
        self.closed = False

    def _feed(self, data: bytes, decode) -> list:
        """Frame ``data`` and decode every document with ``decode(root, raw)``; a
        failure becomes a final :class:`ProtocolFailure` after the events before it."""
        if self._error is not None:
            raise ProtocolError(f"the connection already failed: {self._error.reason}",
                                self._error.offset)
        events: list = []
        if not data:
            if not self.closed and self._framer.pending:
                # the peer hung up inside a document: keep what came, typed
                events.append(self._partial(self._framer.unfinished()))
            self.closed = True
            events.append(ConnectionClosed())
            return events
        if self.closed:
            raise ProtocolError("data received after the connection closed",
                                self._framer.offset)
        try:
            located = self._framer.feed_documents(data)
        except ProtocolError as exc:
            return self._failed(events, exc)
        error = self._decode_all(located, decode, events)
        if error is None:
            error = self._framer.error  # broken after the documents returned
        return events if error is None else self._failed(events, error)

    #: The framer's ``recognise`` (see :data:`._plain.Recognise`): documents it reads
    #: whole into their event skip the parser. The server end has none.
    _recognise: Callable[[bytearray, int], tuple[int, int, object] | None] | None = None

    def _decode_all(self, located: list, decode, events: list) -> ProtocolError | None:
        """Decode framed documents in order into ``events``; the first failure stops."""
        run: list = []  # documents for the parser, decoded together
        for item in located:
            event = item[2]
            if event is None:
                run.append(item)
                continue
            if run:
                error = self._decode_run(run, decode, events)
                if error is not None:
                    return error
                run = []
            if self._on_document is not None:
                self._on_document(item[1])
            events.append(event)
        return self._decode_run(run, decode, events) if run else None

    def _decode_run(self, run: list, decode, events: list) -> ProtocolError | None:
        on_document = self._on_document
        roots = parse_many(run) if len(run) > 1 else None
        if roots is not None:  # all well-formed: nothing below can fail
            for (_, raw, _), root in zip(run, roots, strict=True):
                if on_document is not None:
                    on_document(raw)
                events.extend(decode(root, raw))
            return None
        for offset, raw, _ in run:
            if on_document is not None:
                on_document(raw)
            try:
                root = parse(raw, offset)
            except ProtocolError as exc:
                return exc
            events.extend(decode(root, raw))
        return None

    def _failed(self, events: list, error: ProtocolError) -> list:
        self._error = error
        events.append(ProtocolFailure(error))
        return events

    @property
    def offset(self) -> int:
        """Stream bytes consumed so far (whole documents and separators)."""
        return self._framer.offset

    @property
    def error(self) -> ProtocolError | None:
        """The failure that ended the connection (``None`` while it is sound)."""
        return self._error

    def _partial(self, raw: bytes):
        return UnknownMessage(raw, "connection closed in the middle of a document")


class ClientConnection(ConnectionBase):
    """The client end of one connection to a recording server, without I/O.

    :meth:`send` turns a request event into the bytes to write (``request_id=None``
    takes the next id: ``"1"``, ``"2"``, ... per connection); :meth:`subscribe`,
    :meth:`get_ongoing_calls` and :meth:`get_call_detail` do the same and return
    ``(request_id, bytes)``. Feed what the server sends to :meth:`receive_data`,
    which returns events carrying raw wire values. ``on_document(raw)`` is called
    once per framed document, before it is decoded (a capture journal uses it).

    A framing or XML error ends the returned list with a :class:`ProtocolFailure`
    (its ``error`` has the ``offset``); the events before it are the documents
    decoded before the failure. The connection stays failed: every later
    :meth:`receive_data` raises :class:`recstats.ProtocolError`.

    An answer is matched to its pending request by id; one whose echoed type is not
    the pending request's type is an :class:`UnknownMessage` with that request id (the
    request is answered, wrongly). A response that only carries a ``Keepalive`` is a
    :class:`KeepAlive` whatever id it carries, unless it answers a pending subscription.

    >>> from recstats.protocol import subscribe_response
    >>> conn = ClientConnection()
    >>> request_id, data = conn.subscribe(keepalive=10)
    >>> conn.receive_data(subscribe_response(request_id, 10), now=100.0)
    [SubscribeAccepted(request_id='1', keepalive=10.0)]
    >>> conn.keepalive_deadline, conn.expired(114.0), conn.expired(115.5)
    (115.0, False, True)
    """

    def __init__(self, max_document_bytes: int = MAX_DOCUMENT_BYTES,
                 on_document: Callable[[bytes], None] | None = None):
        super().__init__(max_document_bytes, on_document)
        self._next_id = 1
        self._pending: dict[str, str] = {}   # request id -> request type, until answered
        self._deadline: float | None = None
        self._now = 0.0

    _recognise = staticmethod(read_call_notification)

    # requests ----------------------------------------------------------------------

    def send(self, event: SubscribeRequest | OngoingCallsRequest | CallDetailRequest
             ) -> bytes:
        """The bytes of a request event; its id (or the next one) becomes pending.

        >>> ClientConnection().send(OngoingCallsRequest(None))[39:]
        b'<VerbaApi><Request type="GetOngoingCalls" id="1"/></VerbaApi>'
        """
        return self._send(event)[1]

    def _send(self, event) -> tuple[str, bytes]:
        if not isinstance(event, (SubscribeRequest, OngoingCallsRequest, CallDetailRequest)):
            raise TypeError(f"a client sends request events, not {type(event).__name__}")
        request_id = event.request_id
        if request_id is None:
            request_id = str(self._next_id)
        if isinstance(event, SubscribeRequest):
            kind, data = SUBSCRIBE, subscribe_request(request_id, event.extensions,
                                                      event.keepalive)
        elif isinstance(event, OngoingCallsRequest):
            kind, data = ONGOING, ongoing_calls_request(request_id, event.extensions)
        else:
            kind, data = DETAIL, call_detail_request(request_id, event.call_id or "")
        if event.request_id is None:  # bad arguments raised above: no id is used up
            self._next_id += 1
        self._pending[request_id] = kind
        return request_id, data

    def subscribe(self, extensions=None, keepalive: float | None = None) -> tuple[str, bytes]:
        """Subscribe to call events (all calls, or those of ``extensions``); ``keepalive``
        asks for an interval in seconds (``0``: none; ``None``: the server's choice).

        >>> ClientConnection().subscribe(["1000"])[0]
        '1'
        """
        return self._send(SubscribeRequest(None, _numbers(extensions), keepalive))

    def get_ongoing_calls(self, extensions=None) -> tuple[str, bytes]:
        """Ask for the calls in progress (to resynchronise after connecting).

        >>> ClientConnection().get_ongoing_calls()[1][39:]
        b'<VerbaApi><Request type="GetOngoingCalls" id="1"/></VerbaApi>'
        """
        return self._send(OngoingCallsRequest(None, _numbers(extensions)))

    def get_call_detail(self, call_id: str) -> tuple[str, bytes]:
        """Ask for one call's CDR.

        >>> ClientConnection().get_call_detail("c1")[1][39:]
        b'<VerbaApi><Request type="GetCallDetail" id="1"><Call id="c1"/></Request></VerbaApi>'
        """
        return self._send(CallDetailRequest(None, call_id))

    @property
    def next_request_id(self) -> str:
        """The id :meth:`send` gives the next request event without one."""
        return str(self._next_id)

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
        for message in messages(root):
            kind = name(message)
            if kind == "notification":
                events.append(self._notification(message, raw))
            elif kind == "response":
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
            kind = kind_of(text)
            if kind is not None and len(_kinds) < 256:
                _kinds[text] = kind
        if kind is None:
            return UnknownMessage(raw, f"unknown notification type {text!r}")
        call = child(message, "call")
        if call is None:
            return UnknownMessage(raw, "notification without a Call element")
        try:
            fields = call_fields(call)
        except CDRParseError as exc:
            return UnknownMessage(raw, f"call not understood: {exc.reason}")
        return CallStarted(fields) if kind == "start" else CallEnded(fields)

    def _response(self, message, raw: bytes) -> list[Event]:
        echo = child(message, "request")
        request_id = echoed = None
        if echo is not None:
            request_id, echoed = echo.get("id"), echo.get("type")
        if request_id is None:
            request_id = message.get("id")
        if echoed is None:
            echoed = message.get("type")
        code_text = message.get("code")
        try:
            code = int(code_text)
        except (TypeError, ValueError):
            self._pending.pop(request_id, None)
            return [UnknownMessage(raw, f"response code {code_text!r} is not a number",
                                  request_id)]
        pending = self._pending.get(request_id) if request_id is not None else None
        if code != 0:
            self._pending.pop(request_id, None)
            error = child(message, "errormessage")
            description = detail = ""
            if error is not None:
                description = error.get("description") or ""
                detail = "".join(error.itertext()).strip()
            return [ErrorResponse(request_id, echoed or pending, code, description, detail)]
        keepalive = child(message, "keepalive")
        interval = None if keepalive is None else seconds(keepalive.get("time"))
        if keepalive is not None and interval is None:
            self._pending.pop(request_id, None)
            return [UnknownMessage(raw, f"keep-alive time {keepalive.get('time')!r} "
                                       "is not a number of seconds", request_id)]
        kind = TYPES.get(echoed.lower()) if echoed else pending
        if echoed and kind is None:
            self._pending.pop(request_id, None)
            return [UnknownMessage(raw, f"response to a {echoed!r} request, which "
                                       "recstats does not know", request_id)]
        if keepalive is not None and echoed is None and pending != SUBSCRIBE \
                and _only_keepalive(message):
            self._announce(interval)  # a keep-alive, whatever id it carries
            return [KeepAlive(interval or 0.0)]
        if kind is None:
            if keepalive is None:
                return [UnknownMessage(raw, "success response to no known request",
                                      request_id)]
            self._announce(interval)
            return [KeepAlive(interval or 0.0)]
        if request_id is not None:
            self._pending.pop(request_id, None)
        if pending is not None and kind != pending:
            return [UnknownMessage(raw, f"a {kind} answer to {pending} request "
                                       f"{request_id}", request_id)]
        if kind == SUBSCRIBE:
            self._announce(interval)
            return [SubscribeAccepted(request_id, interval or None)]
        if kind == ONGOING:
            return self._ongoing(message, request_id, raw)
        for item in message:
            if item is not echo and name(item) not in (None, "keepalive", "errormessage"):
                try:
                    return [CallDetail(request_id, call_fields(item))]
                except CDRParseError as exc:
                    return [UnknownMessage(raw, f"call detail not understood: {exc.reason}",
                                          request_id)]
        return [UnknownMessage(raw, "call detail response without a CDR element", request_id)]

    def _ongoing(self, message, request_id, raw: bytes) -> list[Event]:
        container = child(message, "calls")
        if container is None:
            container = message  # tolerate <Call>s straight under <Response>
            if child(message, "call") is None:
                return [UnknownMessage(raw, "ongoing-calls answer without a Calls element",
                                       request_id)]
        calls, rejected = [], []
        for element in container:
            if name(element) != "call":
                continue
            try:
                calls.append(call_fields(element))
            except CDRParseError as exc:
                # one bad call does not hide the others; it is surfaced on its own
                rejected.append(UnknownMessage(etree.tostring(element, encoding="UTF-8"),
                                               f"ongoing call not understood: {exc.reason}"))
        return [OngoingCalls(request_id, tuple(calls)), *rejected]


def _only_keepalive(message) -> bool:
    return all(name(item) in (None, "keepalive") for item in message)


def _numbers(extensions) -> tuple[str, ...]:
    if extensions is None:
        return ()
    if isinstance(extensions, (str, int)):
        extensions = [extensions]
    return tuple(str(e) for e in extensions)
