"""stats: concurrency vs brute force, busy hour / profile / extensions / capacity by hand.

Windows, gaps, data quality, days and sites have their own file, test_windows.py.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recstats import DataQualityWarning, stats
from recstats._table import coerce_calls
from recstats.stats import (
    BusyHour,
    busy_hour,
    capacity_table,
    check_calls,
    concurrency,
    extension_stats,
    traffic_profile,
)

# random tables hold calls without a start on purpose; the warning has its own tests
pytestmark = pytest.mark.filterwarnings("ignore::recstats.DataQualityWarning")

US = 1_000_000
# 2024-03-31 01:00 UTC is the Europe DST switch: random tables straddle it.
T0 = pd.Timestamp("2024-03-30 23:00", tz="UTC")


def at(minutes: float | None, base: pd.Timestamp = T0):
    return None if minutes is None else base + pd.Timedelta(minutes=minutes)


def calls_table(spans, **columns) -> pd.DataFrame:
    """A calls table (real schema) from (start, end) pairs of Timestamps or None."""
    frame = pd.DataFrame({"call_id": [str(i) for i in range(len(spans))],
                          "start_time": [s for s, _ in spans],
                          "end_time": [e for _, e in spans], **columns})
    return coerce_calls(frame)


def minutes_table(spans, base=T0, **columns):
    return calls_table([(at(s, base), at(e, base)) for s, e in spans], **columns)


def brute_count(calls: pd.DataFrame, instant: pd.Timestamp, window=None) -> int:
    """Calls in progress at ``instant``, one call at a time, [start, end); ongoing calls
    until the window's end, nothing outside the window."""
    if window is not None and not window[0] <= instant < window[1]:
        return 0
    n = 0
    for start, end in zip(calls["start_time"], calls["end_time"]):
        if pd.isna(start):
            continue
        if pd.isna(end):
            end = window[1]
        if start <= instant < end:
            n += 1
    return n


def step_value(frame: pd.DataFrame, instant: pd.Timestamp) -> int:
    before = frame[frame["time"] <= instant]
    return 0 if before.empty else int(before["concurrent"].iloc[-1])


def random_calls(rng, n, spread_s=3600, ongoing=0.1, no_start=0.05, sites=None):
    starts = T0 + pd.to_timedelta(rng.integers(0, spread_s, n), unit="s")
    lengths = rng.choice([0, 0, 1, 30, 60, 300, 900, 5400], n)  # ties and zero lengths
    spans = []
    for start, length in zip(starts, lengths):
        end = start + pd.Timedelta(seconds=int(length))
        r = rng.random()
        spans.append((None, end) if r < no_start else
                      (start, None) if r < no_start + ongoing else (start, end))
    columns = {} if sites is None else {"site": list(rng.choice(sites, n))}
    return calls_table(spans, **columns)


def check_exact(calls, frame, window, instants):
    assert list(frame.columns)[-2:] == ["time", "concurrent"]
    assert str(frame["time"].dtype) == "datetime64[us, UTC]"
    assert frame["concurrent"].dtype == np.int64
    values = frame["concurrent"].to_numpy()
    if len(values):
        assert frame["time"].is_monotonic_increasing and frame["time"].is_unique
        assert values[0] != 0 and values[-1] == 0
        assert (np.diff(values) != 0).all()  # rows only where the value changes
    for instant in instants:
        assert step_value(frame, instant) == brute_count(calls, instant, window), instant


def instants_of(calls, window, rng, extra=40):
    times = [t for t in pd.concat([calls["start_time"], calls["end_time"]]).dropna()]
    times.extend(window)
    out = set()
    for t in times:
        out.update({t, t - pd.Timedelta(microseconds=1), t + pd.Timedelta(microseconds=1)})
    out.update(T0 + pd.to_timedelta(rng.integers(-600, 3 * 3600, extra), unit="s"))
    return sorted(out)


# --------------------------------------------------------------------------- exact


@pytest.mark.parametrize("seed", range(4))
def test_exact_concurrency_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    calls = random_calls(rng, 60)
    # the window starts after some calls and ends before others: both are clipped
    window = (T0 + pd.Timedelta(minutes=7), T0 + pd.Timedelta(hours=2))
    frame = concurrency(calls, window=window)
    check_exact(calls, frame, window, instants_of(calls, window, rng))


def test_ties_and_zero_length_calls():
    # A [0,10) and B [10,20) touch but never overlap; C [5,5) counts nowhere;
    # D [10,20) duplicates B's times.
    calls = minutes_table([(0, 10), (10, 20), (5, 5), (10, 20)])
    frame = concurrency(calls)
    assert frame["time"].tolist() == [at(0), at(10), at(20)]
    assert frame["concurrent"].tolist() == [1, 2, 0]
    # a swap at one instant (one ends, one starts) is no change at all
    assert concurrency(minutes_table([(0, 10), (10, 20)]))["concurrent"].tolist() == [1, 0]


