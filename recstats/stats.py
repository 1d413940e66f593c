"""Pure functions on the calls table: concurrency, busy hour, extensions, capacity.

Every function takes a calls table (see :data:`recstats.cdr.CALL_COLUMNS`; only the
columns a function needs must be present) and returns new pandas objects; nothing here
plots, reads or writes. Times are handled as int64 microseconds since the epoch, so the
work is vectorised NumPy whatever the table's size.

Definitions used throughout:

* A call is *in progress* over the half-open interval ``[start_time, end_time)``: a call
  ending at ``t`` and another starting at ``t`` never overlap, and a zero-length (or,
  for corrupt data, negative-length) call is in progress nowhere.
* Calls without a ``start_time`` are ignored. A call without an ``end_time`` is an
  ongoing live call and is counted until ``until`` (default: now, UTC). Archives (CDR
  files) only contain finished calls, so ``until`` only matters for live captures.
* *Concurrency* is the exact step function of the number of calls in progress; a bin's
  *peak* is that function's maximum inside the bin and its *mean* is its time-weighted
  average, which is the traffic carried in the bin in erlangs.

The Erlang B functions and :func:`capacity_table` live in :mod:`recstats.erlang` and
are re-exported here.
"""

from __future__ import annotations

import datetime as _dt
import html
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .erlang import capacity_table, channels_for, erlang_b, traffic_for

__all__ = ["BusyHour", "busy_hour", "capacity_table", "channels_for", "concurrency",
           "erlang_b", "extension_stats", "traffic_for", "traffic_profile"]

_US_PER_S = 1_000_000
_US_PER_HOUR = 3600 * _US_PER_S
_NAT = np.iinfo("int64").min
_LITTLE = sys.byteorder == "little"
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# --------------------------------------------------------------------------- helpers


