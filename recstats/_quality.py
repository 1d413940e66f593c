"""Rows no analysis should trust, and the one preparation every analysis starts with.

:func:`check_calls` lists the problems; :func:`prepare` leaves those rows out (with one
:class:`recstats.DataQualityWarning` saying how many and which), resolves the
observation window and turns the kept calls into int64 microsecond intervals, ongoing
calls ending at the window's end.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass
from functools import cached_property
from types import FrameType

import numpy as np
import pandas as pd

from ._time import check_tz
from ._timeline import NAT, US_PER_S, flags, micros, require
from ._window import Observed, resolve
from .errors import DataQualityWarning

__all__ = ["check_calls"]

NO_START, END_BEFORE_START, UNKNOWN_END, DUPLICATE, TOO_LONG, DISAGREES, OUTSIDE = (
    1 << k for k in range(7))
_TOLERANCE_S = 1.0  # CDR durations are often whole seconds while times carry ms


def _labels(max_duration: float) -> dict[int, str]:
    if max_duration % 3600 == 0:
        limit = f"{max_duration / 3600:g} h"
    elif max_duration % 60 == 0:
        limit = f"{max_duration / 60:g} min"
    else:
        limit = f"{max_duration:g} s"
    return {NO_START: "no start time", END_BEFORE_START: "end before start",
            UNKNOWN_END: "unknown end", DUPLICATE: "duplicate call id",
            TOO_LONG: f"duration over {limit}",
            DISAGREES: "duration disagrees with end - start",
            OUTSIDE: "outside the window"}


def _problems(calls, start, end, max_duration) -> np.ndarray:
    """Problem bits of every row, except OUTSIDE (which needs the window)."""
    code = np.zeros(len(calls), dtype="uint8")

    def flag(mask, bit):
        np.bitwise_or(code, bit, out=code, where=mask)

    flag(start == NAT, NO_START)
    both = (start != NAT) & (end != NAT)
    elapsed = end - start  # meaningless where a time is missing: masked by `both`
    flag(both & (elapsed < 0), END_BEFORE_START)
    flag(both & (elapsed > int(max_duration * US_PER_S)), TOO_LONG)
    if "end_unknown" in calls.columns:
        flag(flags(calls["end_unknown"]), UNKNOWN_END)
    if "duration" in calls.columns:
        stated = pd.to_numeric(calls["duration"], errors="coerce").to_numpy("float64")
        with np.errstate(invalid="ignore"):
            flag(both & (np.abs(stated - elapsed / US_PER_S) > _TOLERANCE_S), DISAGREES)
    if "call_id" in calls.columns:
        _flag_duplicates(calls, start, code)
    return code


def _flag_duplicates(calls, start, code) -> None:
    """DUPLICATE on each repeat of a call: the same call_id at the same site with the
    same start as an earlier usable row. Only rows sharing a start (found with an int64
    sort) have their ids compared: hashing millions of id strings would cost seconds."""
    usable = np.flatnonzero(code == 0)
    if usable.size < 2:
        return
    times = start[usable]
    ordered = np.sort(times)  # a sort and a search: an argsort costs several times more
    same = ordered[1:] == ordered[:-1]
    if not same.any():
        return
    repeated_times = np.unique(ordered[1:][same])
    at = np.minimum(np.searchsorted(repeated_times, times), repeated_times.size - 1)
    shared = repeated_times[at] == times
    rows = usable[shared]
    keys = ["site", "call_id"] if "site" in calls.columns else ["call_id"]
    subset = calls[keys].iloc[rows].assign(start=start[rows])
    repeated = subset.duplicated(keep="first").to_numpy(bool) & \
        subset["call_id"].notna().to_numpy(bool)
    code[rows[repeated]] |= DUPLICATE


@dataclass(frozen=True)
class Prepared:
    """The kept calls of a table: positions (or ``slice(None)`` for all), intervals
    (µs), and the observed time."""

    calls: pd.DataFrame
    rows: np.ndarray | slice
    start: np.ndarray
    end: np.ndarray
    observed: Observed | None
    problems: np.ndarray

    @cached_property
    def sites(self) -> set[str] | None:
        """The sites the table holds calls of (None without a site column): its total
        is unobserved during these sites' gaps. A table cut to one site keeps the
        capture's attrs, but the other sites' gaps are no longer its business."""
        if "site" not in self.calls.columns:
            return None
        return {str(s) for s in pd.unique(self.calls["site"].dropna())}

    @cached_property
    def _span(self) -> np.ndarray:
        assert self.observed is not None
        return self.observed.span

    def intervals(self, site=None) -> np.ndarray:
        """Observed intervals of one ``site`` (its gaps cut out), or of the whole table."""
        assert self.observed is not None
        if not self.observed.gaps:
            return self._span
        return self.observed.intervals(self.sites if site is None else {str(site)})


def prepare(calls: pd.DataFrame, *, tz: str, window=None, max_duration: float = 86400.0,
            warn: bool = True, columns: tuple[str, ...] = ()) -> Prepared:
    """Leave out problem rows (one warning), resolve the window, ongoing ends -> its end."""
    require(calls, "start_time", "end_time", *columns)
    start, end = micros(calls["start_time"]), micros(calls["end_time"])
    code = _problems(calls, start, end, max_duration)
    clean = ~code.astype(bool)
    everything = bool(clean.all())  # the usual case: no copies of the time columns
    observed = resolve(calls, tz, window, *((start, end) if everything else
                                            (start[clean], end[clean])))
    if observed is not None and observed.source != "activity":  # the archive rule's
        ws, we = observed.start, observed.end                    # days hold every call
        outside = clean & ((start >= we) | ((end != NAT) & (end <= ws) & (start < ws)))
        if outside.any():
            code[outside] |= OUTSIDE
            everything = False
    if warn and not everything:
        report = code != 0
        if observed is not None and observed.source == "window=":
            report &= code != OUTSIDE  # the analyst chose to look at part of the table
        if report.any():
            _warn(calls, code, report, max_duration)
    rows: np.ndarray | slice = slice(None)
    if not everything:
        rows = np.flatnonzero(code == 0)
        start, end = start[rows], end[rows]
    if observed is not None:
        ongoing = end == NAT  # = ongoing_mask for kept rows: unknown ends are left out
        if ongoing.any():  # until the window's end
            end = np.where(ongoing, observed.end, end)
    return Prepared(calls, rows, start, end, observed, code)


def _ids(calls: pd.DataFrame, rows: np.ndarray) -> list[str]:
    if "call_id" in calls.columns:
        return [str(v) for v in calls["call_id"].iloc[rows]]
    return [str(v) for v in calls.index[rows]]


def _warn(calls, code, report, max_duration) -> None:
    labels = _labels(max_duration)
    rows = np.flatnonzero(report)
    counts = [f"{int(((code[rows] & bit) != 0).sum())} {text}"
              for bit, text in labels.items() if (code[rows] & bit).any()]
    ids = _ids(calls, rows[:5])
    more = f" and {rows.size - 5} more" if rows.size > 5 else ""
    noun = "call" if rows.size == 1 else "calls"
    warnings.warn(f"{rows.size} {noun} left out: {', '.join(counts)} "
                  f"(ids: {', '.join(ids)}{more}); recstats.check_calls lists them",
                  DataQualityWarning, stacklevel=_caller_level())


def _caller_level() -> int:
    """stacklevel of the first frame outside recstats: the warning points at the
    analyst's line whichever public function was called."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame: FrameType | None = sys._getframe(1)
    level = 1  # the caller of this function is stacklevel 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def check_calls(calls: pd.DataFrame, *, window=None,
                max_duration: float = 86400.0) -> pd.DataFrame:
    """The rows no analysis should trust, one row per problem.

    Problems: ``"no start time"``; ``"end before start"``; ``"unknown end"``
    (``end_unknown`` True: the end could not be known); ``"duplicate call id"`` (the
    same ``call_id`` at the same ``site`` again: the first is kept, the repeats are
    listed); ``"duration over 24 h"`` (end - start over ``max_duration``; the text
    gives the limit); ``"duration disagrees with end - start"`` (the ``duration``
    column differs from end - start by more than 1 s); ``"outside the window"`` (the
    call does not reach into the observation window, see
    :func:`recstats.observation_window`). Every analysis leaves these rows out and
    says so in one :class:`recstats.DataQualityWarning` -- except calls outside a
    ``window=`` the analyst passed, which are simply not in it.

    Parameters
    ----------
    calls : pandas.DataFrame
        A calls table (``start_time``, ``end_time``; ``end_unknown``, ``duration``,
        ``call_id`` and ``site`` are checked when present).
    window : tuple of two moments, optional
        The observation window; default ``calls.attrs["window"]``, else the whole days
        of the calls (nothing is then outside it).
    max_duration : float
        Longest plausible call [s].

    Returns
    -------
    pandas.DataFrame
        Columns ``call_id`` (the row's index label when there is no ``call_id``
        column) and ``problem``; indexed by the rows' labels in ``calls``, so
        ``calls.drop(check_calls(calls).index)`` keeps the trusted rows.

    Examples
    --------
    >>> calls = pd.DataFrame({
    ...     "call_id": ["a", "b", "b"],
    ...     "start_time": pd.to_datetime(["2024-01-01 09:00"] * 3, utc=True),
    ...     "end_time": pd.to_datetime(["2024-01-01 08:00", None, None], utc=True),
    ...     "end_unknown": [False, True, False]})
    >>> check_calls(calls)
      call_id           problem
    0       a  end before start
    1       b       unknown end
    """
    if not (isinstance(max_duration, (int, float)) and max_duration > 0):
        raise ValueError(f"max_duration must be a positive number of seconds, not "
                         f"{max_duration!r}")
    prepared = prepare(calls, tz=check_tz("UTC"), window=window,
                       max_duration=float(max_duration), warn=False)
    code = prepared.problems
    labels = _labels(float(max_duration))
    rows, problems = [], []
    for row in np.flatnonzero(code):
        for bit, text in labels.items():
            if code[row] & bit:
                rows.append(row)
                problems.append(text)
    positions = np.array(rows, dtype="int64")
    return pd.DataFrame({"call_id": pd.array(_ids(calls, positions), dtype="str"),
                         "problem": pd.array(problems, dtype="str")},
                        index=calls.index[positions])
