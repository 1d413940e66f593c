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
import json
import math
import os
import random
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import pyarrow as pa

from . import protocol
from .cdr import BOOLEAN_FIELDS, CALL_COLUMNS, CATEGORY_COLUMNS, TIME_FIELDS
from .errors import ProtocolError, RecstatsError, ServerError

__all__ = ["Capture"]

_NAT = np.iinfo(np.int64).min  # numpy's NaT, as int64
_TIME, _FLOAT, _CAT, _BOOL, _FLAG, _STR = range(6)
_LABELS = frozenset(CATEGORY_COLUMNS) | {"server", "event", "origin"}
_EVENT_HEAD = ("received_at", "site", "server", "event", "origin", "call_id")
_CALL_TAIL = ("server", "end_unknown")


def _kind(name: str) -> int:
    if name in TIME_FIELDS or name == "received_at":
        return _TIME
    if name == "duration":
        return _FLOAT
    if name in _LABELS:
        return _CAT
    if name in BOOLEAN_FIELDS:
        return _BOOL
    if name == "end_unknown":
        return _FLAG
    return _STR


def _is_null(value: Any) -> bool:
    return value is None or value is pd.NaT or value is pd.NA or (
        isinstance(value, float) and math.isnan(value))


def _micros(value: Any) -> int:
    if isinstance(value, int):
        return value
    return pd.Timestamp(value).as_unit("us").value // 1000


class _Columns:
    """A columnar table under construction: one list/array per column.

    Rows are appended (or updated in place) value by value; :meth:`take` copies the
    raw columns (call it under the owner's lock) and :func:`_build` turns a copy into
    pandas columns with one vectorised conversion per column.
    """

    def __init__(self, names: Iterable[str] = ()):
        self.n = 0
        self.cols: dict[str, Any] = {}
        self.kinds: dict[str, int] = {}
        self.labels: dict[str, dict[str, int]] = {}
        for name in names:
            self._column(name)

    def _column(self, name: str):
        col = self.cols.get(name)
        if col is None:
            kind = self.kinds[name] = _kind(name)
            n = self.n
            if kind == _TIME:
                col = array("q", [_NAT]) * n
            elif kind == _FLOAT:
                col = array("d", [math.nan]) * n
            elif kind == _CAT:
                col = array("i", [-1]) * n
                self.labels[name] = {}
            elif kind == _FLAG:
                col = array("b", [0]) * n
            else:
                col = [None] * n
            self.cols[name] = col
        return col

    def append(self, values: Mapping[str, Any]) -> int:
        """Add a row holding ``values`` (nulls skipped); return its position."""
        row = self.n
        self.n += 1
        kinds = self.kinds
        for name, col in self.cols.items():
            kind = kinds[name]
            if kind == _TIME:
                col.append(_NAT)
            elif kind == _FLOAT:
                col.append(math.nan)
            elif kind == _CAT:
                col.append(-1)
            elif kind == _FLAG:
                col.append(0)
            else:
                col.append(None)
        self.update(row, values)
        return row

    def update(self, row: int, values: Mapping[str, Any]) -> None:
        """Overwrite ``row``'s columns with the non-null ``values``."""
        for name, value in values.items():
            if _is_null(value):
                continue
            col = self.cols.get(name)
            if col is None:
                col = self._column(name)
            kind = self.kinds[name]
            if kind == _TIME:
                col[row] = _micros(value)
            elif kind == _FLOAT:
                try:
                    col[row] = float(value)
                except (TypeError, ValueError):
                    pass
            elif kind == _CAT:
                labels = self.labels[name]
                text = str(value)
                code = labels.get(text)
                if code is None:
                    code = labels[text] = len(labels)
                col[row] = code
            elif kind == _FLAG:
                col[row] = 1 if value else 0
            elif kind == _BOOL:
                col[row] = bool(value)
            else:
                col[row] = value if isinstance(value, str) else str(value)

    def take(self) -> tuple[int, dict[str, Any], dict[str, int], dict[str, list[str]]]:
        """A private copy of the raw columns, safe to convert outside the lock."""
        return (self.n, {name: col[:] for name, col in self.cols.items()}, dict(self.kinds),
                {name: list(labels) for name, labels in self.labels.items()})


def _ranks(labels: list[str]) -> tuple[np.ndarray, list[str]]:
    """Codes in order of first appearance -> codes in sorted order (and the sorted labels)."""
    order = sorted(range(len(labels)), key=labels.__getitem__)
    remap = np.empty(len(labels) + 1, dtype=np.int32)
    remap[np.asarray(order, dtype=np.int64)] = np.arange(len(labels), dtype=np.int32)
    remap[-1] = -1  # code -1 (missing) indexes the last slot
    return remap, [labels[i] for i in order]


def _codes(raw, labels: list[str]) -> tuple[np.ndarray, list[str]]:
    remap, sorted_labels = _ranks(labels)
    return remap[np.frombuffer(raw, dtype=np.int32)], sorted_labels