def _require(calls: pd.DataFrame, *columns: str) -> None:
    if not isinstance(calls, pd.DataFrame):
        raise TypeError(f"expected a calls table (pandas DataFrame), got "
                        f"{type(calls).__name__}; build one with recstats.read_archive or "
                        "recstats.calls_frame")
    missing = [c for c in columns if c not in calls.columns]
    if missing:
        raise ValueError(f"the calls table has no {', '.join(missing)} column(s); "
                         "pass a table with the recstats calls schema "
                         "(recstats.cdr.coerce_calls builds one)")


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

    Ongoing calls (no end) end at ``until`` (now, UTC, when None). Ends before starts
    (corrupt data) stay as they are: like zero-length calls they count nowhere.
    """
    _require(calls, "start_time", "end_time")
    start = _micros(calls["start_time"])
    end = _micros(calls["end_time"])
    keep = start != _NAT
    if not keep.all():
        start, end = start[keep], end[keep]
    ongoing = end == _NAT
    if ongoing.any():
        limit = _timestamp_us(pd.Timestamp.now("UTC") if until is None else until)
        end = np.where(ongoing, limit, end)
    return start, end


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


def _freq_micros(freq) -> int:
    try:
        offset = pd.tseries.frequencies.to_offset(freq)
    except (ValueError, TypeError):  # pandas' own message nests its parser's errors
        raise ValueError(f"freq {freq!r} is not a bin size; use one like '15min', '1h' "
                         "or '1D'") from None
    try:
        nanos = offset.nanos
    except ValueError:
        raise ValueError(f"freq {freq!r} has no fixed length; use one like '15min', '1h' "
                         "or '1D'") from None
    if nanos <= 0 or nanos % 1000:
        raise ValueError(f"freq {freq!r} must be a positive whole number of microseconds")
    return nanos // 1000


# --------------------------------------------------------------------------- concurrency


def _exact_frame(times: np.ndarray, level: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"time": pd.Series(_to_times(times)),
                         "concurrent": pd.Series(level, dtype="int64")})


def _bin_range(start, times, width):
    """First and last bin number holding activity: a start, or the step function != 0."""
    if not start.size:
        return 0, -1
    first, last = start.min(), start.max()
    if times.size:
        first, last = min(first, times[0]), max(last, times[-1] - 1)
    lo, hi = int(first // width), int(last // width)
    if hi - lo > 50_000_000:
        raise ValueError(f"{hi - lo + 1} bins of {width / 1e6:g} s is too many: use a coarser "
                         "freq, or drop calls with implausible times first")
    return lo, hi


def _binned(start, end, width, span=None) -> tuple[np.ndarray, dict]:
    """Per-bin peak/mean/started on the grid of ``width`` µs aligned to the epoch.

    Bins run over ``span`` = (first, last) bin numbers, by default :func:`_bin_range`.
    """
    times, level = _step(start, end)
    lo, hi = _bin_range(start, times, width) if span is None else span
    edges = np.arange(lo, hi + 2, dtype="int64") * width
    nbins = edges.size - 1
    peak = _value_at(times, level, edges[:-1])  # the value carried into each bin
    if times.size and nbins:
        a, b = np.searchsorted(times, edges[[0, -1]])
        t_in, v_in = times[a:b], level[a:b]
        if t_in.size:
            bin_of = (t_in - edges[0]) // width
            seg = np.flatnonzero(np.r_[True, bin_of[1:] != bin_of[:-1]])
            peak[bin_of[seg]] = np.maximum(peak[bin_of[seg]],
                                           np.maximum.reduceat(v_in, seg))
    integral = _integral_at(times, level, _area(times, level), edges)
    mean = np.diff(integral).astype("float64") / width
    in_range = (start >= edges[0]) & (start < edges[-1])
    started = np.bincount((start[in_range] - edges[0]) // width, minlength=nbins)
    return edges[:-1], {"peak": peak.astype("int64"), "mean": mean,
                        "started": started.astype("int64")}


def _binned_frame(bins: np.ndarray, columns: dict) -> pd.DataFrame:
    return pd.DataFrame(columns, index=_to_times(bins).rename("time"))


def concurrency(calls: pd.DataFrame, freq=None, by: str | None = None,
                until=None) -> pd.DataFrame:
    """Number of calls in progress: the exact step function, or per-bin summaries.

    Each call counts over ``[start_time, end_time)``; zero-length calls count nowhere,
    calls without a start are ignored, and ongoing calls (no ``end_time``) count until
    ``until`` -- by default now (UTC) if any call is ongoing. Archives hold finished
    calls only, so ``until`` matters only for live data; it clips nothing else.

    ``freq=None`` returns the exact step function: columns ``time`` (UTC) and
    ``concurrent`` (int64), the value from that instant until the next row; rows exist
    only where the value changes, the first is the first change and the last brings the
    count back to 0 (at ``until`` for ongoing calls: the end of what is known).

    With a fixed-length ``freq`` (``"15min"``, ``"1h"``, ``"1D"``...) the result is
    indexed by bin start (``time``, UTC, bins aligned to the epoch, every bin from the
    first to the last activity including empty ones), with ``peak`` (int64: maximum of
    the step function inside the bin, counting the value carried in from before -- not
    the number of calls touching the bin), ``mean`` (float64: time-weighted average =
    carried traffic in erlangs) and ``started`` (int64: calls starting in the bin,
    zero-length ones included).

    ``by`` (e.g. ``"site"``) computes each group separately, sorted by group (unused
    categories dropped; calls whose label is missing are left out, as in ``groupby``):
    exact -> columns ``[by, time, concurrent]``; binned -> a ``(by, time)`` MultiIndex,
    every group on the same bins.

    >>> calls = pd.DataFrame({
    ...     "start_time": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 10:10"], utc=True),
    ...     "end_time": pd.to_datetime(["2024-01-01 10:20", "2024-01-01 10:30"], utc=True)})
    >>> concurrency(calls)["concurrent"].tolist()
    [1, 2, 1, 0]
    >>> concurrency(calls, freq="20min")[["peak", "mean", "started"]].values.tolist()
    [[2.0, 1.5, 2.0], [1.0, 0.5, 0.0]]
    """
    _require(calls, "start_time", "end_time")
    width = None if freq is None else _freq_micros(freq)
    start, end = _intervals(calls, until)
    if by is None:
        if width is None:
            return _exact_frame(*_step(start, end))
        return _binned_frame(*_binned(start, end, width))
    codes, uniques = _group_codes(calls, by)
    span = None if width is None else _bin_range(start, _step(start, end)[0], width)
    # one stable sort by group, then slices: a mask per group was O(calls x groups)
    order = np.argsort(codes, kind="stable")
    order = order[codes[order] >= 0]
    start, end = start[order], end[order]
    bounds = np.r_[0, np.cumsum(np.bincount(codes[order], minlength=len(uniques)))]
    slices = [slice(bounds[k], bounds[k + 1]) for k in range(len(uniques))]
    if width is None:
        steps = [_step(start[g], end[g]) for g in slices]
        times = np.concatenate([t for t, _ in steps] + [np.empty(0, "int64")])
        level = np.concatenate([v for _, v in steps] + [np.empty(0, "int64")])
        out = _exact_frame(times, level)
        labels = np.repeat(np.arange(len(uniques)), [t.size for t, _ in steps])
        out.insert(0, by, uniques.take(labels))
        return out
    parts = [_binned(start[g], end[g], width, span) for g in slices]
    bins = _binned(start[:0], end[:0], width, span)[0]
    columns = {name: np.concatenate([c[name] for _, c in parts] + [np.empty(0, dtype)])
               for name, dtype in (("peak", "int64"), ("mean", "float64"),
                                   ("started", "int64"))}
    labels = np.repeat(np.arange(len(uniques)), bins.size)
    index = pd.MultiIndex.from_arrays(
        [uniques.take(labels), _to_times(np.tile(bins, len(uniques)))], names=[by, "time"])
    return pd.DataFrame(columns, index=index)


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


# --------------------------------------------------------------------------- busy hour

_QUARTER = 15 * 60 * _US_PER_S


def _day_start_us(day: _dt.date, tz: str) -> int:
    # midnight may not exist (or exist twice) in a few zones: take the earliest instant
    ts = pd.Timestamp(day).tz_localize(tz, nonexistent="shift_forward", ambiguous=True)
    return _timestamp_us(ts)


def _hourly(times: np.ndarray, level: np.ndarray, tz: str):
    """Carried erlangs per local date and clock hour of a step function (:func:`_step`):
    (dates, ndays x 24 array).

    Days run from the local date of the first activity to that of the last, whole
    days, so quiet hours count as 0 erlangs. A clock hour's traffic is the step
    function's mean over the real time the clock shows that hour: a 25-hour DST day's
    repeated hour averages both occurrences, a 23-hour day's skipped hour is NaN.
    Quarter-hour UTC slices are labelled with their local clock hour, which is exact
    for every zone whose offsets are multiples of 15 minutes (all current ones).
    """
    if times.size == 0:
        return [], np.empty((0, 24))
    local = _to_times(times[[0, -1]] - [0, 1]).tz_convert(tz)
    first, last = local[0].date(), local[1].date()
    if (last - first).days > 100_000:
        raise ValueError(f"the calls span {first} to {last}: drop calls with implausible "
                         "times before computing hourly traffic")
    lo = _day_start_us(first, tz)
    hi = _day_start_us(last + _dt.timedelta(days=1), tz)
    grid = np.arange(lo, hi + 1, _QUARTER, dtype="int64")
    if grid[-1] != hi:
        grid = np.append(grid, hi)
    area = np.diff(_integral_at(times, level, _area(times, level), grid)).astype("float64")
    wall = _to_times(grid[:-1]).tz_convert(tz).tz_localize(None).as_unit("us")
    wall = wall.to_numpy().view("int64")
    day0 = (first - _dt.date(1970, 1, 1)).days
    slot = (wall // (86400 * _US_PER_S) - day0) * 24 + (wall // _US_PER_HOUR) % 24
    ndays = (last - first).days + 1
    total = np.bincount(slot, weights=area, minlength=ndays * 24)
    length = np.bincount(slot, weights=np.diff(grid).astype("float64"),
                         minlength=ndays * 24)
    with np.errstate(invalid="ignore", divide="ignore"):
        table = np.where(length > 0, total / length, np.nan).reshape(ndays, 24)
    dates = [first + _dt.timedelta(days=k) for k in range(ndays)]
    return dates, table


def _select_days(dates, table, days):
    if days is None:
        return dates, table
    wanted = sorted({pd.Timestamp(d).date() for d in days})
    index = {d: k for k, d in enumerate(dates)}
    missing = [d for d in wanted if d not in index]
    if missing:
        raise ValueError(f"days {', '.join(map(str, missing))} are outside the calls' date "
                         f"range ({dates[0]} to {dates[-1]}); pass dates the table covers")
    return wanted, table[[index[d] for d in wanted]]


@dataclass(frozen=True)
class BusyHour:
    """The busy hour of a calls table (see :func:`busy_hour`)."""

    method: str
    hour: int
    traffic: float
    # left out of repr(): a console showed both tables run together in one long line
    per_day: pd.DataFrame = field(repr=False)
    profile: pd.Series = field(repr=False)
    tz: str = "UTC"

    def __str__(self) -> str:
        return (f"busy hour ({self.method}, {self.tz}): {self.hour:02d}:00-"
                f"{(self.hour + 1) % 24:02d}:00, {self.traffic:.3f} erlangs "
                f"over {len(self.per_day)} day(s)")

    def _repr_html_(self) -> str:
        return (f"<p><b>Busy hour</b> ({html.escape(self.method)}, {html.escape(self.tz)}): "
                f"<b>{self.hour:02d}:00&ndash;{(self.hour + 1) % 24:02d}:00</b>, "
                f"{self.traffic:.3f} erlangs over {len(self.per_day)} day(s)</p>"
                f"<p>Mean traffic (erlangs) by clock hour ({html.escape(self.tz)}):</p>"
                + self.profile.to_frame().T.to_html(float_format="{:.2f}".format)
                + "<p>Busiest hour of each day (traffic in erlangs):</p>"
                + self.per_day.to_html(index=False, max_rows=20,
                                       float_format="{:.3f}".format))


def busy_hour(calls: pd.DataFrame, method: str = "time-consistent", days=None,
              tz: str = "UTC", *, until=None) -> BusyHour:
    """The busy hour, as ITU-T E.500 defines it, in clock hours of ``tz``.

    Traffic per clock hour is the carried traffic in erlangs (the mean of the
    concurrency step function over that hour) for every hour of every local date from
    the first call to the last (quiet hours count as 0).

    * ``"time-consistent"``: the clock hour whose traffic, averaged over the days, is
      highest; ``traffic`` is that average.
    * ``"bouncing"``: each day's own busiest hour; ``traffic`` is the average of those
      daily maxima and ``hour`` the most frequent daily busiest hour (ties: earliest).

    ``per_day`` gives each day's busiest ``hour`` (NA on a day without traffic) and its
    ``traffic``; ``profile`` the mean erlangs by clock hour 0-23 over the days.
    ``days`` restricts the days used (dates or strings like ``"2024-03-04"``; e.g.
    working days only, as E.500 recommends); a day outside the table's range is an error.
    DST: a 23-hour day has no traffic for its skipped hour (left out of that hour's
    average), a 25-hour day's repeated hour is averaged over both real hours.
    Raises ValueError when no call has a duration.

    >>> calls = pd.DataFrame({
    ...     "start_time": pd.to_datetime(["2024-01-01 09:00", "2024-01-02 10:00"], utc=True),
    ...     "end_time": pd.to_datetime(["2024-01-01 10:00", "2024-01-02 10:30"], utc=True)})
    >>> bh = busy_hour(calls)
    >>> bh.hour, bh.traffic
    (9, 0.5)
    >>> busy_hour(calls, "bouncing").traffic
    0.75
    """
    if method not in ("time-consistent", "bouncing"):
        raise ValueError(f"method must be 'time-consistent' or 'bouncing', not {method!r}")
    start, end = _intervals(calls, until)
    dates, table = _hourly(*_step(start, end), tz)
    if not dates:
        raise ValueError("no call has both a start and a later end, so there is no "
                         "traffic to find a busy hour in")
    dates, table = _select_days(dates, table, days)
    hours = pd.Index(range(24), name="hour")
    profile = pd.Series(_nanmean(table), index=hours, name="traffic")
    daily_max = np.nanmax(table, axis=1)  # every day has at least 23 hours
    daily_hour = pd.array(np.nanargmax(np.where(np.isnan(table), -1.0, table), axis=1),
                          dtype="Int64")
    daily_hour[daily_max <= 0] = pd.NA
    per_day = pd.DataFrame({"date": dates, "hour": daily_hour, "traffic": daily_max})
    if method == "time-consistent":
        hour = int(np.nanargmax(profile.to_numpy()))
        traffic = float(profile.iloc[hour])
    else:
        counts = per_day["hour"].value_counts()
        hour = int(min(counts.index[counts == counts.max()])) if len(counts) else \
            int(np.nanargmax(profile.to_numpy()))
        traffic = float(np.mean(daily_max))
    return BusyHour(method, hour, traffic, per_day, profile, tz)


def _nanmean(table: np.ndarray) -> np.ndarray:
    """Column means ignoring NaN (all-NaN -> NaN), without NumPy's empty-slice warning."""
    count = (~np.isnan(table)).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.nansum(table, axis=0) / count, np.nan)


