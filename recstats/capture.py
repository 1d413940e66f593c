"""Live capture of one or many recording servers into pandas tables.

:class:`Capture` keeps one connection per server (a thread each, built on
:class:`recstats.RecorderClient`), reconnects with exponential backoff and, on every
(re)connect, resynchronises from the server's ongoing-calls list: calls it did not know
become ongoing; calls it knew as ongoing that are no longer listed ended while it was
away, and their end is fetched with ``GetCallDetail`` (``end_unknown`` marks the few
whose detail could not be had).

Every received document goes through one path: the client's ``on_document`` hook
stamps it with its receive time (and appends it to the journal, when there is one),
then the capture decodes it with :class:`recstats.protocol.ClientConnection` and
updates its tables. :meth:`Capture.replay` runs the same path over a journal, so a
replay rebuilds exactly the tables the live capture had.

The tables live in columnar buffers (one Python list or array per column, appended per
event, no per-event DataFrame work); a snapshot converts them once, vectorised.
"""

from __future__ import annotations

import base64
import html
import json
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

import pandas as pd

from . import protocol
from ._capture_buffers import Tables, is_null
from .errors import ProtocolError, RecstatsError, ServerError

__all__ = ["Capture"]

# --------------------------------------------------------------------------- one server

_JOURNAL_FORMAT = "recstats-journal/1"


def _now_us() -> int:
    return time.time_ns() // 1000


def _stamp(us: int | None) -> pd.Timestamp:
    return pd.NaT if us is None else pd.Timestamp(us, unit="us", tz="UTC")


