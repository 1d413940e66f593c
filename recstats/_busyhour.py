"""The busy hour (ITU-T E.500) and the weekday x hour traffic profile of a calls table.

Traffic here is carried traffic in erlangs: the mean of the concurrency step function
(see :mod:`recstats.stats` for its definition) over each clock hour of a time zone.
Every name is importable from :mod:`recstats.stats` too.
"""

from __future__ import annotations

import datetime as _dt
import html
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ._timeline import (
    _US_PER_HOUR,
    _US_PER_S,
    _area,
    _integral_at,
    _intervals,
    _step,
    _timestamp_us,
    _to_times,
)

__all__ = ["BusyHour", "busy_hour", "traffic_profile"]

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
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
    if isinstance(days, (str, _dt.date)):  # one day (iterating a string gave its characters)
        days = [days]
    wanted = sorted({pd.Timestamp(d).date() for d in days})
    if not wanted:
        raise ValueError("days is empty: pass at least one date, or None for every day")
    index = {d: k for k, d in enumerate(dates)}
    missing = [d for d in wanted if d not in index]
    if missing:
        raise ValueError(f"days {', '.join(map(str, missing))} are outside the calls' date "
                         f"range ({dates[0]} to {dates[-1]}); pass dates the table covers")
    return wanted, table[[index[d] for d in wanted]]


@dataclass(frozen=True)
class BusyHour:
    """The busy hour of a calls table (see :func:`busy_hour`).

    ``hour`` (0-23, clock hour in ``tz``) and ``traffic`` (erlangs) are the answer;
    ``per_day`` and ``profile`` show how it was found. ``str()`` is one line, and
    notebooks show both tables.

    >>> calls = pd.DataFrame({
    ...     "start_time": pd.to_datetime(["2024-01-01 09:00"], utc=True),
    ...     "end_time": pd.to_datetime(["2024-01-01 09:30"], utc=True)})
    >>> print(busy_hour(calls))
    busy hour (time-consistent, UTC): 09:00-10:00, 0.500 erlangs over 1 day(s)
    """

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
    ``days`` restricts the days used (one date, or a list of dates or strings like
    ``"2024-03-04"``; e.g. working days only, as E.500 recommends); a day outside the
    table's range is an error.
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
