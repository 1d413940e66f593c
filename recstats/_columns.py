"""Typed columnar buffers behind the live events and calls tables.

:mod:`recstats._live` types the raw fields of the events that arrived since the last
snapshot (once each, in bulk) and adds them here: the events by whole columns
(:meth:`Columns.extend_columns`), the calls folded row by row; one Python list or
:mod:`array` per column; labels are interned as integer codes. A snapshot copies the
columns under the lock and converts each once, vectorised (NumPy views for times,
numbers and codes, Arrow for text), so a million events become a DataFrame in a
fraction of a second.
"""

from __future__ import annotations

import itertools
import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ._schema import BOOLEAN_FIELDS, CATEGORY_COLUMNS, TIME_FIELDS

__all__ = ["CALL_TAIL", "CHUNK", "EVENT_HEAD", "NAT", "Columns", "as_kind", "build", "codes",
           "is_null", "null_values", "set_rows"]

NAT = np.iinfo(np.int64).min  # numpy's NaT, as int64
_TIME, _FLOAT, _CAT, _BOOL, _FLAG, _STR = range(6)
_LABELS = frozenset(CATEGORY_COLUMNS) | {"server", "event", "origin"}
EVENT_HEAD = ("received_at", "site", "server", "event", "origin", "call_id")
CALL_TAIL = ("server", "end_unknown")


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
    """None, NaT, NA or a float NaN."""
    return value is None or value is pd.NaT or value is pd.NA or (
        isinstance(value, float) and math.isnan(value))


_Timestamp = pd.Timestamp


def _micros(value: Any) -> int:
    if value.__class__ is _Timestamp:
        try:
            return value.value // 1000  # .value is nanoseconds whatever the unit
        except OverflowError:  # beyond 1677-2262: read in its own unit
            return int(value.as_unit("us").asm8.view("i8"))
    if isinstance(value, int):
        return value
    if is_null(value):
        return NAT
    return pd.Timestamp(value).as_unit("us").value // 1000


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _text(value: Any) -> str | None:
    return None if is_null(value) else str(value)


def _truth(value: Any) -> bool | None:
    return None if is_null(value) else bool(value)


#: rows of text/boolean columns kept as Python objects before they become Arrow arrays
CHUNK = 65536
_ARROW_TYPES = {_STR: pa.large_string(), _BOOL: pa.bool_()}