def test_ongoing_calls_run_until_the_window_end_and_the_window_clips():
    calls = minutes_table([(0, 30), (10, None), (50, 60), (None, 5)])
    frame = concurrency(calls, window=(at(0), at(20)))
    # ongoing [10, 20); [0, 30) is cut at the window's end; [50, 60) is outside it;
    # the call without a start is left out
    assert frame["time"].tolist() == [at(0), at(10), at(20)]
    assert frame["concurrent"].tolist() == [1, 2, 0]
    # an ongoing call that starts after the window's end counts nowhere
    assert concurrency(minutes_table([(40, None)]), window=(at(0), at(20))).empty


def test_ongoing_calls_never_run_until_the_wall_clock():
    # no window anywhere: the archive rule's whole days; the ongoing call (started
    # 2024-03-30 23:10 UTC) counts until the end of its day, midnight, not until now
    frame = concurrency(minutes_table([(10, None), (20, 30)]))
    assert frame["time"].tolist() == [at(10), at(20), at(30), at(60)]
    assert frame["concurrent"].tolist() == [1, 2, 1, 0]
    # a capture's window (attrs) ends it there
    calls = minutes_table([(10, None)])
    calls.attrs["window"] = [at(0).isoformat(), at(15).isoformat()]
    assert concurrency(calls)["time"].tolist() == [at(10), at(15)]


def test_window_accepts_naive_as_utc_and_other_zones():
    calls = minutes_table([(0, None)])
    a = concurrency(calls, window=(at(0).tz_localize(None), at(30).tz_localize(None)))
    b = concurrency(calls, window=(at(0), at(30).tz_convert("Asia/Kolkata")))
    assert a["time"].tolist() == b["time"].tolist() == [at(0), at(30)]


def test_empty_and_start_less_tables():
    for calls in (minutes_table([]), minutes_table([(None, 5)]), minutes_table([(3, 3)])):
        frame = concurrency(calls)
        assert frame.empty and list(frame.columns) == ["time", "concurrent"]
        assert str(frame["time"].dtype) == "datetime64[us, UTC]"
        binned = concurrency(calls, freq="1h")
        assert list(binned.columns) == ["peak", "mean", "started", "coverage"]


def test_accepts_unconverted_time_columns_and_does_not_mutate():
    calls = pd.DataFrame({"start_time": ["2024-01-01T10:00:00Z", "2024-01-01T10:05:00Z"],
                          "end_time": ["2024-01-01T10:10:00Z", "2024-01-01T10:07:00Z"]})
    copy = calls.copy()
    assert concurrency(calls)["concurrent"].tolist() == [1, 2, 1, 0]
    pd.testing.assert_frame_equal(calls, copy)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 15), st.booleans()),
                max_size=25))
def test_exact_property(spans):
    # (start minute, length, ongoing?) with many ties on a small grid
    calls = minutes_table([(s, None if ongoing else s + n) for s, n, ongoing in spans])
    window = (at(5), at(30))
    frame = concurrency(calls, window=window)
    instants = [at(m / 2) for m in range(-2, 120)]
    check_exact(calls, frame, window, instants)


# --------------------------------------------------------------------------- binned


def test_binned_by_hand():
    # A [0,20) B [10,30) C [10,10) D [25,40), minutes after 10:00; steps:
    # 0:1, 10:2, 20:1, 25:2, 30:1, 40:0.
    # bin [0,15):  1 for 10 min, 2 for 5 -> peak 2, mean 20/15; started A, B, C = 3
    # bin [15,30): 2 for 5, 1 for 5, 2 for 5 -> peak 2, mean 25/15; started D = 1
    # bin [30,45): 1 for 10, 0 for 5 -> peak 1, mean 10/15; started 0
    base = pd.Timestamp("2024-01-01 10:00", tz="UTC")
    calls = minutes_table([(0, 20), (10, 30), (10, 10), (25, 40)], base=base)
    out = concurrency(calls, freq="15min", window=(at(0, base), at(45, base)))
    assert out.index.name == "time" and str(out.index.dtype) == "datetime64[us, UTC]"
    assert out.index.tolist() == [at(m, base) for m in (0, 15, 30)]
    assert out["peak"].tolist() == [2, 2, 1] and out["peak"].dtype == np.float64
    assert np.allclose(out["mean"], [20 / 15, 25 / 15, 10 / 15])
    assert out["started"].tolist() == [3, 1, 0] and out["coverage"].tolist() == [1, 1, 1]
    # without a window: the archive rule's whole day, 96 bins; quiet ones are real zeros
    day = concurrency(calls, freq="15min")
    assert len(day) == 96 and day.index[0] == pd.Timestamp("2024-01-01", tz="UTC")
    pd.testing.assert_frame_equal(day.loc[out.index], out)
    assert (day.drop(out.index)[["peak", "mean", "started"]] == 0).all().all()


