"""The simulator's network loop (private): one thread, ``selectors``, many clients.

:class:`LoopServer` owns the listening socket, accepts clients, feeds their bytes to a
:class:`recstats.protocol.ServerConnection` each, queues output and writes it without
blocking (one ``send`` per client per loop turn), applies back-pressure, and runs
commands from other threads inside the loop, so no state needs a lock. A subclass
supplies ``_tick(now)`` (the work due now; True when more is waiting),
``_wait_time(now)`` and ``_handle(client, request)``:
:class:`recstats.sim.RecorderSimulator` is that subclass. The split only keeps
each module readable in one sitting.
"""

from __future__ import annotations

import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Self

from .. import protocol
from ..errors import ProtocolError

#: A client that stops reading is dropped once this much output waits for it.
MAX_PENDING_BYTES = 64 * 1024 * 1024
#: While a client has this much output waiting, simulated calls wait too (back-pressure:
#: at extreme speeds the clock lags rather than the slowest client being dropped)...
HIGH_WATER_BYTES = 256 * 1024
#: ...but a client stuck above it for this many seconds is dropped.
STUCK_SECONDS = 10.0
_RECV_BYTES = 65536
MAX_WAIT = 0.5  # the loop wakes at least this often (seconds)


class ClientState:
    """One connected client: its socket, protocol state and subscription."""

    __slots__ = ("address", "blocked_since", "conn", "extensions", "keepalive",
                 "next_keepalive", "out", "sock", "subscribed", "writing")

    def __init__(self, sock: socket.socket, address):
        self.sock = sock
        self.address = address
        self.conn = protocol.ServerConnection()
        self.out = bytearray()
        self.subscribed = False
        self.extensions: frozenset[str] | None = None
        self.keepalive: float | None = None
        self.next_keepalive: float | None = None
        self.blocked_since: float | None = None
        self.writing = False  # registered for EVENT_WRITE

    def wants(self, fields: dict[str, str]) -> bool:
        return self.subscribed and matches(self.extensions, fields)


def matches(extensions: frozenset[str] | None, fields: dict[str, str]) -> bool:
    """Whether a call's raw fields match a subscription filter (``None``: everything).

    PROTOCOL.md: a call matches when any listed number is its caller OR its callee
    (exact text).

    >>> matches(frozenset({"1000"}), {"source_caller_id": "+3611", "destination_caller_id": "1000"})
    True
    """
    if not extensions:
        return True
    return (fields.get("source_caller_id") in extensions
            or fields.get("destination_caller_id") in extensions)


