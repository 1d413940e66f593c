"""Driver side of :mod:`recstats.dask`: resolving a Dask calls table (duplicates,
window, sites), the one pass over its partitions, and the local functions' frames built
from the merged per-bin summaries of :mod:`recstats._dask_stats`."""

from __future__ import annotations

from dataclasses import dataclass, replace

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask.dataframe.utils import has_known_categories

from . import _dask_stats as ds
from . import stats
from ._busyhour import Hourly, hourly
from ._erlang import channels_for
from ._quality import warn_left_out
from ._timeline import observed_at, to_times
from ._window import Observed, resolve

EMPTY = np.empty(0, dtype="int64")
COLUMNS = ("start_time", "end_time", "end_unknown", "duration", "call_id", "site")
@dataclass(frozen=True)
class Resolved:
    """A Dask calls table ready for one pass: its partitions, the rows that repeat an
    earlier call (per partition), the observation window and the table's sites."""

    calls: dd.DataFrame
    parts: list
    drops: dict
    observed: Observed | None
    sites: frozenset | None


def select(calls, by: str | None = None) -> dd.DataFrame:
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
    return calls[[c for c in calls.columns if c in COLUMNS or c == by]]


def resolve_table(calls: dd.DataFrame, tz: str, window) -> Resolved:
    """Duplicates (one shuffle of keys, when there are call ids) and the window: given,
    from the attrs, or the archive rule's whole days from one min/max reduction -- both
    in one compute. A repeat of a call in another partition could hold the latest end:
    the reduction is then done again without the repeats."""
    holder = pd.DataFrame()
    holder.attrs = dict(calls._meta.attrs)
    parts = calls.to_delayed()
    observed = None
    if window is not None or holder.attrs.get("window") is not None:
        observed = resolve(holder, tz, window, EMPTY, EMPTY)
    want_sites = "site" in calls.columns and bool(holder.attrs.get("gaps"))

    def extents(drops: dict) -> list:
        if observed is not None and not want_sites:
            return []
        return [dask.delayed(ds.extent)(p, drops.get(k, EMPTY), tz, want_sites)
                for k, p in enumerate(parts)]

    found: list = []
    if "call_id" in calls.columns:
        keys = [dask.delayed(ds.usable_keys)(p, k, tz) for k, p in enumerate(parts)]
        found = exchange(keys, ds.repeats, "key", None)
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
    return Resolved(calls, parts, drops, observed, sites)


def exchange(frames: list, reduce, column: str, nbins: int | None) -> list:
    """A task shuffle of delayed frames: each is cut into pieces by ``column`` (ranges
    of bins when ``nbins`` is given, else the value modulo the piece count) and each
    piece's parts from every frame are reduced together. Direct and lighter than a
    Dask DataFrame shuffle, which costs seconds of overhead on small tables."""
    # as many pieces as frames (up to 32): fewer, larger pieces raised the largest
    # worker's memory by a third at 1 M calls in 8 partitions
    count = max(1, min(32, len(frames)))
    cut = [dask.delayed(ds.cut, nout=count)(f, column, count, nbins) for f in frames]
    return [dask.delayed(ds.reduce_pieces)(reduce, *[c[k] for c in cut])
            for k in range(count)]


def one_pass(table: Resolved, spec: ds.Spec, peaks: bool):
    """The one pass over the calls: merged per-bin summaries and, with ``peaks``, the
    per-(group, bin) peak pieces; warns once about the rows left out."""
    pieces = [dask.delayed(ds.summarise, nout=2)(p, table.drops.get(k, EMPTY), spec)
              for k, p in enumerate(table.parts)]
    summaries = [s for _, s in pieces]
    found = None
    if peaks:
        assert spec.edges is not None
        peak_parts = exchange([e for e, _ in pieces], ds.bin_peaks, "bin",
                              spec.edges.size - 1)
        found, summaries = dask.compute(peak_parts, summaries)
        found = pd.concat([ds.PEAKS_META, *found], ignore_index=True)
    else:
        (summaries,) = dask.compute(summaries)
    merged = ds.merge(list(summaries))
    bits, count, ids = merged["report"]
    warn_left_out(list(bits), count, ids)
    return merged, found





def probe() -> pd.DataFrame:
    return pd.DataFrame({"start_time": pd.Series([], dtype="datetime64[us, UTC]"),
                         "end_time": pd.Series([], dtype="datetime64[us, UTC]")})


def bin_edges(observed: Observed, freq, tz: str) -> np.ndarray:
    """The local function's bin edges for the window: the bin starts of a window
    reaching past the real one's last edge, cut after the first edge at or beyond its
    end (the same grid: edges depend only on the zone, ``freq`` and the window start)."""
    width = int(pd.tseries.frequencies.to_offset(freq).nanos // 1000)
    reach = observed.end + 2 * width + 2 * 86_400_000_000
    reaching = stats.concurrency(probe(), freq=freq, tz=tz,
                                 window=tuple(to_times(np.array([observed.start, reach]))))
    starts = pd.DatetimeIndex(reaching.index).as_unit("us").asi8
    return np.r_[starts[starts < observed.end], starts[starts >= observed.end][:1]]


def group_labels(table: Resolved, merged: dict, by: str) -> pd.Index:
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


def binned(merged: dict, found: pd.DataFrame, name: str, edges: np.ndarray,
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


def hourly_of(merged: dict, name: str, spec: ds.Spec, intervals: np.ndarray) -> Hourly:
    """The group's :class:`Hourly` table: its summed areas on the window's grid."""
    empty = hourly(EMPTY, EMPTY, intervals, spec.tz, spec.observed)
    return replace(empty, area=merged["hourly"].get(name, empty.area))


def capacity_frame(rows: dict, targets: list[float]) -> pd.DataFrame:
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
