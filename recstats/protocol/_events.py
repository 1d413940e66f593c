"""The events both ends of a connection exchange, as immutable values.

Like h11's, events carry raw wire values: call fields are the ``{source name: text}``
mapping :func:`recstats._xml.fields_of` gives (read-only), request ids are the strings
on the wire. Turning fields into typed records with a site time zone happens at the
edge (:class:`recstats.RecorderClient`, :class:`recstats.Capture`), never here.

Each event is what a :class:`~recstats.protocol.ClientConnection` or
:class:`~recstats.protocol.ServerConnection` returns from ``receive_data`` and what the
other end's ``send`` turns into bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ProtocolError

__all__ = [
    "CallDetail",
    "CallDetailRequest",
    "CallEnded",
    "CallStarted",
    "ConnectionClosed",
    "ErrorResponse",
    "Event",
    "KeepAlive",
    "OngoingCalls",
    "OngoingCallsRequest",
    "ProtocolFailure",
    "RequestEvent",
    "SubscribeAccepted",
    "SubscribeRequest",
    "UnknownMessage",
    "UnknownRequest",
]

# ------------------------------------------------------------------ server -> client


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
    """A call began. ``fields`` are its raw CDR fields, ``{source name: text}``."""
    fields: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class CallEnded:
    """A call ended; ``fields`` carry every field known at the end (``end_time``...)."""
    fields: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class OngoingCalls:
    """The answer to ``GetOngoingCalls``: the raw fields of each call in progress."""
    request_id: str | None
    calls: tuple[Mapping[str, str], ...]


@dataclass(frozen=True, slots=True)
class CallDetail:
    """The answer to ``GetCallDetail``: the raw fields of the call's CDR document."""
    request_id: str | None
    fields: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    """A failure response (any non-zero ``code``; the vendor documents 2)."""
    request_id: str | None
    request_type: str | None
    code: int
    description: str = "Processing Error"
    detail: str = ""


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A well-formed message recstats does not understand, kept with its raw bytes;
    ``request_id`` is set when it answers a request (an answer not understood, or an
    answer of another request type than the one pending under that id)."""
    raw: bytes
    reason: str
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed the connection (``receive_data(b"")``)."""


@dataclass(frozen=True, slots=True)
class ProtocolFailure:
    """The byte stream broke the protocol: ``error`` says how and where (its
    ``offset``). Always the last event of a connection: every event before it was
    decoded from bytes before the failure, and any later ``receive_data`` raises
    ``error`` again. The caller closes the transport."""
    error: ProtocolError


Event = (SubscribeAccepted | KeepAlive | CallStarted | CallEnded | OngoingCalls
         | CallDetail | ErrorResponse | UnknownMessage | ConnectionClosed | ProtocolFailure)

# ------------------------------------------------------------------ client -> server


@dataclass(frozen=True, slots=True)
class SubscribeRequest:
    """``SubscribeOnCallEvent``: ``extensions`` empty means every call; ``keepalive`` is
    the interval asked for (``0.0``: none; ``None``: the server's default).
    ``request_id=None`` given to :meth:`ClientConnection.send` takes the next id."""
    request_id: str | None
    extensions: tuple[str, ...] = ()
    keepalive: float | None = None


@dataclass(frozen=True, slots=True)
class OngoingCallsRequest:
    """``GetOngoingCalls``, optionally restricted to ``extensions``."""
    request_id: str | None
    extensions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CallDetailRequest:
    """``GetCallDetail`` for ``call_id`` (``None`` when the request names no call)."""
    request_id: str | None
    call_id: str | None


@dataclass(frozen=True, slots=True)
class UnknownRequest:
    """A request the server side does not know or cannot read (``reason`` says which,
    when it is not simply an unknown type); answer it with an :class:`ErrorResponse`."""
    request_id: str | None
    request_type: str | None
    raw: bytes
    reason: str = ""


RequestEvent = (SubscribeRequest | OngoingCallsRequest | CallDetailRequest | UnknownRequest
                | ConnectionClosed | ProtocolFailure)
