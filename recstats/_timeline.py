"""The step-function core shared by the statistics modules.

Private: times as int64 microseconds since the epoch, the exact concurrency step
function, its integral, and the same function restricted to observed time. The
definitions are stated in :mod:`recstats.stats`. Names here are un-prefixed because
the sibling modules import them.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

US_PER_S = 1_000_000
US_PER_HOUR = 3600 * US_PER_S
NAT = np.iinfo("int64").min
_LITTLE = sys.byteorder == "little"


def require(calls: pd.DataFrame, *columns: str) -> None:
    """TypeError for anything but a DataFrame, ValueError naming missing columns."""
    if not isinstance(calls, pd.DataFrame):
        raise TypeError(f"expected a calls table (pandas DataFrame), got "
                        f"{type(calls).__name__}; build one with recstats.read_archive or "
                        "recstats.calls_frame")
    missing = [c for c in columns if c not in calls.columns]
    if missing:
        raise ValueError(f"the calls table has no {', '.join(missing)} column(s); "
                         "pass a table with the recstats calls schema "
                         "(recstats.coerce_calls builds one)")


def micros(values: pd.Series) -> np.ndarray:
    """A time column -> int64 microseconds since the epoch (NaT -> int64 min).

    For the schema's ``datetime64[us, UTC]`` this is a read-only view, not a copy;
    other zones are the same instants, naive times are taken as UTC, text is parsed.
    """
    if not isinstance(values.dtype, pd.DatetimeTZDtype):
        values = pd.to_datetime(values, utc=True)
    return values.array.as_unit("us").asi8


def to_times(values: np.ndarray) -> pd.DatetimeIndex:
    """int64 microseconds -> a UTC DatetimeIndex."""
    return pd.DatetimeIndex(np.asarray(values, dtype="int64").view("M8[us]")).tz_localize(
        "UTC")


def flags(values: pd.Series) -> np.ndarray:
    """A flag column as booleans: bool/numeric as is, text (as after coerce_calls or a
    CSV) by its meaning -- ``"False"`` is false; missing is false."""
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return values.to_numpy(dtype=bool, na_value=False)
    text = values.astype("str").str.strip().str.lower()
    return text.isin(["true", "1", "yes"]).to_numpy(dtype=bool)


def step(start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def _changes(times: np.ndarray, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep only the instants where the value changes (the first if it is not 0)."""
    if times.size == 0:
        return times, level
    changed = np.empty(level.size, dtype=bool)
    changed[0] = level[0] != 0
    np.not_equal(level[1:], level[:-1], out=changed[1:])
    if not changed.all():
        times, level = times[changed], level[changed]
    return times, level


def observe(times: np.ndarray, level: np.ndarray,
            observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The step function times the indicator of ``observed`` (k x 2 sorted disjoint
    [start, end) intervals): 0 wherever nothing was observed, exact elsewhere.

    The interval bounds (few) are inserted into the change times (many) in one pass,
    so the cost stays linear; a function already inside one interval is returned as is.
    """
    if times.size == 0:
        return times, level
    if observed.shape[0] == 1 and observed[0, 0] <= times[0] and times[-1] <= observed[0, 1]:
        return times, level
    bounds = observed.ravel()
    at = np.searchsorted(times, bounds, side="right")
    carried = np.where(at > 0, level[np.maximum(at - 1, 0)], 0)
    times = np.insert(times, at, bounds)
    level = np.insert(level, at, carried)
    inside = inside_mask(observed, times)
    level = np.where(inside, level, 0)
    last = np.empty(times.size, dtype=bool)  # an inserted bound may repeat a change time
    np.not_equal(times[1:], times[:-1], out=last[:-1])
    last[-1] = True
    return _changes(times[last], level[last])


def inside_mask(observed: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Which instants of ``at`` lie inside one of the ``observed`` intervals."""
    if observed.shape[0] == 0:
        return np.zeros(np.shape(at), dtype=bool)
    j = np.searchsorted(observed[:, 0], at, side="right") - 1
    safe = np.maximum(j, 0)
    return (j >= 0) & (at < observed[safe, 1])


def area(times: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Integral of the step function (call-microseconds) up to each change time."""
    out = np.zeros(times.size, dtype="int64")
    if times.size > 1:
        np.cumsum(level[:-1] * np.diff(times), out=out[1:])
    return out


def integral_at(times, level, at: np.ndarray) -> np.ndarray:
    """Integral of the step function from -inf up to each instant of ``at``."""
    if times.size == 0:
        return np.zeros(np.shape(at), dtype="int64")
    cumulative = area(times, level)
    j = np.searchsorted(times, at, side="right") - 1
    safe = np.maximum(j, 0)
    return np.where(j >= 0, cumulative[safe] + level[safe] * (at - times[safe]), 0)


def observed_at(observed: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Observed time (µs) from -inf up to each instant of ``at``."""
    k = observed.shape[0]
    times = observed.ravel()
    level = np.tile(np.array([1, 0], dtype="int64"), k)
    return integral_at(times, level, np.asarray(at, dtype="int64"))


def value_at(times, level, at: np.ndarray) -> np.ndarray:
    """Value of the step function at each instant of ``at`` (0 before the first change)."""
    if times.size == 0:
        return np.zeros(np.shape(at), dtype="int64")
    j = np.searchsorted(times, at, side="right") - 1
    return np.where(j >= 0, level[np.maximum(j, 0)], 0)


def peak_between(times, level, edges: np.ndarray, width: int | None = None) -> np.ndarray:
    """Maximum of the step function in each [edges[i], edges[i+1]) (int64); ``width``
    says the edges are evenly spaced (a division then finds each change's bin)."""
    peak = value_at(times, level, edges[:-1])  # the value carried into each bin
    if times.size and edges.size > 1:
        a, b = np.searchsorted(times, edges[[0, -1]])
        t_in, v_in = times[a:b], level[a:b]
        if t_in.size:
            bin_of = ((t_in - edges[0]) // width if width else
                      np.searchsorted(edges, t_in, side="right") - 1)
            seg = np.flatnonzero(np.r_[True, bin_of[1:] != bin_of[:-1]])
            peak[bin_of[seg]] = np.maximum(peak[bin_of[seg]],
                                           np.maximum.reduceat(v_in, seg))
    return peak


def group_codes(calls: pd.DataFrame, by: str, rows: np.ndarray | slice):
    """Group number of each of the ``rows`` (positions), and the sorted group labels.

    Rows whose label is missing get -1 and fall in no group (as in ``groupby``).
    """
    if not isinstance(by, str) or by not in calls.columns:
        raise ValueError(f"cannot group by {by!r}: the calls table has no such column "
                         f"(columns: {', '.join(map(str, calls.columns))})")
    values = calls[by].iloc[rows]
    if isinstance(values.dtype, pd.CategoricalDtype):
        # unused categories dropped with a bincount: remove_unused_categories sorts
        # every code, the slowest step of by= on millions of calls
        cat = values.array
        codes = np.asarray(cat.codes, dtype="int64")
        used = np.bincount(codes[codes >= 0], minlength=len(cat.categories)) > 0
        renumber = np.r_[np.cumsum(used) - 1, -1]  # code -1 (missing) stays -1
        codes = renumber[codes]
        dtype = pd.CategoricalDtype(cat.categories[used], ordered=cat.ordered)
        labels = pd.Categorical.from_codes(np.arange(int(used.sum())), dtype=dtype)
        return codes, pd.CategoricalIndex(labels, name=by)
    codes, uniques = pd.factorize(values, sort=True)
    return codes, pd.Index(uniques, name=by)
