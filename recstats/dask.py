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

import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

try:
    import dask
    import dask.dataframe as dd
    from dask.dataframe.utils import clear_known_categories, has_known_categories
except ImportError as exc:  # an optional dependency: say how to get it
    raise ImportError("recstats.dask needs Dask: pip install 'recstats[dask]'") from exc

from . import _dask_stats as ds
from . import stats
from ._busyhour import BusyHour, Hourly, check_settings, choose_days, find_busy_hour, hourly
from ._dataset_read import dataset_parts, read_fragment, read_parts
from ._erlang import channels_for, check_blocking
from ._table import coerce_calls, empty_calls
from ._time import check_tz
from ._timeline import observed_at, to_times
from ._window import Observed, resolve
from .archive import archive_files
from .archive import read_archive as _read_archive_locally
from .errors import DataQualityWarning

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

_EMPTY = np.empty(0, dtype="int64")
_COLUMNS = ("start_time", "end_time", "end_unknown", "duration", "call_id", "site")
_PROBLEMS = ("no start time", "end before start", "unknown end", "duplicate call id",
             "duration over 24 h", "duration disagrees with end - start",
             "outside the window")


@dataclass(frozen=True)
class _Resolved:
    """A Dask calls table ready for one pass: its partitions, the rows that repeat an
    earlier call (per partition), the observation window and the table's sites."""

    calls: dd.DataFrame
    parts: list
    drops: dict
    observed: Observed | None
    sites: frozenset | None


def _columns(calls, by: str | None = None) -> dd.DataFrame:
    if isinstance(calls, pd.DataFrame):
        calls = dd.from_pandas(calls, npartitions=1)
    if not isinstance(calls, dd.DataFrame):
        raise TypeError(f"expected a Dask DataFrame of calls, got {type(calls).__name__}")
    missing = [c for c in ("start_time", "end_time") if c not in calls.columns]
    if missing:
        raise ValueError(f"the calls table has no {', '.join(missing)} column(s)")
    if by is not None and by not in calls.columns:
        raise ValueError(f"cannot group by {by!r}: the calls table has no such column "
                         f"(columns: {', '.join(map(str, calls.columns))})")
    return calls[[c for c in calls.columns if c in _COLUMNS or c == by]]


def _resolve(calls: dd.DataFrame, tz: str, window) -> _Resolved:
    """Duplicates (one shuffle of keys, when there are call ids) and the window: given,
    from the attrs, or the archive rule's whole days from one min/max reduction -- both
    in one compute. A repeat of a call in another partition could hold the latest end:
    the reduction is then done again without the repeats."""
    holder = pd.DataFrame()
    holder.attrs = dict(calls._meta.attrs)
    parts = calls.to_delayed()
    observed = None
    if window is not None or holder.attrs.get("window") is not None:
        observed = resolve(holder, tz, window, _EMPTY, _EMPTY)
    want_sites = "site" in calls.columns and bool(holder.attrs.get("gaps"))

    def extents(drops: dict) -> list:
        if observed is not None and not want_sites:
            return []
        return [dask.delayed(ds.extent)(p, drops.get(k, _EMPTY), tz, want_sites)
                for k, p in enumerate(parts)]

    found: list = []
    if "call_id" in calls.columns:
        keys = dd.from_delayed([dask.delayed(ds.usable_keys)(p, k, tz)
                                for k, p in enumerate(parts)], meta=ds.KEYS_META,
                               verify_meta=False)
        found = keys.shuffle(on="key", shuffle_method=_shuffle_method(len(parts))) \
            .map_partitions(ds.repeats, meta=ds.REPEATS_META).to_delayed()
    found, reduced = dask.compute(found, extents({}))
    repeats = pd.concat([ds.REPEATS_META, *found], ignore_index=True)
    drops = {int(k): g["row"].to_numpy("int64") for k, g in repeats.groupby("part")}
    if drops and observed is None:
        (reduced,) = dask.compute(extents(drops))
    found_any = [e for e in reduced if e[0] is not None]
    if observed is None and found_any:
        start = np.array([min(e[0] for e in found_any), max(e[1] for e in found_any)])
        observed = resolve(holder, tz, None, start, np.array([max(e[2] for e in found_any)]))
    sites = frozenset().union(*(e[3] for e in reduced)) if want_sites else None
    return _Resolved(calls, parts, drops, observed, sites)


