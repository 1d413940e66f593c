"""Calls tables beyond one machine: Dask DataFrames and statistics computed on them.

:func:`read_archive` and :func:`read_calls` build a :class:`dask.dataframe.DataFrame`
with the calls-table schema from chunks of CDR files or from the data files of a
dataset written by :func:`recstats.ingest`; :func:`concurrency` (binned),
:func:`busy_hour` and :func:`capacity_table` compute what their :mod:`recstats.stats`
namesakes compute on the computed frame -- equal, not approximately -- on any Dask
scheduler (the default one, or a ``distributed.Client``'s). Only per-bin summaries
reach the caller: the calls are never collected.

What the statistics share with the local ones: the observation window (``window=``,
else the frame's ``attrs["window"]``, else whole local days from the first to the last
activity, found with one min/max reduction before the pass), the sites' ``attrs["gaps"]``
as unobserved time, ongoing calls counted until the window's end, and the rows
:func:`recstats.check_calls` lists left out with the same single
:class:`recstats.DataQualityWarning` (duplicate call ids across partitions included).
A frame's attrs are its ``_meta``'s, which is what :func:`dask.dataframe.from_pandas`
keeps from the pandas frame; Dask names a frame by its data, so two frames with the
same calls and different attrs are one to it. Not offered: the exact step function
(``freq=None``), ``traffic_profile``, ``extension_stats`` and ``check_calls``, which
return a table as long as the calls; compute the frame for those.

Requires ``dask[distributed]`` (the ``dask`` extra). Label columns (``site``...) are
categories whose values each partition knows (unknown categories in ``meta``); a
computed frame's categories are the union of its partitions', so use
:func:`recstats.coerce_calls` to get :func:`recstats.read_archive`'s sorted categories.
Dask may turn text columns into ``string[pyarrow]``: a ``by`` column's labels then have
that dtype, as on the computed frame.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

try:
    import dask.dataframe as dd
    from dask.dataframe.utils import clear_known_categories
except ImportError as exc:  # an optional dependency: say how to get it
    raise ImportError("recstats.dask needs Dask: pip install 'recstats[dask]'") from exc

from . import _dask_driver as dr
from . import _dask_stats as ds
from . import stats
from ._busyhour import BusyHour, check_settings, choose_days, find_busy_hour, hourly
from ._capacity import capacity_settings
from ._dataset_read import dataset_parts, read_fragment, read_parts
from ._table import coerce_calls, empty_calls
from ._time import check_tz
from ._timeline import to_times
from .archive import archive_files
from .archive import read_archive as _read_archive_locally

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

    Parameters
    ----------
    dataset : str or os.PathLike
        The dataset folder.
    sites : str or sequence of str, optional
        Only these sites.
    start, end : timestamp, optional
        Only calls starting in ``[start, end)`` (naive means UTC).

    Returns
    -------
    dask.dataframe.DataFrame
        The calls table, lazily.

    Examples
    --------
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

def concurrency(calls, *, freq, by: str | None = None, tz: str = "UTC",
                window=None) -> pd.DataFrame:
    """Binned concurrency of a Dask calls table, equal to
    :func:`recstats.stats.concurrency` with ``freq`` on the computed table.

    The calls are never collected: the window is resolved first (see ``window``), then
    one pass sends per-bin integrals, starts and peak pieces to the caller. Peaks are
    exact: each partition's change events are shuffled by (group, bin), each bin's net
    change and highest running sum found, and the level carried into every bin is the
    sum of the earlier bins' nets. Rows :func:`recstats.check_calls` lists are left out
    with one :class:`recstats.DataQualityWarning` (duplicate call ids across partitions
    too, found with one shuffle of (site, call id, start) keys); ongoing calls count
    until the window's end.

    Parameters
    ----------
    calls : dask.dataframe.DataFrame
        A calls table (``start_time``, ``end_time``; ``end_unknown``, ``duration``,
        ``call_id``, ``site`` and the ``by`` column are used when present). A pandas
        frame is taken as one partition.
    freq : str
        A fixed bin length (``"15min"``, ``"1h"``, ``"1D"``...). The exact step function
        (``freq=None`` locally) is not offered: it is as long as the calls table.
    by : str, optional
        Column to group by (e.g. ``"site"``), as in the local function.
    tz : str
        IANA time zone of the bins and of the archive rule's whole days.
    window : tuple of two moments, optional
        Observation window; default the table's ``attrs["window"]`` (its ``_meta``'s:
        what the computed frame carries), else whole local days from the first to the
        last activity, found with one min/max reduction before the pass. The table's
        ``attrs["gaps"]`` are unobserved time, as locally.

    Returns
    -------
    pandas.DataFrame
        Indexed by bin start ``time`` (UTC; with ``by`` a ``(by, time)`` MultiIndex):
        ``peak``, ``mean`` [erlang], ``started`` and ``coverage`` (0-1), NaN where
        nothing of the bin was observed -- the local function's frame.

    Examples
    --------
    >>> import dask.dataframe as dd
    >>> calls = pd.DataFrame({
    ...     "start_time": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 10:10"], utc=True),
    ...     "end_time": pd.to_datetime(["2024-01-01 10:20", "2024-01-01 10:30"], utc=True)})
    >>> window = ("2024-01-01 10:00", "2024-01-01 10:30")
    >>> concurrency(dd.from_pandas(calls, npartitions=2), freq="20min",
    ...             window=window).values.tolist()
    [[2.0, 1.5, 2.0, 1.0], [1.0, 1.0, 0.0, 0.5]]
    """
    tz = check_tz(tz)
    stats.concurrency(dr.probe(), freq=freq)  # the local checks and messages
    table = dr.resolve_table(dr.select(calls, by), tz, window)
    if table.observed is None:  # no call and no window: the local empty answer
        return stats.concurrency(table.calls._meta, freq=freq, by=by, tz=tz)
    edges = dr.bin_edges(table.observed, freq, tz)
    spec = ds.Spec(tz, table.observed, table.sites, by, edges, started=True)
    merged, found = dr.one_pass(table, spec, peaks=True)
    times = to_times(edges[:-1])
    if by is None:
        return pd.DataFrame(dr.binned(merged, found, ds.ALL, edges, spec.intervals()),
                            index=times.rename("time"))
    uniques = dr.group_labels(table, merged, by)
    parts = [dr.binned(merged, found, str(label), edges, spec.intervals(str(label)))
             for label in uniques]
    columns = {name: np.concatenate([p[name] for p in parts] + [np.empty(0)])
               for name in ("peak", "mean", "started", "coverage")}
    labels = np.repeat(np.arange(len(uniques)), edges.size - 1)
    index = pd.MultiIndex.from_arrays(
        [uniques.take(labels), to_times(np.tile(edges[:-1], len(uniques)))],
        names=[by, "time"])
    return pd.DataFrame(columns, index=index)


def busy_hour(calls, *, method: str = "time-consistent", tz: str = "UTC", window=None,
              days=None, top_days: int | None = None, min_coverage: float = 0.5
              ) -> BusyHour:
    """The busy hour of a Dask calls table, equal to :func:`recstats.stats.busy_hour`
    on the computed table (every field, ``per_day`` and ``profile`` included).

    One pass sends each partition's traffic integral per local date and clock hour
    (exact integer call-µs, summed); the window, left-out rows and ongoing calls are
    as in :func:`concurrency`. Clock hours are built from quarter hours, as locally:
    every zone whose offsets are whole quarter hours.

    Parameters
    ----------
    calls : dask.dataframe.DataFrame
        A calls table (see :func:`concurrency`).
    method, tz, window, days, top_days, min_coverage
        As in :func:`recstats.busy_hour`: ``days`` is None, ``"weekdays"``,
        ``"weekends"``, a list of dates or a function of a date; ``min_coverage`` the
        smallest observed fraction (0-1) of an eligible hour.

    Returns
    -------
    recstats.stats.BusyHour
        ``hour`` (0-23 in ``tz``), ``traffic`` [erlang], ``coverage``, ``days_rule``,
        ``window``, ``per_day`` and ``profile`` [erlang].

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
    tz = check_tz(tz)
    check_settings(method, top_days, min_coverage)
    table = dr.resolve_table(dr.select(calls), tz, window)
    if table.observed is None:  # the local message
        return stats.busy_hour(table.calls._meta, method=method, tz=tz)
    spec = ds.Spec(tz, table.observed, table.sites, hourly=True)
    merged, _ = dr.one_pass(table, spec, peaks=False)
    return find_busy_hour(dr.hourly_of(merged, ds.ALL, spec, spec.intervals()), method=method,
                          tz=tz, window=table.observed, days=days, top_days=top_days,
                          min_coverage=min_coverage)


