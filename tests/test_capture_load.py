"""A short live capture measures the real load: the simulator starts in steady state and
the capture's window is in the servers' clock, so its busy hour is the offered traffic."""

from __future__ import annotations

import time
import warnings

import pandas as pd
import pytest

import recstats as rs
from recstats._capture_gaps import ClockMap
from recstats.sim import RecorderSimulator


def test_clock_map_learns_offset_and_rate_by_hand():
    # the server's clock is 100 us ahead at our 0 and runs 60x ours: at our 1 s it reads
    # 100 us + 60 s; over less than a second of our clock no rate is estimated
    fitted = ClockMap.fit([(0, 100), (2_000_000, 120_000_100)])
    assert fitted.rate == pytest.approx(60.0)
    assert fitted.at(1_000_000) == 60_000_100
    # offsets 500 and 520: the larger, read with the least delay, at our 1000 us
    assert ClockMap.fit([(0, 500), (10, 530)]).at(1_000) == 1_520
    # at 60x, a note stamped 60 s (server) before the clock's reading was read 1 s late
    assert fitted.behind(1_000_000, 100) == 1_000_000
    assert fitted.behind(1_000_000, 60_000_100) == 0


@pytest.mark.timeout(120)
def test_a_few_seconds_of_capture_measure_rate_times_holding():
    rate, holding, speed, seconds = 2.0, 180.0, 60.0, 5.0
    with RecorderSimulator(location="NY", rate=rate, mean_holding=holding, speed=speed,
                           seed=3) as sim, rs.Capture([("127.0.0.1", sim.port)]) as capture:
        time.sleep(seconds)
    start, end = capture.window
    # five real seconds at 60x are five simulated minutes of the server's clock
    assert (end - start).total_seconds() == pytest.approx(seconds * speed, rel=0.1)
    calls = capture.calls
    assert [pd.Timestamp(t) for t in calls.attrs["window"]] == [start, end]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rs.DataQualityWarning)  # calls before the window
        busy = rs.busy_hour(calls, min_coverage=0)
    # offered load rate x mean holding = 360 erlangs, carried in full (no blocking)
    assert busy.traffic == pytest.approx(rate * holding, rel=0.25)
    assert 0 < busy.coverage < 0.1  # five minutes of an hour
