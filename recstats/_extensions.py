"""Per-extension statistics of a calls table: counts, durations, traffic, peaks."""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from ._quality import prepare
from ._time import check_tz
from ._timeline import NAT, US_PER_S, group_codes, micros, to_times

__all__ = ["extension_stats", "is_extension"]

_EXTENSION_COLUMNS = ("calls", "inbound", "outbound", "internal", "total_duration",
                      "mean_duration", "median_duration", "p90_duration", "traffic",
                      "peak_concurrent", "busiest_hour", "first_call", "last_call")


def is_extension(numbers: pd.Series, extensions=None) -> np.ndarray:
    r"""Which of ``numbers`` are monitored extensions, as a boolean array.

    Parameters
    ----------
    numbers : pandas.Series
        Phone numbers as text (surrounding spaces are ignored; missing is never one).
    extensions : list, str, re.Pattern or int, optional
        What :func:`extension_stats` takes: a list of numbers, a regex (string or
        compiled, matching the whole number), a maximum digit count, or ``None`` for
        numbers of 1 to 6 digits (never E.164 numbers with a leading ``+``).

    Returns
    -------
    numpy.ndarray
        One bool per number.

    Examples
    --------
    >>> is_extension(pd.Series(["1000", "+3612345678", "55", None])).tolist()
    [True, False, True, False]
    >>> is_extension(pd.Series(["1000", "2000"]), extensions=r"1\d{3}").tolist()
    [True, False]
    """
    text = numbers.astype("str").str.strip()
    if extensions is None:
        pattern = re.compile(r"\d{1,6}")
    elif isinstance(extensions, re.Pattern):
        pattern = extensions
    elif isinstance(extensions, str):
        try:
            pattern = re.compile(extensions)
        except re.error as exc:
            raise ValueError(f"extensions regex {extensions!r} is invalid ({exc}); pass a "
                             r"valid one such as r'1\d{3}', or a list of numbers") from None
    elif isinstance(extensions, (int, np.integer)) and not isinstance(extensions, bool):
        if extensions < 1:
            raise ValueError("extensions as a number is the maximum digit count, >= 1")
        pattern = re.compile(rf"\d{{1,{int(extensions)}}}")
    elif isinstance(extensions, Iterable):
        wanted = {str(e).strip() for e in extensions}
        return text.isin(wanted).fillna(False).to_numpy(dtype=bool)
    else:
        raise ValueError("extensions must be None, a list of numbers, a regex (string or "
                         "compiled) or a maximum digit count")
    return text.str.fullmatch(pattern).fillna(False).to_numpy(dtype=bool)


