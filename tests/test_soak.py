"""A bounded soak (bench/soak.py, 20 s): nothing lost or doubled under repeated cuts,
memory flat after warm-up while old rows spill to Parquet parts."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
#: RSS growth allowed after the first third of the run [MB]. Measured on the shared
#: development machine at these settings (~1 400 events/s): 6 MB with spilling, 43 MB for
#: a capture that keeps everything (``--keep 1e9``)
RSS_GROWTH_MB = 25


@pytest.mark.timeout(180)
def test_a_soak_under_cuts_loses_nothing_and_memory_stays_flat():
    command = [sys.executable, str(ROOT / "bench" / "soak.py"), "--sites", "4", "--rate",
               "5", "--speed", "30", "--seconds", "20", "--cut-every", "4", "--keep", "3",
               "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=170,
                          env=env, cwd=ROOT)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0, done.stdout + done.stderr
    assert result["cuts"] >= 4 and result["reconnects"] >= result["connections_cut"] >= 4
    # every call the servers started or ended outside a gap is there once, with their times
    assert result["lost"] == 0 and result["duplicated"] == 0
    assert result["wrong_times"] == 0 and result["not_in_truth"] == 0
    assert result["unread_at_stop"] == 0  # drained: nothing was excused as unread
    assert result["captured_calls"] + result["missed_in_gaps"] \
        + result["ended_before_first_connection"] == result["truth_calls"]
    # old rows left memory, and memory stayed flat after warm-up
    assert result["spilled_events"] > result["events"] / 2
    assert result["rss_growth_after_warmup_mb"] < RSS_GROWTH_MB, result["rss_timeline"]


def _bench_soak():
    spec = importlib.util.spec_from_file_location("bench_soak", ROOT / "bench" / "soak.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reconcile_excuses_calls_in_progress_across_a_session_that_never_got_its_list():
    soak = _bench_soak()
    ours = pd.Timestamp("2026-01-01 10:00:00", tz="UTC")
    theirs = pd.Timestamp("2026-01-01 12:00:00", tz="UTC")  # the server's clock

    def s(seconds):
        return pd.Timedelta(seconds=seconds)

    # three sessions; the middle one got notifications but never its ongoing list
    sessions = pd.DataFrame({
        "server": ["x"] * 3, "site": ["X"] * 3,
        "connected": [ours + s(0), ours + s(20), ours + s(40)],
        "disconnected": [ours + s(10), ours + s(30), pd.NaT],
        "resynced": [ours + s(1), pd.NaT, ours + s(41)]})
    received = [2, 9, 25, 42, 50]  # [s] after ours; the server's time is theirs + same
    events = pd.DataFrame({
        "server": "x", "origin": "notification", "event": "start",
        "received_at": [ours + s(r) for r in received],
        "start_time": [theirs + s(r) for r in received], "end_time": pd.NaT})
    gaps = soak.observed_gaps(events, sessions)
    # gaps (server clock, s after theirs): (-inf, 2] listed by session 0 after it;
    # [9, 25] closed by session 1, never listed; [25, 42] listed; [50, +inf)
    assert [resynced for _, _, resynced in gaps["x"]] == [True, False, True, False]
    assert [end for _, end, _ in gaps["x"][:3]] == [theirs + s(2), theirs + s(25),
                                                   theirs + s(42)]
    truth = pd.DataFrame({
        "call_id": ["across", "inside", "listed", "seen"], "site": "X", "server": "x",
        "start_time": [theirs + s(12), theirs + s(12), theirs + s(30), theirs + s(5)],
        "end_time": [theirs + s(35), theirs + s(15), theirs + s(45), theirs + s(15)]})
    calls = pd.DataFrame({"server": pd.Series([], dtype=str),
                          "call_id": pd.Series([], dtype=str),
                          "start_time": pd.Series([], dtype="datetime64[us, UTC]"),
                          "end_time": pd.Series([], dtype="datetime64[us, UTC]"),
                          "end_unknown": pd.Series([], dtype=bool)})
    figures = soak.reconcile(calls, truth, gaps)
    # "across": started in [9, 25], ended in [25, 42]; session 1 between never named it
    # "inside": started and ended in [9, 25]
    # "listed": started in [25, 42], in progress when session 2's list came: lost
    # "seen": started at 5, while observed: lost
    assert figures["missed_in_gaps"] == 2  # across + inside
    assert figures["missed_across_unlisted_sessions"] == 1  # across
    assert figures["lost"] == 2  # listed + seen
    assert figures["unread_at_stop"] == figures["ended_before_first_connection"] == 0