def capacity_table(calls, *, blocking=(0.001, 0.01, 0.05), method: str = "time-consistent",
                   tz: str = "UTC", window=None, days=None, top_days: int | None = None,
                   min_coverage: float = 0.5) -> pd.DataFrame:
    """Busy-hour traffic, Erlang B channels, observed peak and spread per site and
    ``"all"`` for a Dask calls table, equal to :func:`recstats.stats.capacity_table`
    on the computed table.

    One pass sends each site's hourly traffic integrals and the peak pieces of its
    local days (see :func:`concurrency`); ``observed_peak`` is exact.

    Parameters
    ----------
    calls : dask.dataframe.DataFrame
        A calls table (see :func:`concurrency`).
    blocking : float or sequence of float
        Blocking targets, each strictly between 0 and 1.
    method, tz, window, days, top_days, min_coverage
        As in :func:`busy_hour`.

    Returns
    -------
    pandas.DataFrame
        The local table: index ``site``; ``traffic`` [erlang], ``busy_hour``,
        ``channels@<b %>``, ``observed_peak``, ``busiest_day_traffic`` [erlang] and
        ``coverage``.

    Examples
    --------
    >>> import dask.dataframe as dd
    >>> calls = pd.DataFrame({
    ...     "start_time": pd.to_datetime(["2024-01-01 09:00"] * 3, utc=True),
    ...     "end_time": pd.to_datetime(["2024-01-01 10:00"] * 3, utc=True),
    ...     "site": ["NY", "NY", "LA"]})
    >>> table = capacity_table(dd.from_pandas(calls, npartitions=2), blocking=[0.01])
    >>> table[["traffic", "busy_hour", "channels@1%", "observed_peak", "coverage"]]
    ... # doctest: +NORMALIZE_WHITESPACE
          traffic  busy_hour  channels@1%  observed_peak  coverage
    site
    LA        1.0          9            5              1       1.0
    NY        2.0          9            7              2       1.0
    all       3.0          9            8              3       1.0
    """
    tz, targets = capacity_settings(tz, blocking, method, top_days, min_coverage)
    table = dr.resolve_table(dr.select(calls), tz, window)
    if table.observed is None:  # the local message
        return stats.capacity_table(table.calls._meta, blocking=targets, tz=tz)
    by = "site" if "site" in table.calls.columns else None
    skeleton = hourly(dr.EMPTY, dr.EMPTY, table.observed.span, tz, table.observed)
    spec = ds.Spec(tz, table.observed, table.sites, by, skeleton.day_edges, hourly=True)
    merged, found = dr.one_pass(table, spec, peaks=True)
    names = [("all", ds.ALL)] + [(n, n) for n in merged["labels"]]
    rows = {}
    for name, key in names:
        grid = dr.hourly_of(merged, key, spec, spec.intervals(None if key == ds.ALL else key))
        chosen, _ = choose_days(grid.dates, days)
        peaks = ds.scan(found, key, len(grid.dates))
        row = {"traffic": np.nan, "busy_hour": pd.NA, "observed_peak": int(peaks[chosen].max()),
               "busiest_day_traffic": np.nan, "coverage": np.nan}
        try:
            bh = find_busy_hour(grid, method=method, tz=tz, window=table.observed,
                                days=days, top_days=top_days, min_coverage=min_coverage)
        except ValueError:
            if key == ds.ALL:
                raise
        else:
            row.update(traffic=bh.traffic, busy_hour=bh.hour,
                       busiest_day_traffic=float(np.nanmax(bh.per_day["traffic"])),
                       coverage=bh.coverage)
        rows[name] = row
    return dr.capacity_frame(rows, targets)