def extension_stats(calls: pd.DataFrame, *, extensions=None, by: str | None = None,
                    tz: str = "UTC", window=None) -> pd.DataFrame:
    """Per-extension call counts, durations, traffic and peak concurrency.

    A call belongs to each monitored extension among its ``caller`` and ``callee``, so
    a call between two monitored extensions counts for both (once for a call to
    itself). Rows :func:`recstats.check_calls` lists are left out with one warning;
    ongoing calls count until the observation window's end.

    Parameters
    ----------
    calls : pandas.DataFrame
        A calls table with ``caller`` and ``callee`` (``direction`` is optional).
    extensions : list, str, re.Pattern or int, optional
        Which numbers are extensions: a list of numbers, a regex (the whole number
        must match), or a maximum digit count; default numbers of 1 to 6 digits (never
        E.164 ``+...`` numbers).
    by : str, optional
        Column to group by: ``by="site"`` keeps extension 1073 at LONDON apart from
        1073 at NEW-YORK. Calls whose label is missing are left out.
    tz : str
        IANA time zone of ``busiest_hour``.
    window : tuple of two moments, optional
        Observation window; default ``calls.attrs["window"]``, else whole days.

    Returns
    -------
    pandas.DataFrame
        Index ``extension`` (``(by, extension)`` with ``by``), sorted by ``calls``
        (descending), then label. Columns: ``calls``; ``inbound`` / ``outbound`` /
        ``internal`` (by ``direction``); ``total_duration``, ``mean_duration``,
        ``median_duration``, ``p90_duration`` [s] (finished calls; p90 interpolates
        linearly); ``traffic`` [erlang] (the extension's call time inside the observed
        time -- the window minus the gaps, a site's own with ``by="site"`` -- over
        the observed time); ``peak_concurrent`` (most of its own calls in progress at
        once, inside the window); ``busiest_hour`` (the clock hour in ``tz`` in which
        most of its calls started, earliest on ties); ``first_call`` / ``last_call``
        (earliest / latest start, UTC).

    Examples
    --------
    >>> calls = pd.DataFrame({
    ...     "start_time": pd.to_datetime(["2024-01-01 09:00", "2024-01-01 09:10"], utc=True),
    ...     "end_time": pd.to_datetime(["2024-01-01 09:20", "2024-01-01 09:30"], utc=True),
    ...     "caller": ["101", "+15551234567"], "callee": ["102", "101"],
    ...     "direction": ["Internal", "Inbound"], "site": ["LON", "LON"]})
    >>> extension_stats(calls, by="site")[["calls", "inbound", "internal", "peak_concurrent"]]
    ... # doctest: +NORMALIZE_WHITESPACE
                    calls  inbound  internal  peak_concurrent
    site extension
    LON  101            2        1         1                2
         102            1        0         1                1
    """
    tz = check_tz(tz)
    prepared = prepare(calls, tz=tz, window=window, columns=("caller", "callee"))
    kept = calls.iloc[prepared.rows]
    start, end = prepared.start, prepared.end
    finished = micros(kept["end_time"]) != NAT
    caller = kept["caller"].astype("str").str.strip()
    callee = kept["callee"].astype("str").str.strip()
    by_caller = is_extension(caller, extensions=extensions)
    # a call to oneself counts once
    by_callee = is_extension(callee, extensions=extensions) & \
        ~(by_caller & (caller == callee).fillna(False).to_numpy(bool))
    row = np.concatenate([np.flatnonzero(by_caller), np.flatnonzero(by_callee)])
    number_code, names = pd.factorize(
        pd.concat([caller[by_caller], callee[by_callee]], ignore_index=True), sort=True)
    names = pd.Index(np.asarray(names, dtype=object), dtype="str", name="extension")
    if by is None:
        code, k, index = number_code, len(names), names
        group_of = np.zeros(len(names), dtype="int64")
        groups = None
    else:
        group, groups = group_codes(calls, by, prepared.rows)
        labelled = group[row] >= 0
        row, number_code = row[labelled], number_code[labelled]
        pair, pairs = pd.factorize(group[row] * max(len(names), 1) + number_code, sort=True)
        pairs = np.asarray(pairs, dtype="int64")
        code, k = pair, len(pairs)
        group_of = pairs // max(len(names), 1)
        index = pd.MultiIndex.from_arrays(
            [groups.take(group_of), names.take(pairs % max(len(names), 1))],
            names=[by, "extension"])
    duration = np.where(finished, (end - start) / US_PER_S, np.nan)
    grouped = pd.Series(duration[row]).groupby(code)
    out = pd.DataFrame({"calls": np.bincount(code, minlength=k)}, index=index)
    for name, flags in _directions(kept).items():
        out[name] = np.bincount(code, weights=flags[row], minlength=k).astype("int64")
    for name, values in (("total_duration", grouped.sum()), ("mean_duration", grouped.mean()),
                         ("median_duration", grouped.median()),
                         ("p90_duration", grouped.quantile(0.9))):
        out[name] = values.reindex(range(k)).to_numpy()
    out["traffic"] = _traffic(prepared, start[row], end[row], code, k, by, groups, group_of)
    if prepared.observed is not None:  # peaks inside the window, as concurrency
        ws, we = prepared.observed.start, prepared.observed.end
        out["peak_concurrent"] = _peaks(np.maximum(start[row], ws), np.minimum(end[row], we),
                                        code, k)
    else:
        out["peak_concurrent"] = np.zeros(k, dtype="int64")
    s_time = start[row]
    local = to_times(s_time).tz_convert(tz)
    counts = np.bincount(code * 24 + local.hour.to_numpy(), minlength=k * 24)
    out["busiest_hour"] = pd.array(counts.reshape(k, 24).argmax(axis=1), dtype="Int64")
    out.loc[counts.reshape(k, 24).sum(axis=1) == 0, "busiest_hour"] = pd.NA
    for name, pick in (("first_call", np.minimum), ("last_call", np.maximum)):
        extreme = np.full(k, np.iinfo("int64").max if pick is np.minimum else NAT)
        pick.at(extreme, code, s_time)
        out[name] = to_times(np.where(np.abs(extreme) == np.iinfo("int64").max, NAT,
                                      extreme))
    order = np.lexsort((np.arange(k), -out["calls"].to_numpy()))  # labels are sorted
    return out.iloc[order][list(_EXTENSION_COLUMNS)]


