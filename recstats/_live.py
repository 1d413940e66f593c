"""Live tables: raw call fields folded into calls, and the tables built on demand.

The protocol hands raw wire fields (``{source name: text}``). A live capture keeps
them as they came, in columns (one Python list or array per column, appended per
event): no per-event typing, no per-event DataFrame work. Typed tables are built only
when asked for, with the vectorised :func:`recstats._table.calls_from_fields`, and
append-only event columns are converted once per :data:`CHUNK` rows and cached, so a
snapshot of a long capture converts only its last, unfinished chunk.

:class:`CallFolder` is the one definition of event-to-call folding (a call's later
fields win over its earlier ones, missing ones keep the earlier values; a call whose
fields name no site gets its server's name), used by :class:`recstats.Capture` and by
:meth:`recstats.RecorderClient.ongoing_calls`.
"""

from __future__ import annotations

import re
import threading
from array import array
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from ._schema import CALL_COLUMNS, TIME_FIELDS
from ._table import calls_from_fields, coerce_calls
from ._time import TIME_TEXT

__all__ = ["CHUNK", "CallFolder", "Tables", "bad_time", "call_id_of", "calls_table"]

#: event rows converted (and cached) together
CHUNK = 65536
_EVENT_HEAD = ("received_at", "site", "server", "event", "origin", "call_id")
_CALL_TAIL = ("server", "end_unknown")
_time_text = re.compile(TIME_TEXT)
_ZULU = re.compile(r"[zZ]$")


def call_id_of(fields: Mapping[str, str]) -> str:
    """The call id of raw fields (``id``, else ``ccdr_id``), as the CDR reader reads it."""
    return fields.get("id") or fields["ccdr_id"]


def bad_time(fields: Mapping[str, str]) -> str | None:
    """Why a time field of ``fields`` is not a time (``None`` when all are).

    Checked once per event when it arrives (C-speed ``datetime.fromisoformat``), so the
    vectorised conversion at snapshot time never has to drop a row.
    """
    for name in TIME_FIELDS:
        text = fields.get(name)
        if text is None:
            continue
        if _time_text.fullmatch(text) is None:
            return f"{name} {text!r} is not a time"
        try:
            datetime.fromisoformat(_ZULU.sub("+00:00", text))
        except ValueError:
            return f"{name} {text!r} is not a time"
    return None


def _categories(frame: pd.DataFrame, names: Sequence[str]) -> None:
    for name in names:
        frame[name] = frame[name].astype("str").astype("category")


def calls_table(calls: Sequence[Mapping[str, str]], servers: Sequence[str], *,
                tz: str = "UTC", end_unknown: Sequence[bool] | None = None,
                extra: bool = False) -> pd.DataFrame:
    """Raw fields of calls (``servers[i]`` the server ``calls[i]`` came from) -> the calls
    table; a call that names no site gets its server as site.

    With ``extra=True`` the table also has ``server`` and ``end_unknown`` columns (last).
    Rows keep the input order.

    >>> calls_table([{"id": "a", "location": "NY"}, {"id": "b"}], ["h:1", "h:1"]).site.tolist()
    ['NY', 'h:1']
    """
    frame, _ = calls_from_fields(list(calls), tz=tz)
    servers = np.asarray(servers, dtype=object)[frame.index.to_numpy()]
    site = frame["site"].astype(object)
    missing = site.isna().to_numpy()
    if missing.any():
        site = site.where(~missing, servers)
        frame["site"] = site.astype("str").astype("category")
    if extra:
        frame["server"] = pd.Categorical(servers.astype(str))
        flags = np.zeros(len(frame), dtype=bool) if end_unknown is None else \
            np.asarray(end_unknown, dtype=bool)[frame.index.to_numpy()]
        frame["end_unknown"] = flags
    return frame.reset_index(drop=True)


class CallFolder:
    """Calls folded from their events, keyed by ``(server, call id)``, in first-seen order.

    >>> folder = CallFolder()
    >>> _ = folder.add("h:1", {"id": "a", "caller": "1"})
    >>> _ = folder.add("h:1", {"id": "a", "end_time": "2026-01-01 00:00:01"})
    >>> folder.rows[("h:1", "a")]
    {'id': 'a', 'caller': '1', 'end_time': '2026-01-01 00:00:01'}
    """

    def __init__(self):
        self.rows: dict[tuple[str, str], dict[str, str]] = {}
        self.unknown_end: set[tuple[str, str]] = set()

    def add(self, server: str, fields: Mapping[str, str]) -> tuple[str, str]:
        """Fold one event's fields into its call; return the call's key."""
        key = (server, call_id_of(fields))
        row = self.rows.get(key)
        if row is None:
            self.rows[key] = dict(fields)
        else:
            row.update(fields)
        return key

    def mark_end_unknown(self, server: str, call_id: str, unknown: bool = True) -> None:
        """Flag (or clear) a call whose end could not be learnt."""
        key = (server, call_id)
        if unknown:
            self.rows.setdefault(key, {"id": call_id})
            self.unknown_end.add(key)
        else:
            self.unknown_end.discard(key)

    def site(self, key: tuple[str, str]) -> str | None:
        row = self.rows.get(key)
        return None if row is None else row.get("location") or row.get("site")

    def table(self, tz: str = "UTC") -> pd.DataFrame:
        """The calls table (with ``server`` and ``end_unknown``), rows first-seen first."""
        keys = list(self.rows)
        return calls_table([self.rows[k] for k in keys], [k[0] for k in keys], tz=tz,
                           end_unknown=[k in self.unknown_end for k in keys], extra=True)