def test_binned_peak_is_not_calls_touching_and_carries_in():
    base = pd.Timestamp("2024-01-01 10:00", tz="UTC")

    def concurrency(calls, freq):  # the window of the old "first to last activity"
        return stats.concurrency(calls, freq=freq, window=(base, at(60, base)))

    # two calls in one bin, one after the other: 2 calls touch it, peak 1
    out = concurrency(minutes_table([(0, 5), (10, 15)], base=base), freq="15min").iloc[:1]
    assert out["peak"].tolist() == [1] and out["started"].tolist() == [2]
    assert out["mean"].tolist() == [10 / 15]
    # one call [5, 50): bins without any change still carry 1; mean 10/15, 1, 1, 5/15
    # (the 4th bin [45, 60) holds 5 minutes of it)
    out = concurrency(minutes_table([(5, 50)], base=base), freq="15min")
    assert out["peak"].tolist() == [1, 1, 1, 1]
    assert np.allclose(out["mean"], [10 / 15, 1, 1, 5 / 15])
    # empty bins between activity are present with zeros
    out = concurrency(minutes_table([(0, 5), (50, 55)], base=base), freq="15min")
    assert out.index.tolist() == [at(m, base) for m in (0, 15, 30, 45)]
    assert out["peak"].tolist() == [1, 0, 0, 1] and out["started"].tolist() == [1, 0, 0, 1]
    # a call ending exactly on a bin edge does not reach into the next bin
    out = concurrency(minutes_table([(0, 15)], base=base), freq="15min")
    assert out["mean"].tolist() == [1.0, 0, 0, 0] and out["peak"].tolist() == [1, 0, 0, 0]


