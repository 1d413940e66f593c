"""The typed events and calls buffers of a live capture, and what leaves them.

:class:`TypedTables` folds typed events into calls (a call's later fields win, missing
ones keep the earlier values) in the columnar buffers of :mod:`recstats._columns`.
:meth:`TypedTables.take_old` takes out what is older than a horizon, so a long capture
holds only its recent past: the events received before it (a prefix: the events buffer
is in arrival order) and the calls that ended before it, never a call in progress nor
one whose end is unknown (a real end may still come). What it returns are final rows:
an event never changes, nor does a call once it ended.
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ._columns import (
    CALL_TAIL,
    EVENT_HEAD,
    NAT,
    Columns,
    as_kind,
    build,
    codes,
    is_null,
    null_values,
    set_rows,
)
from ._schema import CALL_COLUMNS

__all__ = ["SEQ", "TypedTables"]

#: the calls frames' hidden column of first-seen order, while parts are merged back
SEQ = "_seq"


class TypedTables:
    """Typed events and calls buffers, with the lock that guards them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        rest = [c for c in CALL_COLUMNS if c not in EVENT_HEAD]
        self.events = Columns([*EVENT_HEAD, *rest], chunked=True)
        self.calls = Columns([*CALL_COLUMNS, *CALL_TAIL],
                             skip=("received_at", "event", "origin"))
        self.rows: dict[tuple[str, str], int] = {}
        self.keys: list[tuple[str, str]] = []  # the key of each calls row
        self.ended_at = array("q")  # receive time of each call's end [UTC us], or NaT
        self.seq = array("q")  # each call's first-seen number
        self.seen = 0
        self.sites: dict[tuple[str, str], str] = {}
        self.counts: dict[str, int] = {}
        self.version = 0
        self._cache: dict[str, tuple[int, pd.DataFrame]] = {}

    def _new_call(self, key: tuple[str, str], values: Mapping[str, Any]) -> int:
        row = self.rows[key] = self.calls.append(values)
        self.keys.append(key)
        self.ended_at.append(NAT)
        self.seq.append(self.seen)
        self.seen += 1
        return row

    def add(self, t: int, server: str, event: str, origin: str,
            record: Mapping[str, Any]) -> dict[str, Any]:
        """Append one event and fold it into its call; return the event's values."""
        key = (server, record["call_id"])
        site: Any = record.get("site")
        if is_null(site):  # the call's site as known so far, else the server
            site = self.sites.get(key, server)
        values = dict(record)
        values.update(received_at=t, server=server, event=event, origin=origin, site=site)
        with self.lock:
            self.sites[key] = site
            self.events.append(values)
            self.counts[server] = self.counts.get(server, 0) + 1
            row = self.rows.get(key)
            if row is None:
                row = self._new_call(key, values)
            else:  # the later event's fields win; missing ones keep the earlier values
                self.calls.update(row, values)
            if event == "end":
                self.ended_at[row] = t
            self.version += 1
        return values

    def add_many(self, items: list[tuple]) -> None:
        """Apply many events and flags in order, as :meth:`add` and :meth:`end_unknown`
        would one by one: ``(t, server, event, origin, record)`` for an event,
        ``(None, server, call_id, unknown)`` for a flag (the path of the few records
        the bulk pass refuses; :meth:`add_columns` folds the others)."""
        rows, sites, counts, calls = self.rows, self.sites, self.counts, self.calls
        added: list[dict[str, Any]] = []
        with self.lock:
            for item in items:
                if item[0] is None:
                    self._flag(*item[1:])
                    continue
                t, server, event, origin, record = item
                key = (server, record["call_id"])
                site = record.get("site")
                if is_null(site):
                    site = sites.get(key, server)
                values = dict(record)
                values.update(received_at=t, server=server, event=event, origin=origin,
                              site=site)
                sites[key] = site
                added.append(values)
                counts[server] = counts.get(server, 0) + 1
                row = rows.get(key)
                if row is None:
                    row = self._new_call(key, values)
                else:
                    calls.update(row, values)
                if event == "end":
                    self.ended_at[row] = t
            self.events.extend(added)
            self.version += 1

    def add_columns(self, items: list[tuple], columns: Mapping[str, Any],
                    present: Mapping[str, np.ndarray],
                    unread: Mapping[str, np.ndarray]) -> None:
        """:meth:`add_many` of items whose events were all typed in bulk, the calls
        folded by whole columns.

        ``columns`` holds the events' typed values by column (times as int64
        microseconds, :data:`NAT` for null; ``duration`` float64; the rest object
        arrays, ``None`` for null), ``present`` each column's non-null mask and
        ``unread`` the booleans read but not readable (a key without a value: a new
        call gets the column). Between two flags the calls fold vectorised: each call
        takes, column by column, the value of its last event holding one; that is what
        :meth:`add` gives event by event (a later value wins, a missing one keeps the
        earlier)."""
        times: list[int] = []
        heads: list[list] = [[], [], []]  # server, event, origin
        flags: list[tuple] = []  # (events before it, server, call_id, unknown)
        for item in items:
            if item[0] is None:
                flags.append((len(times), *item[1:]))
            else:
                times.append(item[0])
                heads[0].append(item[1])
                heads[1].append(item[2])
                heads[2].append(item[3])
        n = len(times)
        servers, call_ids = heads[0], columns["call_id"]
        found = columns.get("site")
        with self.lock:
            sites, counts = self.sites, self.counts
            resolved = np.empty(n, dtype=object)  # each event's site: its own, the
            for i, key in enumerate(zip(servers, call_ids)):  # call's so far, the server
                site = None if found is None else found[i]
                if site is None:
                    site = sites.get(key, key[0])
                sites[key] = resolved[i] = site
            for server in servers:
                counts[server] = counts.get(server, 0) + 1
            stamps = np.array(times, dtype=np.int64)
            self.events.extend_columns(n, {
                **columns, "received_at": stamps, "server": servers, "event": heads[1],
                "origin": heads[2], "site": resolved})
            by_server = np.array(servers, dtype=object)
            fold = {**columns, "site": resolved, "server": by_server}
            shown = {**present, "site": np.ones(n, dtype=bool), "server": np.ones(n, bool)}
            ends = np.array(heads[1], dtype=object) == "end"
            begin = 0
            for at, server, call_id, unknown in [*flags, (n, None, None, None)]:
                if at > begin:
                    self._fold_run(begin, at, by_server, call_ids, fold, shown, unread,
                                   stamps, ends)
                if server is not None:
                    self._flag(server, call_id, unknown)
                begin = at
            self.version += 1

    def _fold_run(self, a: int, b: int, servers: np.ndarray, call_ids: np.ndarray,
                  columns: Mapping[str, np.ndarray], present: Mapping[str, np.ndarray],
                  unread: Mapping[str, np.ndarray], stamps: np.ndarray,
                  ends: np.ndarray) -> None:
        """Fold events ``a:b`` (no flag among them) into the calls, by columns."""
        index: dict[tuple[str, str], int] = {}  # call -> its number in this run
        local = np.fromiter((index.setdefault(key, len(index)) for key in
                             zip(servers[a:b].tolist(), call_ids[a:b].tolist())),
                            dtype=np.int64, count=b - a)
        keys = list(index)
        rows = np.fromiter((self.rows.get(key, -1) for key in keys), dtype=np.int64,
                           count=len(keys))
        new = np.flatnonzero(rows < 0)  # in order of first appearance
        calls = self.calls
        size = calls.n
        rows[new] = size + np.arange(len(new))
        old = rows < size
        first = np.full(len(keys), b - a, dtype=np.int64)  # each call's first event
        np.minimum.at(first, local, np.arange(b - a, dtype=np.int64))
        added: dict[str, np.ndarray] = {}
        for name, values in columns.items():
            if name in calls.skip:
                continue
            where = np.flatnonzero(present[name][a:b])
            if not len(where):
                if name in unread and unread[name][a:b][first[new]].any():
                    calls.column(name)  # read, not readable: a new call gets the key
                continue
            last = _last_per_key(local[where], where + a, len(keys))
            have = np.flatnonzero(last >= 0)
            taken = values[last[have]]
            calls.column(name)
            kept = old[have]
            if kept.any():
                set_rows(calls, name, rows[have[kept]], taken[kept])
            if len(new) and not kept.all():
                kind = calls.kinds[name]
                fresh = added[name] = null_values(kind, len(new))
                fresh[rows[have[~kept]] - size] = as_kind(kind, taken[~kept])
        for i in new.tolist():
            self._register(keys[i])
        if len(new):
            calls.extend_columns(len(new), added)
        where = np.flatnonzero(ends[a:b])
        if len(where):
            last = _last_per_key(local[where], where + a, len(keys))
            ending = last >= 0
            ended = np.frombuffer(self.ended_at, dtype=np.int64)
            ended[rows[ending]] = stamps[last[ending]]
            del ended  # a view: the array cannot grow while it is exported

    def _register(self, key: tuple[str, str]) -> None:
        """Number a new call whose row :meth:`_fold_run` appends."""
        self.rows[key] = len(self.keys)
        self.keys.append(key)
        self.ended_at.append(NAT)
        self.seq.append(self.seen)
        self.seen += 1

    def end_unknown(self, server: str, call_id: str, unknown: bool = True) -> None:
        """Flag (or clear) a call whose end could not be learnt."""
        with self.lock:
            self._flag(server, call_id, unknown)
            self.version += 1

    def _flag(self, server: str, call_id: str, unknown: bool) -> None:
        row = self.rows.get((server, call_id))
        if row is None:
            self._new_call((server, call_id),
                           {"call_id": call_id, "site": server, "server": server,
                            "end_unknown": unknown})
        else:
            self.calls.update(row, {"end_unknown": unknown})

    def take_old(self, before: int) -> tuple[pd.DataFrame, pd.DataFrame, list]:
        """Take out the events received and the calls ended before ``before`` [UTC
        us]: ``(events, calls, call keys)``, the frames as :meth:`events_frame` and
        :meth:`calls_frame` would have shown those rows (calls with :data:`SEQ`)."""
        with self.lock:
            times = np.frombuffer(self.events.cols["received_at"], dtype=np.int64)
            newer = np.flatnonzero(times >= before)
            count = int(newer[0]) if len(newer) else len(times)
            del times  # a view: the buffer cannot shrink while it is exported
            events = self.events.take(stop=count)
            self.events.drop_prefix(count)
            ended = np.frombuffer(self.ended_at, dtype=np.int64)
            unknown = np.frombuffer(self.calls.cols["end_unknown"], dtype=np.int8)
            old = (ended != NAT) & (ended < before) & (unknown == 0)
            del ended, unknown
            rows = np.flatnonzero(old)
            calls = self.calls.take(rows=rows)
            seq = np.frombuffer(self.seq, dtype=np.int64)[rows].copy()
            keys = [self.keys[i] for i in rows.tolist()]
            if len(rows):
                keep = ~old
                self.calls.keep(keep)
                flags = keep.tolist()
                self.keys = [k for k, kept in zip(self.keys, flags, strict=True) if kept]
                self.ended_at = array("q", np.frombuffer(self.ended_at, np.int64)[keep]
                                      .tobytes())
                self.seq = array("q", np.frombuffer(self.seq, np.int64)[keep].tobytes())
                self.rows = {key: i for i, key in enumerate(self.keys)}
                for key in keys:
                    self.sites.pop(key, None)
            if count or len(rows):
                self.version += 1
        return _events_frame(events), _calls_frame(calls, seq), keys

    def _snapshot(self, which: str, with_seq: bool = False) -> pd.DataFrame:
        key = which + ("+seq" if with_seq else "")
        with self.lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] == self.version:
                return cached[1].copy(deep=False)
            version = self.version
            if which == "events":
                copy, seq = self.events.take(), None
            else:
                copy = self.calls.take()
                seq = np.frombuffer(self.seq, dtype=np.int64).copy() if with_seq else None
        frame = _events_frame(copy) if which == "events" else _calls_frame(copy, seq)
        with self.lock:
            self._cache[key] = (version, frame)
        return frame.copy(deep=False)

    def events_frame(self) -> pd.DataFrame:
        return self._snapshot("events")

    def calls_frame(self, with_seq: bool = False) -> pd.DataFrame:
        """The calls in memory (``with_seq``: plus their first-seen numbers, :data:`SEQ`)."""
        return self._snapshot("calls", with_seq)


