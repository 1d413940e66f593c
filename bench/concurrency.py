"""Benchmark: recstats.concurrency vs a bare NumPy sweep and a pandas groupby version.

Usage: ``python bench/concurrency.py [--calls 1e6,1e7] [--repeat 3] [--seed 0]``

For each size N a synthetic calls table is built (starts uniform over 30 days,
exponential durations of mean 3 min, 1 % zero-length calls, start times rounded to the
second so ties occur) and timed, best of ``--repeat``:

* ``exact``    -- ``concurrency(calls)``: the exact step function, from the DataFrame;
* ``binned``   -- ``concurrency(calls, freq="15min")``: per-bin peak / mean / started;
* ``sweep``    -- the bare NumPy baseline, from int64 arrays already extracted: concatenate
  starts (+1) and ends (-1), ``argsort(kind="stable")``, ``cumsum`` (no tie merging,
  no output frame; it does less than ``exact``);
* ``packed_sweep`` -- the bare sweep with recstats' sort trick (one in-place sort of
  ``time << 1 | is_start`` keys instead of an argsort), to show what ``exact`` costs on
  top of the fastest bare sweep (tie merging, dropping non-changes, the DataFrame);
* ``groupby``  -- the pandas way an analyst would write the exact step function: an
  events frame (time, ±1) -> ``groupby("time")["delta"].sum().cumsum()``;
* ``exact_by`` / ``binned_by`` -- ``concurrency(calls, by=...)`` exact and per hour over
  1000 groups (as ``by="callee"`` might give);
* ``per_minute`` -- the naive binned way: explode each call into the minutes it touches,
  ``groupby(minute).size()`` (counts calls touching each minute, a different and wrong
  "peak", kept only as a reference for what people do), run on a subset of at most
  200 000 calls and extrapolated linearly to N.

Peak memory of ``exact`` / ``binned`` / ``sweep`` is measured with tracemalloc (NumPy
reports its buffers to it) in a separate run, as the peak above the memory in use before
the call. Output: a table, then one JSON line (``{"bench": "concurrency", ...}``).
Targets (DESIGN.md): exact <= 1.2 x sweep, >= 10 x faster than groupby.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from recstats.stats import concurrency

EPOCH = pd.Timestamp("2024-01-01", tz="UTC").value // 1000  # µs
GROUPS = 1000  # groups for the by= timings


def make_calls(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = EPOCH + rng.integers(0, 30 * 86400, n, dtype="int64") * 1_000_000
    length = (rng.exponential(180.0, n) * 1_000_000).astype("int64")
    length[rng.random(n) < 0.01] = 0
    end = start + length
    return pd.DataFrame({
        "start_time": pd.Series(start.view("M8[us]")).dt.tz_localize("UTC"),
        "end_time": pd.Series(end.view("M8[us]")).dt.tz_localize("UTC")})


def bare_sweep(start: np.ndarray, end: np.ndarray):
    events = np.concatenate([start, end])
    delta = np.concatenate([np.ones(start.size, "int64"), -np.ones(end.size, "int64")])
    order = np.argsort(events, kind="stable")
    return events[order], np.cumsum(delta[order])


def packed_sweep(start: np.ndarray, end: np.ndarray):
    """The same sweep with recstats' trick: sort ``time << 1 | is_start`` keys, no argsort."""
    keys = np.concatenate([(start << 1) | 1, end << 1])
    keys.sort()
    return keys >> 1, np.cumsum((keys & 1) * 2 - 1)


def pandas_groupby(calls: pd.DataFrame) -> pd.Series:
    events = pd.DataFrame({
        "time": pd.concat([calls["start_time"], calls["end_time"]], ignore_index=True),
        "delta": np.r_[np.ones(len(calls), "int64"), -np.ones(len(calls), "int64")]})
    return events.groupby("time")["delta"].sum().cumsum()


def per_minute(calls: pd.DataFrame) -> pd.Series:
    first = calls["start_time"].dt.floor("min")
    last = (calls["end_time"] - pd.Timedelta(microseconds=1)).dt.floor("min")
    minutes = pd.Series([pd.date_range(a, b, freq="min") for a, b in zip(first, last)])
    return minutes.explode().value_counts().sort_index()


def best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def peak_memory(fn) -> int:
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak


