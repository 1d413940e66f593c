"""A small synchronous client for ONE recording server, built on :mod:`recstats.protocol`.

:class:`RecorderClient` connects on construction, sends requests, matches responses to
them by id, and hands every notification (call starts and ends, keep-alives, messages
it cannot understand) to :meth:`RecorderClient.events` in arrival order. Notifications
that arrive while a request waits for its answer are queued, never lost.

The protocol hands raw wire fields; this client is the edge where they become typed
records (:func:`recstats.cdr.record_from_fields`, with the site time zone ``tz``):
call notifications come out of :meth:`RecorderClient.events` as :class:`CallEvent`.

The session ends with a :class:`recstats.ConnectionLost` subclass raised *after* the
socket is closed: :class:`recstats.ConnectFailed` when no connection could be made,
:class:`recstats.ServerClosed` when the server closes the connection or it is reset,
:class:`recstats.ResponseTimeout` when a request gets no answer within ``timeout``,
:class:`recstats.KeepaliveExpired` when no keep-alive arrives within 1.5 x the interval
the previous one announced (a late keep-alive inside that bound is fine, and so is one
that arrived in time while nobody was reading: the socket is looked into, for a bounded
time, before the session is ended) or nothing at all arrives for ``silence_timeout``
seconds; a plain :class:`recstats.ConnectionLost` when the byte stream breaks the
protocol (the :class:`recstats.ProtocolError` is its ``__cause__``), the client closes
it, or more than ``max_queue`` notifications wait unread. :meth:`close` from another
thread unblocks a thread waiting in :meth:`events` or :meth:`poll` at once. An answer
that arrives but cannot be understood (e.g. a call detail without a CDR, or the answer
of another request type under the request's id) raises :class:`recstats.ProtocolError`
from the request at once; the session goes on.

The network sits behind a small seam: ``transport_factory(host, port, timeout=...,
ssl_context=...)`` returns an object with ``send(bytes)``, ``recv(timeout) -> bytes``
(``b""`` at end of stream, :class:`TimeoutError` when nothing came) and ``close()``;
:class:`SocketTransport` is the default. ``clock`` (default :func:`time.monotonic`) is
the time base of keep-alive deadlines. Tests may replace both.
"""

from __future__ import annotations

import ssl as _ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Self

import pandas as pd

from . import protocol
from ._client_reading import CallEvent, Reading
from ._live import Tables, bad_time
from ._time import check_tz
from ._transport import SocketTransport, parse_address
from ._xml import MAX_DOCUMENT_BYTES
from .cdr import record_from_fields
from .errors import (
    CDRParseError,
    ConnectFailed,
    ConnectionLost,
    ProtocolError,
    ResponseTimeout,
    ServerClosed,
    ServerError,
)

__all__ = ["CallEvent", "RecorderClient", "SocketTransport", "parse_address"]

