"""A small synchronous client for ONE recording server, built on :mod:`recstats.protocol`.

:class:`RecorderClient` connects on construction, sends requests, matches responses to
them by id, and hands every notification (call starts and ends, keep-alives, messages
it cannot understand) to :meth:`RecorderClient.events` in arrival order. Notifications
that arrive while a request waits for its answer are queued, never lost.

The session ends, with :class:`recstats.ConnectionLost` raised *after* the socket is
closed, when the server closes the connection, a socket error occurs, the byte stream
breaks the protocol (the :class:`recstats.ProtocolError` is the exception's
``__cause__`` and its text is in the reason), a request gets no answer within
``timeout``, or no keep-alive arrives within 1.5 x the interval the previous one
announced (a late keep-alive inside that bound is fine, and so is one that arrived in
time while nobody was reading: the socket is looked into before the session is ended). :meth:`close` from another
thread unblocks a thread waiting in :meth:`events` or :meth:`poll` at once. An answer
that arrives but cannot be understood (e.g. a call detail without a CDR) raises
:class:`recstats.ProtocolError` from the request at once; the session goes on.

The network sits behind a small seam: ``transport_factory(host, port, timeout=...,
ssl_context=...)`` returns an object with ``send(bytes)``, ``recv(timeout) -> bytes``
(``b""`` at end of stream, :class:`TimeoutError` when nothing came) and ``close()``;
:class:`SocketTransport` is the default. ``clock`` (default :func:`time.monotonic`) is
the time base of keep-alive deadlines. Tests may replace both.
"""

from __future__ import annotations

import socket
import ssl as _ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Self

import pandas as pd

from . import protocol
from ._table import calls_frame, empty_calls
from ._xml import MAX_DOCUMENT_BYTES
from .errors import ConnectionLost, ProtocolError, ServerError

__all__ = ["RecorderClient", "SocketTransport"]

_RECV_BYTES = 256 * 1024
_SLICE = 1.0  # longest single wait in recv, so flags are looked at now and then
_MIN_WAIT = 0.001
_DRAIN_READS = 16  # reads (of up to _RECV_BYTES) looking for an overdue keep-alive