def _build(copy, order: np.ndarray | None) -> dict[str, Any]:
    """Raw columns (from :meth:`_Columns.take`) -> pandas arrays, rows in ``order``."""
    n, cols, kinds, labels = copy
    out: dict[str, Any] = {}
    for name, col in cols.items():
        kind = kinds[name]
        if kind in (_TIME, _FLOAT, _CAT, _FLAG):
            values = np.frombuffer(col, dtype={_TIME: np.int64, _FLOAT: np.float64,
                                               _CAT: np.int32, _FLAG: np.int8}[kind])
            if kind == _CAT:
                values, names = _codes(col, labels[name])
            if order is not None:
                values = values[order]
            if kind == _TIME:
                out[name] = pd.array(values.view("M8[us]")).tz_localize("UTC") \
                    if n else pd.array(np.empty(0, "M8[us]")).tz_localize("UTC")
            elif kind == _FLOAT:
                out[name] = values.copy()
            elif kind == _FLAG:
                out[name] = values.astype(bool)
            else:
                used = np.zeros(len(names) + 1, dtype=bool)
                used[values] = True  # values -1 mark the spare last slot
                keep = np.flatnonzero(used[:-1])
                if len(keep) < len(names):
                    remap = np.full(len(names) + 1, -1, dtype=np.int32)
                    remap[keep] = np.arange(len(keep), dtype=np.int32)
                    values = remap[values]
                    names = [names[i] for i in keep]
                out[name] = pd.Categorical.from_codes(
                    values, dtype=pd.CategoricalDtype(pd.Index(names, dtype="str")))
        elif kind == _BOOL:
            values = pa.array(col, type=pa.bool_())
            if order is not None:
                values = values.take(pa.array(order))
            out[name] = pd.array(values.to_pandas(), dtype="boolean")
        else:
            values = pa.array(col, type=pa.large_string())
            if order is not None:
                values = values.take(pa.array(order))
            out[name] = pd.array(values, dtype="str")
    return out


class _Tables:
    """The events and calls buffers of a capture, with the lock that guards them."""

    def __init__(self):
        self.lock = threading.Lock()
        rest = [c for c in CALL_COLUMNS if c not in _EVENT_HEAD]
        self.events = _Columns([*_EVENT_HEAD, *rest])
        self.calls = _Columns([*CALL_COLUMNS, *_CALL_TAIL])
        self.rows: dict[tuple[str, str], int] = {}
        self.sites: dict[tuple[str, str], str] = {}
        self.counts: dict[str, int] = {}
        self.version = 0
        self._cache: dict[str, tuple[int, pd.DataFrame]] = {}

    def add(self, t: int, server: str, event: str, origin: str,
            record: Mapping[str, Any]) -> dict[str, Any]:
        """Append one event and fold it into its call; return the event's values."""
        key = (server, record["call_id"])
        site = record.get("site")
        if _is_null(site):  # the call's site as known so far, else the server
            site = self.sites.get(key, server)
        values = dict(record)
        values.update(received_at=t, server=server, event=event, origin=origin, site=site)
        call = dict(record)
        call["server"] = server
        with self.lock:
            self.sites[key] = site
            self.events.append(values)
            self.counts[server] = self.counts.get(server, 0) + 1
            row = self.rows.get(key)
            if row is None:
                call["site"] = values["site"]
                self.rows[key] = self.calls.append(call)
            else:  # the later event's fields win; missing ones keep the earlier values
                self.calls.update(row, call)
            self.version += 1
        return values

    def end_unknown(self, server: str, call_id: str) -> None:
        """Flag a call whose end could not be learnt."""
        with self.lock:
            row = self.rows.get((server, call_id))
            if row is None:
                self.rows[(server, call_id)] = self.calls.append(
                    {"call_id": call_id, "site": server, "server": server, "end_unknown": True})
            else:
                self.calls.update(row, {"end_unknown": True})
            self.version += 1

    def _snapshot(self, which: str) -> pd.DataFrame:
        with self.lock:
            cached = self._cache.get(which)
            if cached is not None and cached[0] == self.version:
                return cached[1].copy(deep=False)
            version = self.version
            copy = (self.events if which == "events" else self.calls).take()
        frame = _events_frame(copy) if which == "events" else _calls_frame(copy)
        with self.lock:
            self._cache[which] = (version, frame)
        return frame.copy(deep=False)

    def events_frame(self) -> pd.DataFrame:
        return self._snapshot("events")

    def calls_frame(self) -> pd.DataFrame:
        return self._snapshot("calls")


def _order(*keys: np.ndarray) -> np.ndarray | None:
    """Stable sort order by ``keys`` (last one primary), or None when already sorted."""
    order = np.lexsort(keys)
    if (order == np.arange(len(order))).all():
        return None
    return order


def _server_ranks(copy) -> np.ndarray:
    _, cols, _, labels = copy
    return _codes(cols["server"], labels["server"])[0]


