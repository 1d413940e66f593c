"""Benchmark: snapshots of a capture's live tables vs a records-to-DataFrame baseline.

Usage: ``python bench/capture_snapshot.py [--events 1e6] [--servers 2] [--seed 0] [--tz ZONE]``

N synthetic events (half starts, half ends of N/2 calls, spread over ``--servers``
servers, with the raw fields a simulator sends: ids, parties, times, enum codes, two
extras) are queued in the capture's live tables (:class:`recstats._live.Tables`)
exactly as a live capture does, then timed:

* ``ingest``    -- queueing all N events as they arrive (raw fields, no typing);
* ``first``     -- the first snapshot: typing the N queued events in bulk (one
  vectorised pass per batch), folding them, and building the events table;
* ``first/each`` -- the same first snapshot with the per-event reference path (each
  event typed by ``record_from_fields`` and folded one by one), on a second copy of
  the queue: ``first`` is measured against it in the same run;
* ``type bulk`` / ``type each`` -- the typing alone, per event: ``typed_records`` of
  all the raw fields vs ``record_from_fields`` called on each;
* ``events``    -- rebuilding the events table from the typed columns (no cache);
* ``calls``     -- the calls table: one row per call, end fields over start's;
* ``cached``    -- a second ``events_frame()`` with nothing new (served from cache);
* ``records``   -- the baseline a capture without columnar buffers would pay per
  snapshot: ``pd.DataFrame.from_records`` of the same N typed records, plus
  ``recstats.coerce_calls`` on it for typing.

Output: a table, then one JSON line (``{"bench": "capture_snapshot", ...}``).
Target (brief): a snapshot of 1 M events well under a second; faster than ``records``;
the bulk first snapshot several times faster than the per-event one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from recstats import _schema, _table
from recstats._live import Tables, typed_records
from recstats.cdr import record_from_fields


def make_events(n: int, servers: int, seed: int) -> list[tuple]:
    """(t, server, event, raw fields) tuples: each call's start, later its end."""
    rng = np.random.default_rng(seed)
    calls = n // 2
    base = pd.Timestamp("2026-11-02")
    stamps = [f"{base + pd.Timedelta(seconds=int(s)):%Y-%m-%d %H:%M:%S}.000"
              for s in range(0, 86400, 7)]
    starts = rng.integers(0, len(stamps) - 100, calls)
    lengths = rng.integers(1, 100, calls)
    server_of = rng.integers(0, servers, calls)
    names = [f"10.0.0.{i}:10300" for i in range(servers)]
    sites = [f"SITE-{i}" for i in range(servers)]
    causes = list(_schema.CAUSES)
    out = []
    for i in range(calls):
        start = {"id": f"{i:08x}-7a40-11e4-8271-001cc092f276",
                 "location": sites[server_of[i]], "start_time": stamps[starts[i]],
                 "source_caller_id": str(1000 + i % 100),
                 "destination_caller_id": f"+36{i:09d}", "direction_id": str(i % 3),
                 "modality_id": "voice", "native_id": str(i), "source_ip": "10.1.2.3"}
        end = dict(start, end_time=stamps[starts[i] + lengths[i]],
                   cause_id=causes[i % len(causes)], media_file=f"{i}.wav")
        out.append((2 * i, names[server_of[i]], "start", start))
        out.append((2 * i + 1, names[server_of[i]], "end", end))
    # receive times: increasing per server, but the servers' threads append out of step
    jitter = rng.integers(0, 50, len(out))
    return [(1_000_000 + 10 * t + int(j), s, k, r) for (t, s, k, r), j in zip(out, jitter)]


def best(fn, repeat: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - began)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=float, default=1e6)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tz", default="Europe/Budapest")
    args = parser.parse_args()
    n = int(args.events)
    events = make_events(n, args.servers, args.seed)

    tables, each = Tables(args.tz), Tables(args.tz)
    each._bulk = False  # the per-event reference path
    began = time.perf_counter()
    for t, server, kind, fields in events:
        tables.add(t, server, kind, "notification", fields)
    ingest = time.perf_counter() - began
    for t, server, kind, fields in events:
        each.add(t, server, kind, "notification", fields)
    began = time.perf_counter()
    first = tables.events_frame()
    t_first = time.perf_counter() - began
    began = time.perf_counter()
    first_each = each.events_frame()
    t_first_each = time.perf_counter() - began
    pd.testing.assert_frame_equal(first, first_each)
    del each, first_each
    sample = [fields for _, _, _, fields in events[:min(n, 100_000)]]
    t_type_bulk, _ = best(lambda: typed_records(sample, args.tz), repeat=1)
    t_type_each, _ = best(lambda: [record_from_fields(f, tz=args.tz) for f in sample],
                          repeat=1)

    def fresh(which):
        tables._typed._cache.clear()  # time the conversion, not the cache
        return getattr(tables, f"{which}_frame")()

    t_events, frame = best(lambda: fresh("events"))
    t_calls, calls = best(lambda: fresh("calls"))
    t_cached, _ = best(tables.events_frame)
    rows = [dict(record_from_fields(fields, tz=args.tz), received_at=t, server=server, event=kind,
                 origin="notification") for t, server, kind, fields in events]
    t_records, _ = best(lambda: _table.coerce_calls(pd.DataFrame.from_records(rows)), repeat=1)
    assert len(frame) == len(first) == n and len(calls) == n // 2

    print(f"{n:,} events, {n // 2:,} calls, {args.servers} servers")
    print(f"  ingest   {ingest:8.3f} s  ({ingest / n * 1e6:.2f} µs per event)")
    print(f"  first    {t_first:8.3f} s  (typing every event once, then the table)")
    print(f"  first/each {t_first_each:6.3f} s  (per-event reference path: "
          f"{t_first_each / t_first:.1f} x the bulk first snapshot)")
    us = 1e6 / len(sample)
    print(f"  type bulk {t_type_bulk * us:7.2f} µs per event  (typed_records)")
    print(f"  type each {t_type_each * us:7.2f} µs per event  (record_from_fields: "
          f"{t_type_each / t_type_bulk:.1f} x)")
    print(f"  events   {t_events:8.3f} s")
    print(f"  calls    {t_calls:8.3f} s")
    print(f"  cached   {t_cached:8.4f} s")
    print(f"  records  {t_records:8.3f} s  (baseline: from_records + coerce_calls)")
    print(f"  records / events snapshot: {t_records / t_events:.1f} x")
    print(json.dumps({"bench": "capture_snapshot", "events": n, "servers": args.servers,
                      "ingest_s": round(ingest, 4), "first_s": round(t_first, 4),
                      "first_each_s": round(t_first_each, 4),
                      "first_speedup": round(t_first_each / t_first, 2),
                      "type_bulk_us": round(t_type_bulk * us, 2),
                      "type_each_us": round(t_type_each * us, 2),
                      "typing_speedup": round(t_type_each / t_type_bulk, 2),
                      "events_s": round(t_events, 4),
                      "calls_s": round(t_calls, 4), "cached_s": round(t_cached, 5),
                      "records_s": round(t_records, 4),
                      "speedup_vs_records": round(t_records / t_events, 2)}))


if __name__ == "__main__":
    main()
