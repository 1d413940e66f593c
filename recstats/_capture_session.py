"""One live connection of a :class:`recstats.Capture`: subscribe, resynchronise, read."""

from __future__ import annotations

import time

from . import protocol
from ._capture_server import ServerState
from .errors import (
    ConnectionLost,
    KeepaliveExpired,
    ProtocolError,
    ResponseTimeout,
    ServerClosed,
    ServerError,
)

__all__ = ["Session"]

_IDLE = 0.5  # longest wait in a read, so stop() and deadlines are looked at
# an overdue keep-alive is looked for in the socket for at most this many reads or
# seconds, whichever ends first
_DRAIN_READS = 16
_DRAIN_SECONDS = 0.05


class Session:
    """One live connection: subscribe, resynchronise, then read until it ends.

    Requests go out when the answers that call for them come in (subscribed -> ask
    for the ongoing calls -> ask for the detail of each call that vanished), so the
    loop only ever reads; every read goes through ``server.receive``."""

    def __init__(self, capture, transport, server: ServerState):
        self.capture = capture
        self.transport = transport
        self.server = server
        self.sent: dict[str, float] = {}  # request id -> monotonic time it was sent
        self.subscribe_id: str | None = None
        self.ongoing_id: str | None = None
        self.synced = False
        self.last_data = time.monotonic()

    def request(self, **fields) -> str:
        server = self.server
        assert server.conn is not None  # connected: the session runs between marks
        request_id = server.conn.next_request_id
        data = server.mark("request", **fields)
        self.sent[request_id] = time.monotonic()
        try:
            self.transport.send(data)
        except OSError as exc:
            raise ServerClosed(f"connection error while sending: {exc}") from exc
        return request_id

    def run(self) -> bool:
        capture, extensions = self.capture, self.capture.extensions
        self.subscribe_id = self.request(type="subscribe", extensions=extensions,
                                         keepalive=capture.keepalive)
        try:
            while not capture._stopping.is_set():
                self.read_once()
        except ConnectionLost:
            if capture._stopping.is_set():
                return self.synced
            raise
        return self.synced

    def read_once(self) -> None:
        conn, now = self.server.conn, time.monotonic()
        assert conn is not None
        self.check_deadlines(now)
        wait = _IDLE
        if conn.keepalive_deadline is not None:
            wait = min(wait, conn.keepalive_deadline - now)
        self.read(max(wait, 0.001))

    def read(self, wait: float) -> bool:
        """One read of at most ``wait`` seconds, through the one decode path; False
        when nothing came."""
        try:
            data = self.transport.recv(wait)
        except TimeoutError:
            return False
        except OSError as exc:
            raise ServerClosed(f"connection error: {exc}") from exc
        server = self.server
        self.last_data = now = time.monotonic()
        for event in server.receive(server.time(), data, now):
            self.follow(event)
        return True

    def overdue(self) -> bool:
        """Whether the keep-alive is overdue once what already waits in the socket is
        read: a capture that fell behind must not end a live session. The look is
        bounded in reads and in time, whatever the server floods it with."""
        conn = self.server.conn
        assert conn is not None
        began = time.monotonic()
        for _ in range(_DRAIN_READS):
            if not self.read(0.001) or not conn.expired(time.monotonic()):
                break
            if time.monotonic() - began > _DRAIN_SECONDS:
                break
        return conn.expired(time.monotonic())

    def check_deadlines(self, now: float) -> None:
        conn, capture = self.server.conn, self.capture
        assert conn is not None
        if conn.expired(now) and self.overdue():
            raise KeepaliveExpired(f"no keep-alive from {self.server.name} within "
                                   f"{protocol.KEEPALIVE_FACTOR:g} x the announced "
                                   "interval: session ended")
        if capture.silence_timeout is not None and \
                now - self.last_data > capture.silence_timeout:
            raise KeepaliveExpired(f"nothing from {self.server.name} for "
                                   f"{capture.silence_timeout:g} s: session ended")
        if capture.timeout is not None:
            for request_id in conn.pending_requests:
                if now - self.sent.get(request_id, now) > capture.timeout:
                    raise ResponseTimeout(f"no answer to request {request_id} within "
                                          f"{capture.timeout:g} s")

    def follow(self, event) -> None:
        """What an event calls for: the next resync request, or the end of the session."""
        if isinstance(event, protocol.ProtocolFailure):
            raise ConnectionLost(f"protocol error: {event.error}") from event.error
        if isinstance(event, protocol.ConnectionClosed):
            raise ServerClosed("the server closed the connection")
        request_id = getattr(event, "request_id", None)
        if request_id is None or request_id not in (self.subscribe_id, self.ongoing_id):
            return
        if isinstance(event, protocol.ErrorResponse):
            raise ServerError(event.code, event.description, event.detail, request_id)
        if isinstance(event, protocol.UnknownMessage):
            raise ProtocolError(f"the answer to request {request_id} was not "
                                f"understood: {event.reason}")
        if isinstance(event, protocol.SubscribeAccepted):
            self.ongoing_id = self.request(type="ongoing",
                                           extensions=self.capture.extensions)
        elif isinstance(event, protocol.OngoingCalls):
            self.synced = True
            # calls we knew as ongoing that the server no longer lists ended while we
            # were away: their detail says how (or the end stays unknown)
            for call_id in self.server.vanished:
                self.request(type="detail", call_id=call_id)
            self.server.vanished = []