def _events_frame(copy) -> pd.DataFrame:
    """Events in receive order (ties: by server, then arrival), whatever the threads did."""
    times = np.frombuffer(copy[1]["received_at"], dtype=np.int64)
    cols = _build(copy, _order(_server_ranks(copy), times))
    fixed = [*_EVENT_HEAD, *(c for c in CALL_COLUMNS if c not in _EVENT_HEAD)]
    names = fixed + sorted(set(cols) - set(fixed))
    return pd.DataFrame({name: cols[name] for name in names})


def _calls_frame(copy) -> pd.DataFrame:
    """Calls by start time (unknown starts last; ties: by server, then first seen)."""
    starts = np.frombuffer(copy[1]["start_time"], dtype=np.int64)
    starts = np.where(starts == _NAT, np.iinfo(np.int64).max, starts)
    cols = _build(copy, _order(_server_ranks(copy), starts))
    # an end event may lack the start time: derive duration from the merged row
    elapsed = (pd.Series(cols["end_time"]) - pd.Series(cols["start_time"])).dt.total_seconds()
    cols["duration"] = elapsed.where(elapsed.notna(), pd.Series(cols["duration"])).to_numpy()
    fixed = list(CALL_COLUMNS)
    names = fixed + sorted(set(cols) - set(fixed) - set(_CALL_TAIL)) + list(_CALL_TAIL)
    return pd.DataFrame({name: cols[name] for name in names})


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

    def __init__(self, name: str, tables: _Tables, tz: str = "UTC",
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

    # journal ------------------------------------------------------------------------

    def open_journal(self, folder: str | os.PathLike) -> None:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        safe = "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in self.name)
        self.journal = open(path / f"{safe}.jsonl", "a", encoding="ascii")  # noqa: SIM115
        self._write({"format": _JOURNAL_FORMAT, "server": self.name, "tz": self.tz})

    def _write(self, entry: dict) -> None:
        if self.journal is not None:
            # flushed per line: a dying process loses nothing it had received
            self.journal.write(json.dumps(entry, separators=(",", ":")) + "\n")
            self.journal.flush()

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
        """A capture decision that a replay must repeat (journaled, then applied)."""
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
            self.ongoing.pop(call_id, None)
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
        if _is_null(call.get("end_time")):
            # a detail without an end time (the CDR is not final): the end stays unknown
            self.tables.end_unknown(self.name, call_id)

    def _emit(self, values: dict) -> None:
        if self.on_event is not None:
            try:
                self.on_event(self.name, values)
            except Exception as exc:  # noqa: BLE001 - a dashboard's bug must not stop the capture
                self.last_error = f"on_event callback failed: {exc!r}"

    def status(self) -> dict[str, Any]:
        return {"server": self.name, "connected": self.connected,
                "since": _stamp(self.since), "last_keepalive": _stamp(self.last_keepalive),
                "reconnects": max(self.connects - 1, 0),
                "events": self.tables.counts.get(self.name, 0),
                "unknown_messages": self.unknown, "last_error": self.last_error}


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
        self.servers = [_address(s) for s in servers]
        if not self.servers:
            raise ValueError("Capture needs at least one server")
        names = [f"{h}:{p}" for h, p in self.servers]
        if len(set(names)) != len(names):
            raise ValueError(f"a server is listed twice: {names}")
        if not backoff > 0 or max_backoff < backoff:
            raise ValueError("backoff must be > 0 and max_backoff >= backoff")
        self.extensions = None if extensions is None else [str(e) for e in extensions]
        self.journal = None if journal is None else Path(journal)
        self.reconnect = reconnect
        self.tz = tz
        self.keepalive = keepalive
        self.timeout = timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.ssl_context = ssl_context
        self._tables = _Tables()
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
        return f"<p>{self!r}</p>".replace("<Capture", "&lt;Capture").replace(
            "events>", "events&gt;") + self.status.to_html(index=False)

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

        Idempotent; the tables stay readable afterwards.
        """
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
            server.mark("request", type="detail", call_id=call_id)
            try:
                client.call_detail(call_id)
            except ServerError:
                server.mark("lost", call_id=call_id)
            server.drain()
            if call_id in server.ongoing:  # answered, but not with a usable CDR
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
        """One row per server: server, connected, since, last_keepalive, reconnects,
        events, unknown_messages, last_error."""
        rows = [server.status() for server in self._servers.values()]
        frame = pd.DataFrame(rows)
        for column in ("since", "last_keepalive"):
            frame[column] = pd.to_datetime(frame[column], utc=True).dt.as_unit("us")
        return frame.astype({"server": "str", "connected": "bool", "reconnects": "int64",
                             "events": "int64", "unknown_messages": "int64",
                             "last_error": "str"})

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
        capture = cls(list(entries), tz=tz or next(iter(zones.values()), "UTC"))
        for name, items in entries.items():
            server = capture._servers[name]
            server.tz = tz or zones[name]
            for entry in items:
                if "doc" in entry:
                    server.feed(entry["t"], entry["doc"])
                elif "mark" in entry:
                    server.apply(entry["t"], str(entry["mark"]), entry)
            if bad.get(name):
                server.last_error = f"{bad[name]} journal line(s) could not be read"
        return capture