def per_second_reference(calls, window, width_s):
    """Per-second sampling over the window: every change happens on a whole second, so
    the value on [s, s+1) is the count at s; bins (aligned to the epoch) cover the
    window, and only their seconds inside it count. Ongoing calls end at the window's
    end; calls without a start or ending before they start are left out."""
    ws, we = (int((w - T0).total_seconds()) for w in window)
    starts = ((calls["start_time"] - T0).dt.total_seconds()).to_numpy()
    ends = ((calls["end_time"].fillna(window[1]) - T0).dt.total_seconds()).to_numpy()
    ok = ~np.isnan(starts) & (ends >= starts)
    starts, ends = starts[ok].astype(int), ends[ok].astype(int)
    level = np.zeros(we - ws, dtype=int)  # level[i]: the count at second ws + i
    for s, e in zip(starts, ends):
        level[max(s, ws) - ws:max(min(e, we) - ws, 0)] += 1
    offset = (T0.value // 1000 // US) % width_s  # bins are aligned to the epoch
    rows = []
    for b in range((ws + offset) // width_s, (we - 1 + offset) // width_s + 1):
        lo, hi = b * width_s - offset, (b + 1) * width_s - offset
        a, z = max(lo, ws), min(hi, we)  # the observed seconds of the bin
        seconds = level[a - ws:z - ws]
        rows.append((T0 + pd.Timedelta(seconds=int(lo)), seconds.max(), seconds.mean(),
                     int(((starts >= a) & (starts < z)).sum()), (z - a) / width_s))
    return rows


def check_binned(out, expected):
    assert out.index.tolist() == [r[0] for r in expected]
    assert out["peak"].tolist() == [r[1] for r in expected]
    assert np.allclose(out["mean"].to_numpy(), [r[2] for r in expected])
    assert out["started"].tolist() == [r[3] for r in expected]
    assert np.allclose(out["coverage"].to_numpy(), [r[4] for r in expected])


@pytest.mark.parametrize("seed,freq,width", [(0, "1min", 60), (1, "15min", 900),
                                             (2, "7min", 420), (3, "1h", 3600)])
def test_binned_matches_fine_grained_integration(seed, freq, width):
    rng = np.random.default_rng(seed)
    calls = random_calls(rng, 80)
    # a window cutting bins at both ends: partly observed bins average their observed part
    window = (T0 + pd.Timedelta(minutes=3, seconds=17), T0 + pd.Timedelta(minutes=100))
    out = concurrency(calls, freq=freq, window=window)
    check_binned(out, per_second_reference(calls, window, width))


def test_binned_mean_integrates_to_total_call_time():
    rng = np.random.default_rng(7)
    calls = random_calls(rng, 200, ongoing=0)
    out = concurrency(calls, freq="1D")
    ok = calls["start_time"].notna()
    total = (calls["end_time"] - calls["start_time"])[ok].dt.total_seconds().sum()
    assert (out["coverage"] == 1).all()  # whole days: the archive rule
    assert out["mean"].sum() * 86400 == pytest.approx(total)


def test_non_fixed_frequency_is_refused():
    calls = minutes_table([(0, 5)])
    for freq in ("MS", "W", "1ME"):
        with pytest.raises(ValueError, match="fixed length"):
            concurrency(calls, freq=freq)


@pytest.mark.parametrize("freq", ["banana", "15 minutes", 3.5])
def test_unknown_frequency_is_one_clear_line(freq):
    with pytest.raises(ValueError, match=r"^freq .* is not a bin size; use one like '15min'"):
        concurrency(minutes_table([(0, 5)]), freq=freq)


# --------------------------------------------------------------------------- by


def test_by_site_matches_per_site_brute_force():
    rng = np.random.default_rng(11)
    calls = random_calls(rng, 90, sites=["NY", "LA", "SF"])
    calls["site"] = calls["site"].cat.set_categories(["LA", "NY", "SF", "unused"])
    window = (T0, T0 + pd.Timedelta(hours=2))
    out = concurrency(calls, by="site", window=window)
    assert list(out.columns) == ["site", "time", "concurrent"]
    assert isinstance(out["site"].dtype, pd.CategoricalDtype)
    assert list(out["site"].cat.categories) == ["LA", "NY", "SF"]  # unused dropped
    assert list(pd.unique(out["site"])) == ["LA", "NY", "SF"]      # sorted groups
    for site in ("LA", "NY", "SF"):
        mine = calls[calls["site"] == site]
        part = out[out["site"] == site]
        check_exact(mine, part, window, instants_of(mine, window, rng, extra=10))


def test_by_site_binned_shares_bins_and_matches_each_site():
    rng = np.random.default_rng(12)
    calls = random_calls(rng, 90, sites=["NY", "LA"])
    window = (T0 - pd.Timedelta(minutes=5), T0 + pd.Timedelta(minutes=100))
    out = concurrency(calls, freq="15min", by="site", window=window)
    assert out.index.names == ["site", "time"]
    whole = concurrency(calls, freq="15min", window=window)
    for site in ("LA", "NY"):
        part = out.xs(site, level="site")
        assert part.index.tolist() == whole.index.tolist()
        check_binned(part, per_second_reference(calls[calls["site"] == site], window, 900))
    # the sites' means add up to the whole; peaks do not have to
    total = out["mean"].groupby(level="time").sum()
    assert np.allclose(total.to_numpy(), whole["mean"].to_numpy())


def test_by_many_groups_with_missing_labels_equals_each_group_alone():
    # groups are cut from one sort by group (not a mask per group): check the slicing
    rng = np.random.default_rng(13)
    calls = random_calls(rng, 400)
    labels = rng.integers(0, 150, len(calls)).astype(str).astype(object)
    labels[rng.random(len(calls)) < 0.1] = None
    calls["line"] = labels
    window = (T0, T0 + pd.Timedelta(hours=3))
    exact = concurrency(calls, by="line", window=window)
    binned = concurrency(calls, freq="10min", by="line", window=window)
    started = calls["start_time"].notna().to_numpy()
    groups = sorted({x for x in labels[started] if x is not None})
    assert binned.index.get_level_values("line").unique().tolist() == groups
    assert set(exact["line"]) <= set(groups)
    for group in groups:
        mine = calls[calls["line"] == group]
        alone = concurrency(mine, window=window)
        part = exact[exact["line"] == group].drop(columns="line").reset_index(drop=True)
        pd.testing.assert_frame_equal(part, alone)
        got = binned.xs(group, level="line")
        pd.testing.assert_frame_equal(got, concurrency(mine, freq="10min", window=window))


def test_by_unknown_column():
    with pytest.raises(ValueError, match="no such column"):
        concurrency(minutes_table([(0, 5)]), by="nope")


def test_missing_columns_and_wrong_type():
    with pytest.raises(ValueError, match="end_time"):
        concurrency(pd.DataFrame({"start_time": [T0]}))
    with pytest.raises(TypeError, match="DataFrame"):
        concurrency([(T0, T0)])


# --------------------------------------------------------------------------- busy hour

JAN = pd.Timestamp("2024-01-01", tz="UTC")


def jan(day, hh, mm=0):
    return JAN + pd.Timedelta(days=day - 1, hours=hh, minutes=mm)


def three_days():
    # day 1: [09:00,10:00) -> h9 1.0 ; [14:00,14:30) -> h14 0.5
    # day 2: [09:00,09:30) -> h9 0.5 ; [14:00,16:00) -> h14 1.0, h15 1.0
    # day 3: two [09:00,10:00) -> h9 2.0
    return calls_table([(jan(1, 9), jan(1, 10)), (jan(1, 14), jan(1, 14, 30)),
                        (jan(2, 9), jan(2, 9, 30)), (jan(2, 14), jan(2, 16)),
                        (jan(3, 9), jan(3, 10)), (jan(3, 9), jan(3, 10))])


def test_busy_hour_time_consistent_by_hand():
    bh = busy_hour(three_days())
    assert isinstance(bh, BusyHour) and bh.method == "time-consistent"
    # profile h9 = (1 + 0.5 + 2)/3, h14 = (0.5 + 1 + 0)/3, h15 = 1/3, others 0
    assert bh.hour == 9 and bh.traffic == pytest.approx(3.5 / 3)
    expected = np.zeros(24)
    expected[9], expected[14], expected[15] = 3.5 / 3, 0.5, 1 / 3
    assert np.allclose(bh.profile.to_numpy(), expected)
    assert bh.profile.index.tolist() == list(range(24))
    # per day: d1 h9 1.0, d2 h14 1.0 (tie with h15: earliest), d3 h9 2.0
    assert bh.per_day["date"].astype(str).tolist() == ["2024-01-01", "2024-01-02",
                                                      "2024-01-03"]
    assert bh.per_day["hour"].tolist() == [9, 14, 9]
    assert np.allclose(bh.per_day["traffic"], [1.0, 1.0, 2.0])
    assert "09:00" in str(bh) and "09:00" in bh._repr_html_()
    assert "per_day" not in repr(bh) and "hour=9" in repr(bh)
    page = bh._repr_html_()
    assert "Mean traffic (erlangs) by clock hour (UTC)" in page
    assert "Busiest hour of each day" in page


def test_busy_hour_bouncing_by_hand():
    bh = busy_hour(three_days(), method="bouncing")
    assert bh.hour == 9  # most frequent daily busiest hour (days 1 and 3)
    assert bh.traffic == pytest.approx((1.0 + 1.0 + 2.0) / 3)


def test_busy_hour_days_and_timezone():
    bh = busy_hour(three_days(), days=["2024-01-02"])
    assert (bh.hour, bh.traffic) == (14, pytest.approx(1.0))
    bh = busy_hour(three_days(), days=[pd.Timestamp("2024-01-01").date(), "2024-01-03"],
                   method="bouncing")
    assert bh.traffic == pytest.approx(1.5) and len(bh.per_day) == 2
    with pytest.raises(ValueError, match="outside"):
        busy_hour(three_days(), days=["2024-02-01"])
    # one day on its own, as a string or a Timestamp, is that day
    for day in ("2024-01-02", pd.Timestamp("2024-01-02")):
        assert busy_hour(three_days(), days=day).per_day["date"].astype(str).tolist() == \
            ["2024-01-02"]
    with pytest.raises(ValueError, match="^days is empty"):
        busy_hour(three_days(), days=[])
    # New York is UTC-5 in January: 09:00 UTC is 04:00 local
    bh = busy_hour(three_days(), tz="America/New_York")
    assert (bh.hour, bh.tz) == (4, "America/New_York")
    assert bh.traffic == pytest.approx(3.5 / 3)


def test_busy_hour_splits_calls_across_hours():
    # [09:30, 10:30): 0.5 erlang in h9 and in h10, [10:00, 10:15) adds 0.25 to h10
    calls = calls_table([(jan(1, 9, 30), jan(1, 10, 30)), (jan(1, 10), jan(1, 10, 15))])
    bh = busy_hour(calls)
    assert bh.hour == 10 and bh.traffic == pytest.approx(0.75)
    assert bh.profile[9] == pytest.approx(0.5)


def test_busy_hour_dst_days():
    berlin = "Europe/Berlin"
    # 2024-10-27: 02:00-03:00 local happens twice (00:00-01:00 and 01:00-02:00 UTC).
    # One call over the first occurrence: clock hour 2 carries 1 h over 2 h = 0.5.
    oct27 = pd.Timestamp("2024-10-27", tz="UTC")
    calls = calls_table([(oct27, oct27 + pd.Timedelta(hours=1))])
    bh = busy_hour(calls, tz=berlin)
    assert (bh.hour, bh.traffic) == (2, pytest.approx(0.5))
    assert bh.per_day["date"].astype(str).tolist() == ["2024-10-27"]
    # 2024-03-31 has no 02:00: [00:30, 01:30) UTC = 01:30 CET to 03:30 CEST
    mar31 = pd.Timestamp("2024-03-31 00:30", tz="UTC")
    bh = busy_hour(calls_table([(mar31, mar31 + pd.Timedelta(hours=1))]), tz=berlin)
    assert np.isnan(bh.profile[2])
    assert bh.profile[1] == pytest.approx(0.5) and bh.profile[3] == pytest.approx(0.5)
    assert (bh.hour, bh.traffic) == (1, pytest.approx(0.5))


def test_busy_hour_validation():
    with pytest.raises(ValueError, match="time-consistent"):
        busy_hour(three_days(), method="average")
    with pytest.raises(ValueError, match="no call with a start time"):
        busy_hour(minutes_table([(None, 0)]))
    # a zero-length call: a whole observed day without traffic, 0 erlangs at 00:00
    quiet = busy_hour(minutes_table([(0, 0)]))
    assert (quiet.hour, quiet.traffic) == (0, 0.0) and quiet.per_day["hour"].isna().all()
    with pytest.raises(TypeError):
        busy_hour(three_days(), "bouncing")  # settings are keyword-only
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Base'"):
        busy_hour(three_days(), tz="Mars/Base")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="top_days"):
            busy_hour(three_days(), top_days=bad)
    with pytest.raises(ValueError, match="min_coverage"):
        busy_hour(three_days(), min_coverage=2)


def test_traffic_profile_by_hand():
    # Mon 1 Jan [09:00,10:00) -> 1.0 ; Mon 8 Jan [09:00,09:30) -> 0.5 ;
    # Tue 2 Jan [10:00,10:15) -> 0.25. Dates 1..8 Jan cover every weekday once
    # (Monday twice).
    calls = calls_table([(jan(1, 9), jan(1, 10)), (jan(8, 9), jan(8, 9, 30)),
                         (jan(2, 10), jan(2, 10, 15))])
    out = traffic_profile(calls)
    assert out.index.tolist() == ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday",
                                  "Saturday", "Sunday"]
    assert out.columns.tolist() == list(range(24))
    expected = np.zeros((7, 24))
    expected[0, 9], expected[1, 10] = 0.75, 0.25
    assert np.allclose(out.to_numpy(), expected)
    # two dates only: the other weekdays have no data at all
    out = traffic_profile(calls_table([(jan(1, 9), jan(1, 10)), (jan(2, 10), jan(2, 11))]))
    assert out.loc["Monday", 9] == 1.0 and out.loc["Tuesday", 10] == 1.0
    assert out.loc["Wednesday":].isna().all().all()


