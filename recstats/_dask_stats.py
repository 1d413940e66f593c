"""Per-partition summaries of a Dask calls table, and their exact combination.

Every partition runs the local building blocks (:mod:`recstats._quality`'s ``prepare``,
:mod:`recstats._timeline`'s step function, :mod:`recstats._busyhour`'s ``hourly``) on
its own calls, with the observation window resolved once for the whole table, so the
definitions are the local ones. What crosses the network is per bin, never per call:

* additive pieces: the integral of each group's step function over every bin (exact
  integer call-µs), the calls started per bin, and the hourly area table;
* the peak, which is not additive: each partition's change events (time, ±n) are
  shuffled so that every (group, bin) lands in one partition, where the events of an
  instant are summed and each bin gives its net change, the maximum of its running sum
  and whether it changes at its very start; :func:`scan` then carries the level from
  bin to bin over the small series of bins.

Duplicate call ids across partitions are found with one shuffle of (site, call id,
start) keys of the usable rows; only the repeats come back. ``ALL`` names the group of
every call.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._busyhour import hourly
from ._quality import DUPLICATE, OUTSIDE, prepare
from ._timeline import group_codes, inside_mask, integral_at, micros, observe, step
from ._window import Observed

ALL = "\x00all"
KEYS_META = pd.DataFrame({"key": pd.Series([], dtype="int64"),
                          "part": pd.Series([], dtype="int64"),
                          "row": pd.Series([], dtype="int64"),
                          "site": pd.Series([], dtype="object"),
                          "call_id": pd.Series([], dtype="object"),
                          "start": pd.Series([], dtype="int64")})
REPEATS_META = KEYS_META[["part", "row"]]
EVENTS_META = pd.DataFrame({"key": pd.Series([], dtype="int64"),
                            "bin": pd.Series([], dtype="int64"),
                            "time": pd.Series([], dtype="int64"),
                            "delta": pd.Series([], dtype="int32"),
                            "at_edge": pd.Series([], dtype="bool")})
PEAKS_META = pd.DataFrame({"key": pd.Series([], dtype="int64"),
                           "bin": pd.Series([], dtype="int64"),
                           "net": pd.Series([], dtype="int64"),
                           "top": pd.Series([], dtype="int64"),
                           "opens": pd.Series([], dtype="bool")})
_NONE = np.iinfo("int64").min


def group_key(name: str) -> int:
    """A group name's int64 key, the same in every process (shuffling by integers is
    several times faster than by strings)."""
    return int(pd.util.hash_array(np.array([name], dtype=object)).view("int64")[0])


def bare(part: pd.DataFrame) -> pd.DataFrame:
    """The partition without the table's attrs: the window is resolved once, on the
    driver, never from one partition's calls."""
    part = part.copy(deep=False)
    part.attrs = {}
    return part


# ------------------------------------------------------------------ duplicates, extent


def usable_keys(part: pd.DataFrame, number: int, tz: str) -> pd.DataFrame:
    """(site, call id, start) of the rows a duplicate could repeat, with their place."""
    part = bare(part)
    code = prepare(part, tz=tz, warn=False).problems & ~np.uint8(DUPLICATE)
    rows = np.flatnonzero(code == 0)
    ids = part["call_id"].iloc[rows]
    rows = rows[ids.notna().to_numpy(bool)]
    site = part["site"].iloc[rows] if "site" in part.columns else pd.Series([None] * rows.size)
    frame = pd.DataFrame({
        "part": np.full(rows.size, number, dtype="int64"), "row": rows,
        "site": site.astype(object).where(site.notna().to_numpy(bool), None).to_numpy(),
        "call_id": part["call_id"].iloc[rows].astype(object).to_numpy(),
        "start": micros(part["start_time"])[rows]})
    keys = pd.util.hash_pandas_object(frame[["site", "call_id", "start"]], index=False)
    return pd.concat([pd.DataFrame({"key": keys.to_numpy().view("int64")}), frame], axis=1)


def repeats(keys: pd.DataFrame) -> pd.DataFrame:
    """The rows repeating an earlier (partition, row) with the same site, id and start."""
    keys = keys.sort_values(["part", "row"], kind="stable")
    again = keys.duplicated(subset=["site", "call_id", "start"], keep="first")
    return keys.loc[again.to_numpy(bool), ["part", "row"]].reset_index(drop=True)