def _overlap(start, end, intervals) -> np.ndarray:
    """Time [µs] of each [start, end) inside the observed ``intervals``."""
    held = np.zeros(start.size, dtype="int64")
    for a, b in intervals:
        held += np.maximum(np.minimum(end, b) - np.maximum(start, a), 0)
    return held


def _traffic(prepared, start, end, code, k, by, groups, group_of) -> np.ndarray:
    """Call time inside the observed time over the observed time [erlang]."""
    if prepared.observed is None:
        return np.full(k, np.nan)
    if by != "site":
        intervals = prepared.intervals()
        length = float(np.diff(intervals, axis=1).sum())
        held = np.bincount(code, weights=_overlap(start, end, intervals), minlength=k)
        return held / length if length > 0 else np.full(k, np.nan)
    out = np.full(k, np.nan)
    for g, site in enumerate(groups):
        mine = group_of[code] == g
        intervals = prepared.intervals(site)
        length = float(np.diff(intervals, axis=1).sum())
        held = np.bincount(code[mine], weights=_overlap(start[mine], end[mine], intervals),
                           minlength=k)
        if length > 0:
            out[group_of == g] = held[group_of == g] / length
    return out


def _directions(calls: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per call: is it inbound / outbound / internal (case-insensitive ``direction``)."""
    n = len(calls)
    if "direction" not in calls.columns:
        return {name: np.zeros(n) for name in ("inbound", "outbound", "internal")}
    values = calls["direction"]
    if not isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype("str").astype("category")
    labels = values.cat.categories.astype("str").str.lower().to_numpy(dtype=object)
    codes = values.cat.codes.to_numpy()
    return {name: np.r_[labels == name, False][codes].astype("float64")
            for name in ("inbound", "outbound", "internal")}


def _peaks(start, end, code, k) -> np.ndarray:
    """Peak concurrency of each group's own calls, in one sort.

    Events sort by (group, time, end-before-start) -- packed into one int64 key when
    the bits fit, else with lexsort; each group's calls open and close, so the running
    sum is back at 0 at the end of each group's block.
    """
    real = (start != NAT) & (end > start)
    start, end, code = start[real], end[real], code[real]
    peaks = np.zeros(k, dtype="int64")
    if start.size == 0:
        return peaks
    base = start.min()
    time_bits = int(end.max() - base).bit_length() + 1
    if time_bits + max(k, 1).bit_length() <= 62:
        keys = np.concatenate([(code << time_bits) | ((start - base) << 1) | 1,
                               (code << time_bits) | ((end - base) << 1)])
        keys.sort()
        codes, delta = keys >> time_bits, (keys & 1) * 2 - 1
    else:
        times = np.concatenate([start, end])
        flags = np.r_[np.ones(start.size, "int64"), np.zeros(end.size, "int64")]
        codes = np.concatenate([code, code])
        order = np.lexsort((flags, times, codes))
        codes, delta = codes[order], flags[order] * 2 - 1
    level = np.cumsum(delta)
    seg = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    peaks[codes[seg]] = np.maximum.reduceat(level, seg)
    return peaks
