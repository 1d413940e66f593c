"""Soak: a long capture of many simulated sites under repeated cuts, reconciled with the
simulators' own record of every call.

Usage: ``python bench/soak.py [--sites 8] [--rate 5] [--speed 20] [--seconds 45]
[--cut-every 5] [--keep 5] [--processes 2] [--json]``

``--sites`` :class:`recstats.sim.RecorderSimulator` s (``--rate`` calls per simulated
second each, at ``--speed`` simulated seconds per real second) run in ``--processes``
child processes (the simulators of one process share its interpreter lock), so the
memory sampled here (``VmRSS`` of this process, every 0.5 s) is the capture's. One
:class:`recstats.Capture` with ``keep=--keep`` seconds (older rows spill to Parquet
parts in a temporary folder) captures them all for ``--seconds`` seconds; every
``--cut-every`` seconds the simulators close every client connection
(:meth:`~recstats.sim.RecorderSimulator.drop_connections`) and the capture reconnects
and resynchronises. At the end the cuts stop, the capture gets back to every site, the
simulators are paused, the capture drains what is on its way and stops.

Reconciliation, per site, of the capture's calls (read back from the parts) with the
simulator's :attr:`~recstats.sim.RecorderSimulator.truth`. A gap is, in the server's
clock, the stretch between the last notification the capture received before a
disconnection and the first one after the reconnection (or before the first one). A
call the capture could never see is "missed in gaps" (compared with the status'
estimate): one that started and ended inside one gap, or that started in a gap and
ended in a later one while every session between them ended before its ongoing list
came (:attr:`recstats.Capture.sessions`' ``resynced``; counted apart as "missed across
unlisted sessions"). Those that ended before the first notification, and those that
started (or ended) after the last one read (on their way when the capture stopped),
are counted apart too. Any other call of the truth must be in the calls table once
("lost" counts those that are not, "duplicated" those twice), with the simulator's
start and end times ("wrong times"; ``end_unknown`` counted apart).

Who keeps up: the capture's and the simulators' CPU (shares of one core over the run),
how far the slowest simulator is behind its own clock (its lag: a simulator short of
CPU plays its calls late, in bursts), the load average of the machine, and the untyped
backlog (events queued, not typed yet; bounded by :data:`recstats._live.BACKLOG`)
sampled with the RSS. ``--per-event`` types each event with ``record_from_fields``
(the live tables' reference path) instead of in bulk, to compare.

Output: a table of RSS over time, the figures, then (``--json``) one JSON line.
Memory is "flat after warm-up" when the RSS after the first third of the run does not
trend up: ``rss_slope_after_warmup_mb_per_min`` (least squares over every sample after
the first third) near 0, and the medians of the second and last thirds
(``rss_median_thirds_mb``) within a few MB. At 60x the RSS swings by tens of MB as the
typing falls behind and catches up, so its peak after warm-up (also printed, as
``rss_growth_after_warmup_mb``) measures the swing more than any growth.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from recstats.capture import Capture


def rss_mb() -> float:
    """This process's resident set size [MB] (``/proc/self/status`` VmRSS)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU time of a process so far [s] (``/proc/PID/stat``)."""
    with open(f"/proc/{pid or 'self'}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _simulators(pipe, sites: range, rate: float, speed: float, folder: str) -> None:
    """A child process: the simulators of ``sites``, driven by commands on ``pipe``."""
    from recstats.sim import RecorderSimulator
    sims = [RecorderSimulator(location=f"SITE-{i:02d}", rate=rate, speed=speed, seed=i,
                              keepalive=2).start() for i in sites]
    pipe.send([sim.address for sim in sims])
    while True:
        command = pipe.recv()
        if command == "cut":
            pipe.send(sum(sim.drop_connections() for sim in sims))
        elif command == "lag":  # real seconds the slowest simulator is behind its clock
            pipe.send(max([(sim._sim_offset() - sim._played) / speed for sim in sims],
                          default=0.0))
        elif command == "pause":
            for sim in sims:
                sim.pause()
            pipe.send(None)
        elif command == "truth":
            paths = []
            for sim in sims:
                path = Path(folder) / f"truth-{sim.port}.parquet"
                truth = sim.truth[["call_id", "site", "start_time", "end_time"]]
                truth.assign(server=f"{sim.host}:{sim.port}").to_parquet(path)
                paths.append(str(path))
            pipe.send(paths)
        elif command == "stop":
            for sim in sims:
                sim.stop()
            pipe.send(None)
            return


def _server_time(events: pd.DataFrame) -> pd.Series:
    """The server's time of each notification: its start time, or end time for ends."""
    return events["start_time"].where(events["event"] == "start", events["end_time"])


def observed_gaps(events: pd.DataFrame, sessions: pd.DataFrame) -> dict[str, list]:
    """Per server, the gaps in the server's clock ``[(start, end, resynced)]`` (see the
    module docstring): from the last notification received in a session to the first
    one of the next (the first gap opens at the beginning of time); ``resynced``: the
    session that closes the gap (or one without notifications inside it) received its
    ongoing list."""
    notes = events[events["origin"] == "notification"]
    gaps: dict[str, list] = {}
    for server, mine in sessions.groupby("server", sort=False):
        received = notes[notes["server"] == server]
        clock = _server_time(received)
        last = pd.Timestamp.min.tz_localize("UTC")
        spans = []
        resynced = False
        for connected, disconnected, listed in zip(mine["connected"], mine["disconnected"],
                                                   mine["resynced"], strict=True):
            resynced |= pd.notna(listed)
            inside = received["received_at"] >= connected
            if pd.notna(disconnected):
                inside &= received["received_at"] <= disconnected
            times = clock[inside.to_numpy()]
            if not len(times):
                continue
            spans.append((last, times.min(), resynced))
            last, resynced = times.max(), False
        # after the last notification read: on its way when the capture stopped
        spans.append((last, pd.Timestamp.max.tz_localize("UTC"), resynced))
        gaps[server] = spans
    return gaps


def _span_of(times: pd.Series, spans: list) -> np.ndarray:
    """Index of the gap each time falls in (-1: none, i.e. while observed)."""
    where = np.full(len(times), -1)
    for i, (begin, end, _) in reversed(list(enumerate(spans))):
        where[((times >= begin) & (times <= end)).to_numpy()] = i
    return where


def reconcile(calls: pd.DataFrame, truth: pd.DataFrame, gaps: dict[str, list]) -> dict:
    """Capture calls vs the simulators' truth (see the module docstring).

    A call the capture does not have is excused ("missed in gaps") when it started in
    a gap and ended in the same gap, or in a later one with no ongoing list received
    in between (in progress across sessions that never resynchronised: no document
    named it); else it is "lost"."""
    duplicated = int(calls.duplicated(["server", "call_id"]).sum())
    merged = truth.merge(calls[["server", "call_id", "start_time", "end_time",
                                "end_unknown"]].drop_duplicates(["server", "call_id"]),
                         on=["server", "call_id"], how="left", suffixes=("", "_seen"),
                         indicator=True)
    missing = merged[merged["_merge"] == "left_only"]
    excused = np.zeros(len(missing), dtype=bool)
    before = np.zeros(len(missing), dtype=bool)  # from the first gap: before the window
    unread = np.zeros(len(missing), dtype=bool)  # into the last: not read at the stop
    across = np.zeros(len(missing), dtype=bool)  # across sessions without their list
    for server, spans in gaps.items():
        mine = np.flatnonzero((missing["server"] == server).to_numpy())
        starts = _span_of(missing["start_time"].iloc[mine], spans)
        ended = missing["end_time"].iloc[mine]
        ends = np.where(ended.isna().to_numpy(), len(spans) - 1, _span_of(ended, spans))
        unlisted = np.array([not resynced for _, _, resynced in spans])
        for k, (i, j) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
            if i < 0 or j < i or not unlisted[i:j].all():
                continue
            excused[mine[k]] = True
            across[mine[k]] = i < j
            before[mine[k]] = i == 0
            unread[mine[k]] = i > 0 and j == len(spans) - 1
    seen = merged[merged["_merge"] == "both"]
    unknown = seen["end_unknown"].astype(bool)
    wrong = (seen["start_time"] != seen["start_time_seen"]) | (
        ~unknown & ~((seen["end_time"] == seen["end_time_seen"])
                     | (seen["end_time"].isna() & seen["end_time_seen"].isna())))
    extra = calls.merge(truth[["server", "call_id"]], how="left", indicator=True)
    return {"truth_calls": len(truth), "captured_calls": len(calls),
            "lost": int((~excused).sum()),
            "missed_in_gaps": int((excused & ~before & ~unread).sum()),
            "missed_across_unlisted_sessions": int((across & ~before & ~unread).sum()),
            "unread_at_stop": int(unread.sum()),
            "ended_before_first_connection": int(before.sum()),
            "duplicated": duplicated, "wrong_times": int(wrong.sum()),
            "end_unknown": int(unknown.sum()),
            "not_in_truth": int((extra["_merge"] == "left_only").sum())}


class _Children:
    """The simulators' processes, one command to all at once."""

    def __init__(self, processes: int, sites: int, rate: float, speed: float, folder: str):
        context = multiprocessing.get_context("spawn")
        self.pipes, self.processes = [], []
        for k in range(processes):
            mine, theirs = context.Pipe()
            child = context.Process(target=_simulators, daemon=True, args=(
                theirs, range(k, sites, processes), rate, speed, folder))
            child.start()
            self.pipes.append(mine)
            self.processes.append(child)

    def ask(self, command: str) -> list:
        for pipe in self.pipes:
            pipe.send(command)
        return [pipe.recv() for pipe in self.pipes]

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(child.pid) for child in self.processes)


