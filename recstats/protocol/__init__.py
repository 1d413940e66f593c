"""The recording server's XML event API, sans-IO: bytes in, typed events out.

Like h11 or wsproto, this module never touches a socket, a thread or a clock. A
connection object is fed the bytes read from the network and returns immutable events;
requests are built as bytes the caller writes. Time enters only as the ``now`` the
caller passes in (monotonic seconds), so the keep-alive deadline is plain data to check.

Client side (what :class:`recstats.RecorderClient` builds on)::

    conn = ClientConnection(tz="Europe/Budapest")
    request_id, data = conn.subscribe(extensions=["1000"])
    sock.sendall(data)
    for event in conn.receive_data(sock.recv(65536), now=time.monotonic()):
        ...  # SubscribeAccepted, CallStarted, CallEnded, KeepAlive, ErrorResponse, ...
    if conn.expired(time.monotonic()):
        ...  # no keep-alive within 1.5 x the announced interval: the session is over

Server side (what the simulator builds on): :class:`ServerConnection` turns bytes into
request events and the builders (:func:`subscribe_response`, :func:`call_notification`,
:func:`keepalive_message`, ...) turn answers into bytes.

The wire format is described in ``docs/protocol.md``: what the vendor documents and
what recstats chose where it is silent. What is sent is strict; what is accepted is
tolerant (any root prefix, error ``type``/``id`` on ``Response`` or on the echoed
``Request``, call fields as children or attributes, ``id`` or ``ccdr_id``, notification
types in any case and several spellings). A message that is well-formed XML but not
understood becomes :class:`UnknownMessage` (or :class:`UnknownRequest`), never an
exception; malformed XML, a DTD or an oversized document is a
:class:`recstats.ProtocolError` naming the stream offset.
"""

from ._connection import (
    CallDetail,
    CallDetailRequest,
    CallEnded,
    CallStarted,
    ClientConnection,
    ConnectionClosed,
    ErrorResponse,
    Event,
    KeepAlive,
    OngoingCalls,
    OngoingCallsRequest,
    RequestEvent,
    ServerConnection,
    SubscribeAccepted,
    SubscribeRequest,
    UnknownMessage,
    UnknownRequest,
)
from ._framing import Framer
from ._messages import (
    DECLARATION,
    KEEPALIVE_FACTOR,
    ROOT,
    call_detail_request,
    call_detail_response,
    call_notification,
    error_response,
    keepalive_message,
    ongoing_calls_request,
    ongoing_calls_response,
    subscribe_request,
    subscribe_response,
)

__all__ = [
    "DECLARATION",
    "KEEPALIVE_FACTOR",
    "ROOT",
    "CallDetail",
    "CallDetailRequest",
    "CallEnded",
    "CallStarted",
    "ClientConnection",
    "ConnectionClosed",
    "ErrorResponse",
    "Event",
    "Framer",
    "KeepAlive",
    "OngoingCalls",
    "OngoingCallsRequest",
    "RequestEvent",
    "ServerConnection",
    "SubscribeAccepted",
    "SubscribeRequest",
    "UnknownMessage",
    "UnknownRequest",
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
