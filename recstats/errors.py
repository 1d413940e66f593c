"""The exceptions recstats raises; every one says what went wrong and what to do."""

from __future__ import annotations


class RecstatsError(Exception):
    """Base class of every error recstats raises on purpose."""


class CDRParseError(RecstatsError, ValueError):
    """A CDR document could not be read.

    ``path`` names the file (or ``None`` for bytes), ``reason`` says why, in one line.
    """

    def __init__(self, reason: str, path: str | None = None):
        self.path = None if path is None else str(path)
        self.reason = reason
        where = f"{self.path}: " if self.path else ""
        super().__init__(f"{where}{reason}")


class ProtocolError(RecstatsError):
    """The byte stream from a recording server (or a client) broke the protocol.

    Attributes
    ----------
    reason : str
        What went wrong, in one line, without the position.
    offset : int or None
        Byte position in the stream, counted from the start of the connection, where
        the problem was found; ``None`` when it is not tied to a position (e.g. an
        answer of the wrong type to a request).

    Nothing else rides on the exception: a connection hands the events decoded
    before a failure back as ordinary events (see
    :class:`recstats.protocol.ProtocolFailure`).
    """

    def __init__(self, reason: str, offset: int | None = None):
        self.reason = reason
        self.offset = offset
        where = f" (at byte {offset})" if offset is not None else ""
        super().__init__(f"{reason}{where}")

    def __reduce__(self):
        return type(self), (self.reason, self.offset)


class ServerError(RecstatsError):
    """The server answered a request with a failure response (code != 0)."""

    def __init__(self, code: int, description: str = "", detail: str = "",
                 request_id: str | None = None):
        self.code = code
        self.description = description
        self.detail = detail
        self.request_id = request_id
        text = f"server answered code {code}"
        if description:
            text += f": {description}"
        if detail:
            text += f" ({detail})"
        super().__init__(text)


class ConnectionLost(RecstatsError):
    """The connection to a recording server ended; ``reason`` says how.

    The socket is already closed when this is raised: reconnect to go on. The
    subclasses say why, so a program can catch the case it handles without reading
    messages: :class:`ConnectFailed`, :class:`KeepaliveExpired`,
    :class:`ResponseTimeout`, :class:`ServerClosed`.
    """

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class ConnectFailed(ConnectionLost):
    """No connection could be made (refused, unreachable, TLS handshake failed...)."""


class KeepaliveExpired(ConnectionLost):
    """No keep-alive arrived within 1.5 x the interval the server announced."""


class ResponseTimeout(ConnectionLost):
    """The server did not answer a request in time; the connection was closed."""


class ServerClosed(ConnectionLost):
    """The server closed the connection (or it was reset)."""


class DataQualityWarning(UserWarning):
    """An analysis left rows out that no figure should trust (an unknown end, an end
    before the start, a duplicate call id...); the message says how many and which.
    :func:`recstats.check_calls` lists them."""