def _last_per_key(keys: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """For each of ``size`` keys, the greatest of its ``positions`` (-1: none)."""
    last = np.full(size, -1, dtype=np.int64)
    np.maximum.at(last, keys, positions)
    return last


def _order(*keys: np.ndarray) -> np.ndarray | None:
    """Stable sort order by ``keys`` (last one primary), or None when already sorted."""
    if len(keys[-1]) < 2 or (np.diff(keys[-1]) > 0).all():
        return None  # strictly increasing primary key: no ties, already in order
    order = np.lexsort(keys)
    if (order == np.arange(len(order))).all():
        return None
    return order


def _server_ranks(copy) -> np.ndarray:
    _, cols, _, labels = copy
    return codes(cols["server"], labels["server"])[0]


def _events_frame(copy) -> pd.DataFrame:
    """Events in receive order (ties: by server, then arrival), whatever the threads did."""
    times = np.frombuffer(copy[1]["received_at"], dtype=np.int64)
    cols = build(copy, _order(_server_ranks(copy), times))
    fixed = [*EVENT_HEAD, *(c for c in CALL_COLUMNS if c not in EVENT_HEAD)]
    names = fixed + sorted(set(cols) - set(fixed))
    return pd.DataFrame({name: cols[name] for name in names})


def _calls_frame(copy, seq: np.ndarray | None = None) -> pd.DataFrame:
    """Calls by start time (unknown starts last; ties: by server, then first seen);
    with ``seq``, each row's first-seen number in a last column :data:`SEQ`."""
    starts = np.frombuffer(copy[1]["start_time"], dtype=np.int64)
    starts = np.where(starts == NAT, np.iinfo(np.int64).max, starts)
    order = _order(_server_ranks(copy), starts)
    cols = build(copy, order)
    # an end event may lack the start time: derive duration from the merged row
    elapsed = (pd.Series(cols["end_time"]) - pd.Series(cols["start_time"])).dt.total_seconds()
    cols["duration"] = elapsed.where(elapsed.notna(), pd.Series(cols["duration"])).to_numpy()
    fixed = list(CALL_COLUMNS)
    names = fixed + sorted(set(cols) - set(fixed) - set(CALL_TAIL)) + list(CALL_TAIL)
    frame = pd.DataFrame({name: cols[name] for name in names})
    if seq is not None:
        frame[SEQ] = seq if order is None else seq[order]
    return frame
