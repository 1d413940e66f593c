"""Live tables: raw call fields as they arrive, typed and folded into calls on demand.

The protocol hands raw wire fields (``{source name: text}``). :class:`Tables` queues
each event as it came (no typing, no DataFrame work while receiving); a snapshot types
the events that arrived since the previous one, once each and in bulk (one vectorised
pass of :func:`recstats._table.calls_from_raw` with the capture's zone per batch, the
values :func:`recstats.cdr.record_from_fields` gives; the few events that pass refuses
go through :func:`recstats.cdr.record_from_fields` one by one), and appends them to
the typed columnar buffers of :mod:`recstats._typed_tables`, which fold them into calls (a
call's later fields win over its earlier ones, missing ones keep the earlier values; a
call whose fields name no site gets its server's name). That folding is the only one:
:class:`recstats.Capture` and :meth:`recstats.RecorderClient.ongoing_calls` both use
:class:`Tables`.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from ._columns import NAT
from ._schema import BOOLEAN_FIELDS, TIME_FIELDS
from ._table import calls_from_raw
from ._time import TIME_TEXT
from ._typed_tables import TypedTables
from ._xml import MAX_FIELDS
from .cdr import record_from_fields
from .errors import CDRParseError

__all__ = ["BACKLOG", "BATCH", "Tables", "bad_time", "call_id_of", "fold", "typed_records"]

_time_text = re.compile(TIME_TEXT)
#: events typed per vectorised pass: bounds the transient frame of a large backlog
BATCH = 20_000
#: untyped events past which the thread adding one types the queue itself
BACKLOG = BATCH


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
            datetime.fromisoformat(text if text[-1] not in "zZ" else text[:-1] + "+00:00")
        except ValueError:
            return f"{name} {text!r} is not a time"
    return None


class Tables:
    """The events and calls of a capture: raw events queued as they arrive, typed
    tables built when asked for. Thread-safe.

    Receiving threads take no lock: each appends to one queue (a deque's append and
    popleft are atomic) and touches only its own server's entries of the site and
    count maps; one thread at a time types the queue."""

    def __init__(self, tz: str = "UTC"):
        self.tz = tz
        self.counts: dict[str, int] = {}
        self._queued: deque[tuple] = deque()  # raw events and flags not typed yet
        self._sites: dict[tuple[str, str], str] = {}
        self._typed = TypedTables()
        self._typing = threading.Lock()  # one snapshot types the queue at a time
        self._bulk = True  # False: type event by event (the reference path, for benches)

    def add(self, t: int, server: str, event: str, origin: str,
            fields: Mapping[str, str]) -> str:
        """Queue one event (raw fields, ``t`` in UTC microseconds); return its site:
        the call's as known so far, else the server."""
        key = (server, call_id_of(fields))
        sites = self._sites
        site = sites[key] = fields.get("location") or sites.get(key) or server
        queued = self._queued
        queued.append((t, server, event, origin, fields))
        self.counts[server] = self.counts.get(server, 0) + 1
        if len(queued) >= BACKLOG:  # typing fell behind: this thread types the oldest
            self.catch_up(BATCH // 4)  # part (and reads nothing meanwhile: its server's
        return site                    # sending slows down)

    def end_unknown(self, server: str, call_id: str, unknown: bool = True) -> None:
        """Flag (or clear) a call whose end could not be learnt."""
        self._queued.append((None, server, call_id, unknown))

    def catch_up(self, most: int | None = None) -> None:
        """Type what arrived since the last snapshot (``most``: the oldest ``most``
        events and flags of it), in arrival order."""
        with self._typing:
            queued, take = self._queued, self._queued.popleft
            count = len(queued) if most is None else min(most, len(queued))
            fold([take() for _ in range(count)], self._typed, self.tz, bulk=self._bulk)

    def events_frame(self) -> pd.DataFrame:
        """The events table in receive order (ties: by server, then arrival)."""
        self.catch_up()
        return self._typed.events_frame()

    def calls_frame(self, with_seq: bool = False) -> pd.DataFrame:
        """The calls table by start time (unknown starts last; ties: by server, then
        first seen), with ``server`` and ``end_unknown`` last (``with_seq``: and the
        first-seen numbers, see :meth:`TypedTables.calls_frame`)."""
        self.catch_up()
        return self._typed.calls_frame(with_seq)

    def take_old(self, before: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Type what is queued, then take out the events received and the calls ended
        before ``before`` [UTC us] (see :meth:`TypedTables.take_old`)."""
        self.catch_up()
        events, calls, keys = self._typed.take_old(before)
        for key in keys:
            self._sites.pop(key, None)
        return events, calls


def fold(queued: list[tuple], typed: TypedTables, tz: str, *, bulk: bool = True) -> None:
    """Type queued events (and apply end-unknown flags) into ``typed``, in order.

    Each batch types in one vectorised pass; the runs of events it typed fold by whole
    columns (:meth:`TypedTables.add_columns`), the few it refuses are typed with
    :func:`recstats.cdr.record_from_fields` and folded one by one. ``bulk=False`` types
    each event with :func:`recstats.cdr.record_from_fields` (the reference both paths
    equal)."""
    for begin in range(0, len(queued), BATCH):
        part = queued[begin:begin + BATCH]
        events = [item[4] for item in part if item[0] is not None]
        if not bulk:
            for item in part:
                if item[0] is None:
                    typed.end_unknown(*item[1:])
                else:
                    t, server, event, origin, fields = item
                    typed.add(t, server, event, origin, _record(fields, tz))
            continue
        done = _bulk_pass(events, tz)
        if done is None:
            typed.add_many([item if item[0] is None else (*item[:4], _record(item[4], tz))
                            for item in part])
            continue
        values, present, unread = done.columns()
        typed_row = done.rows(len(events))
        if done.complete:
            typed.add_columns(part, values, present, unread)
            continue
        # runs of events the pass typed fold by columns; the others one by one
        group: list[tuple] = []
        rows: list[int] = []
        each: list[tuple] = []
        number = 0
        for item in part:
            row = -1
            if item[0] is not None:
                row = typed_row[number]
                number += 1
                if row < 0:
                    if group:
                        _add_group(typed, group, rows, values, present, unread)
                        group, rows = [], []
                    each.append((*item[:4], _record(item[4], tz)))
                    continue
            if each:
                typed.add_many(each)
                each = []
            group.append(item)
            if row >= 0:
                rows.append(row)
        if group:
            _add_group(typed, group, rows, values, present, unread)
        if each:
            typed.add_many(each)


def _add_group(typed: TypedTables, group: list[tuple], rows: list[int], values, present,
               unread) -> None:
    """:meth:`TypedTables.add_columns` of the items ``group``, whose events are the
    bulk pass's ``rows``."""
    take = np.array(rows, dtype=np.int64)
    typed.add_columns(group, *({name: column[take] for name, column in part.items()}
                               for part in (values, present, unread)))


def typed_records(rows: list[Mapping[str, str]], tz: str, *, columns: bool = False
                  ) -> Any:
    """Many events' raw fields -> their typed values in one vectorised pass.

    Each dict holds the non-null values :func:`recstats.cdr.record_from_fields` gives
    (times in UTC microseconds), plus ``None`` under the fields it keeps without a value
    (an unreadable boolean), so folding it creates the same columns. ``None`` in place
    of a dict: the row needs :func:`recstats.cdr.record_from_fields` itself (too many
    fields, an empty ``id``, a time the zone cannot place).

    With ``columns=True``: ``(dicts, columns)``, ``columns`` the same values by column
    (see :meth:`TypedTables.add_columns`) when every row was typed in bulk, else
    ``None``."""
    done = _bulk_pass(rows, tz)
    dicts = _dicts(done, len(rows))
    if not columns:
        return dicts
    return dicts, done.columns()[0] if done is not None and done.complete else None


class _BulkPass:
    """The typed frame of the rows one vectorised pass could read."""

    def __init__(self, rows: list[Mapping[str, str]], fast: list[int], raw: pd.DataFrame,
                 frame: pd.DataFrame):
        self.fast, self.raw, self.frame = fast, raw, frame
        self.kept = frame.index.to_numpy()
        # a span over 2**53 us (about 285 years) divides inexactly in float64: such rows
        # take the per-record path, whose duration is the reference
        start = frame["start_time"].to_numpy(dtype="datetime64[us]").view("int64")
        end = frame["end_time"].to_numpy(dtype="datetime64[us]").view("int64")
        with np.errstate(over="ignore"):
            self.huge = (start != NAT) & (end != NAT) & (np.abs(end.astype(np.float64)
                                                                - start) >= 2.0 ** 53)
        self.complete = len(self.kept) == len(rows) and not self.huge.any()

    def rows(self, n: int) -> np.ndarray:
        """For each of the ``n`` rows given, its row in the typed frame (-1: refused,
        it needs :func:`recstats.cdr.record_from_fields` itself)."""
        row = np.full(n, -1, dtype=np.int64)
        fine = np.flatnonzero(~self.huge)
        row[np.asarray(self.fast, dtype=np.int64)[self.kept[fine]]] = fine
        return row

    def columns(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                               dict[str, np.ndarray]]:
        """``(values, present, unread)`` by column: values as int64 microseconds for
        times (:data:`NAT` for null), float64 for ``duration``, else objects (``None``
        for null); ``present`` the non-null masks; ``unread`` for booleans, the rows
        whose text was there but not a boolean."""
        values: dict[str, np.ndarray] = {}
        present: dict[str, np.ndarray] = {}
        unread: dict[str, np.ndarray] = {}
        for name in self.frame.columns:
            col = self.frame[name]
            if name in TIME_FIELDS:
                values[name] = col.to_numpy(dtype="datetime64[us]").view("int64")
                present[name] = values[name] != NAT
            elif name == "duration":
                values[name] = col.to_numpy(dtype=np.float64)
                present[name] = ~np.isnan(values[name])
            else:
                present[name] = col.notna().to_numpy()
                values[name] = np.where(present[name], col.to_numpy(dtype=object),
                                        np.array(None, dtype=object))
            if name in BOOLEAN_FIELDS:
                unread[name] = ~present[name] & self.raw[name].loc[self.kept].notna() \
                    .to_numpy()
        return values, present, unread


def _bulk_pass(rows: list[Mapping[str, str]], tz: str) -> _BulkPass | None:
    """One vectorised pass over ``rows`` (``None``: none of them could take it)."""
    fast = [pos for pos, row in enumerate(rows)
            if len(row) <= MAX_FIELDS and row.get("id", True)]
    if not fast:
        return None
    raw = pd.DataFrame.from_records([rows[pos] for pos in fast])
    if len(raw) < len(fast) or "id" not in raw.columns and "ccdr_id" not in raw.columns:
        return None  # no ids at all: nothing to type in bulk
    frame, _ = calls_from_raw(raw, tz=tz, coerce=False)
    return _BulkPass(rows, fast, raw, frame)


def _dicts(done: _BulkPass | None, n: int) -> list[dict[str, Any] | None]:
    """Each row's typed values as a dict (see :func:`typed_records`)."""
    out: list[dict[str, Any] | None] = [None] * n
    if done is None:
        return out
    values, present, unread = done.columns()
    dicts: list[dict[str, Any]] = [{} for _ in range(len(done.kept))]
    for name, column in values.items():
        listed = column.tolist()
        for i in np.flatnonzero(present[name]).tolist():
            dicts[i][name] = listed[i]
        if name in unread:  # read but not a boolean: the key, without a value
            for i in np.flatnonzero(unread[name]).tolist():
                dicts[i][name] = None
    for i, pos in enumerate(done.kept.tolist()):
        if not done.huge[i]:
            out[done.fast[pos]] = dicts[i]
    return out


def _record(fields: Mapping[str, str], tz: str) -> dict[str, Any]:
    try:
        return record_from_fields(fields, tz=tz)
    except CDRParseError:
        # times passed bad_time() on arrival but not the zone (e.g. year 9999 west of
        # UTC): the call is kept, without them
        return record_from_fields({k: v for k, v in fields.items() if k not in TIME_FIELDS},
                                  tz=tz)