def traffic_profile(calls: pd.DataFrame, tz: str = "UTC", *, until=None) -> pd.DataFrame:
    """Mean carried erlangs by weekday (rows Monday..Sunday) and clock hour (columns 0-23).

    Each cell averages that clock hour's traffic over the dates (local to ``tz``) that
    fall on that weekday, between the first and the last call; a weekday without such a
    date is all NaN. DST days are handled as in :func:`busy_hour`.

    >>> calls = pd.DataFrame({
    ...     "start_time": pd.to_datetime(["2024-01-01 09:00"], utc=True),  # a Monday
    ...     "end_time": pd.to_datetime(["2024-01-01 09:30"], utc=True)})
    >>> traffic_profile(calls).loc["Monday", 9]
    np.float64(0.5)
    """
    dates, table = _hourly(*_step(*_intervals(calls, until)), tz)
    weekday = np.array([d.weekday() for d in dates], dtype="int64")
    out = np.full((7, 24), np.nan)
    for w in np.unique(weekday):
        out[w] = _nanmean(table[weekday == w])
    return pd.DataFrame(out, index=pd.Index(WEEKDAYS, name="weekday"),
                        columns=pd.Index(range(24), name="hour"))


# --------------------------------------------------------------------------- extensions

_EXTENSION_COLUMNS = ("calls", "inbound", "outbound", "internal", "total_duration",
                      "mean_duration", "median_duration", "p90_duration", "traffic",
                      "peak_concurrent", "busiest_hour", "first_call", "last_call")