def extent(part: pd.DataFrame, drops: np.ndarray, tz: str, want_sites: bool):
    """(first start, last start, latest known end, sites) of the kept calls: what the
    archive rule's window needs, for one partition (None for a time without calls)."""
    part = bare(part)
    prepared = prepare(part, tz=tz, warn=False)
    rows = np.flatnonzero(prepared.problems == 0)
    rows = rows[~np.isin(rows, drops)]
    sites = None
    if want_sites and "site" in part.columns:
        sites = {str(s) for s in pd.unique(part["site"].dropna())}
    if rows.size == 0:
        return None, None, None, sites
    start, end = micros(part["start_time"])[rows], micros(part["end_time"])[rows]
    return int(start.min()), int(start.max()), int(end.max()), sites


# ----------------------------------------------------------------------- the main pass


@dataclass(frozen=True)
class Spec:
    """What every partition computes: the resolved window, its groups and bins."""

    tz: str
    observed: Observed
    sites: frozenset | None  # the table's sites: its total is unobserved in their gaps
    by: str | None = None
    edges: np.ndarray | None = None  # bins for areas, starts and peaks
    started: bool = False
    hourly: bool = False

    def intervals(self, label: str | None = None) -> np.ndarray:
        if not self.observed.gaps:
            return self.observed.span
        if label is not None and self.by == "site":
            return self.observed.intervals({label})
        return self.observed.intervals(self.sites)


def _events(times: np.ndarray, level: np.ndarray, edges: np.ndarray, key: int):
    delta = np.diff(level, prepend=0)
    inside = (times >= edges[0]) & (times < edges[-1])
    times, delta = times[inside], delta[inside]
    bins = np.searchsorted(edges, times, side="right") - 1
    # a change is at most the number of calls in a partition
    return pd.DataFrame({"key": np.full(times.size, key, dtype="int64"),
                         "bin": bins, "time": times, "delta": delta.astype("int32"),
                         "at_edge": times == edges[bins]})


def summarise(part: pd.DataFrame, drops: np.ndarray, spec: Spec):
    """(change events, summary dict) of one partition's kept calls; see the module."""
    part = bare(part)
    window = tuple(pd.Timestamp(t, unit="us", tz="UTC")
                   for t in (spec.observed.start, spec.observed.end))
    prepared = prepare(part, tz=spec.tz, window=window, warn=False)
    code = prepared.problems.copy()
    if spec.observed.source == "activity":  # the archive rule's days hold every call
        code &= ~np.uint8(OUTSIDE)
    # a repeat is not a kept call, so it is never also "outside the window"
    code[drops] = (code[drops] & ~np.uint8(OUTSIDE)) | np.uint8(DUPLICATE)
    positions = np.arange(len(part))[prepared.rows]
    keep = ~np.isin(positions, drops)
    rows, start, end = positions[keep], prepared.start[keep], prepared.end[keep]
    report = code != 0
    if spec.observed.source == "window=":
        report &= code != OUTSIDE  # the analyst chose to look at part of the table
    ids = (part["call_id"] if "call_id" in part.columns else part.index.to_series())
    summary: dict = {"report": (np.array([((code[report] & (1 << k)) != 0).sum()
                                          for k in range(7)], dtype="int64"),
                                int(report.sum()),
                                [str(v) for v in ids.iloc[np.flatnonzero(report)[:5]]]),
                     "labels": {}, "categories": None, "area": {}, "started": {},
                     "hourly": {}}
    groups = [(ALL, start, end, spec.intervals())]
    if spec.by is not None:
        codes, uniques = group_codes(part, spec.by, rows)
        if isinstance(part[spec.by].dtype, pd.CategoricalDtype):
            summary["categories"] = list(part[spec.by].cat.categories)
        for k, label in enumerate(uniques):
            name, chosen = str(label), codes == k
            summary["labels"][name] = label
            groups.append((name, start[chosen], end[chosen], spec.intervals(name)))
    events = [EVENTS_META]
    for name, s, e, intervals in groups:
        times, level = step(s, e)
        if spec.hourly:
            summary["hourly"][name] = hourly(times, level, intervals, spec.tz,
                                             spec.observed).area
        if spec.edges is None:
            continue
        masked = observe(times, level, intervals)
        events.append(_events(*masked, spec.edges, group_key(name)))
        if spec.started:
            summary["area"][name] = np.diff(integral_at(*masked, spec.edges))
            counted = s[inside_mask(intervals, s) & (s >= spec.edges[0]) & (s < spec.edges[-1])]
            summary["started"][name] = np.bincount(
                np.searchsorted(spec.edges, counted, side="right") - 1,
                minlength=spec.edges.size - 1)
    return pd.concat(events, ignore_index=True), summary