# --------------------------------------------------------------------------- extensions


NINE_TO_NOON = (jan(1, 9), jan(1, 12))


def extension_calls():
    return calls_table(
        [(jan(1, 9), jan(1, 9, 10)), (jan(1, 9, 5), jan(1, 9, 35)),
         (jan(1, 10), jan(1, 10, 20)), (jan(1, 11), jan(1, 11, 1)), (jan(1, 11, 30), None)],
        caller=["101", "+442071234567", "101", "102", "103"],
        callee=["102", "101", "00442071234", "102", "5551234"],
        direction=["Internal", "Inbound", "Outbound", "Internal", "Outbound"])


def test_extension_stats_by_hand():
    out = extension_stats(extension_calls(), window=NINE_TO_NOON)
    assert out.index.name == "extension" and out.index.tolist() == ["101", "102", "103"]
    # 101: calls 1, 2, 3 (600, 1800, 1200 s); 102: calls 1 and 4 (self call once: 600, 60)
    # 103: the ongoing call 5 (no duration)
    assert out["calls"].tolist() == [3, 2, 1]
    assert out["inbound"].tolist() == [1, 0, 0]
    assert out["outbound"].tolist() == [1, 0, 1]
    assert out["internal"].tolist() == [1, 2, 0]
    assert out["total_duration"].tolist() == [3600.0, 660.0, 0.0]
    assert out["mean_duration"].tolist()[:2] == [1200.0, 330.0]
    assert out["median_duration"].tolist()[:2] == [1200.0, 330.0]
    # linear interpolation: 1200 + 0.8 * 600 and 60 + 0.9 * 540
    assert out["p90_duration"].tolist()[:2] == pytest.approx([1680.0, 546.0])
    assert np.isnan(out.loc["103", "mean_duration"])
    # window 09:00 to 12:00 = 10800 s; the ongoing call carries traffic from 11:30 to
    # the window's end, 12:00, as it does in concurrency
    assert out["traffic"].tolist() == pytest.approx([3600 / 10800, 660 / 10800, 1800 / 10800])
    assert out["peak_concurrent"].tolist() == [2, 1, 1]
    assert out["busiest_hour"].tolist() == [9, 9, 11]  # 102: 9 and 11 tie -> earliest
    assert out["first_call"].tolist() == [jan(1, 9), jan(1, 9), jan(1, 11, 30)]
    assert out["last_call"].tolist() == [jan(1, 10), jan(1, 11), jan(1, 11, 30)]
    assert str(out["first_call"].dtype) == "datetime64[us, UTC]"
    for column in ("calls", "inbound", "outbound", "internal", "peak_concurrent"):
        assert out[column].dtype == np.int64