def _shuffle_method(npartitions: int) -> str | None:
    # a task shuffle starts at once; peer-to-peer pays off only with many partitions
    return "tasks" if npartitions <= 32 else None


def _pass(table: _Resolved, spec: ds.Spec, peaks: bool):
    """The one pass over the calls: merged per-bin summaries and, with ``peaks``, the
    per-(group, bin) peak pieces; warns once about the rows left out."""
    pieces = [dask.delayed(ds.summarise, nout=2)(p, table.drops.get(k, _EMPTY), spec)
              for k, p in enumerate(table.parts)]
    summaries = [s for _, s in pieces]
    found = None
    if peaks:
        events = dd.from_delayed([e for e, _ in pieces], meta=ds.EVENTS_META,
                                 verify_meta=False)
        found = events.shuffle(on=["key", "bin"],
                               shuffle_method=_shuffle_method(events.npartitions)) \
            .map_partitions(ds.bin_peaks, meta=ds.PEAKS_META)
        # one graph of delayed objects: the partitions are read once for both
        pieces_found, summaries = dask.compute(found.to_delayed(), summaries)
        found = pd.concat([ds.PEAKS_META, *pieces_found], ignore_index=True)
    else:
        (summaries,) = dask.compute(summaries)
    merged = ds.merge(list(summaries))
    _warn(*merged["report"])
    return merged, found


def _warn(bits: np.ndarray, count: int, ids: list) -> None:
    if not count:
        return
    counts = [f"{n} {text}" for n, text in zip(bits, _PROBLEMS) if n]
    more = f" and {count - 5} more" if count > 5 else ""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(0), 1  # this frame is stacklevel 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(f"{count} {'call' if count == 1 else 'calls'} left out: "
                  f"{', '.join(counts)} (ids: {', '.join(ids)}{more}); "
                  "recstats.check_calls lists them", DataQualityWarning, stacklevel=level)


def _probe() -> pd.DataFrame:
    return pd.DataFrame({"start_time": pd.Series([], dtype="datetime64[us, UTC]"),
                         "end_time": pd.Series([], dtype="datetime64[us, UTC]")})