def run(sites: int, rate: float, speed: float, seconds: float, cut_every: float,
        keep: float, per_event: bool = False, processes: int = 2,
        samples_to: str | None = None) -> dict:
    folder = tempfile.mkdtemp(prefix="recstats-soak-")
    children = _Children(processes, sites, rate, speed, folder)
    addresses = [a for pipe in children.pipes for a in pipe.recv()]
    capture = Capture(addresses, keep=keep, backoff=0.2, max_backoff=1.0, timeout=10)
    capture._tables._bulk = not per_event  # the reference path, for a comparison
    samples: list[tuple[float, float, int, int]] = []  # (s, RSS MB, events, untyped)
    lags: list[float] = []  # how far the simulators are behind their clock [s]
    cuts = dropped = 0
    began = time.monotonic()
    cpu_began, sim_cpu_began = cpu_seconds(), children.cpu_seconds()
    capture.start()
    next_cut = began + cut_every
    while (now := time.monotonic()) < began + seconds:
        if now >= next_cut:
            dropped += sum(children.ask("cut"))
            cuts += 1
            next_cut += cut_every
        samples.append((now - began, rss_mb(), int(capture.status["events"].sum()),
                        len(capture._tables._queued)))
        lags.append(max(children.ask("lag")))
        time.sleep(0.5)
    elapsed = time.monotonic() - began
    cpu, sim_cpu = cpu_seconds() - cpu_began, children.cpu_seconds() - sim_cpu_began
    load = os.getloadavg()
    # the end: everyone back, the simulators frozen, what is on its way drained
    deadline = time.monotonic() + 15
    while not capture.status["connected"].all() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # the last resyncs answered
    children.ask("pause")
    count, still = -1, 0
    while still < 3 and time.monotonic() < deadline + 10:
        now_count = int(capture.status["events"].sum())
        still = still + 1 if now_count == count else 0
        count = now_count
        time.sleep(0.5)
    capture.stop()
    status = capture.status
    truth = pd.concat([pd.read_parquet(p) for paths in children.ask("truth")
                       for p in paths], ignore_index=True)
    children.ask("stop")
    for child in children.processes:
        child.join(10)
    events, calls = capture.events, capture.calls
    figures = reconcile(calls, truth, observed_gaps(events, capture.sessions))
    rss = pd.DataFrame(samples, columns=["t", "rss_mb", "events", "untyped"])
    if samples_to is not None:
        rss.to_csv(samples_to, index=False)
    warm = rss[rss["t"] >= seconds / 3]
    at_warm = float(warm["rss_mb"].iloc[0]) if len(warm) else float("nan")
    slope = float(np.polyfit(warm["t"], warm["rss_mb"], 1)[0]) * 60 if len(warm) > 2 \
        else float("nan")
    last = rss[rss["t"] >= 2 * seconds / 3]["rss_mb"]
    second = warm[warm["t"] < 2 * seconds / 3]["rss_mb"]
    return {
        "bench": "soak", "sites": sites, "rate": rate, "speed": speed,
        "simulator_processes": processes,
        "typing": "per-event" if per_event else "bulk",
        "seconds": round(elapsed, 1), "cut_every": cut_every, "keep": keep,
        "events": int(status["events"].sum()),
        "events_per_s": round(int(status["events"].sum()) / elapsed),
        "cuts": cuts, "connections_cut": dropped,
        "reconnects": int(status["reconnects"].sum()),
        "gap_seconds": round(float(status["gap_seconds"].sum()), 2),
        "missed_estimate": round(float(status["missed_calls"].sum()), 1),
        "spilled_events": int(status["spilled_events"].sum()),
        "spilled_calls": int(status["spilled_calls"].sum()),
        **figures,
        "rss_start_mb": round(float(rss["rss_mb"].iloc[0]), 1),
        "rss_after_warmup_mb": round(at_warm, 1),
        "rss_peak_mb": round(float(rss["rss_mb"].max()), 1),
        "rss_growth_after_warmup_mb": round(float(warm["rss_mb"].max()) - at_warm, 1),
        "rss_slope_after_warmup_mb_per_min": round(slope, 2),
        "rss_median_thirds_mb": [round(float(part.median()), 1) if len(part) else None
                                 for part in (second, last)],
        "untyped_after_warmup": int(warm["untyped"].iloc[0]) if len(warm) else 0,
        "untyped_peak": int(rss["untyped"].max()),
        "untyped_at_end": int(rss["untyped"].iloc[-1]),
        "capture_cpu_share": round(cpu / elapsed, 2),
        "simulators_lag_max_s": round(max(lags), 2),
        "simulators_lag_end_s": round(lags[-1], 2),
        "simulators_cpu_share": round(sim_cpu / elapsed, 2),
        "load_average": [round(x, 2) for x in load],
        "rss_timeline": [(round(t, 1), round(m, 1)) for t, m, _, _ in
                         rss.iloc[:: max(1, len(rss) // 8)].itertuples(index=False)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=8, help="simulated sites (N)")
    parser.add_argument("--rate", type=float, default=5.0,
                        help="calls per simulated second per site (R)")
    parser.add_argument("--speed", type=float, default=20.0,
                        help="simulated seconds per real second")
    parser.add_argument("--seconds", type=float, default=45.0, help="run time (T) [s]")
    parser.add_argument("--cut-every", type=float, default=5.0,
                        help="seconds between cuts of every connection")
    parser.add_argument("--keep", type=float, default=5.0,
                        help="the capture's memory horizon [s]")
    parser.add_argument("--processes", type=int, default=2,
                        help="child processes the simulators are spread over")
    parser.add_argument("--json", action="store_true", help="also print one JSON line")
    parser.add_argument("--samples", metavar="CSV",
                        help="also write every RSS sample (t, rss_mb, events, untyped)")
    parser.add_argument("--per-event", action="store_true",
                        help="type events one by one (the reference path), to compare")
    args = parser.parse_args(argv)
    result = run(args.sites, args.rate, args.speed, args.seconds, args.cut_every, args.keep,
                 args.per_event, args.processes, args.samples)
    print(f"soak: {args.sites} sites x {args.rate:g} calls/s at {args.speed:g}x for "
          f"{result['seconds']} s, cuts every {args.cut_every:g} s, keep {args.keep:g} s, "
          f"{result['typing']} typing "
          f"(pid {os.getpid()}; a shared machine: figures vary)")
    print("RSS over time [s: MB]: " + ", ".join(f"{t:g}: {m:g}"
                                               for t, m in result["rss_timeline"]))
    for key in ("events", "events_per_s", "cuts", "reconnects", "gap_seconds",
                "truth_calls", "captured_calls", "lost", "duplicated", "wrong_times",
                "end_unknown", "not_in_truth", "ended_before_first_connection", "unread_at_stop",
                "missed_in_gaps", "missed_across_unlisted_sessions", "missed_estimate",
                "spilled_events", "spilled_calls", "rss_start_mb", "rss_after_warmup_mb",
                "rss_peak_mb", "rss_growth_after_warmup_mb",
                "rss_slope_after_warmup_mb_per_min", "rss_median_thirds_mb", "untyped_after_warmup",
                "untyped_peak", "untyped_at_end", "capture_cpu_share",
                "simulators_cpu_share", "simulators_lag_max_s", "simulators_lag_end_s",
                "load_average"):
        print(f"  {key:30} {result[key]}")
    if args.json:
        print(json.dumps(result))
    return 0 if result["lost"] == 0 and result["duplicated"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