class _Server:
    """What a capture knows about one server: its calls, status and journal.

    Every document received (live through the client's ``on_document`` hook, or read
    back from a journal) is decoded here with a :class:`protocol.ClientConnection`
    that mirrors the requests the capture sent, so the live tables and a replay agree.
    """

    def __init__(self, name: str, tables: Tables, tz: str = "UTC",
                 on_event: Callable[[str, dict], None] | None = None):
        self.name = name
        self.tables = tables
        self.tz = tz
        self.on_event = on_event
        self.ongoing: dict[str, None] = {}  # ordered set: resync asks in a stable order
        self.ended: set[str] = set()
        self.vanished: list[str] = []
        self.pending: deque[tuple[int, bytes]] = deque()
        self.decoder = None
        self.journal = None
        self.last_t = 0
        self.connected = False
        self.since: int | None = None
        self.last_keepalive: int | None = None
        self.connects = 0
        self.unknown = 0
        self.last_error: str | None = None
        self.site: str | None = None

    # journal ------------------------------------------------------------------------

    def open_journal(self, folder: str | os.PathLike) -> None:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        safe = "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in self.name)
        self.journal = open(path / f"{safe}.jsonl", "a", encoding="ascii")  # noqa: SIM115
        self._write({"format": _JOURNAL_FORMAT, "server": self.name, "tz": self.tz})

    def _write(self, entry: dict) -> None:
        if self.journal is not None:
            try:
                # flushed per line: a dying process loses nothing it had received
                self.journal.write(json.dumps(entry, separators=(",", ":")) + "\n")
                self.journal.flush()
            except OSError as exc:  # e.g. a full disk: keep capturing, say so
                self.last_error = f"journal write failed: {exc}"

    def close_journal(self) -> None:
        if self.journal is not None:
            self.journal.close()
            self.journal = None

    def _time(self) -> int:
        t = max(_now_us(), self.last_t)  # never backwards, even if the clock is set back
        self.last_t = t
        return t

    # live side: called from the server's thread ------------------------------------------

    def on_document(self, raw: bytes) -> None:
        """The client hook: stamp, journal and queue one received document."""
        t = self._time()
        self._write({"t": t, "doc": base64.b64encode(raw).decode("ascii")})
        self.pending.append((t, raw))

    def mark(self, what: str, **fields) -> None:
        """A capture decision that a replay must repeat (journaled, then applied).

        Documents received before it are applied first, as a replay will apply them.
        """
        self.drain()
        t = self._time()
        self._write({"t": t, "mark": what, **fields})
        self.apply(t, what, fields)

    def drain(self) -> None:
        """Decode and apply the documents received so far."""
        while self.pending:
            t, raw = self.pending.popleft()
            self.feed(t, raw)

    # shared by live and replay --------------------------------------------------------

    def apply(self, t: int, what: str, fields: Mapping[str, Any]) -> None:
        if what == "connect":
            self.decoder = protocol.ClientConnection(tz=self.tz)
            self.connects += 1
            self.connected, self.since = True, t
        elif what == "request" and self.decoder is not None:
            kind = fields.get("type")
            if kind == "subscribe":
                self.decoder.subscribe(fields.get("extensions"), fields.get("keepalive"))
            elif kind == "ongoing":
                self.decoder.get_ongoing_calls(fields.get("extensions"))
            elif kind == "detail":
                self.decoder.get_call_detail(fields["call_id"])
        elif what == "lost":
            call_id = fields["call_id"]
            if call_id not in self.ongoing:
                return  # its end arrived after all
            del self.ongoing[call_id]
            self.ended.add(call_id)
            self.tables.end_unknown(self.name, call_id)
        elif what == "disconnect":
            self.connected, self.since = False, t
            self.last_error = fields.get("reason") or self.last_error

    def feed(self, t: int, raw: bytes) -> None:
        if self.decoder is None:
            self.decoder = protocol.ClientConnection(tz=self.tz)
        try:
            events = self.decoder.receive_data(raw, t / 1e6)
        except ProtocolError as exc:
            events = getattr(exc, "events", [])
            self.last_error = str(exc)
            self.decoder = protocol.ClientConnection(tz=self.tz)
        for event in events:
            self.handle(t, event)

    def handle(self, t: int, event) -> None:
        if isinstance(event, protocol.CallStarted):
            self.start(t, event.call, "notification")
        elif isinstance(event, protocol.CallEnded):
            self.end(t, event.call, "notification")
        elif isinstance(event, protocol.OngoingCalls):
            listed = set()
            for call in event.calls:
                listed.add(call["call_id"])
                self.start(t, call, "resync")
            self.vanished = [c for c in self.ongoing if c not in listed]
        elif isinstance(event, protocol.CallDetail):
            self.end(t, event.cdr, "detail")
        elif isinstance(event, (protocol.KeepAlive, protocol.SubscribeAccepted)):
            self.last_keepalive = t
        elif isinstance(event, protocol.ErrorResponse):
            self.last_error = f"server answered code {event.code}: {event.description} " \
                              f"({event.detail})"
        elif isinstance(event, protocol.UnknownMessage):
            self.unknown += 1
            self.last_error = f"message not understood: {event.reason}"

    def start(self, t: int, call: Mapping[str, Any], origin: str) -> None:
        call_id = call["call_id"]
        if call_id in self.ongoing or call_id in self.ended:
            return  # seen already (e.g. both notified and listed around a resync)
        self.ongoing[call_id] = None
        self._emit(self.tables.add(t, self.name, "start", origin, call))

    def end(self, t: int, call: Mapping[str, Any], origin: str) -> None:
        call_id = call["call_id"]
        if call_id in self.ended:
            return
        self.ongoing.pop(call_id, None)
        self.ended.add(call_id)
        self._emit(self.tables.add(t, self.name, "end", origin, call))
        if is_null(call.get("end_time")):
            # a detail without an end time (the CDR is not final): the end stays unknown
            self.tables.end_unknown(self.name, call_id)

    def _emit(self, values: dict) -> None:
        self.site = str(values["site"])
        if self.on_event is not None:
            try:
                self.on_event(self.name, values)
            except Exception as exc:  # noqa: BLE001 - a dashboard's bug must not stop the capture
                self.last_error = f"on_event callback failed: {exc!r}"

    def status(self) -> dict[str, Any]:
        return {"server": self.name, "site": self.site, "connected": self.connected,
                "since": _stamp(self.since), "last_keepalive": _stamp(self.last_keepalive),
                "reconnects": max(self.connects - 1, 0),
                "events": self.tables.counts.get(self.name, 0),
                "ongoing": len(self.ongoing), "unknown_messages": self.unknown,
                "last_error": self.last_error}