class _EventColumns:
    """Append-only event columns of raw values."""

    def __init__(self):
        self.t = array("q")
        self.server: list[str] = []
        self.event: list[str] = []
        self.origin: list[str] = []
        self.site: list[str] = []
        self.fields: list[Mapping[str, str]] = []

    def __len__(self) -> int:
        return len(self.t)

    def append(self, t: int, server: str, event: str, origin: str, site: str,
               fields: Mapping[str, str]) -> None:
        self.t.append(t)
        self.server.append(server)
        self.event.append(event)
        self.origin.append(origin)
        self.site.append(site)
        self.fields.append(fields)

    def frame(self, start: int, stop: int, tz: str) -> pd.DataFrame:
        """Rows ``start:stop`` as a typed events frame (arrival order)."""
        calls, _ = calls_from_fields(self.fields[start:stop], tz=tz)
        keep = calls.index.to_numpy()
        calls = calls.reset_index(drop=True)
        # a copy: a NumPy view would stop the array from growing
        times = np.frombuffer(self.t[start:stop], dtype=np.int64)[keep]
        calls["received_at"] = pd.array(times.view("M8[us]")).tz_localize("UTC")
        for name in ("server", "event", "origin", "site"):
            calls[name] = np.asarray(getattr(self, name)[start:stop], dtype=object)[keep]
        return calls


class Tables:
    """The events and calls of a capture (raw values), with the lock that guards them."""

    def __init__(self, tz: str = "UTC"):
        self.lock = threading.Lock()
        self.tz = tz
        self.events = _EventColumns()
        self.calls = CallFolder()
        self.counts: dict[str, int] = {}
        self.version = 0
        self._chunks: list[pd.DataFrame] = []  # converted full chunks of events
        self._converting = threading.Lock()  # one snapshot converts chunks at a time
        self._cache: dict[str, tuple[int, pd.DataFrame]] = {}

    def add(self, t: int, server: str, event: str, origin: str,
            fields: Mapping[str, str]) -> dict[str, Any]:
        """Append one event (raw fields) and fold it into its call; return the event's
        values (the fields plus ``received_at``, ``server``, ``event``, ``origin``,
        ``site``, ``call_id``)."""
        with self.lock:
            key = self.calls.add(server, fields)
            site = fields.get("location") or self.calls.site(key) or server
            self.events.append(t, server, event, origin, site, fields)
            self.counts[server] = self.counts.get(server, 0) + 1
            self.version += 1
        return {**fields, "received_at": t, "server": server, "event": event,
                "origin": origin, "site": site, "call_id": key[1]}

    def end_unknown(self, server: str, call_id: str, unknown: bool = True) -> None:
        """Flag (or clear) a call whose end could not be learnt."""
        with self.lock:
            self.calls.mark_end_unknown(server, call_id, unknown)
            self.version += 1

    def calls_frame(self) -> pd.DataFrame:
        """The calls table: by start time (unknown starts last; ties: by server, then
        first seen), with ``server`` and ``end_unknown`` last."""
        with self.lock:
            cached = self._cache.get("calls")
            if cached is not None and cached[0] == self.version:
                return cached[1].copy(deep=False)
            version = self.version
            folder = CallFolder()
            folder.rows = {k: dict(v) for k, v in self.calls.rows.items()}
            folder.unknown_end = set(self.calls.unknown_end)
        frame = folder.table(self.tz)
        starts = frame["start_time"].to_numpy(dtype="datetime64[us]").view("int64")
        starts = np.where(frame["start_time"].isna().to_numpy(), np.iinfo(np.int64).max,
                          starts)
        server = frame["server"].astype("str").to_numpy()
        order = np.lexsort((np.arange(len(frame)), server, starts))
        frame = frame.take(order).reset_index(drop=True)
        with self.lock:
            self._cache["calls"] = (version, frame)
        return frame.copy(deep=False)

    def events_frame(self) -> pd.DataFrame:
        """The events table in receive order (ties: by server, then arrival)."""
        with self.lock:
            cached = self._cache.get("events")
            if cached is not None and cached[0] == self.version:
                return cached[1].copy(deep=False)
            version = self.version
            n = len(self.events)
        with self._converting:
            done = len(self._chunks) * CHUNK
            while n - done >= CHUNK:  # full chunks never change: converted once
                self._chunks.append(self.events.frame(done, done + CHUNK, self.tz))
                done += CHUNK
            done = (n // CHUNK) * CHUNK
            parts = [*self._chunks[:n // CHUNK], self.events.frame(done, n, self.tz)]
        frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        frame = _events_schema(frame)
        times = frame["received_at"].to_numpy(dtype="datetime64[us]").view("int64")
        server = frame["server"].astype("str").to_numpy()
        if len(times) > 1 and not (np.diff(times) > 0).all():
            order = np.lexsort((np.arange(len(frame)), server, times))
            frame = frame.take(order).reset_index(drop=True)
        with self.lock:
            self._cache["events"] = (version, frame)
        return frame.copy(deep=False)


def _events_schema(frame: pd.DataFrame) -> pd.DataFrame:
    head = frame[list(_EVENT_HEAD[:1])]
    labels = frame[["server", "event", "origin"]].astype("str").astype("category")
    body = coerce_calls(frame.drop(columns=["received_at", "server", "event", "origin"]))
    fixed = [*_EVENT_HEAD, *(c for c in CALL_COLUMNS if c not in _EVENT_HEAD)]
    out = pd.concat([head, labels, body], axis=1)
    names = fixed + sorted(set(out.columns) - set(fixed))
    return out[names]
