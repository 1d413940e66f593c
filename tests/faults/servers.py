"""Small purpose-built recording servers for fault tests (not the simulator).

:class:`ScriptedServer` listens on loopback and runs ``handler(peer)`` for every
connection in a thread of its own; :class:`Peer` reads the client's requests through a
:class:`recstats.protocol.ServerConnection` and writes raw bytes, so a handler can
answer right, answer wrong, go silent or cut the stream exactly where a test needs.
Every connection (its number, and the request events it got) is recorded.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Self

from recstats import protocol


class Peer:
    """One accepted connection, seen from the server."""

    def __init__(self, sock: socket.socket, number: int):
        self.sock = sock
        self.number = number  # 0 for the first connection, 1 for the next, ...
        self.conn = protocol.ServerConnection()
        self.requests: list = []
        self._queued: list = []

    def request(self, timeout: float = 5.0):
        """The next request event (ConnectionClosed when the client hung up)."""
        deadline = time.monotonic() + timeout
        while not self._queued:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no request from the client")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                data = b""
            self._queued.extend(self.conn.receive_data(data))
        event = self._queued.pop(0)
        self.requests.append(event)
        return event

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self, event) -> None:
        """Send a response or notification event."""
        self.send(self.conn.send(event))

    def wait_closed(self, timeout: float = 10.0) -> None:
        """Wait until the client closes the connection (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                event = self.request(timeout=max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                return
            if isinstance(event, protocol.ConnectionClosed):
                return


class ScriptedServer:
    """A loopback server running ``handler(peer)`` for each connection."""

    def __init__(self, handler, port: int = 0, first_number: int = 0):
        self.handler = handler
        self.first_number = first_number  # a restarted server numbers connections on
        # create_server sets SO_REUSEADDR: a restart may take the same port at once
        self.listener = socket.create_server(("127.0.0.1", port))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.peers: list[Peer] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Self:
        self._accepting.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._accepting.join(5)
        self.listener.close()
        for peer in self.peers:
            try:
                peer.sock.close()
            except OSError:
                pass
        for thread in self._threads:
            thread.join(5)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            peer = Peer(sock, self.first_number + len(self.peers))
            self.peers.append(peer)
            thread = threading.Thread(target=self._serve, args=(peer,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, peer: Peer) -> None:
        try:
            self.handler(peer)
        except (OSError, TimeoutError):
            pass  # the client went away: what the test looks at is the capture
        except BaseException as exc:  # noqa: BLE001 - a handler's bug fails the test
            self.errors.append(exc)
        finally:
            try:
                peer.sock.close()
            except OSError:
                pass


def subscribed(peer: Peer, keepalive: float | None = None):
    """Answer the subscription right; return the request (``None`` when a later
    connection is closed by a capture that stops before it subscribed)."""
    request = peer.request()
    if peer.number > 0 and isinstance(request, protocol.ConnectionClosed):
        return None
    assert isinstance(request, protocol.SubscribeRequest), request
    peer.answer(protocol.SubscribeAccepted(request.request_id, keepalive))
    return request


def wait_for(predicate, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
