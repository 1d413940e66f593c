"""Calls tables beyond one machine: Dask DataFrames and statistics computed on them.

:func:`read_archive` and :func:`read_calls` build a :class:`dask.dataframe.DataFrame`
with the calls-table schema from chunks of CDR files or from the data files of a
dataset written by :func:`recstats.ingest`; :func:`concurrency`, :func:`busy_hour` and
:func:`capacity_table` compute what their :mod:`recstats.stats` namesakes compute, on
any Dask scheduler (the default one, or a ``distributed.Client``'s), sending only
per-bin summaries to the caller: the calls are never collected.

Requires ``dask[distributed]`` (the ``dask`` extra). Label columns (``site``...) are
categories whose values each partition knows (unknown categories in ``meta``); a
computed frame's categories are the union of its partitions', so use
:func:`recstats.coerce_calls` to get :func:`recstats.read_archive`'s sorted categories.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

try:
    import dask
    import dask.dataframe as dd
    from dask.dataframe.utils import clear_known_categories
except ImportError as exc:  # an optional dependency: say how to get it
    raise ImportError("recstats.dask needs Dask: pip install 'recstats[dask]'") from exc

from . import _dask_stats as ds
from ._dataset_read import dataset_parts, read_fragment, read_parts
from ._table import coerce_calls, empty_calls
from ._time import check_tz
from .archive import archive_files
from .archive import read_archive as _read_archive_locally
from .stats import BusyHour, channels_for

__all__ = ["busy_hour", "capacity_table", "concurrency", "read_archive", "read_calls"]

_CONTAINERS = (".zip", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz")


def _unknown_categories(meta: pd.DataFrame) -> pd.DataFrame:
    return clear_known_categories(meta, cols=[c for c, t in meta.dtypes.items()
                                              if isinstance(t, pd.CategoricalDtype)])


def _archive_meta() -> pd.DataFrame:
    empty = empty_calls()
    return coerce_calls(empty.assign(media_path=pd.Series([], dtype="str"),
                                     cdr_path=pd.Series([], dtype="str")))


def _conform(frame: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with exactly ``meta``'s columns (missing ones NA) and dtypes."""
    frame = frame.reindex(columns=meta.columns)
    return coerce_calls(frame)[list(meta.columns)]


def _parse_chunk(chunk, tz: str) -> pd.DataFrame:
    calls = _read_archive_locally(chunk, workers=1, progress=False, tz=tz)
    return _conform(calls, _archive_meta())


def read_archive(path: str | os.PathLike | Sequence[str | os.PathLike], *,
                 files_per_partition: int = 2000, tz: str = "UTC") -> dd.DataFrame:
    """A CDR archive as a Dask DataFrame: one partition per chunk of CDR files.

    The files are listed here (:func:`recstats.archive_files`, nothing parsed); each
    partition parses its chunk with :func:`recstats.read_archive` where the scheduler
    runs it. A ``.zip``/``.tar`` is one partition (it cannot be split by member).

    Parameters
    ----------
    path : path or list of paths
        Folder, ``.zip``, ``.tar[.gz]`` or list of CDR files.
    files_per_partition : int
        CDR files per partition (each partition holds at most this many calls).
    tz : str
        The sites' IANA time zone (CDR times carry none).

    Returns
    -------
    dask.dataframe.DataFrame
        The calls-table columns of :func:`recstats.empty_calls` plus ``media_path`` and
        ``cdr_path``, with their dtypes. Extra CDR fields are left out (a Dask frame's
        columns are fixed before any file is read), and so are parse errors: use
        :func:`recstats.ingest` and :func:`read_calls` to keep both.

    Examples
    --------
    >>> import recstats as rs
    >>> calls = rs.dask.read_archive("data/samples/archive", files_per_partition=100)
    >>> calls.npartitions, len(calls)
    (4, 400)
    """
    tz = check_tz(tz)
    if isinstance(files_per_partition, bool) or not isinstance(files_per_partition, int) \
            or files_per_partition < 1:
        raise ValueError(f"files_per_partition must be a positive integer, not "
                         f"{files_per_partition!r}")
    if isinstance(path, (str, os.PathLike)) and os.path.isfile(path) and \
            os.fspath(path).lower().endswith(_CONTAINERS):
        chunks: list = [os.fspath(path)]
    else:
        files = archive_files(path)["cdr_path"].tolist()
        chunks = [files[i:i + files_per_partition]
                  for i in range(0, len(files), files_per_partition)] or [[]]
    return dd.from_map(_parse_chunk, chunks, tz=tz,
                       meta=_unknown_categories(_archive_meta()),
                       label="recstats-read-archive", enforce_metadata=False)