def test_extension_selection():
    calls = extension_calls()
    assert extension_stats(calls, extensions=["101"], window=NINE_TO_NOON).index.tolist() == ["101"]
    assert extension_stats(calls, extensions=[101, 103], window=NINE_TO_NOON).index.tolist() == \
        ["101", "103"]
    assert extension_stats(calls, extensions=r"10[23]", window=NINE_TO_NOON).index.tolist() == \
        ["102", "103"]
    assert extension_stats(calls, extensions=re.compile(r"\d{7}"),
                           window=NINE_TO_NOON).index.tolist() == ["5551234"]
    # full match: "10" does not select "101"
    assert extension_stats(calls, extensions="10", window=NINE_TO_NOON).empty
    assert extension_stats(calls, extensions=7, window=NINE_TO_NOON).index.tolist() == \
        ["101", "102", "103", "5551234"]
    assert "+442071234567" in extension_stats(calls, extensions=r"\+?\d+", window=NINE_TO_NOON).index
    assert "+442071234567" not in extension_stats(calls, window=NINE_TO_NOON).index
    with pytest.raises(ValueError, match="digit count"):
        extension_stats(calls, extensions=0)
    with pytest.raises(ValueError, match=r"^extensions regex '10\(' is invalid"):
        extension_stats(calls, extensions="10(")


