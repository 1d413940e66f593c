"""The server end of a connection: request bytes -> request events, response and
notification events -> bytes (what the simulator builds on)."""

from __future__ import annotations

from .._xml import MAX_DOCUMENT_BYTES, cdr_xml, fields_of
from ..errors import CDRParseError
from ._connection import TYPES, ConnectionBase
from ._decode import child, messages, name, seconds
from ._events import (
    CallDetail,
    CallDetailRequest,
    CallEnded,
    CallStarted,
    ErrorResponse,
    Event,
    KeepAlive,
    OngoingCalls,
    OngoingCallsRequest,
    RequestEvent,
    SubscribeAccepted,
    SubscribeRequest,
    UnknownRequest,
)
from ._messages import (
    DETAIL,
    ONGOING,
    SUBSCRIBE,
    call_detail_response,
    call_notification,
    error_response,
    keepalive_message,
    ongoing_calls_response,
    subscribe_response,
)

__all__ = ["ServerConnection"]


class ServerConnection(ConnectionBase):
    """The server end of one connection, without I/O: bytes in, request events out;
    :meth:`send` turns response and notification events into bytes.

    >>> from recstats.protocol import subscribe_request
    >>> ServerConnection().receive_data(subscribe_request("1", ["1000"], keepalive=0.2))
    [SubscribeRequest(request_id='1', extensions=('1000',), keepalive=0.2)]
    >>> ServerConnection().send(KeepAlive(10))[39:]
    b'<VerbaApi><Response code="0"><Keepalive time="10"/></Response></VerbaApi>'
    """

    def __init__(self, max_document_bytes: int = MAX_DOCUMENT_BYTES):
        super().__init__(max_document_bytes)

    def send(self, event: Event) -> bytes:
        """The bytes of a response or notification event (see :mod:`._messages`)."""
        if isinstance(event, KeepAlive):
            return keepalive_message(event.interval)
        if isinstance(event, CallStarted):
            return call_notification("start", event.fields)
        if isinstance(event, CallEnded):
            return call_notification("end", event.fields)
        if isinstance(event, SubscribeAccepted):
            return subscribe_response(event.request_id, event.keepalive)
        if isinstance(event, OngoingCalls):
            return ongoing_calls_response(event.request_id, event.calls)
        if isinstance(event, CallDetail):
            return call_detail_response(event.request_id, cdr_xml(event.fields))
        if isinstance(event, ErrorResponse):
            return error_response(event.request_id, event.request_type, event.code,
                                  event.description, event.detail)
        raise TypeError(f"a server sends responses and notifications, not "
                        f"{type(event).__name__}")

    def receive_data(self, data: bytes) -> list[RequestEvent]:
        """Feed bytes read from the client (``b""`` when it closed) -> request events.

        A document cut short by the client's close comes first as an
        :class:`UnknownRequest` without id or type; a broken stream ends the list with
        a :class:`ProtocolFailure`, as on the client side.
        """
        return self._feed(data, self._decode)

    def _partial(self, raw: bytes):
        return UnknownRequest(None, None, raw)

    def _decode(self, root, raw: bytes) -> list[RequestEvent]:
        events: list[RequestEvent] = []
        for message in messages(root):
            if name(message) != "request":
                events.append(UnknownRequest(None, None, raw))
                continue
            events.append(_request(message, raw))
        if not events:
            events.append(UnknownRequest(None, None, raw))
        return events


def _request(message, raw: bytes) -> RequestEvent:
    request_id, request_type = message.get("id"), message.get("type")
    kind = TYPES.get((request_type or "").lower())
    if kind in (SUBSCRIBE, ONGOING):
        numbers = tuple(n for n in (
            (e.get("number") or e.text or "").strip()
            for e in message if name(e) == "extension") if n)
        if kind == ONGOING:
            return OngoingCallsRequest(request_id, numbers)
        keepalive = child(message, "keepalive")
        interval = None if keepalive is None else seconds(keepalive.get("time"))
        if keepalive is not None and interval is None:
            return UnknownRequest(request_id, request_type, raw, f"keep-alive time "
                                  f"{keepalive.get('time')!r} is not a number of seconds >= 0")
        return SubscribeRequest(request_id, numbers, interval)
    if kind == DETAIL:
        call = child(message, "call")
        call_id = None
        if call is not None:
            try:
                fields = fields_of(call)
            except CDRParseError as exc:
                return UnknownRequest(request_id, request_type, raw, exc.reason)
            call_id = fields.get("id") or fields.get("ccdr_id")
        return CallDetailRequest(request_id, call_id)
    return UnknownRequest(request_id, request_type, raw)