class RecorderClient(Reading):
    """A connection to one recording server (connects on construction).

    Parameters
    ----------
    host, port : str, int
        The recording server.
    timeout : float or None, default 10
        Bounds connecting, each write and the wait for each response [s] (``None``:
        no bound).
    ssl_context : ssl.SSLContext, optional
        Wraps the connection in TLS.
    tz : str, default "UTC"
        The site's time zone for reading call times (checked at once: a
        ``ValueError`` names an unknown zone).
    on_document : callable, optional
        Sees every raw document received (e.g. a journal).
    silence_timeout : float, optional
        End the session when nothing at all arrives for this long [s] (for a server
        with keep-alive off); ``None``: no bound.
    max_queue : int, default 100000
        Notifications that may wait unread; one more ends the session.

    A failure to connect raises :class:`recstats.ConnectFailed`.

    >>> with rs.RecorderClient("127.0.0.1", 10300) as client:    # doctest: +SKIP
    ...     client.subscribe(extensions=["1000"])                # -> keep-alive seconds
    ...     for event in client.events():
    ...         print(event.kind, event.call["call_id"])
    10.0
    start 4a9d5ec0-...

    Thread use: one thread may iterate :meth:`events` while another sends requests;
    whichever thread reads the socket hands each message to whoever waits for it.
    """

    def __init__(self, host: str, port: int, *, timeout: float | None = 10.0,
                 ssl_context: _ssl.SSLContext | None = None, tz: str = "UTC",
                 on_document: Callable[[bytes], Any] | None = None,
                 silence_timeout: float | None = None, max_queue: int = 100_000,
                 transport_factory: Callable[..., Any] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 max_document_bytes: int = MAX_DOCUMENT_BYTES):
        self.host = host
        self.port = int(port)
        if not 0 < self.port < 65536:  # getaddrinfo would wrap 70000 round to port 4464
            raise ValueError(f"port must be 1-65535, not {port}")
        self.timeout = timeout
        self.tz = check_tz(tz)
        if silence_timeout is not None and not silence_timeout > 0:
            raise ValueError(f"silence_timeout must be > 0 seconds, not {silence_timeout}")
        if not max_queue >= 1:
            raise ValueError(f"max_queue must be at least 1, not {max_queue}")
        self.silence_timeout = silence_timeout
        self.max_queue = int(max_queue)
        self._clock = clock
        self._last_data = clock()
        self._conn = protocol.ClientConnection(max_document_bytes=max_document_bytes,
                                               on_document=on_document)
        self._state = threading.Condition()
        self._read_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._responses: dict[str, Any] = {}   # request id -> answer (None: waiting)
        self._events: deque = deque()
        self._lost: str | None = None
        self._lost_cause: BaseException | None = None
        self._lost_type: type[ConnectionLost] = ConnectionLost
        #: keep-alive interval the server announced last (None: off or not subscribed)
        self.keepalive: float | None = None
        #: ``clock()`` time the last keep-alive (or the subscribe answer announcing the
        #: interval) was received; None before either
        self.last_keepalive: float | None = None
        factory = transport_factory or SocketTransport
        try:
            self._transport = factory(host, self.port, timeout=timeout,
                                      ssl_context=ssl_context)
        except OSError as exc:
            self._transport = None
            self._lost = f"could not connect to {host}:{port}: {exc}"
            self._lost_type = ConnectFailed
            raise ConnectFailed(self._lost) from exc

    def __repr__(self) -> str:
        state = f"lost: {self._lost}" if self._lost else "open"
        return f"<RecorderClient {self.host}:{self.port} {state}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ state

    @property
    def closed(self) -> bool:
        """True once the connection is over (closed by either side or lost)."""
        return self._lost is not None

    @property
    def keepalive_deadline(self) -> float | None:
        """``clock()`` time by which the next keep-alive must arrive (None: no limit)."""
        return self._conn.keepalive_deadline

    def close(self) -> None:
        """Close the connection (idempotent, safe from any thread)."""
        self._lose("closed by the client")

    # ------------------------------------------------------------------ requests

    def _request(self, make: Callable[[], tuple[str, bytes]], what: str):
        with self._state:
            if self._lost is not None:
                self._raise_lost()
            request_id, data = make()
            self._responses[request_id] = None
        try:
            with self._send_lock:
                self._transport.send(data)
        except OSError as exc:
            self._lose(f"connection error while sending {what}: {exc}", exc, ServerClosed)
        # timeout=None (as for sockets): wait for the answer as long as the session lives
        deadline = None if self.timeout is None else self._clock() + self.timeout
        try:
            answer = self._wait(lambda: self._responses.get(request_id), deadline)
            if answer is None:
                self._lose(f"no answer to {what} request {request_id} within "
                           f"{self.timeout:g} s", kind=ResponseTimeout)
                self._raise_lost()
        finally:
            with self._state:
                self._responses.pop(request_id, None)
        if isinstance(answer, protocol.ErrorResponse):
            raise ServerError(answer.code, answer.description, answer.detail,
                              request_id=answer.request_id or request_id)
        if isinstance(answer, protocol.UnknownMessage):  # well-formed: the session goes on
            raise ProtocolError(f"the answer to {what} request {request_id} was not "
                                f"understood: {answer.reason}")
        return answer

    def subscribe(self, extensions=None, keepalive: float | None = None) -> float | None:
        """Subscribe to call events; returns the keep-alive interval the server uses.

        ``extensions``: numbers whose calls (as caller or callee) are wanted; ``None``
        for every call. ``keepalive`` asks for an interval in seconds (``0``: none;
        ``None``: the server's default). The returned interval is ``None`` when
        keep-alive is off. Raises :class:`recstats.ServerError` on a failure answer.

        >>> client.subscribe(extensions=["1000", "1001"], keepalive=10)  # doctest: +SKIP
        10.0
        """
        answer = self._request(
            lambda: self._conn.subscribe(extensions=extensions, keepalive=keepalive),
            "SubscribeOnCallEvent")
        return answer.keepalive

    def ongoing_calls(self, extensions=None) -> pd.DataFrame:
        """The calls in progress now, as a calls table (``end_time`` is ``NaT``).

        Calls whose fields name no ``location`` get this client's ``host:port`` as site.

        >>> client.ongoing_calls()[["call_id", "caller", "callee"]]  # doctest: +SKIP
        """
        answer = self._request(lambda: self._conn.get_ongoing_calls(extensions=extensions),
                               "GetOngoingCalls")
        tables = Tables(self.tz)  # the capture's folding: a call listed twice is one row
        for fields in answer.calls:
            if bad_time(fields) is None:
                tables.add(0, self.address, "start", "resync", fields)
        return tables.calls_frame().drop(columns=["server", "end_unknown"])

    def call_detail(self, call_id: str) -> dict[str, Any]:
        """The CDR of one call as a record (like :func:`recstats.read_cdr`).

        Raises :class:`recstats.ServerError` when the server does not know the call.

        >>> client.call_detail("4a9d5ec0-7a40-11e4-8271-001cc092f276")["duration"]  # doctest: +SKIP
        42.5
        """
        answer = self._request(lambda: self._conn.get_call_detail(call_id), "GetCallDetail")
        try:
            return self._with_site(record_from_fields(answer.fields, tz=self.tz))
        except CDRParseError as exc:
            raise ProtocolError(f"the CDR of call {call_id} was not understood: "
                                f"{exc.reason}") from None

    def _with_site(self, call) -> dict[str, Any]:
        record = dict(call)
        if record.get("site") is None:
            record["site"] = self.address
        return record

    # ------------------------------------------------------------------ events

    def poll(self, timeout: float | None = None):
        """The next event (:class:`CallEvent`, KeepAlive, UnknownMessage, ...), or
        ``None`` when none arrives within ``timeout`` seconds (``None``: wait).

        Queued events come first; then :class:`recstats.ConnectionLost` when the
        session is over.

        >>> client.poll(timeout=1.0)                      # doctest: +SKIP
        KeepAlive(interval=10.0)
        """
        deadline = None if timeout is None else self._clock() + timeout
        return self._wait(lambda: self._events.popleft() if self._events else None, deadline)

    def events(self, idle_timeout: float | None = None) -> Iterator:
        """Yield events as they arrive; end by raising :class:`recstats.ConnectionLost`.

        With ``idle_timeout`` the iterator yields ``None`` after that many seconds
        without an event, so a capture thread can check whether it should stop.

        >>> try:                                          # doctest: +SKIP
        ...     for event in client.events(idle_timeout=1.0):
        ...         if isinstance(event, rs.client.CallEvent):
        ...             print(event)
        ... except rs.ConnectionLost as lost:
        ...     print("session over:", lost.reason)
        """
        while True:
            event = self.poll(idle_timeout)
            if event is None and idle_timeout is None:
                continue
            yield event