def test_extension_stats_busiest_hour_in_timezone_and_empty():
    calls = extension_calls()
    out = extension_stats(calls, tz="Asia/Tokyo", window=NINE_TO_NOON)  # UTC+9
    assert out["busiest_hour"].tolist() == [18, 18, 20]
    empty = extension_stats(calls, extensions=["999"])
    assert empty.empty and "peak_concurrent" in empty.columns


# --------------------------------------------------------------------------- capacity


def exact_channels(traffic: float, blocking: float) -> int:
    if traffic == 0:
        return 0
    a, n = Fraction(traffic), 0
    while True:
        terms = [a ** k / math.factorial(k) for k in range(n + 1)]
        if terms[-1] / sum(terms) <= Fraction(blocking):
            return n
        n += 1


def test_capacity_table_by_hand():
    # NY: two [09:00,10:00) -> busy hour 9, 2.0 erl, peak 2
    # LA: [09:00,10:00) and [13:00,13:30) -> hour 9, 1.0 erl, peak 1
    # all: hour 9, 3.0 erl, peak 3
    calls = calls_table([(jan(1, 9), jan(1, 10)), (jan(1, 9), jan(1, 10)),
                         (jan(1, 9), jan(1, 10)), (jan(1, 13), jan(1, 13, 30))],
                        site=["NY", "NY", "LA", "LA"])
    out = capacity_table(calls)
    assert out.index.tolist() == ["LA", "NY", "all"]
    assert out.columns.tolist() == ["traffic", "busy_hour", "channels@0.1%", "channels@1%",
                                    "channels@5%", "observed_peak", "busiest_day_traffic",
                                    "coverage"]
    assert out["traffic"].tolist() == pytest.approx([1.0, 2.0, 3.0])
    assert out["busy_hour"].tolist() == [9, 9, 9]
    assert out["observed_peak"].tolist() == [1, 2, 3]
    assert out["busiest_day_traffic"].tolist() == [1.0, 2.0, 3.0]  # one day only
    assert out["coverage"].tolist() == [1.0, 1.0, 1.0]
    for b, column in ((0.001, "channels@0.1%"), (0.01, "channels@1%"),
                      (0.05, "channels@5%")):
        assert out[column].tolist() == [exact_channels(t, b) for t in (1.0, 2.0, 3.0)]
    with pytest.raises(ValueError, match="strictly between"):
        capacity_table(calls, blocking=[0.01, 2])


def test_nothing_mutates_the_callers_table():
    calls = extension_calls()
    calls["site"] = pd.Series(["A", "B", "A", "B", "A"], dtype="category")
    calls.attrs["window"] = ["2024-01-01T09:00:00Z", "2024-01-01T12:00:00Z"]
    calls.attrs["gaps"] = [{"server": "x", "site": "A", "start": "2024-01-01T10:00:00Z",
                            "end": "2024-01-01T10:30:00Z"}]
    copy = calls.copy()
    concurrency(calls, window=NINE_TO_NOON)
    concurrency(calls, freq="1h", by="site")
    busy_hour(calls, days="weekdays", top_days=1)
    traffic_profile(calls)
    extension_stats(calls, by="site")
    capacity_table(calls)
    check_calls(calls)
    assert calls.attrs == copy.attrs
    pd.testing.assert_frame_equal(calls, copy)


def brute_extension_stats(calls, until, is_extension):
    """Per extension, call by call, with plain Python (ongoing calls end at ``until``)."""
    out = {}
    for _, call in calls.iterrows():
        mine = {n for n in (call["caller"], call["callee"])
                if isinstance(n, str) and is_extension(n)}
        for ext in mine:
            out.setdefault(ext, []).append(call)
    rows = {}
    for ext, mine in out.items():
        durations = [(c["end_time"] - c["start_time"]).total_seconds() for c in mine
                     if not pd.isna(c["end_time"]) and not pd.isna(c["start_time"])]
        spans = [(c["start_time"], until if pd.isna(c["end_time"]) else c["end_time"])
                 for c in mine if not pd.isna(c["start_time"])]
        instants = [s for s, _ in spans]
        peak = max([sum(1 for s, e in spans if s <= t < e) for t in instants] or [0])
        hours = [s.hour for s, _ in spans]
        counts = [hours.count(h) for h in range(24)]
        rows[ext] = {
            "calls": len(mine),
            "inbound": sum(c["direction"] == "Inbound" for c in mine),
            "outbound": sum(c["direction"] == "Outbound" for c in mine),
            "internal": sum(c["direction"] == "Internal" for c in mine),
            "total_duration": sum(durations),
            "median_duration": float(np.median(durations)) if durations else np.nan,
            "peak_concurrent": peak,
            "busiest_hour": counts.index(max(counts)) if hours else None,
            "first_call": min(instants) if instants else pd.NaT,
            "last_call": max(instants) if instants else pd.NaT}
    return rows