def _extension_mask(numbers: pd.Series, extensions) -> np.ndarray:
    """Which of ``numbers`` are monitored extensions (see :func:`extension_stats`)."""
    text = numbers.astype("str").str.strip()
    if extensions is None:
        pattern = re.compile(r"\d{1,6}")
    elif isinstance(extensions, re.Pattern):
        pattern = extensions
    elif isinstance(extensions, str):
        try:
            pattern = re.compile(extensions)
        except re.error as exc:
            raise ValueError(f"extensions regex {extensions!r} is invalid ({exc}); pass a "
                             r"valid one such as r'1\d{3}', or a list of numbers") from None
    elif isinstance(extensions, (int, np.integer)) and not isinstance(extensions, bool):
        if extensions < 1:
            raise ValueError("extensions as a number is the maximum digit count, >= 1")
        pattern = re.compile(rf"\d{{1,{int(extensions)}}}")
    elif isinstance(extensions, Iterable):
        wanted = {str(e).strip() for e in extensions}
        return text.isin(wanted).fillna(False).to_numpy(dtype=bool)
    else:
        raise ValueError("extensions must be None, a list of numbers, a regex (string or "
                         "compiled) or a maximum digit count")
    return text.str.fullmatch(pattern).fillna(False).to_numpy(dtype=bool)