def read_calls(dataset: str | os.PathLike, *, sites=None, start=None, end=None
               ) -> dd.DataFrame:
    """A dataset written by :func:`recstats.ingest` as a Dask DataFrame, one partition
    per data file (one site and local date each), pruned as :func:`recstats.read_calls`
    prunes: same ``sites``, ``start`` and ``end``; its computed rows are that function's.

    >>> import recstats as rs
    >>> calls = rs.dask.read_calls("/tmp/calls-ds", sites="NY-RECORDER")  # doctest: +SKIP
    """
    data, condition, _ = dataset_parts(dataset, sites=sites, start=start, end=end)
    meta = read_parts(data.schema.empty_table())
    files = list(data.files)
    if not files:
        return dd.from_pandas(meta, npartitions=1)
    root = os.fspath(dataset)
    return dd.from_map(_read_part, files, root=root, schema=data.schema,
                       condition=condition, meta=_unknown_categories(meta),
                       label="recstats-read-calls", enforce_metadata=False)


def _read_part(path: str, root: str, schema, condition) -> pd.DataFrame:
    return read_parts(read_fragment(path, root, schema, condition))


# --------------------------------------------------------------------------- statistics


def _as_dask(calls) -> dd.DataFrame:
    if isinstance(calls, pd.DataFrame):
        return dd.from_pandas(calls, npartitions=1)
    if not isinstance(calls, dd.DataFrame):
        raise TypeError(f"expected a Dask DataFrame of calls, got {type(calls).__name__}")
    return calls