class SocketTransport:
    """The default transport: a TCP connection, optionally wrapped in TLS.

    ``recv(timeout)`` returns the bytes available (``b""`` when the peer closed) or
    raises :class:`TimeoutError`; ``close()`` shuts the socket down first, so a thread
    blocked in ``recv`` wakes at once.
    """

    def __init__(self, host: str, port: int, timeout: float | None = 10.0,
                 ssl_context: _ssl.SSLContext | None = None):
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if ssl_context is not None:
                sock = ssl_context.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._timeout = timeout

    def send(self, data: bytes) -> None:
        """Write all of ``data`` (at most ``timeout`` seconds per blocked write)."""
        self._sock.settimeout(self._timeout)
        self._sock.sendall(data)

    def recv(self, timeout: float | None) -> bytes:
        """The next bytes, waiting at most ``timeout`` seconds (``None``: forever)."""
        self._sock.settimeout(timeout)
        return self._sock.recv(_RECV_BYTES)

    def close(self) -> None:
        """Shut down and close the socket (idempotent)."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._sock.close()
        except OSError:
            pass


class RecorderClient:
    """A connection to one recording server (connects on construction).

    ``timeout`` bounds connecting, each write and the wait for each response, in
    seconds (``None``: no bound); ``ssl_context`` wraps the connection in TLS; ``tz`` is the site's zone for
    reading call times; ``on_document(bytes)`` sees every raw document received (e.g. a
    journal). A failure to connect raises :class:`recstats.ConnectionLost`.

    >>> with rs.RecorderClient("127.0.0.1", 10300) as client:    # doctest: +SKIP
    ...     client.subscribe(extensions=["1000"])                # -> keep-alive seconds
    ...     for event in client.events():
    ...         print(type(event).__name__, event.call["call_id"])
    10.0
    CallStarted 4a9d5ec0-...

    Thread use: one thread may iterate :meth:`events` while another sends requests;
    whichever thread reads the socket hands each message to whoever waits for it.
    """

    def __init__(self, host: str, port: int, timeout: float | None = 10.0,
                 ssl_context: _ssl.SSLContext | None = None, tz: str = "UTC",
                 on_document: Callable[[bytes], Any] | None = None, *,
                 transport_factory: Callable[..., Any] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 max_document_bytes: int = MAX_DOCUMENT_BYTES):
        self.host = host
        self.port = int(port)
        if not 0 < self.port < 65536:  # getaddrinfo would wrap 70000 round to port 4464
            raise ValueError(f"port must be 1-65535, not {port}")
        self.timeout = timeout
        self.tz = tz
        self._clock = clock
        self._conn = protocol.ClientConnection(tz=tz, max_document_bytes=max_document_bytes,
                                               on_document=on_document)
        self._state = threading.Condition()
        self._read_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._responses: dict[str, Any] = {}   # request id -> answer (None: waiting)
        self._events: deque = deque()
        self._lost: str | None = None
        self._lost_cause: BaseException | None = None
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
            raise ConnectionLost(self._lost) from exc

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

    @property
    def address(self) -> str:
        """``host:port``, the site name of calls whose documents name no location."""
        return f"{self.host}:{self.port}"

    def close(self) -> None:
        """Close the connection (idempotent, safe from any thread)."""
        self._lose("closed by the client")

    def _lose(self, reason: str, cause: BaseException | None = None) -> None:
        with self._state:
            if self._lost is not None:
                return
            # the socket is closed before anyone can see the reason
            if self._transport is not None:
                self._transport.close()
            self._lost, self._lost_cause = reason, cause
            self._state.notify_all()

    def _raise_lost(self):
        raise ConnectionLost(self._lost) from self._lost_cause

    # ------------------------------------------------------------------ reading

    def _read_once(self, timeout: float | None) -> None:
        """One read from the socket (the caller holds the read lock); dispatches events."""
        if self._lost is not None:
            return
        now = self._clock()
        if self._conn.expired(now):
            return self._check_keepalive()
        deadline = self._conn.keepalive_deadline
        wait = _SLICE if timeout is None else timeout
        if deadline is not None:
            wait = min(wait, deadline - now)
        try:
            data = self._transport.recv(max(wait, _MIN_WAIT))
        except TimeoutError:
            if self._conn.expired(self._clock()):
                self._lose_keepalive()
            return
        except OSError as exc:
            if self._lost is None:
                self._lose(f"connection error: {exc}", exc)
            return
        self._receive(data)

    def _check_keepalive(self) -> None:
        """The deadline passed while no thread was reading (e.g. the consumer of
        :meth:`events` was busy): the keep-alive may be waiting in the socket already.
        Look there first; the reads are bounded, so a server streaming notifications
        without keep-alives still ends the session."""
        for _ in range(_DRAIN_READS):
            try:
                data = self._transport.recv(_MIN_WAIT)
            except TimeoutError:
                break
            except OSError as exc:
                if self._lost is None:
                    self._lose(f"connection error: {exc}", exc)
                return
            self._receive(data)
            if self._lost is not None or not self._conn.expired(self._clock()):
                return
        if self._lost is None and self._conn.expired(self._clock()):
            self._lose_keepalive()

    def _receive(self, data: bytes) -> None:
        """Decode bytes just read and hand the events out (the caller holds the read lock)."""
        if self._lost is not None:  # closed meanwhile: what came after is not delivered
            return
        now = self._clock()
        try:
            events = self._conn.receive_data(data, now)
        except ProtocolError as exc:
            # what was understood before the broken bytes is still delivered
            self._dispatch(list(getattr(exc, "events", ())), now)
            self._lose(f"protocol error: {exc}", exc)
            return
        except Exception as exc:  # noqa: BLE001 - on_document (a journal) failed, e.g. disk full
            self._lose(f"receiving failed: {type(exc).__name__}: {exc}", exc)
            return
        self._dispatch(events, now)

    def _lose_keepalive(self) -> None:
        interval = self.keepalive
        what = f"{interval:g} s" if interval else "the announced interval"
        self._lose(f"no keep-alive from {self.address} within "
                   f"{protocol.KEEPALIVE_FACTOR:g} x {what}: session ended")

    def _dispatch(self, events: list, now: float) -> None:
        with self._state:
            for event in events:
                if isinstance(event, protocol.ConnectionClosed):
                    # keep what came before it; the reason waits behind the queue
                    self._lose("the server closed the connection")
                    break
                if isinstance(event, protocol.KeepAlive):
                    self.keepalive = event.interval or None
                    self.last_keepalive = now
                    self._events.append(event)
                elif isinstance(event, (protocol.SubscribeAccepted, protocol.OngoingCalls,
                                        protocol.CallDetail, protocol.ErrorResponse)):
                    key = self._answer_key(event)
                    if key is None:
                        self._events.append(event)  # an answer nobody waits for
                    else:
                        if isinstance(event, protocol.SubscribeAccepted):
                            self.keepalive = event.keepalive
                            self.last_keepalive = now
                        self._responses[key] = event
                elif (isinstance(event, protocol.UnknownMessage) and event.request_id
                      is not None and self._responses.get(event.request_id, 0) is None):
                    self._responses[event.request_id] = event  # an answer not understood
                else:
                    self._events.append(event)
            self._state.notify_all()

    def _answer_key(self, event) -> str | None:
        request_id = event.request_id
        if request_id is not None:
            return request_id if self._responses.get(request_id, 0) is None else None
        waiting = [k for k, v in self._responses.items() if v is None]
        # a failure without an id: the vendor's sample puts it on Response; if only one
        # request is waiting, it can only be that one's answer
        return waiting[0] if len(waiting) == 1 else None

    def _read_turn(self, timeout: float | None) -> None:
        """Read if no other thread is reading; otherwise wait for that thread's news."""
        if self._read_lock.acquire(blocking=False):
            try:
                self._read_once(timeout)
            finally:
                self._read_lock.release()
                with self._state:
                    self._state.notify_all()
        else:
            with self._state:
                self._state.wait(min(_SLICE, timeout) if timeout is not None else _SLICE)

    def _wait(self, take: Callable[[], Any], deadline: float | None):
        """Read until ``take()`` (called under the state lock) gives something; ``None``
        once ``deadline`` (clock time; ``None``: never) has passed. A lost session
        raises :class:`ConnectionLost`, after anything ``take`` still finds."""
        while True:
            with self._state:
                value = take()
                if value is not None:
                    return value
                if self._lost is not None:
                    self._raise_lost()
            if deadline is None:
                self._read_turn(None)
                continue
            remaining = deadline - self._clock()
            if remaining <= 0:
                return None
            self._read_turn(remaining)

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
            self._lose(f"connection error while sending {what}: {exc}", exc)
        # timeout=None (as for sockets): wait for the answer as long as the session lives
        deadline = None if self.timeout is None else self._clock() + self.timeout
        try:
            answer = self._wait(lambda: self._responses.get(request_id), deadline)
            if answer is None:
                self._lose(f"no answer to {what} request {request_id} within "
                           f"{self.timeout:g} s")
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
        records = [self._with_site(call) for call in answer.calls]
        return calls_frame(records) if records else empty_calls()

    def call_detail(self, call_id: str) -> dict[str, Any]:
        """The CDR of one call as a record (like :func:`recstats.read_cdr`).

        Raises :class:`recstats.ServerError` when the server does not know the call.

        >>> client.call_detail("4a9d5ec0-7a40-11e4-8271-001cc092f276")["duration"]  # doctest: +SKIP
        42.5
        """
        answer = self._request(lambda: self._conn.get_call_detail(call_id), "GetCallDetail")
        return self._with_site(answer.cdr)

    def _with_site(self, call) -> dict[str, Any]:
        record = dict(call)
        if record.get("site") is None:
            record["site"] = self.address
        return record

    # ------------------------------------------------------------------ events

    def poll(self, timeout: float | None = None):
        """The next event (CallStarted, CallEnded, KeepAlive, UnknownMessage, ...), or
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
        ...         if event is not None and not isinstance(event, rs.protocol.KeepAlive):
        ...             print(event)
        ... except rs.ConnectionLost as lost:
        ...     print("session over:", lost.reason)
        """
        while True:
            event = self.poll(idle_timeout)
            if event is None and idle_timeout is None:
                continue
            yield event