def extension_stats(calls: pd.DataFrame, extensions=None, *, tz: str = "UTC",
                    until=None) -> pd.DataFrame:
    """Per-extension call counts, durations, traffic and peak concurrency.

    A call belongs to each monitored extension among its ``caller`` and ``callee``, so
    a call between two monitored extensions counts for both (once for a call to
    itself). ``extensions`` says which numbers are extensions: a list of numbers, a
    regex (string or compiled; the whole number must match), or an int maximum digit
    count; default: numbers of 1 to 6 digits (so never E.164 ``+...`` numbers).

    Columns: ``calls``; ``inbound``/``outbound``/``internal`` (by ``direction``);
    ``total_duration``, ``mean_duration``, ``median_duration``, ``p90_duration``
    (seconds: end - start, else the ``duration`` column; calls without one are left
    out; p90 interpolates linearly); ``traffic`` (erlangs: total duration over the
    whole table's time span, first start to last end); ``peak_concurrent`` (maximum
    number of the extension's own calls in progress at once); ``busiest_hour`` (the
    clock hour in ``tz`` in which most of its calls started, earliest on ties);
    ``first_call``/``last_call`` (earliest/latest start). Sorted by calls (descending),
    then extension. Ongoing calls count until ``until`` (now) for ``peak_concurrent``.

    >>> calls = pd.DataFrame({
    ...     "start_time": pd.to_datetime(["2024-01-01 09:00", "2024-01-01 09:10"], utc=True),
    ...     "end_time": pd.to_datetime(["2024-01-01 09:20", "2024-01-01 09:30"], utc=True),
    ...     "caller": ["101", "+15551234567"], "callee": ["102", "101"],
    ...     "direction": ["Internal", "Inbound"], "duration": [1200.0, 1200.0]})
    >>> extension_stats(calls)[["calls", "inbound", "internal", "peak_concurrent"]]
    ... # doctest: +NORMALIZE_WHITESPACE
               calls  inbound  internal  peak_concurrent
    extension
    101            2        1         1                2
    102            1        0         1                1
    """
    _require(calls, "start_time", "end_time", "caller", "callee")
    caller = calls["caller"].astype("str").str.strip()
    callee = calls["callee"].astype("str").str.strip()
    by_caller = _extension_mask(caller, extensions)
    # a call to oneself counts once
    by_callee = _extension_mask(callee, extensions) & \
        ~(by_caller & (caller == callee).fillna(False).to_numpy(bool))
    rows = [np.flatnonzero(by_caller), np.flatnonzero(by_callee)]
    numbers = [caller[by_caller], callee[by_callee]]
    row = np.concatenate(rows)
    code, names = pd.factorize(pd.concat(numbers, ignore_index=True), sort=True)
    index = pd.Index(np.asarray(names, dtype=object), dtype="str", name="extension")
    k = len(index)
    start, end = _micros(calls["start_time"]), _micros(calls["end_time"])
    # end - start where both are known, else the stated duration (as in the calls table)
    duration = np.where((start != _NAT) & (end != _NAT), (end - start) / _US_PER_S, np.nan)
    if "duration" in calls.columns:
        stated = pd.to_numeric(calls["duration"], errors="coerce").to_numpy("float64")
        duration = np.where(np.isnan(duration), stated, duration)
    grouped = pd.Series(duration[row]).groupby(code)
    out = pd.DataFrame({"calls": np.bincount(code, minlength=k)}, index=index)
    for name, flags in _directions(calls).items():
        out[name] = np.bincount(code, weights=flags[row], minlength=k).astype("int64")
    for name, values in (("total_duration", grouped.sum()), ("mean_duration", grouped.mean()),
                         ("median_duration", grouped.median()),
                         ("p90_duration", grouped.quantile(0.9))):
        out[name] = values.reindex(range(k)).to_numpy()
    span_start, span_end = _intervals(calls, until)
    span = (span_end.max() - span_start.min()) / _US_PER_S if span_start.size else 0.0
    out["traffic"] = out["total_duration"] / span if span > 0 else np.nan
    limit = end[row]
    if (limit == _NAT).any():
        now = _timestamp_us(pd.Timestamp.now("UTC") if until is None else until)
        limit = np.where(limit == _NAT, now, limit)
    out["peak_concurrent"] = _peaks(start[row], limit, code, k)
    started = start[row] != _NAT
    s_code, s_time = code[started], start[row][started]
    local = _to_times(s_time).tz_convert(tz)
    counts = np.bincount(s_code * 24 + local.hour.to_numpy(), minlength=k * 24)
    out["busiest_hour"] = pd.array(counts.reshape(k, 24).argmax(axis=1), dtype="Int64")
    out.loc[counts.reshape(k, 24).sum(axis=1) == 0, "busiest_hour"] = pd.NA
    for name, pick in (("first_call", np.minimum), ("last_call", np.maximum)):
        extreme = np.full(k, np.iinfo("int64").max if pick is np.minimum else _NAT)
        pick.at(extreme, s_code, s_time)
        out[name] = _to_times(np.where(np.abs(extreme) == np.iinfo("int64").max, _NAT,
                                       extreme))
    order = np.lexsort((np.arange(k), -out["calls"].to_numpy()))  # names are sorted
    return out.iloc[order][list(_EXTENSION_COLUMNS)]


