"""The busy hour (ITU-T E.500) and the weekday x hour traffic profile of a calls table.

Traffic here is carried traffic in erlangs: the mean of the concurrency step function
(see :mod:`recstats.stats`) over the observed part of each clock hour of a time zone.
Every public name is importable from :mod:`recstats.stats` too.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ._quality import prepare
from ._time import check_tz
from ._timeline import (
    US_PER_HOUR,
    US_PER_S,
    integral_at,
    observe,
    observed_at,
    peak_between,
    step,
    to_times,
)
from ._window import Observed, day_starts_us, local_date

__all__ = ["BusyHour", "busy_hour", "traffic_profile"]

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_QUARTER = 15 * 60 * US_PER_S


@dataclass(frozen=True)
class Hourly:
    """Per local date (rows) and clock hour (columns): the step function's integral
    over the observed part [call-µs], the observed time [µs] and the hour's length [µs]
    (0 for the hour a spring DST change skips, 2 h for the repeated autumn hour)."""

    dates: list
    area: np.ndarray
    observed: np.ndarray
    length: np.ndarray
    day_edges: np.ndarray  # start of each date and of the day after the last [µs]

    @property
    def traffic(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.observed > 0, self.area / self.observed, np.nan)

    @property
    def coverage(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.length > 0, self.observed / self.length, 0.0)


def hourly(times: np.ndarray, level: np.ndarray, intervals: np.ndarray, tz: str,
           window: Observed) -> Hourly:
    """:class:`Hourly` of a step function restricted to ``intervals``, over the local
    dates the window touches. Quarter-hour UTC slices are labelled with their local
    clock hour, which is exact for every zone whose offsets are multiples of 15 minutes
    (all current ones); integrals are exact whatever the window's bounds."""
    first, last = local_date(window.start, tz), local_date(window.end - 1, tz)
    ndays = (last - first).days + 1
    if ndays > 100_000:
        raise ValueError(f"the window spans {first} to {last}: too long for hourly traffic; "
                         "pass a shorter window= or drop calls with implausible times")
    day_edges = day_starts_us(first, ndays + 1, tz)
    lo, hi = day_edges[0], day_edges[-1]
    grid = np.arange(lo, hi + 1, _QUARTER, dtype="int64")
    if grid[-1] != hi:
        grid = np.append(grid, hi)
    masked = observe(times, level, intervals)
    area = np.diff(integral_at(*masked, grid)).astype("float64")
    seen = np.diff(observed_at(intervals, grid)).astype("float64")
    wall = to_times(grid[:-1]).tz_convert(tz).tz_localize(None).as_unit("us").asi8
    day0 = (first - dt.date(1970, 1, 1)).days
    slot = (wall // (24 * US_PER_HOUR) - day0) * 24 + (wall // US_PER_HOUR) % 24
    size = ndays * 24
    return Hourly([first + dt.timedelta(days=k) for k in range(ndays)],
                  np.bincount(slot, weights=area, minlength=size).reshape(ndays, 24),
                  np.bincount(slot, weights=seen, minlength=size).reshape(ndays, 24),
                  np.bincount(slot, weights=np.diff(grid).astype("float64"),
                              minlength=size).reshape(ndays, 24),
                  day_edges)


def choose_days(dates: list, days) -> tuple[np.ndarray, str]:
    """(which of ``dates`` are chosen, the rule in words)."""
    if days is None:
        return np.ones(len(dates), dtype=bool), "all days"
    if isinstance(days, str) and days in ("weekdays", "weekends"):
        weekend = np.array([d.weekday() >= 5 for d in dates], dtype=bool)
        mask, rule = (~weekend, "weekdays") if days == "weekdays" else (weekend, "weekends")
    elif callable(days):
        mask = np.array([bool(days(d)) for d in dates], dtype=bool)
        rule = f"days chosen by {getattr(days, '__name__', 'a function')}"
    else:
        if isinstance(days, (str, dt.date)):  # one day (iterating a string gave its characters)
            days = [days]
        try:
            wanted = sorted({pd.Timestamp(d).date() for d in days})
        except (TypeError, ValueError):
            raise ValueError("days must be None, 'weekdays', 'weekends', a list of dates "
                             f"or a function of a date; got {days!r}") from None
        if not wanted:
            raise ValueError("days is empty: pass at least one date, or None for every day")
        missing = [d for d in wanted if not dates or not dates[0] <= d <= dates[-1]]
        if missing:
            raise ValueError(f"days {', '.join(map(str, missing))} are outside the "
                             f"observation window ({dates[0]} to {dates[-1]}); pass "
                             "dates it covers, or a wider window=")
        mask = np.isin(np.array(dates, dtype=object), np.array(wanted, dtype=object))
        rule = f"{len(wanted)} listed day{'s' if len(wanted) != 1 else ''}"
    if not mask.any():
        raise ValueError(f"no day of the observation window ({dates[0]} to {dates[-1]}) "
                         f"is one of the {rule}")
    return mask, rule


def _top(values: np.ndarray, k: int | None) -> np.ndarray:
    """Which of ``values`` (NaN = not eligible) are used: all, or the k highest."""
    used = ~np.isnan(values)
    if k is not None and used.sum() > k:
        order = np.argsort(np.where(used, -values, np.inf), kind="stable")
        used = np.zeros(values.size, dtype=bool)
        used[order[:k]] = True
    return used


def _mean(table: np.ndarray, used: np.ndarray) -> np.ndarray:
    count = used.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(used, table, 0).sum(axis=0) / count, np.nan)


