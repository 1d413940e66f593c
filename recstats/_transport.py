"""The network seam of the client and the capture: reading a server address and the
default TCP (optionally TLS) transport. :mod:`recstats.client` re-exports both."""

from __future__ import annotations

import socket
import ssl as _ssl

__all__ = ["SocketTransport", "parse_address"]

_RECV_BYTES = 256 * 1024


def parse_address(server: str | tuple[str, int]) -> tuple[str, int]:
    """A server given as ``"host:port"`` or ``(host, port)`` -> ``(host, port)``.

    The one reading of a server address (the capture and the command line use it).
    IPv6 hosts may be bracketed (``"[::1]:10300"``). Raises a one-line ``ValueError``
    for anything else, including a port outside 1-65535.

    >>> parse_address("rec.example.com:10300"), parse_address("[::1]:7")
    (('rec.example.com', 10300), ('::1', 7))
    """
    if isinstance(server, str):
        host, sep, port = server.strip().rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
    else:
        try:
            host, port = server  # type: ignore[assignment]  # checked just below
        except (TypeError, ValueError):
            raise ValueError(f"server {server!r} is not (host, port) or 'host:port'") \
                from None
        sep = ":"
    try:
        number = int(port)
    except (TypeError, ValueError):
        number = -1
    if not sep or not host or not isinstance(host, str) or number < 0:
        raise ValueError(f"server {server!r} is not (host, port) or 'host:port'")
    if not 0 < number < 65536:
        raise ValueError(f"server {server!r}: port {number} is not in 1..65535")
    return host, number


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
