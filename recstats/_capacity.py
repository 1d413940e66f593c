"""The capacity table: busy-hour traffic and Erlang B channels per site and overall."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._busyhour import check_settings, choose_days, day_peaks, find_busy_hour, hourly
from ._erlang import channels_for, check_blocking
from ._quality import prepare
from ._time import check_tz
from ._timeline import group_codes, observe, step

__all__ = ["capacity_settings", "capacity_table"]


def capacity_settings(tz, blocking, method, top_days, min_coverage
                      ) -> tuple[str, list[float]]:
    """:func:`capacity_table`'s settings checked (the Dask one takes the same): the zone
    and the blocking targets as floats."""
    tz = check_tz(tz)
    check_settings(method, top_days, min_coverage)
    targets = [float(b) for b in np.atleast_1d(blocking)]
    check_blocking(targets)
    return tz, targets


def capacity_table(calls: pd.DataFrame, *, blocking=(0.001, 0.01, 0.05),
                   method: str = "time-consistent", tz: str = "UTC", window=None,
                   days=None, top_days: int | None = None,
                   min_coverage: float = 0.5) -> pd.DataFrame:
    """Busy-hour traffic, Erlang B channels, observed peak and spread, per site and "all".

    One row per ``site`` (sorted) plus ``"all"`` (every call together, not the sum of
    the sites). ``traffic`` is exactly what :func:`recstats.busy_hour` gives with the
    same arguments for that site's calls over the table's window (a site's own gaps cut
    out of its observed time); a site with no eligible hour gets NaN, while for
    ``"all"`` the ValueError of :func:`recstats.busy_hour` is raised.

    The traffic measured is *carried* traffic, used as the *offered* traffic Erlang B
    expects: right when the observed system blocked little; if it ran full (observed
    peak at its channel count), calls were lost and the channels needed are understated.

    Parameters
    ----------
    calls : pandas.DataFrame
        A calls table (problem rows are left out with one warning).
    blocking : float or sequence of float
        Blocking targets, each strictly between 0 and 1; one ``channels@<b %>`` column
        each.
    method, tz, window, days, top_days, min_coverage
        As in :func:`recstats.busy_hour`.

    Returns
    -------
    pandas.DataFrame
        Index ``site``; columns ``traffic`` [erlang], ``busy_hour`` (clock hour in
        ``tz``), ``channels@<b %>`` (:func:`recstats.channels_for` of the traffic),
        ``observed_peak`` (largest number of calls at once within the chosen days,
        observed time only), ``busiest_day_traffic`` [erlang] (the highest busy-hour
        traffic of any single chosen day, to show the spread) and ``coverage`` (the
        observed fraction of the hours averaged).

    Examples
    --------
    >>> calls = pd.DataFrame({
    ...     "start_time": pd.to_datetime(["2024-01-01 09:00"] * 3, utc=True),
    ...     "end_time": pd.to_datetime(["2024-01-01 10:00"] * 3, utc=True),
    ...     "site": ["NY", "NY", "LA"]})
    >>> table = capacity_table(calls, blocking=[0.01])
    >>> table[["traffic", "busy_hour", "channels@1%", "observed_peak", "coverage"]]
    ... # doctest: +NORMALIZE_WHITESPACE
          traffic  busy_hour  channels@1%  observed_peak  coverage
    site
    LA        1.0          9            5              1       1.0
    NY        2.0          9            7              2       1.0
    all       3.0          9            8              3       1.0
    """
    tz, targets = capacity_settings(tz, blocking, method, top_days, min_coverage)
    prepared = prepare(calls, tz=tz, window=window)
    if prepared.observed is None:
        raise ValueError("the calls table has no call with a start time, so there is no "
                         "window to find a busy hour in; pass window=(start, end)")
    parts = [("all", prepared.start, prepared.end, prepared.intervals())]
    if "site" in calls.columns:
        codes, sites = group_codes(calls, "site", prepared.rows)
        parts += [(str(site), prepared.start[codes == k], prepared.end[codes == k],
                   prepared.intervals(site)) for k, site in enumerate(sites)]
    rows = {}
    for name, start, end, intervals in parts:
        times, level = step(start, end)
        table = hourly(times, level, intervals, tz, prepared.observed)
        chosen, _ = choose_days(table.dates, days)
        peaks = day_peaks(*observe(times, level, intervals), table)
        row = {"traffic": np.nan, "busy_hour": pd.NA, "observed_peak": int(peaks[chosen].max()),
               "busiest_day_traffic": np.nan, "coverage": np.nan}
        try:
            found = find_busy_hour(table, method=method, tz=tz, window=prepared.observed,
                                   days=days, top_days=top_days, min_coverage=min_coverage)
        except ValueError:
            if name == "all":
                raise
        else:
            row.update(traffic=found.traffic, busy_hour=found.hour,
                       busiest_day_traffic=float(np.nanmax(found.per_day["traffic"])),
                       coverage=found.coverage)
        rows[name] = row
    order = sorted(n for n in rows if n != "all") + ["all"]
    out = pd.DataFrame([rows[n] for n in order], index=pd.Index(order, name="site"))
    for b in targets:
        traffic = out["traffic"].to_numpy("float64")
        need = np.zeros(traffic.size, dtype="int64")
        known = ~np.isnan(traffic)
        if known.any():
            need[known] = channels_for(traffic[known], b)
        out[f"channels@{b * 100:g}%"] = pd.array(np.where(known, need, 0), dtype="Int64")
        out.loc[~known, f"channels@{b * 100:g}%"] = pd.NA
    columns = ["traffic", "busy_hour", *[f"channels@{b * 100:g}%" for b in targets],
               "observed_peak", "busiest_day_traffic", "coverage"]
    return out[columns].astype({"busy_hour": "Int64", "observed_peak": "int64"})
