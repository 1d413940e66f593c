"""Benchmark: incremental datasets, and local vs Dask statistics on 1 M calls.

Usage: ``python bench/scale.py [--files 5000] [--calls 1e6] [--partitions 8]
[--workers 2] [--seed 0] [--repeat 3] [--skip-ingest] [--skip-dask]``

Each part runs in its own subprocess, so each peak memory (``ru_maxrss``) is its own:

* ``ingest`` -- a generated archive of ``--files`` CDR files, in ``--repeat`` turns:
  ``rs.ingest`` into a new dataset (first run), then three times again with nothing
  changed (the folders are as recorded, so only the CDR files are stat'ed: tens of
  milliseconds, whose spread on a shared machine is as large as they are, hence the
  median of three); at the end, after touching 1 % of the files. Target (issue 11):
  unchanged >= 20 x faster than the first run, judged by the median of the turns'
  ratios.
* ``local``  -- ``--calls`` synthetic calls made with NumPy (seeded: chunk ``k`` of
  ``--partitions`` comes from seed ``seed + k``; starts uniform over 30 days, durations
  exponential of mean 3 min, 1 % zero-length, 3 sites) built in one process, then
  ``recstats.stats.concurrency(freq="15min")``, ``busy_hour`` and ``capacity_table``.
* ``dask``   -- the same chunks made inside the partitions of a
  ``distributed.LocalCluster`` (``--workers`` processes, one thread each; the driver
  never holds the calls), then ``rs.dask.concurrency``/``busy_hour``/
  ``capacity_table``, checked equal to the local results (every column, coverage
  included); each statistic makes the
  chunks again, as it would read them again from files. Peak memory: the driver's,
  and the largest worker process's (``RUSAGE_CHILDREN`` after the cluster closed).

Output: a table, then one JSON line (``{"bench": "scale", ...}``). The machine this runs
on may be shared: its load is printed, and timings are the best of one run each.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EPOCH = pd.Timestamp("2026-11-02", tz="UTC").value // 1000  # [us]
SITES = ["LDN", "NY", "SYD"]


def make_chunk(k: int, n: int, seed: int) -> pd.DataFrame:
    """Chunk ``k`` of the synthetic calls table: ``n`` calls from seed ``seed + k``
    (the columns the statistics read, with the calls-table dtypes)."""
    rng = np.random.default_rng(seed + k)
    start = EPOCH + rng.integers(0, 30 * 86400 * 1000, n, dtype="int64") * 1000
    length = (rng.exponential(180.0, n) * 1e6).astype("int64")
    length[rng.random(n) < 0.01] = 0
    return pd.DataFrame({
        "site": pd.Categorical.from_codes(rng.integers(0, len(SITES), n), SITES),
        "start_time": pd.Series(start.view("M8[us]")).dt.tz_localize("UTC"),
        "end_time": pd.Series((start + length).view("M8[us]")).dt.tz_localize("UTC")})


def _sizes(calls: int, partitions: int) -> list[int]:
    return [calls // partitions + (k < calls % partitions) for k in range(partitions)]


def _rss_mib(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


def part_ingest(args) -> dict:
    import recstats as rs
    from recstats.sim.samples import generate_archive

    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "archive"
        generate_archive(archive, calls=args.files, days=10, seed=args.seed)
        # an archive written before the run: folders modified within 2 s of a listing
        # are listed again next time (timestamps can be coarse), which is not the case
        # measured here
        time.sleep(2.5)
        turns = []
        for turn in range(args.repeat):  # each turn into a new dataset
            dataset = Path(tmp) / f"ds{turn}"
            t = time.perf_counter()
            rs.ingest(archive, dataset, progress=False)
            first = time.perf_counter() - t
            again = []
            for _ in range(3):
                t = time.perf_counter()
                report = rs.ingest(archive, dataset, progress=False)
                again.append(time.perf_counter() - t)
                assert report.parsed == 0 and report.unchanged == args.files
            turns.append((first, statistics.median(again)))
        touched = sorted(archive.rglob("*.xml"))[:: 100]
        for path in touched:
            os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1000))
        t = time.perf_counter()
        report = rs.ingest(archive, dataset, progress=False)
        some = time.perf_counter() - t
        assert report.parsed == len(touched)
    return {"files": args.files, "turns": len(turns),
            "first_s": min(first for first, _ in turns),
            "unchanged_s": min(again for _, again in turns),
            "touched_1pct_s": some,
            "speedup_unchanged": statistics.median(first / again for first, again in turns)}


def _local_results(calls: pd.DataFrame):
    from recstats import stats

    return (stats.concurrency(calls, freq="15min"), stats.busy_hour(calls),
            stats.capacity_table(calls))


def part_local(args) -> dict:
    base = _rss_mib()
    t = time.perf_counter()
    calls = pd.concat([make_chunk(k, n, args.seed)
                       for k, n in enumerate(_sizes(args.calls, args.partitions))],
                      ignore_index=True)
    made = time.perf_counter() - t
    t = time.perf_counter()
    binned, busy, capacity = _local_results(calls)
    took = time.perf_counter() - t
    out = Path(args.out)
    binned.to_parquet(out / "binned.parquet")
    capacity.to_parquet(out / "capacity.parquet")
    (out / "busy.json").write_text(json.dumps([busy.hour, busy.traffic]))
    return {"make_s": made, "stats_s": took, "peak_mib": _rss_mib(),
            "baseline_mib": base}


def part_dask(args) -> dict:
    import dask.dataframe as dd
    import distributed

    import recstats as rs

    base = _rss_mib()
    cluster = distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                       processes=True, dashboard_address=None)
    client = distributed.Client(cluster)
    try:
        sizes = _sizes(args.calls, args.partitions)
        calls = dd.from_map(make_chunk, range(len(sizes)), sizes, seed=args.seed,
                            meta=make_chunk(0, 0, args.seed))
        t = time.perf_counter()
        binned = rs.dask.concurrency(calls, freq="15min")
        busy = rs.dask.busy_hour(calls)
        capacity = rs.dask.capacity_table(calls)
        took = time.perf_counter() - t
    finally:
        client.close()
        cluster.close()
    out = Path(args.out)
    pd.testing.assert_frame_equal(binned, pd.read_parquet(out / "binned.parquet"))
    pd.testing.assert_frame_equal(capacity, pd.read_parquet(out / "capacity.parquet"))
    assert [busy.hour, busy.traffic] == json.loads((out / "busy.json").read_text())
    return {"stats_s": took, "driver_peak_mib": _rss_mib(),
            "worker_peak_mib": _rss_mib(resource.RUSAGE_CHILDREN), "baseline_mib": base,
            "equal_to_local": True}


def _run(part: str, args, out: str) -> dict:
    command = [sys.executable, __file__, "--part", part, "--out", out,
               "--files", str(args.files), "--calls", str(args.calls),
               "--partitions", str(args.partitions), "--workers", str(args.workers),
               "--seed", str(args.seed), "--repeat", str(args.repeat)]
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=1800,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode:
        raise SystemExit(f"{part} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--calls", type=lambda v: int(float(v)), default=1_000_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3,
                        help="ingest turns, each into a new dataset")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--part", choices=["ingest", "local", "dask"], default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.part is not None:  # a child: one JSON line
        run = {"ingest": part_ingest, "local": part_local, "dask": part_dask}[args.part]
        print(json.dumps(run(args)))
        return
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    result: dict = {"bench": "scale"}
    with tempfile.TemporaryDirectory() as out:
        if not args.skip_ingest:
            ing = result["ingest"] = _run("ingest", args, out)
            print(f"ingest {ing['files']} files: first {ing['first_s']:.2f} s, unchanged "
                  f"{ing['unchanged_s']:.3f} s (best of {ing['turns']} turns; median of the "
                  f"turns' ratios {ing['speedup_unchanged']:.0f} x faster; target >= 20 x), "
                  f"1 % touched {ing['touched_1pct_s']:.3f} s")
        local = result["local"] = _run("local", args, out)
        print(f"local  {args.calls:,} calls: stats {local['stats_s']:.2f} s "
              f"(+{local['make_s']:.2f} s to make them), peak {local['peak_mib']:.0f} MiB")
        if not args.skip_dask:
            dsk = result["dask"] = _run("dask", args, out)
            print(f"dask   {args.partitions} partitions on {args.workers} workers: stats "
                  f"{dsk['stats_s']:.2f} s, driver peak {dsk['driver_peak_mib']:.0f} MiB, "
                  f"largest worker {dsk['worker_peak_mib']:.0f} MiB; equal to local")
            result["dask_over_local_time"] = dsk["stats_s"] / local["stats_s"]
            result["driver_over_local_memory"] = dsk["driver_peak_mib"] / local["peak_mib"]
            result["worker_over_local_memory"] = dsk["worker_peak_mib"] / local["peak_mib"]
            print(f"ratios: time dask/local {result['dask_over_local_time']:.2f}, memory "
                  f"driver/local {result['driver_over_local_memory']:.2f}, largest "
                  f"worker/local {result['worker_over_local_memory']:.2f}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