def _directions(calls: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per call: is it inbound / outbound / internal (case-insensitive ``direction``)."""
    n = len(calls)
    if "direction" not in calls.columns:
        return {name: np.zeros(n) for name in ("inbound", "outbound", "internal")}
    values = calls["direction"]
    if not isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype("str").astype("category")
    labels = values.cat.categories.astype("str").str.lower().to_numpy(dtype=object)
    codes = values.cat.codes.to_numpy()
    return {name: np.r_[labels == name, False][codes].astype("float64")
            for name in ("inbound", "outbound", "internal")}


def _peaks(start, end, code, k) -> np.ndarray:
    """Peak concurrency of each group's own calls, in one sort.

    Events sort by (group, time, end-before-start) -- packed into one int64 key when
    the bits fit, else with lexsort; each group's calls open and close, so the running
    sum is back at 0 at the end of each group's block.
    """
    real = (start != _NAT) & (end > start)
    start, end, code = start[real], end[real], code[real]
    peaks = np.zeros(k, dtype="int64")
    if start.size == 0:
        return peaks
    base = start.min()
    time_bits = int(end.max() - base).bit_length() + 1
    if time_bits + max(k, 1).bit_length() <= 62:
        keys = np.concatenate([(code << time_bits) | ((start - base) << 1) | 1,
                               (code << time_bits) | ((end - base) << 1)])
        keys.sort()
        codes, delta = keys >> time_bits, (keys & 1) * 2 - 1
    else:
        times = np.concatenate([start, end])
        flags = np.r_[np.ones(start.size, "int64"), np.zeros(end.size, "int64")]
        codes = np.concatenate([code, code])
        order = np.lexsort((flags, times, codes))
        codes, delta = codes[order], flags[order] * 2 - 1
    level = np.cumsum(delta)
    seg = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    peaks[codes[seg]] = np.maximum.reduceat(level, seg)
    return peaks