class Columns:
    """A columnar table under construction: one list/array per column.

    Times, numbers, label codes and flags go to :mod:`array` buffers (8 or 4 bytes a
    value, read by NumPy without copying). Text and booleans go to Python lists; with
    ``chunked=True`` (append-only tables) every :data:`CHUNK` rows of them become an
    Arrow array, so a long capture holds compact buffers, not millions of Python
    objects, and a snapshot converts only the last, unfinished chunk. :meth:`take`
    copies the raw columns (call it under the owner's lock) and :func:`build` turns a
    copy into pandas columns with one vectorised conversion per column.
    """

    def __init__(self, names: Iterable[str] = (), chunked: bool = False,
                 skip: Iterable[str] = ()):
        self.n = 0
        self.chunked = chunked
        self.skip = frozenset(skip)  # names in the values that are not columns here
        self.frozen = 0  # rows of the object columns already in self.chunks
        self.cols: dict[str, Any] = {}
        self.kinds: dict[str, int] = {}
        self.labels: dict[str, dict[str, int]] = {}
        self.chunks: dict[str, list] = {}
        self.by_kind: dict[int, dict[str, Any]] = {k: {} for k in range(6)}
        for name in names:
            self._column(name)

    def _column(self, name: str):
        """The column ``name``, created full of nulls if new."""
        col = self.cols.get(name)
        if col is None:
            kind = self.kinds[name] = _kind(name)
            n = self.n
            if kind == _TIME:
                col = array("q", [NAT]) * n
            elif kind == _FLOAT:
                col = array("d", [math.nan]) * n
            elif kind == _CAT:
                col = array("i", [-1]) * n
                self.labels[name] = {}
            elif kind == _FLAG:
                col = array("b", [0]) * n
            else:
                col = [None] * (n - self.frozen)
                self.chunks[name] = [pa.nulls(self.frozen, _ARROW_TYPES[kind])] \
                    if self.frozen else []
            self.cols[name] = col
            self.by_kind[kind][name] = col
        return col

    def column(self, name: str):
        """The column ``name``, created full of nulls if new."""
        return self._column(name)

    def append(self, values: Mapping[str, Any]) -> int:
        """Add a row holding ``values``; return its position."""
        for name in values.keys() - self.cols.keys() - self.skip:
            self._column(name)
        get = values.get
        by_kind = self.by_kind
        for name, col in by_kind[_STR].items():
            v = get(name)
            col.append(v if v is None or v.__class__ is str else _text(v))
        for name, col in by_kind[_TIME].items():
            v = get(name)
            col.append(NAT if v is None else _micros(v))
        for name, col in by_kind[_CAT].items():
            v = get(name)
            if v is None:
                col.append(-1)
                continue
            if v.__class__ is not str:
                v = _text(v)
                if v is None:
                    col.append(-1)
                    continue
            labels = self.labels[name]
            code = labels.get(v)
            if code is None:
                code = labels[v] = len(labels)
            col.append(code)
        for name, col in by_kind[_FLOAT].items():
            v = get(name)
            col.append(math.nan if v is None else _float(v))
        for name, col in by_kind[_BOOL].items():
            v = get(name)
            col.append(v if v is None or v.__class__ is bool else _truth(v))
        for name, col in by_kind[_FLAG].items():
            col.append(1 if get(name) else 0)
        row = self.n
        self.n += 1
        if self.chunked and self.n - self.frozen >= CHUNK:
            self._freeze()
        return row

    def extend(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Add ``rows`` at the end, as many :meth:`append` calls would (same columns,
        values and chunks)."""
        names: dict[str, None] = {}
        for values in rows:
            names.update(dict.fromkeys(values))
        self.extend_columns(len(rows), {name: [values.get(name) for values in rows]
                                        for name in names})

    def extend_columns(self, n: int, columns: Mapping[str, Any]) -> None:
        """Add ``n`` rows given by column, as :meth:`extend` of the same rows would: each
        value a list of ``n`` typed values (``None`` for null) or, for times and
        numbers, a NumPy array (:data:`NAT` / NaN for null); absent columns get nulls."""
        for name in columns.keys() - self.cols.keys() - self.skip:
            self._column(name)
        begin = 0
        while begin < n:
            stop = n if not self.chunked else min(n, begin + CHUNK - (self.n - self.frozen))
            self._extend_columns(columns, begin, stop)
            begin = stop
            if self.chunked and self.n - self.frozen >= CHUNK:
                self._freeze()

    def _extend_columns(self, columns: Mapping[str, Any], begin: int, stop: int) -> None:
        m = stop - begin
        for kind, group in self.by_kind.items():
            for name, col in group.items():
                values = columns.get(name)
                if values is None:
                    col.extend(_NULLS[kind] * m)
                    continue
                part = values[begin:stop]
                if kind in (_TIME, _FLOAT) and isinstance(part, np.ndarray):
                    col.frombytes(part.astype(_DTYPES[col.typecode]).tobytes())
                elif kind == _TIME:
                    col.extend(array("q", [NAT if v is None else v if v.__class__ is int
                                           else _micros(v) for v in part]))
                elif kind == _FLOAT:
                    col.extend(array("d", [math.nan if v is None else _float(v)
                                           for v in part]))
                elif kind == _CAT:
                    col.extend(_label_codes(self.labels[name], part))
                elif kind == _FLAG:
                    col.extend(array("b", [1 if v else 0 for v in part]))
                elif kind == _STR:
                    col.extend([v if v is None or v.__class__ is str else _text(v)
                                for v in part])
                else:
                    col.extend([v if v is None or v.__class__ is bool else _truth(v)
                                for v in part])
        self.n += m

    def _freeze(self) -> None:
        for kind in (_STR, _BOOL):
            for name, col in self.by_kind[kind].items():
                self.chunks[name].append(pa.array(col, type=_ARROW_TYPES[kind]))
                col.clear()
        self.frozen = self.n

    def update(self, row: int, values: Mapping[str, Any]) -> None:
        """Overwrite ``row``'s columns with the non-null ``values`` (unchunked tables)."""
        for name, value in values.items():
            if is_null(value) or name in self.skip:
                continue
            col = self.cols.get(name)
            if col is None:
                col = self._column(name)
            kind = self.kinds[name]
            if kind == _TIME:
                col[row] = _micros(value)
            elif kind == _FLOAT:
                col[row] = _float(value)
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
                col[row] = value if value.__class__ is str else str(value)

    def take(self, stop: int | None = None, rows: np.ndarray | None = None) -> tuple:
        """A private copy of the raw columns (of the first ``stop`` rows, or of the
        ``rows`` given by position in an unchunked table), safe to convert outside the
        lock."""
        n = self.n if stop is None else stop
        if rows is not None:
            n = len(rows)
        cols: dict[str, Any] = {}
        for name, col in self.cols.items():
            chunks = self.chunks.get(name)
            if rows is not None:
                if chunks is None:
                    cols[name] = array(col.typecode, _numpy(col)[rows].tobytes())
                else:
                    cols[name] = ([], [col[i] for i in rows.tolist()])
            elif chunks is None:
                cols[name] = col[:n]
            elif n <= self.frozen:
                whole = pa.chunked_array(chunks, type=_ARROW_TYPES[self.kinds[name]])
                cols[name] = (whole.slice(0, n).chunks, [])
            else:
                cols[name] = (list(chunks), col[:n - self.frozen])
        return (n, cols, dict(self.kinds),
                {name: list(labels) for name, labels in self.labels.items()})

    def drop_prefix(self, count: int) -> None:
        """Forget the first ``count`` rows (their memory is freed)."""
        if count <= 0:
            return
        for name, col in self.cols.items():
            chunks = self.chunks.get(name)
            if chunks is None:
                del col[:count]
            elif count <= self.frozen:
                whole = pa.chunked_array(chunks, type=_ARROW_TYPES[self.kinds[name]])
                rest = whole.slice(count)  # copied: a slice would keep the old buffers
                self.chunks[name] = [pa.concat_arrays(rest.chunks)] if len(rest) else []
            else:
                self.chunks[name] = []
                del col[:count - self.frozen]
        self.frozen = max(self.frozen - count, 0)
        self.n -= count

    def keep(self, mask: np.ndarray) -> None:
        """Keep only the rows where ``mask`` is true (unchunked tables)."""
        for col in self.cols.values():
            if isinstance(col, list):
                col[:] = itertools.compress(col, mask.tolist())
            else:
                col[:] = array(col.typecode, _numpy(col)[mask].tobytes())
        self.n = int(mask.sum())


_DTYPES = {"q": np.int64, "d": np.float64, "i": np.int32, "b": np.int8}
_NULLS: dict[int, Any] = {_TIME: array("q", [NAT]), _FLOAT: array("d", [math.nan]), _CAT: array("i", [-1]),
          _FLAG: array("b", [0]), _STR: [None], _BOOL: [None]}


def null_values(kind: int, n: int) -> np.ndarray:
    """``n`` nulls of a column kind, as :meth:`Columns.extend_columns` takes them."""
    if kind == _TIME:
        return np.full(n, NAT, dtype=np.int64)
    if kind == _FLOAT:
        return np.full(n, np.nan)
    return np.full(n, None, dtype=object)


def as_kind(kind: int, values: np.ndarray) -> np.ndarray:
    """Non-null typed ``values`` for a column kind: int64 microseconds for times,
    float64 for numbers; other kinds as they are."""
    if kind == _TIME and values.dtype != np.int64:
        return np.array([_micros(v) for v in values], dtype=np.int64)
    if kind == _FLOAT and values.dtype != np.float64:
        return np.array([_float(v) for v in values], dtype=np.float64)
    return values


def set_rows(table: Columns, name: str, rows: np.ndarray, values: np.ndarray) -> None:
    """Overwrite column ``name`` at ``rows`` with non-null ``values``, converted as
    :meth:`Columns.update` converts them (an unchunked table's existing column)."""
    kind, col = table.kinds[name], table.cols[name]
    if kind in (_TIME, _FLOAT):
        view = _numpy(col)
        view[rows] = as_kind(kind, values)
    elif kind == _CAT:
        view = _numpy(col)
        view[rows] = _numpy(_label_codes(table.labels[name], values.tolist()))
    elif kind == _FLAG:
        view = _numpy(col)
        view[rows] = [1 if v else 0 for v in values.tolist()]
    elif kind == _BOOL:
        for row, value in zip(rows.tolist(), values.tolist(), strict=True):
            col[row] = bool(value)
    else:
        for row, value in zip(rows.tolist(), values.tolist(), strict=True):
            col[row] = value if value.__class__ is str else str(value)


def _label_codes(labels: dict[str, int], values: Iterable[Any]) -> array:
    """The codes of ``values`` as text in a category column's ``labels`` (new texts get
    the next codes; null is -1)."""
    codes = array("i")
    for v in values:
        if v is not None and v.__class__ is not str:
            v = _text(v)
        if v is None:
            codes.append(-1)
            continue
        code = labels.get(v)
        if code is None:
            code = labels[v] = len(labels)
        codes.append(code)
    return codes


def _numpy(col: array) -> np.ndarray:
    """A NumPy view of an :mod:`array` buffer (no copy)."""
    return np.frombuffer(col, dtype=_DTYPES[col.typecode])


def _ranks(labels: list[str]) -> tuple[np.ndarray, list[str]]:
    """Codes in order of first appearance -> codes in sorted order (and the sorted labels)."""
    order = sorted(range(len(labels)), key=labels.__getitem__)
    remap = np.empty(len(labels) + 1, dtype=np.int32)
    remap[np.asarray(order, dtype=np.int64)] = np.arange(len(labels), dtype=np.int32)
    remap[-1] = -1  # code -1 (missing) indexes the last slot
    return remap, [labels[i] for i in order]


def codes(raw, labels: list[str]) -> tuple[np.ndarray, list[str]]:
    remap, sorted_labels = _ranks(labels)
    return remap[np.frombuffer(raw, dtype=np.int32)], sorted_labels


def build(copy, order: np.ndarray | None) -> dict[str, Any]:
    """Raw columns (from :meth:`Columns.take`) -> pandas arrays, rows in ``order``."""
    n, cols, kinds, labels = copy
    out: dict[str, Any] = {}
    for name, col in cols.items():
        kind = kinds[name]
        if kind in (_TIME, _FLOAT, _CAT, _FLAG):
            values = np.frombuffer(col, dtype={_TIME: np.int64, _FLOAT: np.float64,
                                               _CAT: np.int32, _FLAG: np.int8}[kind])
            if kind == _CAT:
                values, names = codes(col, labels[name])
            if order is not None:
                values = values[order]
            if kind == _TIME:
                stamps = values.view("M8[us]") if n else np.empty(0, "M8[us]")
                out[name] = pd.DatetimeIndex(stamps).tz_localize("UTC").array
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
                # no label at all: object categories, as recstats.coerce_calls gives
                out[name] = pd.Categorical.from_codes(values, dtype=pd.CategoricalDtype(
                    pd.Index(names, dtype="str" if names else object)))
        else:
            chunks, tail = col
            values = pa.chunked_array([*chunks, pa.array(tail, type=_ARROW_TYPES[kind])],
                                      type=_ARROW_TYPES[kind])
            if order is not None:
                values = values.take(pa.array(order))
            if kind == _BOOL:
                out[name] = pd.array(values.to_numpy(zero_copy_only=False), dtype="boolean")
            else:
                out[name] = pd.array(values, dtype="str")
    return out