def merge(summaries: list[dict]) -> dict:
    """The table's summary: areas, starts and hourly tables summed over partitions,
    group labels and categories united (in partition order, as a concatenation does)."""
    out: dict = {"labels": {}, "categories": None, "area": {}, "started": {}, "hourly": {}}
    bits, count, ids = np.zeros(7, dtype="int64"), 0, list[str]()
    for one in summaries:
        bits += one["report"][0]
        count += one["report"][1]
        ids += one["report"][2][:max(0, 5 - len(ids))]
        for name, label in one["labels"].items():
            out["labels"].setdefault(name, label)
        if one["categories"] is not None:
            seen = out["categories"] or []
            out["categories"] = seen + [c for c in one["categories"] if c not in set(seen)]
        for field in ("area", "started", "hourly"):
            for name, values in one[field].items():
                total = out[field].get(name)
                out[field][name] = values.copy() if total is None else total + values
    out["report"] = (bits, count, ids)
    return out


# --------------------------------------------------------------------------- exchange


def cut(frame: pd.DataFrame, column: str, count: int, nbins: int | None) -> tuple:
    """``frame`` in ``count`` pieces: by ranges of ``column`` (bins ``0..nbins-1``), or
    by its value modulo ``count``; every row of one bin or value lands in one piece."""
    values = frame[column].to_numpy("int64")
    piece = values * count // max(nbins, 1) if nbins is not None else \
        values.view("uint64") % np.uint64(count)
    order = np.argsort(piece, kind="stable")
    bounds = np.searchsorted(piece[order], np.arange(count + 1))
    return tuple(frame.iloc[order[bounds[k]:bounds[k + 1]]] for k in range(count))


def reduce_pieces(reduce, *pieces: pd.DataFrame) -> pd.DataFrame:
    """``reduce`` of the concatenation of the pieces of one exchange."""
    return reduce(pd.concat(pieces, ignore_index=True))


# ------------------------------------------------------------------------------ peaks


def bin_peaks(events: pd.DataFrame) -> pd.DataFrame:
    """Per (key, bin) of events all in this partition: net change, maximum running sum
    (after each instant) and whether an instant opens the bin."""
    if events.empty:
        return PEAKS_META.copy()
    key, time, delta, bins = (events[c].to_numpy("int64")
                              for c in ("key", "time", "delta", "bin"))
    edge = events["at_edge"].to_numpy(bool)
    order = np.lexsort((time, key))
    key, time, delta, bins, edge = key[order], time[order], delta[order], bins[order], \
        edge[order]
    # the events of one instant (from several partitions) count as one change
    at = np.flatnonzero(np.r_[True, (key[1:] != key[:-1]) | (time[1:] != time[:-1])])
    key, bins, edge, delta = key[at], bins[at], edge[at], np.add.reduceat(delta, at)
    seg = np.flatnonzero(np.r_[True, (key[1:] != key[:-1]) | (bins[1:] != bins[:-1])])
    total = np.cumsum(delta)
    before = np.r_[0, total][seg]  # running sum before each (key, bin) segment
    prefix = total - np.repeat(before, np.diff(np.r_[seg, total.size]))
    return pd.DataFrame({"key": key[seg], "bin": bins[seg],
                         "net": np.add.reduceat(delta, seg),
                         "top": np.maximum.reduceat(prefix, seg), "opens": edge[seg]})


def scan(peaks: pd.DataFrame, name: str, nbins: int) -> np.ndarray:
    """Peak of group ``name`` in each of ``nbins`` bins: the level carried in (the sum
    of the earlier bins' nets) and the bin's own highest running sum on top of it."""
    p = peaks[peaks["key"] == group_key(name)]
    net = np.zeros(nbins, dtype="int64")
    top = np.full(nbins, _NONE)
    opens = np.zeros(nbins, dtype=bool)
    at = p["bin"].to_numpy("int64")
    net[at], top[at], opens[at] = p["net"], p["top"], p["opens"]
    carried = np.cumsum(net) - net
    inside = np.where(top == _NONE, _NONE, carried + top)
    # a change at the bin's first instant replaces the carried level there
    return np.maximum(inside, np.where(opens, _NONE, carried))


__all__ = ["ALL", "Spec", "bin_peaks", "cut", "extent", "group_key", "merge", "reduce_pieces", "repeats",
           "scan", "summarise", "usable_keys"]