def test_extension_stats_matches_brute_force():
    rng = np.random.default_rng(5)
    calls = random_calls(rng, 150, spread_s=3 * 86400, no_start=0.03)
    numbers = ["100", "101", "102", "2000", "+15550001", "5551234567", " 103 "]
    calls["caller"] = pd.Series(rng.choice(numbers, len(calls)), dtype="str")
    calls["callee"] = pd.Series(rng.choice(numbers, len(calls)), dtype="str")
    calls["direction"] = pd.Categorical(rng.choice(["Inbound", "Outbound", "Internal"],
                                                   len(calls)))
    until = T0 + pd.Timedelta(days=4)
    out = extension_stats(calls, window=(T0 - pd.Timedelta(hours=1), until))
    # calls without a start time are left out of every analysis
    expected = brute_extension_stats(calls[calls["start_time"].notna()], until,
                                     lambda n: re.fullmatch(r"\d{1,6}", n.strip()) is not None)
    # " 103 " is stripped to "103"; the brute force keeps the raw text
    expected = {k.strip(): v for k, v in expected.items()}
    assert sorted(out.index) == sorted(expected)
    order = sorted(expected, key=lambda e: (-expected[e]["calls"], e))
    assert out.index.tolist() == order
    for ext, row in expected.items():
        got = out.loc[ext]
        for column in ("calls", "inbound", "outbound", "internal", "peak_concurrent"):
            assert got[column] == row[column], (ext, column)
        assert got["total_duration"] == pytest.approx(row["total_duration"])
        assert got["median_duration"] == pytest.approx(row["median_duration"], nan_ok=True)
        assert got["busiest_hour"] == row["busiest_hour"]
        assert got["first_call"] == row["first_call"] and got["last_call"] == row["last_call"]


def test_calls_ending_before_they_start_are_left_out():
    calls = minutes_table([(10, 5), (0, 20)])
    with pytest.warns(DataQualityWarning, match="1 call left out: 1 end before start"):
        assert concurrency(calls)["concurrent"].tolist() == [1, 0]
    out = concurrency(calls, freq="15min", window=(at(0), at(30)))
    assert out["peak"].tolist() == [1, 1] and out["started"].tolist() == [1, 0]


def test_absurd_bin_counts_are_refused():
    # a 230-year call is "duration over 24 h": left out; a window that long is refused
    # at a fine freq and still works at a coarse one
    window = (pd.Timestamp("1970-01-01", tz="UTC"), pd.Timestamp("2200-01-01", tz="UTC"))
    calls = calls_table([window])
    with pytest.raises(ValueError, match="coarser"):
        concurrency(calls, freq="1min", window=window)
    assert len(concurrency(calls, freq="1D", window=window)) > 80_000


def test_calls_without_a_group_label_are_left_out():
    calls = minutes_table([(0, 10), (5, 15)])
    calls["site"] = pd.Series(["A", None], dtype="str")
    out = concurrency(calls, by="site")
    assert out["site"].tolist() == ["A", "A"] and out["concurrent"].tolist() == [1, 0]
    binned = concurrency(calls, freq="5min", by="site")
    assert binned.index.get_level_values("site").unique().tolist() == ["A"]


def test_absurd_day_spans_are_refused_for_hourly_traffic():
    window = (pd.Timestamp("1700-01-01", tz="UTC"), pd.Timestamp("2100-01-01", tz="UTC"))
    with pytest.raises(ValueError, match="too long for hourly traffic"):
        busy_hour(calls_table([window]), window=window)
    with pytest.raises(ValueError, match="implausible"):
        busy_hour(calls_table([(window[0], window[0] + pd.Timedelta(hours=1)),
                               (window[1], window[1] + pd.Timedelta(hours=1))]))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 20)), min_size=1, max_size=20),
       st.sampled_from([("1min", 60), ("5min", 300), ("7min", 420)]))
def test_binned_property(spans, freq):
    calls = minutes_table([(s, s + n) for s, n in spans])
    window = (at(-3), at(71))
    check_binned(concurrency(calls, freq=freq[0], window=window),
                 per_second_reference(calls, window, freq[1]))
