"""Binned concurrency of a Dask calls table without collecting its calls.

Each partition is summarised with the local functions of :mod:`recstats.stats`, so the
definitions are theirs (``[start, end)``, zero-length calls count nowhere, calls without
a start are ignored, ongoing calls count until ``until``, ``end_unknown`` calls are
zero-length):

* the time-weighted area of the step function per bin (call-microseconds, exact
  integers) and the calls started per bin add up across partitions;
* the peak does not: each partition's exact step function becomes change events
  (time, +/-n), shuffled so that every (group, bin) lands in one partition, where the
  events of an instant are summed and each bin gives its net change, the maximum of
  its running sum, and whether it changes at its very start. The driver then scans the
  small series of bins: the level carried into a bin is the sum of the earlier nets.

Only per-bin rows ever reach the driver. ``ALL`` is the group of every call.
"""

from __future__ import annotations

import datetime as _dt

import numpy as np
import pandas as pd

from . import stats

ALL = "\x00all"
QUARTER = 15 * 60 * 1_000_000  # [us]
EVENTS_META = pd.DataFrame({"key": pd.Series([], dtype="int64"),
                            "bin": pd.Series([], dtype="int64"),
                            "time": pd.Series([], dtype="int64"),
                            "delta": pd.Series([], dtype="int64")})
AREAS_META = pd.DataFrame({"group": pd.Series([], dtype="str"),
                           "bin": pd.Series([], dtype="int64"),
                           "area": pd.Series([], dtype="int64"),
                           "started": pd.Series([], dtype="int64")})
PEAKS_META = pd.DataFrame({"key": pd.Series([], dtype="int64"),
                           "bin": pd.Series([], dtype="int64"),
                           "net": pd.Series([], dtype="int64"),
                           "top": pd.Series([], dtype="int64"),
                           "opens": pd.Series([], dtype="bool"),
                           "first": pd.Series([], dtype="int64"),
                           "last": pd.Series([], dtype="int64")})


def micros(times) -> np.ndarray:
    return pd.DatetimeIndex(times).as_unit("us").asi8


def group_keys(labels) -> np.ndarray:
    """A group label's int64 key, the same in every process (events are shuffled and
    summed by integer keys: strings made that several times slower)."""
    hashed = pd.util.hash_array(np.asarray(labels, dtype=object))
    return hashed.view("int64")


def partition_events(part: pd.DataFrame, until, width: int, by: str | None) -> pd.DataFrame:
    """Change events (key, bin, time, delta) of the partition's step functions."""
    exact = stats.concurrency(part, until=until)
    time = micros(exact["time"])
    level = exact["concurrent"].to_numpy("int64")
    keys = [np.full(time.size, group_keys([ALL])[0])]
    times, deltas = [time], [np.diff(level, prepend=0)]
    if by is not None:
        exact = stats.concurrency(part, by=by, until=until)
        column = exact[by]
        if isinstance(column.dtype, pd.CategoricalDtype):  # no per-row strings
            codes = column.cat.codes.to_numpy()
            labels = column.cat.categories.astype("str")
        else:
            codes, labels = pd.factorize(column.astype("str"))
        time = micros(exact["time"])
        level = exact["concurrent"].to_numpy("int64")
        # each group's block starts from 0
        opens = np.r_[True, codes[1:] != codes[:-1]] if codes.size else np.empty(0, bool)
        keys.append(group_keys(labels)[codes] if codes.size else np.empty(0, "int64"))
        times.append(time)
        deltas.append(np.where(opens, level, np.diff(level, prepend=0)))
    time = np.concatenate(times)
    return pd.DataFrame({"key": np.concatenate(keys), "bin": time // width, "time": time,
                         "delta": np.concatenate(deltas)})


def partition_areas(part: pd.DataFrame, until, width: int, by: str | None) -> pd.DataFrame:
    """Per (group, bin): area [call-us] and calls started, over the partition's span."""
    freq = f"{width}us"
    pieces: list[tuple] = [(None, stats.concurrency(part, freq=freq, until=until))]
    if by is not None:
        binned = stats.concurrency(part, freq=freq, by=by, until=until)
        pieces.append((binned.index.get_level_values(by).astype("str"),
                       binned.droplevel(by)))
    frames = []
    for labels, binned in pieces:
        if labels is None:
            labels = np.full(len(binned), ALL, dtype=object)
        frames.append(pd.DataFrame({
            "group": pd.Series(np.asarray(labels, dtype=object), dtype="str"),
            "bin": micros(binned.index) // width,
            # mean = exact integer area / width: the product rounds back to it
            "area": np.rint(binned["mean"].to_numpy() * width).astype("int64"),
            "started": binned["started"].to_numpy("int64")}))
    return pd.concat(frames, ignore_index=True)