def run(n: int, repeat: int, seed: int) -> dict:
    calls = make_calls(n, seed)
    start = calls["start_time"].dt.tz_convert(None).to_numpy().view("int64")
    end = calls["end_time"].dt.tz_convert(None).to_numpy().view("int64")
    # correctness first: the exact function equals the sweep's value at each change
    exact = concurrency(calls)
    times, level = bare_sweep(start, end)
    last = np.r_[times[1:] != times[:-1], True]
    ref = pd.Series(level[last], index=times[last])
    got = exact.set_index(exact["time"].dt.tz_convert(None).to_numpy().view("int64"))
    assert (ref.reindex(got.index).to_numpy() == got["concurrent"].to_numpy()).all()

    timing = {}
    for _ in range(1):  # interleave so a busy neighbour hurts every contender alike
        timing["sweep"] = best_of(lambda: bare_sweep(start, end), repeat)
        timing["packed_sweep"] = best_of(lambda: packed_sweep(start, end), repeat)
        timing["exact"] = best_of(lambda: concurrency(calls), repeat)
        timing["binned"] = best_of(lambda: concurrency(calls, freq="15min"), repeat)
    timing["groupby"] = best_of(lambda: pandas_groupby(calls), max(1, repeat - 1))
    # by= with many groups (think by="callee"): one sort by group, not a mask per group
    lines = calls.assign(line=pd.Categorical(
        np.random.default_rng(seed).integers(0, GROUPS, n).astype(str)))
    timing["exact_by"] = best_of(lambda: concurrency(lines, by="line"), repeat)
    timing["binned_by"] = best_of(lambda: concurrency(lines, freq="1h", by="line"), repeat)
    subset = min(n, 200_000)
    sub = calls.iloc[:subset]
    timing["per_minute"] = best_of(lambda: per_minute(sub), 1) * n / subset
    memory = {name: peak_memory(fn) for name, fn in (
        ("sweep", lambda: bare_sweep(start, end)),
        ("packed_sweep", lambda: packed_sweep(start, end)),
        ("exact", lambda: concurrency(calls)),
        ("binned", lambda: concurrency(calls, freq="15min")))}
    return {
        "calls": n, "seconds": {k: round(v, 4) for k, v in timing.items()},
        "exact_over_sweep": round(timing["exact"] / timing["sweep"], 3),
        "binned_over_sweep": round(timing["binned"] / timing["sweep"], 3),
        "exact_over_packed_sweep": round(timing["exact"] / timing["packed_sweep"], 3),
        "groupby_over_exact": round(timing["groupby"] / timing["exact"], 2),
        "per_minute_over_binned": round(timing["per_minute"] / timing["binned"], 1),
        "per_minute_extrapolated_from": subset,
        "peak_mib": {k: round(v / 2**20, 1) for k, v in memory.items()},
        "input_mib": round(calls.memory_usage(deep=True).sum() / 2**20, 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="1e6,1e7",
                        help="comma-separated table sizes (default 1e6,1e7)")
    parser.add_argument("--repeat", type=int, default=3, help="timing repeats (best of)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = [int(float(x)) for x in args.calls.split(",") if x.strip()]
    results = []
    for n in sizes:
        r = run(n, args.repeat, args.seed)
        results.append(r)
        s = r["seconds"]
        print(f"N={n:>11,}  exact {s['exact']:.3f}s  binned {s['binned']:.3f}s  "
              f"sweep {s['sweep']:.3f}s  packed sweep {s['packed_sweep']:.3f}s  groupby {s['groupby']:.3f}s  "
              f"per-minute ~{s['per_minute']:.1f}s (from {r['per_minute_extrapolated_from']:,})")
        print(f"    exact/sweep {r['exact_over_sweep']:.2f} (target <= 1.2)  "
              f"binned/sweep {r['binned_over_sweep']:.2f}  "
              f"exact/packed-sweep {r['exact_over_packed_sweep']:.2f}  "
              f"groupby/exact {r['groupby_over_exact']:.1f} (target >= 10)  "
              f"per-minute/binned {r['per_minute_over_binned']:.0f}")
        print(f"    by= {GROUPS} groups: exact {s['exact_by']:.3f}s  "
              f"binned (1h) {s['binned_by']:.3f}s")
        print(f"    peak MiB above input ({r['input_mib']} MiB): " +
              ", ".join(f"{k} {v}" for k, v in r["peak_mib"].items()))
    # targets are stated for 10 M calls; small tables are dominated by fixed costs
    big = [r for r in results if r["calls"] >= 1_000_000] or results
    ok = all(r["exact_over_sweep"] <= 1.2 and r["groupby_over_exact"] >= 10 for r in big)
    print(json.dumps({"bench": "concurrency", "targets_met": ok, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