def _freq_micros(freq) -> int:
    probe = pd.DataFrame({"start_time": pd.Series([], dtype="datetime64[us, UTC]"),
                          "end_time": pd.Series([], dtype="datetime64[us, UTC]")})
    from .stats import concurrency as local

    local(probe, freq=freq)  # the local function's checks and messages
    return int(pd.tseries.frequencies.to_offset(freq).nanos // 1000)


def _summaries(calls, width: int, by: str | None, until):
    """Per-bin areas/started (summed) and peak summaries, and the start extent."""
    calls = _as_dask(calls)
    needed = ["start_time", "end_time"] + ([by] if by is not None else [])
    missing = [c for c in needed if c not in calls.columns]
    if missing:
        raise ValueError(f"the calls table has no {', '.join(missing)} column(s)")
    columns = needed + [c for c in ("end_unknown",) if c in calls.columns]
    calls = calls[columns]
    now = pd.Timestamp.now("UTC")
    first, latest, latest_end = (calls["start_time"].min(), calls["start_time"].max(),
                                 calls["end_time"].max())

    def events(part, latest, latest_end):
        return ds.partition_events(part, ds.until_value(until, latest, latest_end, now),
                                   width, by)

    def areas(part, latest, latest_end):
        return ds.partition_areas(part, ds.until_value(until, latest, latest_end, now),
                                  width, by)

    changes = calls.map_partitions(events, latest, latest_end, meta=ds.EVENTS_META)
    # a task shuffle starts at once; peer-to-peer pays off only with many partitions
    shuffle_method = "tasks" if changes.npartitions <= 32 else None
    peaks = changes.shuffle(on=["key", "bin"], shuffle_method=shuffle_method) \
        .map_partitions(ds.bin_peaks, width, meta=ds.PEAKS_META)
    summed = calls.map_partitions(areas, latest, latest_end, meta=ds.AREAS_META) \
        .groupby(["group", "bin"]).sum(split_out=1).reset_index()
    peaks, summed, first, latest = dask.compute(peaks, summed, first, latest)
    return summed, peaks, first, latest


def _span(summed: pd.DataFrame) -> tuple[int, int] | None:
    every = summed.loc[summed["group"] == ds.ALL, "bin"]
    return None if every.empty else (int(every.min()), int(every.max()))


def concurrency(calls, *, freq, by: str | None = None, tz: str = "UTC",
                until=None) -> pd.DataFrame:
    """Binned concurrency of a Dask calls table: :func:`recstats.stats.concurrency`'s
    ``peak``, ``mean`` [erlang] and ``started`` per bin, equal to it, plus ``coverage``.

    Parameters
    ----------
    calls : dask.dataframe.DataFrame
        Calls table (``start_time``, ``end_time``; ``end_unknown`` and the ``by``
        column when present). A pandas frame is taken as one partition.
    freq : str
        Fixed bin length such as ``"15min"``; bins are aligned to the epoch and run
        from the first to the last activity (the exact step function is not offered:
        it is as long as the calls table).
    by : str, optional
        Group by this label column (e.g. ``"site"``): a ``(by, time)`` index, every
        group on the same bins, groups sorted by label text.
    tz : str
        The zone whose whole local days (from the first to the last activity) are the
        observation window ``coverage`` refers to.
    until : timestamp-like, optional
        Where ongoing calls (no ``end_time``) stop counting; default now or the latest
        start or end, as for the local function.

    Returns
    -------
    pandas.DataFrame
        Indexed by bin start ``time`` (UTC): ``peak`` (int64, maximum of the step
        function in the bin, counting the level carried in), ``mean`` (float64,
        erlangs), ``started`` (int64) and ``coverage`` (float64, the fraction of the
        bin inside the window: 1 except where a bin crosses a local-day edge of it).

    Examples
    --------
    >>> import dask.dataframe as dd
    >>> calls = pd.DataFrame({
    ...     "start_time": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 10:10"], utc=True),
    ...     "end_time": pd.to_datetime(["2024-01-01 10:20", "2024-01-01 10:30"], utc=True)})
    >>> out = concurrency(dd.from_pandas(calls, npartitions=2), freq="20min")
    >>> out[["peak", "mean", "started", "coverage"]].values.tolist()
    [[2.0, 1.5, 2.0, 1.0], [1.0, 0.5, 0.0, 1.0]]
    """
    tz = check_tz(tz)
    width = _freq_micros(freq)
    summed, peaks, first, latest = _summaries(calls, width, by, until)
    span = _span(summed)
    columns = {"peak": "int64", "mean": "float64", "started": "int64",
               "coverage": "float64"}
    if span is None:
        empty = pd.DataFrame({c: pd.Series([], dtype=t) for c, t in columns.items()})
        return empty.set_index(pd.DatetimeIndex([], dtype="datetime64[us, UTC]",
                                                name="time"))
    lo, hi = span
    bins = np.arange(lo, hi + 1, dtype="int64") * width
    every = peaks[peaks["key"] == ds.group_keys([ds.ALL])[0]]
    first_us = min(ds.micros([first])[0], int(every["first"].min())) if len(every) else \
        int(ds.micros([first])[0])
    last_us = max(ds.micros([latest])[0], int(every["last"].max()) - 1) if len(every) else \
        int(ds.micros([latest])[0])
    _, _, window_lo, window_hi = ds.local_days(first_us, last_us, tz)
    inside = np.minimum(bins + width, window_hi) - np.maximum(bins, window_lo)
    coverage = np.clip(inside, 0, width) / width
    times = pd.DatetimeIndex(bins.view("M8[us]")).tz_localize("UTC")
    if by is None:
        out = pd.DataFrame(ds.scan(summed, peaks, ds.ALL, lo, hi, width),
                           index=times.rename("time"))
        out["coverage"] = coverage
        return out
    groups = sorted(set(summed["group"]) - {ds.ALL})
    parts = [ds.scan(summed, peaks, g, lo, hi, width) for g in groups]
    stacked = {name: np.concatenate([p[name] for p in parts] + [np.empty(0, t)])
               for name, t in columns.items() if name != "coverage"}
    stacked["coverage"] = np.tile(coverage, len(groups))
    labels = pd.Index(np.repeat(groups, bins.size), dtype="str")
    if isinstance(_as_dask(calls)[by].dtype, pd.CategoricalDtype):
        labels = pd.CategoricalIndex(labels, categories=groups)
    index = pd.MultiIndex.from_arrays([labels, times[np.tile(np.arange(bins.size),
                                                             len(groups))]],
                                      names=[by, "time"])
    return pd.DataFrame(stacked, index=index)


def _hourly_of(summed: pd.DataFrame, peaks: pd.DataFrame, group: str, tz: str):
    """(dates, ndays x 24 erlangs) of ``group`` from its quarter-hour summaries."""
    p = peaks[peaks["key"] == ds.group_keys([group])[0]]
    if p.empty:  # no step function: no traffic
        return [], np.empty((0, 24))
    a = summed[summed["group"] == group]
    lo, hi = int(a["bin"].min()), int(a["bin"].max())
    quarters = np.zeros(hi - lo + 1, dtype="int64")
    np.add.at(quarters, (a["bin"] - lo).to_numpy(), a["area"].to_numpy())
    return ds.hourly(quarters, lo, int(p["first"].min()), int(p["last"].max()) - 1, tz)


def _select_days(dates, table, days):
    if days is None:
        return dates, table
    if isinstance(days, (str, _dt.date)):
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


def busy_hour(calls, method: str = "time-consistent", days=None, tz: str = "UTC", *,
              until=None) -> BusyHour:
    """The busy hour of a Dask calls table, equal to :func:`recstats.stats.busy_hour`.

    Computed from the carried traffic of every quarter hour (summed across partitions,
    exact), labelled with its clock hour in ``tz`` as the local function does; needs a
    zone whose offsets are whole quarter hours (all current zones). ``method``,
    ``days``, ``tz`` and ``until`` are the local function's.

    Returns
    -------
    recstats.stats.BusyHour
        ``hour`` (0-23 in ``tz``), ``traffic`` [erlang], ``per_day`` and ``profile``.

    Examples
    --------
    >>> import dask.dataframe as dd
    >>> calls = pd.DataFrame({
    ...     "start_time": pd.to_datetime(["2024-01-01 09:00", "2024-01-02 10:00"], utc=True),
    ...     "end_time": pd.to_datetime(["2024-01-01 10:00", "2024-01-02 10:30"], utc=True)})
    >>> bh = busy_hour(dd.from_pandas(calls, npartitions=2))
    >>> bh.hour, bh.traffic
    (9, 0.5)
    """
    if method not in ("time-consistent", "bouncing"):
        raise ValueError(f"method must be 'time-consistent' or 'bouncing', not {method!r}")
    tz = check_tz(tz)
    summed, peaks, _, _ = _summaries(calls, ds.QUARTER, None, until)
    dates, table = _hourly_of(summed, peaks, ds.ALL, tz)
    if not dates:
        raise ValueError("no call has both a start and a later end, so there is no "
                         "traffic to find a busy hour in")
    dates, table = _select_days(dates, table, days)
    profile = pd.Series(ds.nanmean(table), index=pd.Index(range(24), name="hour"),
                        name="traffic")
    daily_max = np.nanmax(table, axis=1)
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


def capacity_table(calls, blocking=(0.001, 0.01, 0.05), tz: str = "UTC", *,
                   until=None) -> pd.DataFrame:
    """Busy-hour traffic, observed peak and Erlang B channels per site and ``"all"``
    for a Dask calls table, equal to :func:`recstats.stats.capacity_table`.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``site`` (sorted, then ``"all"``): ``busy_hour_traffic`` [erlang],
        ``busy_hour`` (clock hour in ``tz``), ``observed_peak`` (maximum concurrency)
        and ``channels@<b>%`` per blocking target ``b``.

    Examples
    --------
    >>> import dask.dataframe as dd
    >>> calls = pd.DataFrame({
    ...     "start_time": pd.to_datetime(["2024-01-01 09:00"] * 3, utc=True),
    ...     "end_time": pd.to_datetime(["2024-01-01 10:00"] * 3, utc=True),
    ...     "site": ["NY", "NY", "LA"]})
    >>> capacity_table(dd.from_pandas(calls, npartitions=2), blocking=[0.01])
    ... # doctest: +NORMALIZE_WHITESPACE
          busy_hour_traffic  busy_hour  observed_peak  channels@1%
    site
    LA                  1.0          9              1            5
    NY                  2.0          9              2            7
    all                 3.0          9              3            8
    """
    blocking = [float(b) for b in np.atleast_1d(blocking)]
    channels_for(0.0, blocking)  # the local checks and message
    tz = check_tz(tz)
    calls = _as_dask(calls)
    by = "site" if "site" in calls.columns else None
    summed, peaks, _, _ = _summaries(calls, ds.QUARTER, by, until)
    groups = sorted(set(summed["group"]) - {ds.ALL}) + [ds.ALL]
    rows = []
    for group in groups:
        dates, table = _hourly_of(summed, peaks, group, tz)
        hour: object = pd.NA
        traffic, observed = 0.0, 0
        if dates:
            profile = ds.nanmean(table)
            hour, traffic = int(np.nanargmax(profile)), float(np.nanmax(profile))
            a = summed[summed["group"] == group]
            observed = int(ds.scan(summed, peaks, group, int(a["bin"].min()),
                                   int(a["bin"].max()), ds.QUARTER)["peak"].max())
        row = {"site": "all" if group == ds.ALL else group, "busy_hour_traffic": traffic,
               "busy_hour": hour, "observed_peak": observed}
        for b in blocking:
            row[f"channels@{b * 100:g}%"] = channels_for(traffic, b)
        rows.append(row)
    out = pd.DataFrame(rows).set_index("site")
    return out.astype({"busy_hour": "Int64", "observed_peak": "int64"})
