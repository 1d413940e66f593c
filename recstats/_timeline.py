"""The step-function core shared by :mod:`recstats.stats` and :mod:`recstats._busyhour`.

Private: times as int64 microseconds since the epoch, a calls table's intervals, the
exact concurrency step function and its integral. The definitions are stated in
:mod:`recstats.stats`.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

_US_PER_S = 1_000_000
_US_PER_HOUR = 3600 * _US_PER_S
_NAT = np.iinfo("int64").min
_LITTLE = sys.byteorder == "little"


def _require(calls: pd.DataFrame, *columns: str) -> None:
    if not isinstance(calls, pd.DataFrame):
        raise TypeError(f"expected a calls table (pandas DataFrame), got "
                        f"{type(calls).__name__}; build one with recstats.read_archive or "
                        "recstats.calls_frame")
    missing = [c for c in columns if c not in calls.columns]
    if missing:
        raise ValueError(f"the calls table has no {', '.join(missing)} column(s); "
                         "pass a table with the recstats calls schema "
                         "(recstats.coerce_calls builds one)")


def _micros(values: pd.Series) -> np.ndarray:
    """A time column -> int64 microseconds since the epoch (NaT -> int64 min).

    For the schema's ``datetime64[us, UTC]`` this is a read-only view, not a copy;
    other zones are the same instants, naive times are taken as UTC, text is parsed.
    """
    if not isinstance(values.dtype, pd.DatetimeTZDtype):
        values = pd.to_datetime(values, utc=True)
    return values.array.as_unit("us").asi8


def _timestamp_us(moment) -> int:
    ts = pd.Timestamp(moment)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1000)


def _to_times(micros: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(np.asarray(micros, dtype="int64").view("M8[us]")).tz_localize(
        "UTC")


def _intervals(calls: pd.DataFrame, until=None) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) in microseconds for every call with a start time.

    Ongoing calls (no end) end at ``until`` (see :func:`_until_us`). Ends before starts
    (corrupt data) stay as they are: like zero-length calls they count nowhere.
    """
    _require(calls, "start_time", "end_time")
    start = _micros(calls["start_time"])
    end = _end_micros(calls, start)
    keep = start != _NAT
    if not keep.all():
        start, end = start[keep], end[keep]
    ongoing = end == _NAT
    if ongoing.any():
        end = np.where(ongoing, _until_us(until, start, end), end)
    return start, end


def _end_micros(calls: pd.DataFrame, start: np.ndarray) -> np.ndarray:
    """``end_time`` in microseconds; a capture's calls whose end was lost while it was
    away (``end_unknown``) end at their start: how long they lasted is unknown, so they
    count nowhere -- as ongoing they would stay in progress for ever."""
    end = _micros(calls["end_time"])
    if "end_unknown" in calls.columns:
        lost = _flags(calls["end_unknown"]) & (end == _NAT)
        if lost.any():
            end = np.where(lost, start, end)
    return end


def _flags(values: pd.Series) -> np.ndarray:
    """A flag column as booleans: bool/numeric as is, text (as after coerce_calls or a
    CSV) by its meaning -- ``"False"`` is false; missing is false."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=bool, na_value=False)
    text = values.astype("str").str.strip().str.lower()
    return text.isin(["true", "1", "yes"]).to_numpy(dtype=bool)


def _until_us(until, start: np.ndarray, end: np.ndarray) -> int:
    """Where ongoing calls stop counting: ``until``, by default now or, if later, the
    latest start or end in the table -- a server clock ahead of ours, or a simulator
    running faster than real time, must not make ongoing calls count nowhere."""
    if until is not None:
        return _timestamp_us(until)
    latest = max((int(a[a != _NAT].max()) for a in (start, end) if (a != _NAT).any()),
                 default=_NAT)
    return max(_timestamp_us(pd.Timestamp.now("UTC")), latest)


def _step(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exact concurrency step function: (change times, value from each change on).

    One in-place sort of 2N int64 keys ``time << 1 | is_start`` replaces the argsort of
    the ±1 events (several times faster, no index array); at equal times ends sort
    first, and only the last event of each instant is kept, so ties resolve to the
    value after the instant; instants where the value does not change are dropped --
    which is also why zero-length calls need no filtering: their +1 and -1 cancel.
    Big temporaries are few because fresh memory is what costs most at 10 M calls.
    (Times beyond year ±146 000 would overflow the shift.)
    """
    if start.size == 0:
        return np.empty(0, "int64"), np.empty(0, "int64")
    if (end < start).any():  # corrupt: make them zero-length, which count nowhere
        end = np.maximum(end, start)
    n = start.size
    keys = np.empty(2 * n, dtype="int64")
    np.left_shift(start, 1, out=keys[:n])
    np.left_shift(end, 1, out=keys[n:])
    keys[:n] |= 1
    keys.sort()
    low = keys.view(np.uint8)[(0 if _LITTLE else 7)::8]  # the byte holding is_start
    delta = np.bitwise_and(low, 1).view(np.int8)
    delta <<= 1
    delta -= 1
    level = np.cumsum(delta, dtype="int32")  # concurrency never nears 2**31
    del delta
    keys >>= 1
    times = keys
    keep = np.empty(times.size, dtype=bool)
    np.not_equal(times[1:], times[:-1], out=keep[:-1])
    keep[-1] = True
    idx = np.flatnonzero(keep)  # integer takes beat repeated boolean masks
    ends = level[idx]
    changed = np.empty(ends.size, dtype=bool)
    changed[0] = ends[0] != 0
    np.not_equal(ends[1:], ends[:-1], out=changed[1:])
    if not changed.all():
        idx, ends = idx[changed], ends[changed]
    return times[idx], ends.astype("int64")


def _area(times: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Integral of the step function (call-microseconds) up to each change time."""
    area = np.zeros(times.size, dtype="int64")
    if times.size > 1:
        np.cumsum(level[:-1] * np.diff(times), out=area[1:])
    return area


def _integral_at(times, level, area, at: np.ndarray) -> np.ndarray:
    """Integral of the step function from -inf up to each instant of ``at``."""
    if times.size == 0:
        return np.zeros(np.shape(at), dtype="int64")
    j = np.searchsorted(times, at, side="right") - 1
    safe = np.maximum(j, 0)
    return np.where(j >= 0, area[safe] + level[safe] * (at - times[safe]), 0)


def _value_at(times, level, at: np.ndarray) -> np.ndarray:
    j = np.searchsorted(times, at, side="right") - 1
    if times.size == 0:
        return np.zeros(np.shape(at), dtype="int64")
    return np.where(j >= 0, level[np.maximum(j, 0)], 0)


def _group_codes(calls: pd.DataFrame, by: str):
    """Group number of each call with a start time, and the sorted group labels.

    Calls whose label is missing get -1 and fall in no group (as in ``groupby``).
    """
    if by not in calls.columns:
        raise ValueError(f"cannot group by {by!r}: the calls table has no such column "
                         f"(columns: {', '.join(map(str, calls.columns))})")
    values = calls[by][calls["start_time"].notna().to_numpy()]
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.cat.remove_unused_categories()
    codes, uniques = pd.factorize(values, sort=True)
    if isinstance(uniques, pd.Categorical):
        uniques = pd.CategoricalIndex(uniques, name=by)
    return codes, pd.Index(uniques, name=by)