def check_settings(method: str, top_days, min_coverage) -> None:
    if method not in ("time-consistent", "bouncing"):
        raise ValueError(f"method must be 'time-consistent' or 'bouncing', not {method!r}")
    if top_days is not None and (isinstance(top_days, bool) or
                                 not isinstance(top_days, (int, np.integer)) or top_days < 1):
        raise ValueError(f"top_days must be a whole number of days >= 1, or None; "
                         f"got {top_days!r}")
    if not (isinstance(min_coverage, (int, float)) and 0 <= min_coverage <= 1):
        raise ValueError(f"min_coverage must be a fraction between 0 and 1, not "
                         f"{min_coverage!r}")


def find_busy_hour(table: Hourly, *, method: str, tz: str, window: Observed, days,
                   top_days, min_coverage) -> BusyHour:
    """The busy hour of an :class:`Hourly` table (see :func:`busy_hour`)."""
    chosen, rule = choose_days(table.dates, days)
    coverage, traffic = table.coverage, table.traffic
    eligible = chosen[:, None] & (coverage > 0) & (coverage >= min_coverage)
    if not eligible.any():
        raise ValueError(f"no clock hour of {rule} was observed for at least "
                         f"{min_coverage:.0%} of it: the window was {window.describe(tz)}; "
                         "pass a longer window or a lower min_coverage")
    values = np.where(eligible, traffic, np.nan)
    daily_max = np.nanmax(np.where(eligible, values, -1.0), axis=1)
    daily_hour = np.argmax(np.where(eligible, values, -1.0), axis=1)
    has_day = eligible.any(axis=1)
    daily_max = np.where(has_day, daily_max, np.nan)
    if method == "time-consistent":
        used = np.column_stack([_top(values[:, h], top_days) for h in range(24)])
        profile = _mean(values, used)
        hour = int(np.nanargmax(profile))
        days_used = used[:, hour]
        slots = (days_used, np.full(len(days_used), hour))
        answer = float(profile[hour])
    else:
        days_used = _top(daily_max, top_days)
        profile = _mean(values, eligible & days_used[:, None])
        hours = daily_hour[days_used & (daily_max > 0)]
        counts = np.bincount(hours, minlength=24)
        hour = int(np.argmax(counts)) if hours.size else int(np.nanargmax(profile))
        slots = (days_used, daily_hour)
        answer = float(np.mean(daily_max[days_used]))
    rows = np.flatnonzero(slots[0])
    cols = slots[1][rows]
    seen = table.observed[rows, cols].sum()
    length = table.length[rows, cols].sum()
    if top_days is not None:
        noun = {"all days": "days", "weekdays": "weekdays",
                "weekends": "weekend days"}.get(rule, f"of {rule}")
        rule = f"the {int(days_used.sum())} busiest {noun}"
    per_hour = pd.array(daily_hour, dtype="Int64")
    per_hour[~has_day | ~(daily_max > 0)] = pd.NA
    per_day = pd.DataFrame({"date": table.dates, "hour": per_hour, "traffic": daily_max,
                            "used": days_used})[chosen].reset_index(drop=True)
    bounds = to_times(np.array([window.start, window.end]))
    return BusyHour(method, hour, answer,
                    per_day, pd.Series(profile, index=pd.Index(range(24), name="hour"),
                                       name="traffic"),
                    tz, float(seen / length) if length else 0.0, rule,
                    (bounds[0], bounds[1]))


