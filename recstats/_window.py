"""Observation windows, gaps and ongoing calls: what time a calls table observed.

A table observes a *window* ``[start, end)`` and, inside it, maybe not every site all
the time (``attrs["gaps"]``). The window comes from ``window=``, else from
``calls.attrs["window"]`` (two ISO-8601 UTC strings, which survive Parquet), else from
the archive rule: whole local days from the first to the last activity (an archive holds
every call of the days it spans, so its quiet hours are real zeros).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._time import as_utc, check_tz
from ._timeline import NAT, US_PER_S, flags, to_times

__all__ = ["observation_window", "ongoing_mask"]


def ongoing_mask(calls: pd.DataFrame) -> np.ndarray:
    """Which calls are ongoing: ``end_time`` is NaT and ``end_unknown`` is not True.

    The one definition of an ongoing call (a live call still in progress); a missing
    ``end_unknown`` column means False. Analyses count an ongoing call until the end
    of the observation window (never until the analyst's clock); a call whose end is
    unknown (``end_unknown`` True) is not ongoing, it is left out.

    Parameters
    ----------
    calls : pandas.DataFrame
        A calls table with an ``end_time`` column.

    Returns
    -------
    numpy.ndarray
        One bool per row.

    Examples
    --------
    >>> calls = pd.DataFrame({"end_time": pd.to_datetime([None, None, "2024-01-01"]),
    ...                       "end_unknown": [False, True, False]})
    >>> ongoing_mask(calls).tolist()
    [True, False, False]
    """
    if "end_time" not in calls.columns:
        raise ValueError("the calls table has no end_time column(s); pass a table with "
                         "the recstats calls schema (recstats.coerce_calls builds one)")
    ongoing = calls["end_time"].isna().to_numpy(dtype=bool, copy=True)
    if "end_unknown" in calls.columns:
        ongoing &= ~flags(calls["end_unknown"])
    return ongoing


def day_start_us(day: dt.date, tz: str) -> int:
    """The first instant of a local date, in µs (midnight may not exist, or twice)."""
    ts = pd.Timestamp(day).tz_localize(tz, nonexistent="shift_forward", ambiguous=True)
    return int(ts.value // 1000)


def day_starts_us(first: dt.date, count: int, tz: str) -> np.ndarray:
    """The first instants of ``count`` consecutive local dates from ``first``, in µs."""
    days = pd.date_range(first, periods=count, freq="D", unit="us")
    flags_ = np.ones(count, dtype=bool)  # an ambiguous midnight: its first occurrence
    return days.tz_localize(tz, ambiguous=flags_, nonexistent="shift_forward").asi8


def local_date(moment_us: int, tz: str) -> dt.date:
    return to_times(np.array([moment_us]))[0].tz_convert(tz).date()


def _moment_us(moment, what: str) -> int:
    try:
        stamp = as_utc(moment)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{what}: {moment!r} is not a moment ({exc})") from None
    if pd.isna(stamp):
        raise ValueError(f"{what}: a window needs two moments, got {moment!r}")
    return int(stamp.value // 1000)


def _pair(window, what: str) -> tuple[int, int]:
    if isinstance(window, (str, bytes)) or not hasattr(window, "__len__") or len(window) != 2:
        raise ValueError(f"{what} must be two moments (start, end), e.g. "
                         f"('2026-11-02 09:00', '2026-11-02 17:00'); got {window!r}")
    start, end = (_moment_us(m, what) for m in window)
    if end <= start:
        raise ValueError(f"{what} ends before it starts: {window!r}")
    return start, end


def activity_window(start: np.ndarray, end: np.ndarray, tz: str) -> tuple[int, int] | None:
    """Whole local days from the first to the last activity (starts and known ends) of
    calls that all have a start."""
    if start.size == 0:
        return None
    first, last = int(start.min()), int(start.max())
    latest_end = int(end.max())  # NaT is the smallest int64: ongoing calls do not count
    if latest_end != NAT:  # an end at midnight is activity of the day before
        last = max(last, latest_end - 1)
    first_day, last_day = local_date(first, tz), local_date(last, tz)
    if (last_day - first_day).days > 100_000:
        raise ValueError(f"the calls span {first_day} to {last_day}: drop calls with "
                         "implausible times, or pass window=")
    return day_start_us(first_day, tz), day_start_us(last_day + dt.timedelta(days=1), tz)


@dataclass(frozen=True)
class Observed:
    """A window ``[start, end)`` (µs) and the sites' gaps inside it."""

    start: int
    end: int
    source: str  # "window=", "attrs" or "activity"
    gaps: tuple[tuple[str, int, int], ...] = ()

    @property
    def span(self) -> np.ndarray:
        return np.array([[self.start, self.end]], dtype="int64")

    def intervals(self, sites=None) -> np.ndarray:
        """Observed intervals (k x 2, sorted, disjoint): the window minus the gaps of
        ``sites`` (an iterable of names), or of every site when ``sites`` is None."""
        cut = sorted((a, b) for site, a, b in self.gaps if sites is None or site in sites)
        out, cursor = [], self.start
        for a, b in cut:
            if a > cursor:
                out.append((cursor, a))
            cursor = max(cursor, b)
        if cursor < self.end:
            out.append((cursor, self.end))
        return np.array(out, dtype="int64").reshape(-1, 2)

    def describe(self, tz: str) -> str:
        """``2024-01-01 10:00 to 10:30 UTC (30 min)``: for messages and str()."""
        a, b = to_times(np.array([self.start, self.end])).tz_convert(tz)
        fmt = "%H:%M" if a.date() == b.date() else "%Y-%m-%d %H:%M"
        return (f"{a:%Y-%m-%d %H:%M} to {b.strftime(fmt)} {tz} "
                f"({duration_text(self.end - self.start)})")


def duration_text(us: int) -> str:
    """A length of time in words: ``30 min``, ``2 h 5 min``, ``3 days 4 h``, ``45 s``."""
    seconds = us / US_PER_S
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} day{'s' if days != 1 else ''}" + (f" {hours} h" if hours else "")
    if hours:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    if minutes:
        return f"{minutes} min" + (f" {secs} s" if secs else "")
    return f"{seconds:g} s"