# --------------------------------------------------------------------------- the capture


def _address(server) -> tuple[str, int]:
    if isinstance(server, str):
        host, sep, port = server.rpartition(":")
    else:
        try:
            host, port = server
        except (TypeError, ValueError):
            raise ValueError(f"server {server!r} is not (host, port) or 'host:port'") \
                from None
        sep = ":"
    try:
        port = int(port)
    except (TypeError, ValueError):
        port = -1
    if not sep or not host or not 0 < port < 65536:
        raise ValueError(f"server {server!r} is not (host, port) or 'host:port'")
    return str(host), port


class Capture:
    """Capture call events from one or many recording servers into pandas tables.

    ``servers``: ``(host, port)`` pairs or ``"host:port"`` strings, one connection
    (and one thread) each. ``extensions`` restricts every subscription to calls of
    those numbers; ``keepalive`` asks the servers for an interval (seconds; ``None``:
    theirs). ``journal``: a folder that receives every document received, with its
    receive time, one ``<host>_<port>.jsonl`` file per server (see :meth:`replay`).
    ``tz`` is the sites' time zone for call times. ``reconnect=False`` gives up on a
    server after its first session; otherwise a lost or refused connection is retried
    after ``backoff`` seconds, doubling up to ``max_backoff``, with jitter. A server
    that is down never holds up the others. ``on_event(server, values)`` is called
    from the server's thread with each event row as a dict (keep it quick).

    Snapshots, safe to read while the capture runs:

    * :attr:`events` -- one row per event received: ``received_at`` (UTC), ``site``,
      ``server``, ``event`` (``start``/``end``), ``origin`` (``notification``;
      ``resync`` for a call found in the ongoing list after a (re)connect; ``detail``
      for an end fetched with ``GetCallDetail``), ``call_id`` and the call fields;
    * :attr:`calls` -- the calls table (one row per call, the end's fields winning
      over the start's; ``site`` is the CDR ``location``, else ``host:port``), plus
      ``server`` and ``end_unknown`` (a call that ended while the capture was away
      and whose detail could not be fetched);
    * :attr:`ongoing` -- the calls in progress (no end time, end not unknown);
    * :attr:`status` -- one row per server: connection, keep-alive, reconnects,
      events, last error.

    >>> with Capture(["127.0.0.1:10300"]) as capture:      # doctest: +SKIP
    ...     time.sleep(60)
    >>> capture.calls.groupby("site", observed=True).size()  # doctest: +SKIP
    """

    def __init__(self, servers, extensions=None, journal: str | os.PathLike | None = None,
                 reconnect: bool = True, tz: str = "UTC", keepalive: float | None = None,
                 *, timeout: float = 10.0, backoff: float = 0.5, max_backoff: float = 30.0,
                 ssl_context=None, on_event: Callable[[str, dict], None] | None = None):
        if isinstance(servers, (str, tuple)) and not (
                isinstance(servers, tuple) and servers and isinstance(servers[0], tuple)):
            servers = [servers]
        try:
            self.servers = [_address(s) for s in servers]
        except TypeError:  # e.g. a bare port number
            raise ValueError(f"servers must be (host, port) pairs or 'host:port' strings, "
                             f"not {servers!r}") from None
        if not self.servers:
            raise ValueError("Capture needs at least one server")
        names = [f"{h}:{p}" for h, p in self.servers]
        if len(set(names)) != len(names):
            raise ValueError(f"a server is listed twice: {names}")
        if not backoff > 0 or max_backoff < backoff:
            raise ValueError("backoff must be > 0 and max_backoff >= backoff")
        if isinstance(extensions, (str, int)):  # one number: not its characters
            extensions = [extensions]
        self.extensions = None if extensions is None else [str(e) for e in extensions]
        self.journal = None if journal is None else Path(journal)
        self.reconnect = reconnect
        self.tz = tz
        self.keepalive = keepalive
        self.timeout = timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.ssl_context = ssl_context
        self._tables = Tables()
        self._servers = {name: _Server(name, self._tables, tz, on_event) for name in names}
        self._clients: dict[str, Any] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        up = sum(s.connected for s in self._servers.values())
        return (f"<Capture {state}: {up}/{len(self._servers)} servers connected, "
                f"{sum(self._tables.counts.values())} events>")

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(repr(self))}</p>" + self.status.to_html(index=False)

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        """True while any server thread is alive."""
        return any(thread.is_alive() for thread in self._threads)

    def start(self) -> Self:
        """Connect to every server in the background; returns ``self``."""
        if self._threads:
            if self._stopping.is_set():
                raise RuntimeError("a stopped Capture cannot be restarted; make a new one")
            return self
        for (host, port), server in zip(self.servers, self._servers.values(), strict=True):
            if self.journal is not None:
                server.open_journal(self.journal)
            thread = threading.Thread(target=self._run, args=(host, port, server),
                                      name=f"Capture-{server.name}", daemon=True)
            self._threads.append(thread)
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Close every connection and wait (up to ``timeout`` s) for the threads.

        Idempotent (and a no-op before :meth:`start`); the tables stay readable.
        """
        if not self._threads:
            return
        self._stopping.set()
        with self._lock:
            clients = list(self._clients.values())
        for client in clients:
            client.close()  # wakes a thread blocked in a read at once
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        if not self.running:
            for server in self._servers.values():
                server.close_journal()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ one server

    def _delay(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random."""
        ceiling = min(self.max_backoff, self.backoff * 2 ** min(attempt, 30))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _run(self, host: str, port: int, server: _Server) -> None:
        from .client import RecorderClient

        attempt = 0
        while not self._stopping.is_set():
            client = None
            synced = False
            try:
                client = RecorderClient(host, port, timeout=self.timeout,
                                        ssl_context=self.ssl_context, tz=self.tz,
                                        on_document=server.on_document)
                with self._lock:
                    if self._stopping.is_set():
                        break
                    self._clients[server.name] = client
                server.mark("connect")
                self._resync(client, server)
                synced = True
                for _ in client.events(idle_timeout=0.5):
                    server.drain()
                    if self._stopping.is_set():
                        break
            except (RecstatsError, OSError) as exc:
                if not self._stopping.is_set():  # stop()'s own close is not an error
                    server.last_error = str(exc) or type(exc).__name__
            except Exception as exc:  # noqa: BLE001 - a bug must not end the capture silently
                server.last_error = f"internal error: {exc!r}"
            finally:
                if client is not None:
                    with self._lock:
                        self._clients.pop(server.name, None)
                    client.close()
                    server.drain()
                    if server.connected:
                        server.mark("disconnect", reason=None if self._stopping.is_set()
                                    else server.last_error)
            if not self.reconnect:
                break
            attempt = 0 if synced else attempt + 1
            self._stopping.wait(self._delay(attempt))
        if self._stopping.is_set():  # stop() may have timed out waiting for this thread
            server.close_journal()

    def _resync(self, client, server: _Server) -> None:
        """Subscribe, then reconcile what we know with the server's ongoing calls."""
        extensions = self.extensions
        server.mark("request", type="subscribe", extensions=extensions,
                    keepalive=self.keepalive)
        client.subscribe(extensions=extensions, keepalive=self.keepalive)
        server.drain()
        server.mark("request", type="ongoing", extensions=extensions)
        client.ongoing_calls(extensions=extensions)
        server.drain()
        # calls we knew as ongoing that the server no longer lists ended while we were away
        for call_id in list(server.vanished):
            if self._stopping.is_set():
                return
            server.drain()
            if call_id not in server.ongoing:
                continue  # its end notification came meanwhile
            server.mark("request", type="detail", call_id=call_id)
            try:
                client.call_detail(call_id)
            except (ServerError, ProtocolError):
                pass  # the server does not know it (any more): the end stays unknown
            server.drain()
            if call_id in server.ongoing:  # refused, or answered without a usable CDR
                server.mark("lost", call_id=call_id)
        server.vanished = []

    # ------------------------------------------------------------------ snapshots

    @property
    def events(self) -> pd.DataFrame:
        """The events table (a snapshot; see the class docstring for its columns)."""
        return self._tables.events_frame()

    @property
    def calls(self) -> pd.DataFrame:
        """The calls table (a snapshot): one row per call, ongoing ones with NaT end."""
        return self._tables.calls_frame()

    @property
    def ongoing(self) -> pd.DataFrame:
        """The calls in progress: no end time and an end that is not unknown."""
        calls = self.calls
        keep = calls["end_time"].isna().to_numpy() & ~calls["end_unknown"].to_numpy()
        return calls[keep].reset_index(drop=True)

    @property
    def status(self) -> pd.DataFrame:
        """One row per server: server, site (the last one its calls named), connected,
        since (last connect or disconnect), last_keepalive, reconnects, events,
        ongoing (calls in progress), unknown_messages, last_error."""
        rows = [server.status() for server in self._servers.values()]
        frame = pd.DataFrame(rows)
        for column in ("since", "last_keepalive"):
            frame[column] = pd.to_datetime(frame[column], utc=True).dt.as_unit("us")
        return frame.astype({"server": "str", "site": "str", "connected": "bool",
                             "reconnects": "int64", "events": "int64", "ongoing": "int64",
                             "unknown_messages": "int64", "last_error": "str"})

    # ------------------------------------------------------------------ replay

    @classmethod
    def replay(cls, path: str | os.PathLike, tz: str | None = None) -> Capture:
        """Rebuild a capture's tables from its journal (a folder or one ``.jsonl`` file).

        Each document is decoded again, exactly as the live capture did, so
        ``Capture.replay(folder).events`` equals the live capture's ``events`` (and
        likewise ``calls``). ``tz`` overrides the zone recorded in the journal. Lines
        that cannot be read (e.g. the last one, cut by a crash) are skipped and
        counted in the status' ``last_error``. Returns a stopped :class:`Capture`.

        >>> Capture.replay("journal/").calls          # doctest: +SKIP
        """
        path = Path(path)
        files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
        if not files:
            raise FileNotFoundError(f"no journal (*.jsonl) in {path}")
        entries: dict[str, list] = {}
        zones: dict[str, str] = {}
        bad: dict[str, int] = {}
        for file in files:
            name = None
            with open(file, encoding="ascii", errors="replace") as handle:
                for line in handle:
                    try:
                        entry = json.loads(line)
                        if "format" in entry:
                            name = str(entry["server"])
                            zones.setdefault(name, str(entry.get("tz") or "UTC"))
                            entries.setdefault(name, [])
                            continue
                        entry["t"] = int(entry["t"])
                        if "doc" in entry:
                            entry["doc"] = base64.b64decode(entry["doc"], validate=True)
                    except (ValueError, KeyError, TypeError):
                        bad[str(name)] = bad.get(str(name), 0) + 1
                        continue
                    if name is not None:
                        entries[name].append(entry)
        if not entries:
            raise ValueError(f"{path} is not a recstats journal (no header line naming a "
                             "server); pass the folder given as Capture(journal=...)")
        capture = cls(list(entries), tz=tz or next(iter(zones.values()), "UTC"))
        for name, items in entries.items():
            server = capture._servers[name]
            server.tz = tz or zones[name]
            for entry in items:
                if "doc" in entry:
                    server.feed(entry["t"], entry["doc"])
                elif "mark" in entry:
                    server.apply(entry["t"], str(entry["mark"]), entry)
            # a journal cut by a crash ends without the disconnect: the replay is stopped
            server.connected = False
            if bad.get(name):
                server.last_error = f"{bad[name]} journal line(s) could not be read"
        return capture
