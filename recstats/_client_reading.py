"""How a :class:`recstats.RecorderClient` reads: one thread at a time reads the socket
and hands each event to whoever waits for it (a request's answer, or the notification
queue), typing call notifications at the edge; keep-alive and silence deadlines end
the session. :mod:`recstats.client` re-exports :class:`CallEvent`."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NoReturn

from . import protocol
from .cdr import record_from_fields
from .errors import CDRParseError, ConnectionLost, KeepaliveExpired, ServerClosed

__all__ = ["CallEvent", "Reading"]

_SLICE = 1.0  # longest single wait in recv, so flags are looked at now and then
_MIN_WAIT = 0.001
# looking into the socket for an overdue keep-alive stops after this many reads or
# this many seconds, whichever comes first, whatever the server floods it with
_DRAIN_READS = 16
_DRAIN_SECONDS = 0.05


@dataclass(frozen=True, slots=True)
class CallEvent:
    """A call notification read at the edge.

    ``kind`` is ``"start"`` or ``"end"``; ``call`` the read-only typed record
    (:func:`recstats.cdr.record_from_fields` with the client's ``tz``: calls-table
    names, UTC times, decoded enums, every other field as text); ``fields`` the raw
    wire fields it was read from.
    """
    kind: str
    call: Mapping[str, Any]
    fields: Mapping[str, str]


class Reading:
    """The reading half of :class:`recstats.RecorderClient` (a mixin: the client sets
    every attribute used here in its ``__init__``)."""

    _conn: protocol.ClientConnection
    _transport: Any
    _clock: Callable[[], float]
    _state: threading.Condition
    _read_lock: threading.Lock
    _responses: dict[str, Any]
    _events: deque
    _lost: str | None
    tz: str
    silence_timeout: float | None
    max_queue: int
    keepalive: float | None
    last_keepalive: float | None
    _last_data: float
    _lost_cause: BaseException | None
    _lost_type: type[ConnectionLost]
    host: str
    port: int
    _with_site: Callable[[Mapping[str, Any]], dict[str, Any]]  # the record, its site filled

    @property
    def address(self) -> str:
        """``host:port``, the site name of calls whose documents name no location."""
        return f"{self.host}:{self.port}"

    def _lose(self, reason: str, cause: BaseException | None = None,
              kind: type[ConnectionLost] = ConnectionLost) -> None:
        with self._state:
            if self._lost is not None:
                return
            # the socket is closed before anyone can see the reason
            if self._transport is not None:
                self._transport.close()
            self._lost, self._lost_cause, self._lost_type = reason, cause, kind
            self._state.notify_all()

    def _raise_lost(self) -> NoReturn:
        assert self._lost is not None, "only once the session is lost"
        raise self._lost_type(self._lost) from self._lost_cause

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
        if self.silence_timeout is not None:
            wait = min(wait, self._last_data + self.silence_timeout - now)
        try:
            data = self._transport.recv(max(wait, _MIN_WAIT))
        except TimeoutError:
            now = self._clock()
            if self._conn.expired(now):
                self._lose_keepalive()
            elif self.silence_timeout is not None and \
                    now - self._last_data >= self.silence_timeout:
                self._lose(f"nothing from {self.address} for {self.silence_timeout:g} s: "
                           "session ended", kind=KeepaliveExpired)
            return
        except OSError as exc:
            if self._lost is None:
                self._lose(f"connection error: {exc}", exc, ServerClosed)
            return
        self._receive(data)

    def _check_keepalive(self) -> None:
        """The deadline passed while no thread was reading (e.g. the consumer of
        :meth:`events` was busy): the keep-alive may be waiting in the socket already.
        Look there first; the reads are bounded, so a server streaming notifications
        without keep-alives still ends the session."""
        began = self._clock()
        for _ in range(_DRAIN_READS):
            try:
                data = self._transport.recv(_MIN_WAIT)
            except TimeoutError:
                break
            except OSError as exc:
                if self._lost is None:
                    self._lose(f"connection error: {exc}", exc, ServerClosed)
                return
            self._receive(data)
            now = self._clock()
            if self._lost is not None or not self._conn.expired(now):
                return
            if now - began > _DRAIN_SECONDS:
                break
        if self._lost is None and self._conn.expired(self._clock()):
            self._lose_keepalive()

    def _receive(self, data: bytes) -> None:
        """Decode bytes just read and hand the events out (the caller holds the read lock)."""
        if self._lost is not None:  # closed meanwhile: what came after is not delivered
            return
        now = self._last_data = self._clock()
        try:
            events = self._conn.receive_data(data, now)
        except Exception as exc:  # noqa: BLE001 - on_document (a journal) failed, e.g. disk full
            self._lose(f"receiving failed: {type(exc).__name__}: {exc}", exc)
            return
        self._dispatch(events, now)

    def _lose_keepalive(self) -> None:
        interval = self.keepalive
        what = f"{interval:g} s" if interval else "the announced interval"
        self._lose(f"no keep-alive from {self.address} within "
                   f"{protocol.KEEPALIVE_FACTOR:g} x {what}: session ended",
                   kind=KeepaliveExpired)

    def _edge(self, event):
        """A call notification's fields -> a :class:`CallEvent` (the one conversion)."""
        kind = "start" if isinstance(event, protocol.CallStarted) else "end"
        try:
            record = record_from_fields(event.fields, tz=self.tz)
        except CDRParseError as exc:
            return protocol.UnknownMessage(protocol.call_notification(kind, event.fields),
                                           f"call not understood: {exc.reason}")
        return CallEvent(kind, MappingProxyType(self._with_site(record)), event.fields)

    def _dispatch(self, events: list, now: float) -> None:
        with self._state:
            for event in events:
                if isinstance(event, protocol.ConnectionClosed):
                    # keep what came before it; the reason waits behind the queue
                    self._lose("the server closed the connection", kind=ServerClosed)
                    break
                if isinstance(event, protocol.ProtocolFailure):
                    # what was understood before the broken bytes is still delivered
                    self._lose(f"protocol error: {event.error}", event.error)
                    break
                if isinstance(event, (protocol.CallStarted, protocol.CallEnded)):
                    self._events.append(self._edge(event))
                elif isinstance(event, protocol.KeepAlive):
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
            if len(self._events) > self.max_queue:
                self._lose(f"more than {self.max_queue} notifications waited unread; "
                           "iterate events() or raise max_queue")
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
