"""The recording server's XML event API, sans-IO: bytes in, events out, events -> bytes.

Like h11 or wsproto, this package never touches a socket, a thread or a clock, and
imports neither pandas nor the CDR reader. A connection object is fed the bytes read
from the network and returns immutable events carrying raw wire values (call fields as
``{source name: text}``, request ids as sent); ``send(event)`` turns an event into the
bytes to write. Time enters only as the ``now`` the caller passes in (monotonic
seconds), so the keep-alive deadline is plain data to check. Typed records with a site
time zone are built at the edge (:class:`recstats.RecorderClient`,
:class:`recstats.Capture`).

Client side::

    conn = ClientConnection()
    sock.sendall(conn.send(SubscribeRequest(None, ("1000",), keepalive=10)))
    for event in conn.receive_data(sock.recv(65536), now=time.monotonic()):
        ...  # SubscribeAccepted, CallStarted, CallEnded, KeepAlive, ErrorResponse, ...
    if conn.expired(time.monotonic()):
        ...  # no keep-alive within 1.5 x the announced interval: the session is over

Server side (what the simulator builds on): :class:`ServerConnection` turns bytes into
request events and its ``send`` turns responses and notifications into bytes; the
builders (:func:`subscribe_response`, :func:`call_notification`, ...) are the layer
below both.

The wire format is described in ``docs/protocol.md``: what the vendor documents and
what recstats chose where it is silent. What is sent is strict; what is accepted is
tolerant (any root prefix, error ``type``/``id`` on ``Response`` or on the echoed
``Request``, call fields as children or attributes, ``id`` or ``ccdr_id``, notification
types in any case and several spellings). A message that is well-formed XML but not
understood becomes :class:`UnknownMessage` (or :class:`UnknownRequest`), never an
exception; malformed XML, a DTD or an oversized document ends the connection with a
:class:`ProtocolFailure` event whose :class:`recstats.ProtocolError` names the stream
offset, after the events decoded before it.
"""

from ._connection import ClientConnection
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
    RequestEvent,
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
from ._server import ServerConnection

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
    "ProtocolFailure",
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