def bin_peaks(events: pd.DataFrame, width: int) -> pd.DataFrame:
    """Per (key, bin) of events all in this partition: net change, maximum running
    sum (after each instant), whether an instant opens the bin, first/last instant."""
    if events.empty:
        return PEAKS_META.copy()
    key, time, delta = (events[c].to_numpy("int64") for c in ("key", "time", "delta"))
    order = np.lexsort((time, key))
    key, time, delta = key[order], time[order], delta[order]
    # the events of one instant (from several partitions) count as one change
    at = np.flatnonzero(np.r_[True, (key[1:] != key[:-1]) | (time[1:] != time[:-1])])
    key, time, delta = key[at], time[at], np.add.reduceat(delta, at)
    bins = time // width
    seg = np.flatnonzero(np.r_[True, (key[1:] != key[:-1]) | (bins[1:] != bins[:-1])])
    total = np.cumsum(delta)
    before = np.r_[0, total][seg]  # running sum before each (key, bin) segment
    prefix = total - np.repeat(before, np.diff(np.r_[seg, total.size]))
    last = np.r_[seg[1:], total.size] - 1
    return pd.DataFrame({"key": key[seg], "bin": bins[seg],
                         "net": np.add.reduceat(delta, seg),
                         "top": np.maximum.reduceat(prefix, seg),
                         "opens": time[seg] == bins[seg] * width,
                         "first": time[seg], "last": time[last]})


def until_value(until, latest_start, latest_end, now: pd.Timestamp):
    """The ``until`` of :func:`recstats.stats.concurrency` for the whole table: one
    value for every partition, whose own latest times differ."""
    if until is not None:
        return until
    moments = [now] + [pd.Timestamp(t) for t in (latest_start, latest_end)
                                           if not pd.isna(t)]
    return max(moments)


def scan(areas: pd.DataFrame, peaks: pd.DataFrame, group: str, lo: int, hi: int,
         width: int) -> dict[str, np.ndarray]:
    """peak/mean/started of ``group`` on bins ``lo..hi`` from the per-bin summaries."""
    n = hi - lo + 1
    a = areas[(areas["group"] == group) & areas["bin"].between(lo, hi)]
    area_int = np.zeros(n, dtype="int64")
    np.add.at(area_int, (a["bin"] - lo).to_numpy(), a["area"].to_numpy())
    started = np.zeros(n, dtype="int64")
    np.add.at(started, (a["bin"] - lo).to_numpy(), a["started"].to_numpy())
    p = peaks[(peaks["key"] == group_keys([group])[0]) & (peaks["bin"] <= hi)]
    net = np.zeros(n, dtype="int64")
    top = np.full(n, np.iinfo("int64").min)
    opens = np.zeros(n, dtype=bool)
    # no event precedes the first bin: lo is at or before the first activity
    at = (p["bin"] - lo).to_numpy()
    net[at], top[at], opens[at] = p["net"], p["top"], p["opens"]
    carried = np.cumsum(net) - net
    inside = np.where(top == np.iinfo("int64").min, top, carried + top)
    peak = np.maximum(inside, np.where(opens, np.iinfo("int64").min, carried))
    return {"peak": peak.astype("int64"), "mean": area_int.astype("float64") / width,
            "started": started}


def day_start_us(day: _dt.date, tz: str) -> int:
    # midnight may not exist (or exist twice) in a few zones: take the earliest instant
    ts = pd.Timestamp(day).tz_localize(tz, nonexistent="shift_forward", ambiguous=True)
    return int(ts.value // 1000)  # .value is in ns whatever the unit


def local_days(first_us: int, last_us: int, tz: str) -> tuple[_dt.date, _dt.date, int, int]:
    """Local dates of two instants and the UTC bounds of those whole local days."""
    local = pd.DatetimeIndex(np.array([first_us, last_us], dtype="int64").view("M8[us]")
                             ).tz_localize("UTC").tz_convert(tz)
    first, last = local[0].date(), local[1].date()
    return first, last, day_start_us(first, tz), \
        day_start_us(last + _dt.timedelta(days=1), tz)


def hourly(quarters: np.ndarray, q_lo: int, first_us: int, last_us: int, tz: str):
    """Carried erlangs per local date and clock hour, from quarter-hour areas
    (``quarters[k]`` = area of epoch quarter ``q_lo + k``), as the local busy hour
    computes them: (dates, ndays x 24 array)."""
    first, last, lo, hi = local_days(first_us, last_us, tz)
    if lo % QUARTER or hi % QUARTER:
        raise ValueError(f"time zone {tz} has an offset that is not a whole number of "
                         "quarter hours; compute the busy hour locally")
    grid = np.arange(lo, hi + 1, QUARTER, dtype="int64")
    k = grid[:-1] // QUARTER - q_lo
    valid = (k >= 0) & (k < quarters.size)
    area = np.where(valid, quarters[np.clip(k, 0, max(quarters.size - 1, 0))], 0) \
        if quarters.size else np.zeros(k.size)
    area = area.astype("float64")
    wall = pd.DatetimeIndex(grid[:-1].view("M8[us]")).tz_localize("UTC").tz_convert(tz) \
        .tz_localize(None).as_unit("us").asi8
    day0 = (first - _dt.date(1970, 1, 1)).days
    slot = (wall // (86400 * 1_000_000) - day0) * 24 + (wall // 3_600_000_000) % 24
    ndays = (last - first).days + 1
    total = np.bincount(slot, weights=area, minlength=ndays * 24)
    length = np.bincount(slot, weights=np.diff(grid).astype("float64"), minlength=ndays * 24)
    with np.errstate(invalid="ignore", divide="ignore"):
        table = np.where(length > 0, total / length, np.nan).reshape(ndays, 24)
    return [first + _dt.timedelta(days=d) for d in range(ndays)], table


def nanmean(table: np.ndarray) -> np.ndarray:
    count = (~np.isnan(table)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.nansum(table, axis=0) / count, np.nan)