def _bin_edges(observed: Observed, freq, tz: str) -> np.ndarray:
    """The local function's bin edges for the window: the bin starts of a window
    reaching past the real one's last edge, cut after the first edge at or beyond its
    end (the same grid: edges depend only on the zone, ``freq`` and the window start)."""
    width = int(pd.tseries.frequencies.to_offset(freq).nanos // 1000)
    reach = observed.end + 2 * width + 2 * 86_400_000_000
    probe = stats.concurrency(_probe(), freq=freq, tz=tz,
                              window=tuple(to_times([observed.start, reach])))
    starts = probe.index.as_unit("us").asi8
    return np.r_[starts[starts < observed.end], starts[starts >= observed.end][:1]]


def _groups(table: _Resolved, merged: dict, by: str) -> pd.Index:
    """The ``by`` labels of the kept calls, ordered and typed as the local function
    orders them on the computed frame (categories: the frame's category order)."""
    dtype = table.calls._meta[by].dtype
    names = merged["labels"]
    if isinstance(dtype, pd.CategoricalDtype):
        known = has_known_categories(table.calls[by])
        order = list(dtype.categories) if known else (merged["categories"] or [])
        used = [c for c in order if str(c) in names]
        kind = pd.CategoricalDtype(used, ordered=dtype.ordered)
        return pd.CategoricalIndex(pd.Categorical.from_codes(np.arange(len(used)),
                                                             dtype=kind), name=by)
    values = pd.Series(list(names.values()), dtype=dtype)
    return pd.Index(pd.factorize(values, sort=True)[1], name=by)


def _binned(merged: dict, found: pd.DataFrame, name: str, edges: np.ndarray,
            intervals: np.ndarray) -> dict[str, np.ndarray]:
    n = edges.size - 1
    seen = np.diff(observed_at(intervals, edges))
    area = merged["area"].get(name, np.zeros(n, dtype="int64"))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(seen > 0, area / seen, np.nan)
    blank = seen == 0
    peak = ds.scan(found, name, n).astype("float64")
    started = merged["started"].get(name, np.zeros(n, dtype="int64")).astype("float64")
    peak[blank], started[blank] = np.nan, np.nan
    return {"peak": peak, "mean": mean, "started": started,
            "coverage": seen / np.diff(edges).astype("float64")}


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
    stats.concurrency(_probe(), freq=freq)  # the local checks and messages
    table = _resolve(_columns(calls, by), tz, window)
    if table.observed is None:  # no call and no window: the local empty answer
        return stats.concurrency(table.calls._meta, freq=freq, by=by, tz=tz)
    edges = _bin_edges(table.observed, freq, tz)
    spec = ds.Spec(tz, table.observed, table.sites, by, edges, started=True)
    merged, found = _pass(table, spec, peaks=True)
    times = to_times(edges[:-1])
    if by is None:
        return pd.DataFrame(_binned(merged, found, ds.ALL, edges, spec.intervals()),
                            index=times.rename("time"))
    uniques = _groups(table, merged, by)
    parts = [_binned(merged, found, str(label), edges, spec.intervals(str(label)))
             for label in uniques]
    columns = {name: np.concatenate([p[name] for p in parts] + [np.empty(0)])
               for name in ("peak", "mean", "started", "coverage")}
    labels = np.repeat(np.arange(len(uniques)), edges.size - 1)
    index = pd.MultiIndex.from_arrays(
        [uniques.take(labels), to_times(np.tile(edges[:-1], len(uniques)))],
        names=[by, "time"])
    return pd.DataFrame(columns, index=index)


def _hourly(merged: dict, name: str, spec: ds.Spec, intervals: np.ndarray) -> Hourly:
    """The group's :class:`Hourly` table: its summed areas on the window's grid."""
    empty = hourly(_EMPTY, _EMPTY, intervals, spec.tz, spec.observed)
    return replace(empty, area=merged["hourly"].get(name, empty.area))


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
    table = _resolve(_columns(calls), tz, window)
    if table.observed is None:  # the local message
        return stats.busy_hour(table.calls._meta, method=method, tz=tz)
    spec = ds.Spec(tz, table.observed, table.sites, hourly=True)
    merged, _ = _pass(table, spec, peaks=False)
    return find_busy_hour(_hourly(merged, ds.ALL, spec, spec.intervals()), method=method,
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
    tz = check_tz(tz)
    check_settings(method, top_days, min_coverage)
    targets = [float(b) for b in np.atleast_1d(blocking)]
    check_blocking(targets)
    table = _resolve(_columns(calls), tz, window)
    if table.observed is None:  # the local message
        return stats.capacity_table(table.calls._meta, blocking=targets, tz=tz)
    by = "site" if "site" in table.calls.columns else None
    skeleton = hourly(_EMPTY, _EMPTY, table.observed.span, tz, table.observed)
    spec = ds.Spec(tz, table.observed, table.sites, by, skeleton.day_edges, hourly=True)
    merged, found = _pass(table, spec, peaks=True)
    names = [("all", ds.ALL)] + [(n, n) for n in merged["labels"]]
    rows = {}
    for name, key in names:
        grid = _hourly(merged, key, spec, spec.intervals(None if key == ds.ALL else key))
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
    return _capacity_frame(rows, targets)


def _capacity_frame(rows: dict, targets: list[float]) -> pd.DataFrame:
    order = sorted(n for n in rows if n != "all") + ["all"]
    out = pd.DataFrame([rows[n] for n in order], index=pd.Index(order, name="site"))
    traffic = out["traffic"].to_numpy("float64")
    known = ~np.isnan(traffic)
    for b in targets:
        need = np.zeros(traffic.size, dtype="int64")
        if known.any():
            need[known] = channels_for(traffic[known], b)
        column = pd.array(np.where(known, need, 0), dtype="Int64")
        column[~known] = pd.NA
        out[f"channels@{b * 100:g}%"] = column
    columns = ["traffic", "busy_hour", *[f"channels@{b * 100:g}%" for b in targets],
               "observed_peak", "busiest_day_traffic", "coverage"]
    return out[columns].astype({"busy_hour": "Int64", "observed_peak": "int64"})