def read_gaps(calls: pd.DataFrame, start: int, end: int) -> tuple[tuple[str, int, int], ...]:
    """``attrs["gaps"]`` as (site, start, end) in µs, clipped to the window."""
    raw = calls.attrs.get("gaps") or []
    out = []
    for gap in raw:
        try:
            a = _moment_us(gap["start"], 'attrs["gaps"]')
            b = _moment_us(gap["end"], 'attrs["gaps"]')
        except (KeyError, TypeError):
            raise ValueError('attrs["gaps"] must be a list of {"server", "site", "start", '
                             f'"end"}} dicts; got {gap!r}') from None
        a, b = max(a, start), min(b, end)
        if a < b:
            out.append((str(gap.get("site", "")), a, b))
    return tuple(out)


def resolve(calls: pd.DataFrame, tz: str, window, start: np.ndarray,
            end: np.ndarray) -> Observed | None:
    """The table's Observed time; ``start``/``end`` (µs) are the calls that define
    activity for the archive rule (every one with a start). None when there is neither
    a window nor activity."""
    if window is not None:
        a, b = _pair(window, "window")
        source = "window="
    elif calls.attrs.get("window") is not None:
        a, b = _pair(calls.attrs["window"], 'calls.attrs["window"]')
        source = "attrs"
    else:
        found = activity_window(start, end, tz)
        if found is None:
            return None
        (a, b), source = found, "activity"
    return Observed(a, b, source, read_gaps(calls, a, b))


def observation_window(calls: pd.DataFrame, *, tz: str = "UTC",
                       window=None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The period a calls table observes, as two UTC Timestamps ``(start, end)``.

    ``window`` if given (two moments; naive means UTC); else ``calls.attrs["window"]``
    (two ISO-8601 UTC strings, as a live capture writes); else whole local days (in
    ``tz``) from the first to the last activity of the calls an analysis keeps (see
    :func:`recstats.check_calls`): an archive holds every call of the days it spans,
    so its quiet hours are real zeros. Every analysis function uses this window.

    Parameters
    ----------
    calls : pandas.DataFrame
        A calls table.
    tz : str
        IANA time zone whose local days the archive rule uses.
    window : tuple of two moments, optional
        The answer, checked and converted to UTC.

    Returns
    -------
    tuple of pandas.Timestamp
        ``(start, end)`` in UTC; the window is the half-open ``[start, end)``.

    Raises
    ------
    ValueError
        For a malformed window, an unknown ``tz``, or a table without any call time
        and no window.

    Examples
    --------
    >>> calls = pd.DataFrame({
    ...     "start_time": pd.to_datetime(["2024-01-01 09:00"], utc=True),
    ...     "end_time": pd.to_datetime(["2024-01-02 00:30"], utc=True)})
    >>> observation_window(calls)
    (Timestamp('2024-01-01 00:00:00+0000', tz='UTC'), Timestamp('2024-01-03 00:00:00+0000', tz='UTC'))
    >>> calls.attrs["window"] = ["2024-01-01T09:00:00Z", "2024-01-01T10:00:00Z"]
    >>> observation_window(calls)[1]
    Timestamp('2024-01-01 10:00:00+0000', tz='UTC')
    """
    from ._quality import prepare  # the archive rule uses the calls analyses keep

    prepared = prepare(calls, tz=check_tz(tz), window=window, warn=False)
    if prepared.observed is None:
        raise ValueError("the calls table has no call times to take a window from; "
                         "pass window=(start, end)")
    start, end = to_times(np.array([prepared.observed.start, prepared.observed.end]))
    return start, end