class LoopServer:
    """A TCP server whose clients are all served by one background thread.

    Binds ``(host, port)`` at construction (``port=0``: any free port, see
    :attr:`port`); :meth:`start` runs the loop, :meth:`stop` closes everything.
    """

    def __init__(self, host: str, port: int, name: str):
        self.host = host
        self._name = name
        self._clients: dict[socket.socket, ClientState] = {}
        self._dirty: dict[socket.socket, ClientState] = {}
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.stats: dict[str, int] = {"connections": 0, "protocol_errors": 0,
                                      "dropped_clients": 0}
        # an IPv6 literal ("::1", "::") needs an IPv6 socket; names resolve as IPv4
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, port), family=family)
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._waker_r, self._waker_w = socket.socketpair()
        self._waker_r.setblocking(False)
        self._waker_w.setblocking(False)

    # ------------------------------------------------------------------ hooks

    def _tick(self, now: float) -> bool:
        """Do the work due at monotonic time ``now``; True when more is already due."""
        return False

    def _handle(self, client: ClientState, request) -> None:
        """Answer one request event of ``client``."""

    def _on_start(self) -> None:
        """Called in the caller's thread just before the loop starts."""

    # ------------------------------------------------------------------ lifecycle

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` to connect to."""
        return (self.host, self.port)

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Self:
        """Start serving in a background thread; returns ``self``."""
        # stop() closed the sockets, even when the loop never ran: no second life
        if self._stopping.is_set():
            raise RuntimeError(f"a stopped {type(self).__name__} cannot be restarted")
        if self._thread is not None:
            return self
        self._on_start()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"{type(self).__name__}-{self._name}")
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close every connection and the listening socket (idempotent)."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._thread is None or not self._thread.is_alive():
            self._close_all()

    close = stop

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def client_count(self) -> int:
        """Number of connected clients."""
        return len(self._clients)

    def drop_connections(self) -> int:
        """Close every client connection (the server keeps listening); returns how many."""
        def drop():
            count = len(self._clients)
            for client in list(self._clients.values()):
                self._drop(client)
            return count
        return self._call(drop)

    def send_raw(self, data: bytes) -> None:
        """Write ``data`` as is to every connected client (garbage, half a document...)."""
        def send():
            for client in list(self._clients.values()):
                self._queue(client, bytes(data))
        self._call(send)

    # ------------------------------------------------------------------ the loop

    def _wake(self) -> None:
        try:
            self._waker_w.send(b"x")
        except OSError:  # buffer full (already awake) or closed (stopped)
            pass

    def _call(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run ``fn`` in the loop thread (or here, when the loop is not running)."""
        if not self.running or threading.current_thread() is self._thread:
            return fn()
        done = threading.Event()
        box: dict[str, Any] = {}
        self._commands.put((fn, done, box))
        self._wake()
        deadline = time.monotonic() + timeout
        while not done.wait(0.05):
            if not self.running:  # the loop ended meanwhile: nobody else will run it
                self._run_commands()
            elif time.monotonic() > deadline:
                raise TimeoutError(f"the {self._name} loop did not answer")
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def _run_commands(self) -> None:
        while True:
            try:
                fn, done, box = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                box["value"] = fn()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                box["error"] = exc
            self._flush_dirty()  # what the command produced is on its way when it returns
            done.set()

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        self._selector = selector
        selector.register(self._listener, selectors.EVENT_READ, "listen")
        selector.register(self._waker_r, selectors.EVENT_READ, "wake")
        try:
            while not self._stopping.is_set():
                now = time.monotonic()
                behind = self._tick(now)
                self._flush_dirty()
                for key, mask in selector.select(0.0 if behind else self._wait_time(now)):
                    if key.data == "listen":
                        self._accept(selector)
                    elif key.data == "wake":
                        try:
                            while self._waker_r.recv(4096):
                                pass
                        except OSError:
                            pass
                    else:
                        client = key.data
                        if mask & selectors.EVENT_READ:
                            self._read(client)
                        if mask & selectors.EVENT_WRITE and client.sock in self._clients:
                            self._flush(client)
                self._run_commands()
                self._flush_dirty()
        finally:
            self._run_commands()
            self._close_all()
            selector.close()

    def _backlogged(self, now: float) -> bool:
        """True while some client has too much output waiting; drops stuck clients."""
        backlogged = False
        for client in list(self._clients.values()):
            if len(client.out) < HIGH_WATER_BYTES:
                client.blocked_since = None
            elif client.blocked_since is None:
                client.blocked_since = now
                backlogged = True
            elif now - client.blocked_since > STUCK_SECONDS:
                self._drop(client)
            else:
                backlogged = True
        return backlogged

    def _wait_time(self, now: float) -> float:
        """Seconds the loop may sleep before ``_tick`` has work again."""
        return MAX_WAIT

    def _accept(self, selector) -> None:
        while True:
            try:
                sock, address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client = ClientState(sock, address)
            self._clients[sock] = client
            selector.register(sock, selectors.EVENT_READ, client)
            self.stats["connections"] += 1

    def _read(self, client: ClientState) -> None:
        try:
            data = client.sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        try:
            requests = client.conn.receive_data(data)
        except ProtocolError:
            self.stats["protocol_errors"] += 1
            self._drop(client)
            return
        for request in requests:
            if client.sock not in self._clients:
                return
            if isinstance(request, protocol.ProtocolFailure):
                self.stats["protocol_errors"] += 1
                self._drop(client)
                return
            self._handle(client, request)

    def _queue(self, client: ClientState, data: bytes) -> None:
        if client.sock not in self._clients:
            return
        client.out += data
        # written once per loop turn: one send() for many messages
        self._dirty[client.sock] = client

    def _flush_dirty(self) -> None:
        while self._dirty:
            _, client = self._dirty.popitem()
            if client.sock in self._clients:
                self._flush(client)

    def _flush(self, client: ClientState) -> None:
        try:
            while client.out:
                sent = client.sock.send(client.out)
                del client.out[:sent]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._drop(client)
            return
        if len(client.out) > MAX_PENDING_BYTES:  # a client that stopped reading
            self._drop(client)
            return
        writing = bool(client.out)
        if writing != client.writing:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0)
            try:
                self._selector.modify(client.sock, events, client)
                client.writing = writing
            except (KeyError, ValueError, AttributeError):
                pass

    def _drop(self, client: ClientState) -> None:
        if self._clients.pop(client.sock, None) is None:
            return
        self.stats["dropped_clients"] += 1
        try:
            self._selector.unregister(client.sock)
        except (KeyError, ValueError, AttributeError):
            pass
        try:
            client.sock.close()
        except OSError:
            pass

    def _close_all(self) -> None:
        for client in list(self._clients.values()):
            self._drop(client)
        for sock in (self._listener, self._waker_r, self._waker_w):
            try:
                sock.close()
            except OSError:
                pass
