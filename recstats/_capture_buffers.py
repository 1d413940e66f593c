"""Columnar buffers behind :class:`recstats.Capture`'s events and calls tables.

Rows are appended value by value into one Python list or :mod:`array` per column (no
per-event DataFrame work); labels are interned as integer codes. A snapshot copies the
raw columns under the lock and converts each once, vectorised (NumPy views for times,
numbers and codes, Arrow for text), so a million events become a DataFrame in a
fraction of a second. Private to :mod:`recstats.capture`.
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .cdr import BOOLEAN_FIELDS, CALL_COLUMNS, CATEGORY_COLUMNS, TIME_FIELDS

__all__ = ["Tables", "is_null"]

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


def is_null(value: Any) -> bool:
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
            if is_null(value):
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


class Tables:
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
        if is_null(site):  # the call's site as known so far, else the server
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