@dataclass(frozen=True)
class BusyHour:
    """The busy hour of a calls table (see :func:`busy_hour`).

    ``hour`` (0-23, clock hour in ``tz``) and ``traffic`` [erlang] are the answer;
    ``coverage`` (0-1) is the observed fraction of the hours it averaged,
    ``days_rule`` says which days in words and ``window`` is the observation window
    (UTC). ``per_day`` (each chosen day's own busiest eligible ``hour``, its
    ``traffic`` and whether it was ``used``) and ``profile`` show how it was found.
    ``str()`` is one line, and notebooks show both tables.

    >>> calls = pd.DataFrame({
    ...     "start_time": pd.to_datetime(["2024-01-01 09:00"], utc=True),
    ...     "end_time": pd.to_datetime(["2024-01-01 09:30"], utc=True)})
    >>> print(busy_hour(calls))
    busy hour (time-consistent, UTC): 09:00-10:00, 0.500 erlangs over all days (1 day), 100% observed; window 2024-01-01 00:00 to 2024-01-02 00:00 UTC (1 day)
    """

    method: str
    hour: int
    traffic: float
    # left out of repr(): a console showed both tables run together in one long line
    per_day: pd.DataFrame = field(repr=False)
    profile: pd.Series = field(repr=False)
    tz: str = "UTC"
    coverage: float = 1.0
    days_rule: str = "all days"
    window: tuple[pd.Timestamp, pd.Timestamp] | None = None

    def _window_text(self) -> str:
        if self.window is None:
            return "unknown"
        start, end = (int(t.value // 1000) for t in self.window)
        return Observed(start, end, "").describe(self.tz)

    def _summary(self) -> str:
        days = int(self.per_day["used"].sum()) if "used" in self.per_day else len(self.per_day)
        return (f"{self.traffic:.3f} erlangs over {self.days_rule} ({days} "
                f"day{'s' if days != 1 else ''}), {self.coverage:.0%} observed; "
                f"window {self._window_text()}")

    def __str__(self) -> str:
        return (f"busy hour ({self.method}, {self.tz}): {self.hour:02d}:00-"
                f"{(self.hour + 1) % 24:02d}:00, {self._summary()}")

    def _repr_html_(self) -> str:
        return (f"<p><b>Busy hour</b> ({html.escape(self.method)}, {html.escape(self.tz)}): "
                f"<b>{self.hour:02d}:00&ndash;{(self.hour + 1) % 24:02d}:00</b>, "
                f"{html.escape(self._summary())}</p>"
                f"<p>Mean traffic (erlangs) by clock hour ({html.escape(self.tz)}):</p>"
                + self.profile.to_frame().T.to_html(float_format="{:.2f}".format)
                + "<p>Busiest hour of each day (traffic in erlangs):</p>"
                + self.per_day.to_html(index=False, max_rows=20,
                                       float_format="{:.3f}".format))


def busy_hour(calls: pd.DataFrame, *, method: str = "time-consistent", tz: str = "UTC",
              window=None, days=None, top_days: int | None = None,
              min_coverage: float = 0.5) -> BusyHour:
    """The busy hour, as ITU-T E.500 describes it, in clock hours of ``tz``.

    A clock hour of a day (a *slot*) carries traffic [erlang]: the mean of the
    concurrency step function over the part of it that was observed (the observation
    window minus the sites' gaps, see :func:`recstats.observation_window`). A slot is
    eligible when at least ``min_coverage`` of it was observed.

    * ``"time-consistent"``: for each clock hour, the mean over the chosen days of its
      eligible slots (with ``top_days=k``: of the k highest); the busy hour is the
      clock hour where that mean is highest (earliest on ties).
    * ``"bouncing"``: each chosen day's own busiest eligible slot; ``traffic`` is the
      mean of those daily maxima (with ``top_days=k``: of the k highest) and ``hour``
      the most frequent daily busiest hour (ties: earliest).

    Parameters
    ----------
    calls : pandas.DataFrame
        A calls table. Rows :func:`recstats.check_calls` lists are left out, with one
        :class:`recstats.DataQualityWarning`; ongoing calls count until the window's end.
    method : {"time-consistent", "bouncing"}
    tz : str
        IANA time zone of the clock hours and days.
    window : tuple of two moments, optional
        Observation window; default ``calls.attrs["window"]``, else whole days.
    days : None, "weekdays", "weekends", list of dates, or callable
        Which local dates count: every one, Monday-Friday, Saturday-Sunday, the listed
        ones (each inside the window), or those ``days(date)`` is true for.
    top_days : int, optional
        Average over the k days with the most traffic in the hour instead of all.
    min_coverage : float
        Smallest observed fraction of a slot for it to count (0-1).

    Returns
    -------
    BusyHour
        ``hour``, ``traffic`` [erlang], ``coverage`` (observed fraction of the slots
        averaged), ``days_rule``, ``window``, ``per_day`` and ``profile`` [erlang].

    Raises
    ------
    ValueError
        When no slot is eligible (the message says how long the window was), for an
        unknown ``tz`` or ``method``, and for days outside the window.

    Notes
    -----
    E.500 [1]_ defines a traffic measurement as the average erlang value during a
    period such as one hour, measured in a daily busy hour and averaged over a number
    of days to avoid exceptional values; ``days`` and ``top_days`` choose those days
    (check the Recommendation for the days its reference loads use). A DST day's
    skipped hour has no slot; its repeated hour is one slot of two real hours.

    References
    ----------
    .. [1] ITU-T Recommendation E.500, "Traffic intensity measurement principles",
       International Telecommunication Union.

    Examples
    --------
    >>> calls = pd.DataFrame({
    ...     "start_time": pd.to_datetime(["2024-01-01 09:00", "2024-01-02 10:00"], utc=True),
    ...     "end_time": pd.to_datetime(["2024-01-01 10:00", "2024-01-02 10:30"], utc=True)})
    >>> bh = busy_hour(calls)
    >>> bh.hour, bh.traffic
    (9, 0.5)
    >>> busy_hour(calls, method="bouncing").traffic
    0.75
    >>> busy_hour(calls, top_days=1).traffic
    1.0
    """
    tz = check_tz(tz)
    check_settings(method, top_days, min_coverage)
    prepared = prepare(calls, tz=tz, window=window)
    if prepared.observed is None:
        raise ValueError("the calls table has no call with a start time, so there is no "
                         "window to find a busy hour in; pass window=(start, end)")
    table = hourly(*step(prepared.start, prepared.end), prepared.intervals(), tz,
                   prepared.observed)
    return find_busy_hour(table, method=method, tz=tz, window=prepared.observed, days=days,
                          top_days=top_days, min_coverage=min_coverage)



def day_peaks(times: np.ndarray, level: np.ndarray, table: Hourly) -> np.ndarray:
    """Largest number of calls at once on each date of ``table`` (observed part)."""
    return peak_between(times, level, table.day_edges)


def traffic_profile(calls: pd.DataFrame, *, tz: str = "UTC", window=None,
                    days=None) -> pd.DataFrame:
    """Mean carried traffic by weekday (rows Monday..Sunday) and clock hour (0-23).

    Each cell averages, over the chosen dates of that weekday, the traffic of that
    clock hour on each date where any of it was observed (the mean over its observed
    part); a cell never observed is NaN, not 0. Hours are clock hours of ``tz``; DST
    days as in :func:`busy_hour`.

    Parameters
    ----------
    calls : pandas.DataFrame
        A calls table (problem rows are left out with a warning, as everywhere).
    tz : str
        IANA time zone of the days and hours.
    window : tuple of two moments, optional
        Observation window; default ``calls.attrs["window"]``, else whole days.
    days : None, "weekdays", "weekends", list of dates, or callable
        Which dates count, as in :func:`busy_hour`.

    Returns
    -------
    pandas.DataFrame
        7 x 24 mean traffic [erlang]; index ``weekday``, columns ``hour``.

    Examples
    --------
    >>> calls = pd.DataFrame({
    ...     "start_time": pd.to_datetime(["2024-01-01 09:00"], utc=True),  # a Monday
    ...     "end_time": pd.to_datetime(["2024-01-01 09:30"], utc=True)})
    >>> traffic_profile(calls).loc["Monday", 9]
    np.float64(0.5)
    >>> bool(traffic_profile(calls).loc["Tuesday"].isna().all())
    True
    """
    tz = check_tz(tz)
    prepared = prepare(calls, tz=tz, window=window)
    out = np.full((7, 24), np.nan)
    if prepared.observed is not None:
        table = hourly(*step(prepared.start, prepared.end), prepared.intervals(), tz,
                       prepared.observed)
        chosen, _ = choose_days(table.dates, days)
        traffic = table.traffic
        weekday = np.array([d.weekday() for d in table.dates], dtype="int64")
        for w in np.unique(weekday[chosen]):
            rows = chosen & (weekday == w)
            out[w] = _mean(np.nan_to_num(traffic[rows]), ~np.isnan(traffic[rows]))
    return pd.DataFrame(out, index=pd.Index(WEEKDAYS, name="weekday"),
                        columns=pd.Index(range(24), name="hour"))

