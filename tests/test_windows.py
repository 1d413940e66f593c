"""Observation windows, gaps, unknown ends, check_calls, days and sites -- by hand."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import recstats as rs
from recstats import DataQualityWarning
from recstats._table import coerce_calls
from recstats.stats import (
    busy_hour,
    capacity_table,
    check_calls,
    concurrency,
    extension_stats,
    observation_window,
    ongoing_mask,
    traffic_profile,
)


def t(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def table(rows, window=None, gaps=None, **columns) -> pd.DataFrame:
    """A calls table from (start, end) texts (None for NaT); optional attrs."""
    frame = coerce_calls(pd.DataFrame({
        "call_id": [str(i) for i in range(len(rows))],
        "start_time": [None if s is None else t(s) for s, _ in rows],
        "end_time": [None if e is None else t(e) for _, e in rows], **columns}))
    if window is not None:
        frame.attrs["window"] = [t(w).isoformat() for w in window]
    if gaps is not None:
        frame.attrs["gaps"] = gaps
    return frame


# --------------------------------------------------------------------------- windows


def ten_calls_in_half_an_hour():
    # a 30-minute capture in which 10 calls run the whole time (2024-01-01 is a Monday)
    return table([("2024-01-01 10:00", "2024-01-01 10:30")] * 10,
                 window=("2024-01-01 10:00", "2024-01-01 10:30"))


def test_a_30_minute_window_of_10_calls_is_10_erlangs_with_coverage_one_half():
    calls = ten_calls_in_half_an_hour()
    bh = busy_hour(calls)
    # 10 calls x 30 min over the 30 observed minutes of clock hour 10 = 10 erlangs;
    # observed 30 of its 60 minutes = 0.5 (eligible: min_coverage 0.5)
    assert (bh.hour, bh.traffic, bh.coverage) == (10, 10.0, 0.5)
    assert "10.000 erlangs" in str(bh) and "50% observed" in str(bh)
    assert "2024-01-01 10:00 to 10:30 UTC (30 min)" in str(bh)
    assert "50% observed" in bh._repr_html_()
    assert bh.window == (t("2024-01-01 10:00"), t("2024-01-01 10:30"))
    with pytest.raises(ValueError, match=r"at least 60% .* the window was 2024-01-01 10:00 "
                                         r"to 10:30 UTC \(30 min\)"):
        busy_hour(calls, min_coverage=0.6)
    binned = concurrency(calls, freq="1h")
    assert binned.index.tolist() == [t("2024-01-01 10:00")]
    assert binned.iloc[0].tolist() == [10.0, 10.0, 10.0, 0.5]  # peak mean started coverage
    profile = traffic_profile(calls)
    assert profile.loc["Monday", 10] == 10.0
    assert profile.notna().sum().sum() == 1  # every other cell was never observed: NaN
    cap = capacity_table(calls, blocking=[0.01])
    assert cap.loc["all", ["traffic", "coverage", "observed_peak"]].tolist() == [10, 0.5, 10]


def test_the_mean_of_a_partly_observed_bin_is_over_its_observed_part():
    # window 10:15-11:45; call A 10:00-11:00 (started before the window), B 11:30-12:00
    calls = table([("2024-01-01 10:00", "2024-01-01 11:00"),
                   ("2024-01-01 11:30", "2024-01-01 12:00")])
    out = concurrency(calls, freq="1h", window=(t("2024-01-01 10:15"), t("2024-01-01 11:45")))
    # bin 10: observed 10:15-11:00 (45 min), A all of it -> mean 1, coverage 0.75,
    #   started 0 (A started before the window)
    # bin 11: observed 11:00-11:45 (45 min), B 11:30-11:45 -> mean 15/45, started 1
    assert out.index.tolist() == [t("2024-01-01 10:00"), t("2024-01-01 11:00")]
    assert out["mean"].tolist() == pytest.approx([1.0, 15 / 45])
    assert out["coverage"].tolist() == [0.75, 0.75]
    assert out["peak"].tolist() == [1, 1] and out["started"].tolist() == [0, 1]
    # the exact curve is clipped to the window: from 10:15, back to 0 at 11:45
    exact = concurrency(calls, window=(t("2024-01-01 10:15"), t("2024-01-01 11:45")))
    assert exact["time"].tolist() == [t("2024-01-01 10:15"), t("2024-01-01 11:00"),
                                      t("2024-01-01 11:30"), t("2024-01-01 11:45")]
    assert exact["concurrent"].tolist() == [1, 0, 1, 0]


def test_window_attrs_survive_parquet_and_are_used(tmp_path):
    calls = ten_calls_in_half_an_hour()
    calls.attrs["gaps"] = [{"server": "10.0.0.1:7000", "site": "NY",
                            "start": "2024-01-01T10:10:00+00:00",
                            "end": "2024-01-01T10:20:00+00:00"}]
    path = tmp_path / "calls.parquet"
    calls.to_parquet(path)
    back = pd.read_parquet(path)
    rs.write_parquet(calls, tmp_path / "written.parquet")  # recstats' own writer too
    assert pd.read_parquet(tmp_path / "written.parquet").attrs["window"] == \
        calls.attrs["window"]
    assert back.attrs["window"] == calls.attrs["window"] == [
        "2024-01-01T10:00:00+00:00", "2024-01-01T10:30:00+00:00"]
    assert back.attrs["gaps"] == calls.attrs["gaps"]
    assert observation_window(back) == (t("2024-01-01 10:00"), t("2024-01-01 10:30"))
    assert busy_hour(back).traffic == busy_hour(calls).traffic == 10.0
    # window= wins over the attrs
    assert observation_window(back, window=("2024-01-01 09:00", "2024-01-01 12:00")) == \
        (t("2024-01-01 09:00"), t("2024-01-01 12:00"))


def test_observation_window_archive_rule_and_errors():
    calls = table([("2024-01-01 23:30", "2024-01-02 00:00"),
                   ("2024-01-03 12:00", "2024-01-03 12:05")])
    # whole UTC days 1 to 3 (an end at midnight is activity of the day before)
    assert observation_window(calls) == (t("2024-01-01"), t("2024-01-04"))
    # in New York (UTC-5) the calls fall on 1 and 3 January local: 05:00 UTC days
    assert observation_window(calls, tz="America/New_York") == (
        t("2024-01-01 05:00"), t("2024-01-04 05:00"))
    with pytest.raises(ValueError, match="ends before it starts"):
        observation_window(calls, window=("2024-01-02", "2024-01-01"))
    with pytest.raises(ValueError, match="two moments"):
        observation_window(calls, window="2024-01-01")
    with pytest.raises(ValueError, match="unknown time zone"):
        observation_window(calls, tz="Europe/Nowhere")
    with pytest.raises(ValueError, match="pass window="):
        observation_window(table([]))
    bad = calls.copy()
    bad.attrs["window"] = ["yesterday"]
    with pytest.raises(ValueError, match=r'calls.attrs\["window"\] must be two moments'):
        concurrency(bad)


def test_a_sites_gaps_are_unobserved_time_for_that_site():
    # window 09:00-12:00; site A was not observed 10:00-11:00
    # A: 09:30-11:30 ; B: 09:00-12:00
    calls = table([("2024-01-01 09:30", "2024-01-01 11:30"),
                   ("2024-01-01 09:00", "2024-01-01 12:00")],
                  window=("2024-01-01 09:00", "2024-01-01 12:00"),
                  gaps=[{"server": "a:1", "site": "A", "start": "2024-01-01T10:00:00Z",
                         "end": "2024-01-01T11:00:00Z"}],
                  site=["A", "B"])
    out = concurrency(calls, freq="1h", by="site")
    a, b = out.xs("A", level="site"), out.xs("B", level="site")
    # A: h9 30 of 60 min -> 0.5; h10 unobserved -> NaN; h11 11:00-11:30 -> 0.5
    assert a["coverage"].tolist() == [1.0, 0.0, 1.0]
    assert a["mean"].tolist()[::2] == [0.5, 0.5] and np.isnan(a["mean"].iloc[1])
    assert np.isnan(a["peak"].iloc[1]) and np.isnan(a["started"].iloc[1])
    assert a["started"].tolist()[::2] == [1, 0]
    assert b["mean"].tolist() == [1.0, 1.0, 1.0] and b["coverage"].tolist() == [1, 1, 1]
    # the total is unknown while any of its sites was not observed
    whole = concurrency(calls, freq="1h")
    assert whole["coverage"].tolist() == [1.0, 0.0, 1.0]
    assert whole["mean"].iloc[[0, 2]].tolist() == [1.5, 1.5] and np.isnan(whole["mean"].iloc[1])
    profile = traffic_profile(calls)
    assert profile.loc["Monday", [9, 11]].tolist() == [1.5, 1.5]
    assert profile.loc["Monday"].drop([9, 11]).isna().all()
    bh = busy_hour(calls)
    assert (bh.hour, bh.traffic, bh.coverage) == (9, 1.5, 1.0)  # 9 and 11 tie: earliest
    cap = capacity_table(calls, blocking=[0.01])
    assert cap["traffic"].tolist() == [0.5, 1.0, 1.5]  # A, B, all
    # A's observed peak leaves out its gap; all: A and B at once
    assert cap["observed_peak"].tolist() == [1, 1, 2]
    # a table of B's calls alone is not affected by A's gap
    only_b = calls[calls["site"] == "B"]
    assert concurrency(only_b, freq="1h")["coverage"].tolist() == [1.0, 1.0, 1.0]


# --------------------------------------------------------------------------- data quality


def quality_table():
    rows = [
        ("a", "NY", "2024-01-01 09:00", "2024-01-01 09:10", 600.0, False),  # fine
        ("b", "NY", "2024-01-01 09:00", "2024-01-01 08:00", None, False),   # end < start
        ("c", "NY", "2024-01-01 09:00", None, None, True),                  # unknown end
        ("a", "NY", "2024-01-01 09:00", "2024-01-01 09:10", 600.0, False),  # the same again
        ("a", "LA", "2024-01-01 09:05", "2024-01-01 09:06", 60.0, False),   # other site
        ("f", "LA", "2024-01-01 09:00", "2024-01-02 10:00", None, False),   # 25 h
        ("g", "LA", "2024-01-01 09:00", "2024-01-01 09:10", 300.0, False),  # 600 s != 300
        ("h", "LA", "2024-01-01 13:00", "2024-01-01 13:30", 1800.0, False),  # outside
        ("i", "LA", None, "2024-01-01 09:30", None, False),                  # no start
        ("a", "NY", "2024-01-01 10:00", "2024-01-01 10:01", 60.0, False),   # id reused
    ]
    frame = coerce_calls(pd.DataFrame(rows, columns=["call_id", "site", "start_time",
                                                     "end_time", "duration", "end_unknown"]))
    frame.index = [f"r{k}" for k in range(len(rows))]
    frame.attrs["window"] = ["2024-01-01T08:00:00Z", "2024-01-01T12:00:00Z"]
    return frame


def test_check_calls_lists_each_problem_by_hand():
    out = check_calls(quality_table())
    assert out.columns.tolist() == ["call_id", "problem"]
    assert out.index.tolist() == ["r1", "r2", "r3", "r5", "r6", "r7", "r8"]
    assert out["call_id"].tolist() == ["b", "c", "a", "f", "g", "h", "i"]
    assert out["problem"].tolist() == [
        "end before start", "unknown end", "duplicate call id", "duration over 24 h",
        "duration disagrees with end - start", "outside the window", "no start time"]
    # a stricter limit: 10 min calls are not over it, the 30-minute one (outside) is
    # outside already; the 25 h one is over 15 min; limits read in their unit
    strict = check_calls(quality_table(), max_duration=900)
    assert strict.loc["r5", "problem"] == "duration over 15 min"
    # a wider window keeps h
    wide = check_calls(quality_table(), window=("2024-01-01", "2024-01-02"))
    assert "r7" not in wide.index
    with pytest.raises(ValueError, match="max_duration"):
        check_calls(quality_table(), max_duration=0)
    clean = quality_table().drop(out.index)
    assert check_calls(clean).empty


def test_analyses_leave_problem_rows_out_and_warn_once():
    calls = quality_table()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cap = capacity_table(calls, blocking=[0.01])
    assert len(caught) == 1 and caught[0].category is DataQualityWarning
    assert caught[0].filename == __file__  # points at the analyst's line
    message = str(caught[0].message)
    assert message.startswith("7 calls left out: 1 no start time, 1 end before start, "
                              "1 unknown end, 1 duplicate call id, 1 duration over 24 h, "
                              "1 duration disagrees with end - start, "
                              "1 outside the window (ids: b, c, a, f, g and 2 more)")
    # kept: a NY 09:00-09:10, a LA 09:05-09:06 -> hour 9: 10 + 1 call-minutes; a NY
    # 10:00-10:01 (a reused id, not the same call) -> hour 10: 1 call-minute
    assert cap.loc["all", "traffic"] == pytest.approx(11 / 60)
    assert cap.loc["NY", "traffic"] == pytest.approx(10 / 60)
    with pytest.warns(DataQualityWarning, match="7 calls left out"):
        assert concurrency(calls)["concurrent"].tolist() == [1, 2, 1, 0, 1, 0]
    # calls outside a window the analyst passes are simply not in it: no warning for them
    explicit = calls.drop(index=["r1", "r2", "r3", "r5", "r6", "r8"])
    assert check_calls(explicit)["problem"].tolist() == ["outside the window"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        concurrency(explicit, window=("2024-01-01 08:00", "2024-01-01 12:00"))


def test_an_unknown_end_is_left_out_and_named_not_counted_for_ever():
    # three archived CDRs of 2 minutes, and one without an end (end_unknown)
    calls = table([("2024-01-01 09:00", "2024-01-01 09:02")] * 3 + [("2024-01-01 09:30", None)],
                  end_unknown=[False, False, False, True])
    with pytest.warns(DataQualityWarning, match=r"1 call left out: 1 unknown end \(ids: 3\)"):
        bh = busy_hour(calls)
    assert (bh.hour, bh.traffic) == (9, pytest.approx(6 / 60))  # 3 x 2 min in one day
    assert len(bh.per_day) == 1
    with pytest.warns(DataQualityWarning):
        assert concurrency(calls)["concurrent"].tolist() == [3, 0]


def test_an_ongoing_call_counts_until_the_windows_end():
    calls = table([("2024-01-01 09:30", None)], window=("2024-01-01 09:00", "2024-01-01 10:00"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ongoing is not a problem
        bh = busy_hour(calls)
    assert (bh.hour, bh.traffic) == (9, 0.5)
    assert concurrency(calls)["time"].tolist() == [t("2024-01-01 09:30"), t("2024-01-01 10:00")]


def test_ongoing_mask_is_the_one_definition():
    calls = pd.DataFrame({"end_time": [pd.NaT, pd.NaT, t("2024-01-01")]})
    assert ongoing_mask(calls).tolist() == [True, True, False]
    calls["end_unknown"] = ["False", "True", None]  # text flags, as after coerce_calls
    assert ongoing_mask(calls).tolist() == [True, False, False]
    assert rs.ongoing_mask is ongoing_mask and rs.check_calls is check_calls
    assert rs.observation_window is observation_window


# --------------------------------------------------------------------------- days


def week():
    # Mon 1 .. Sun 7 January 2024: day d has one call 09:00 for 6 d minutes, so hour 9
    # carries d / 10 erlangs; Sunday also 15:00-16:00 (1 erlang in hour 15)
    rows = [(f"2024-01-0{d} 09:00", f"2024-01-0{d} 09:{6 * d:02d}") for d in range(1, 8)]
    rows.append(("2024-01-07 15:00", "2024-01-07 16:00"))
    return table(rows, site=["LON"] * 8)


@pytest.mark.parametrize("days,rule,traffic", [
    (None, "all days", 2.8 / 7),                         # (0.1 + ... + 0.7) / 7
    ("weekdays", "weekdays", 0.3),                      # (0.1 + ... + 0.5) / 5
    ("weekends", "weekends", 0.65),                     # (0.6 + 0.7) / 2
    (["2024-01-02", "2024-01-04"], "2 listed days", 0.3),  # (0.2 + 0.4) / 2
    (lambda d: d.day % 2 == 1, "days chosen by <lambda>", 0.4),  # (.1 + .3 + .5 + .7) / 4
])
def test_days_choose_which_days_are_averaged(days, rule, traffic):
    bh = busy_hour(week(), days=days)
    assert (bh.hour, bh.days_rule) == (9, rule)
    assert bh.traffic == pytest.approx(traffic)
    assert rule in str(bh)
    cap = capacity_table(week(), days=days)
    assert cap.loc["all", "traffic"] == pytest.approx(traffic)


def test_top_days_average_the_busiest_days_of_the_hour():
    # top 2 at hour 9: 0.7 and 0.6; at hour 15: 1.0 (one day) -> hour 9 wins, 0.65
    bh = busy_hour(week(), top_days=2)
    assert (bh.hour, bh.traffic, bh.days_rule) == (9, pytest.approx(0.65),
                                                   "the 2 busiest days")
    assert bh.per_day.loc[bh.per_day["used"], "date"].astype(str).tolist() == [
        "2024-01-06", "2024-01-07"]
    # top 1: hour 9 0.7, hour 15 1.0 -> the busy hour moves to 15
    bh = busy_hour(week(), top_days=1)
    assert (bh.hour, bh.traffic) == (15, 1.0)
    # weekdays and top 2: 0.5 and 0.4
    bh = busy_hour(week(), days="weekdays", top_days=2)
    assert (bh.traffic, bh.days_rule) == (pytest.approx(0.45), "the 2 busiest weekdays")
    # bouncing: daily maxima 0.1 .. 0.6 and Sunday's 1.0 (hour 15); top 2: 1.0 and 0.6
    bh = busy_hour(week(), method="bouncing")
    assert (bh.hour, bh.traffic) == (9, pytest.approx(3.1 / 7))
    bh = busy_hour(week(), method="bouncing", top_days=2)
    assert bh.traffic == pytest.approx(0.8)
    # capacity_table gives busy_hour's traffic, and the spread
    cap = capacity_table(week(), top_days=2, blocking=[0.01])
    assert cap.loc["all", "traffic"] == pytest.approx(0.65)
    assert cap.loc["all", "busiest_day_traffic"] == 1.0  # Sunday's hour 15
    assert cap.loc["LON", "traffic"] == cap.loc["all", "traffic"]
    with pytest.raises(ValueError, match="no day of the observation window"):
        busy_hour(week(), days=lambda d: False)


def test_traffic_profile_days():
    out = traffic_profile(week(), days="weekends")
    assert out.loc["Monday":"Friday"].isna().all().all()
    assert out.loc["Saturday", 9] == pytest.approx(0.6)
    assert out.loc["Sunday", [9, 15]].tolist() == pytest.approx([0.7, 1.0])
    assert out.loc["Sunday", 0] == 0  # observed, quiet: a real zero


def test_capacity_table_traffic_is_busy_hour_traffic_for_each_site():
    rng = np.random.default_rng(3)
    starts = t("2024-01-01") + pd.to_timedelta(rng.integers(0, 5 * 86400, 300), unit="s")
    lengths = pd.to_timedelta(rng.integers(30, 3600, 300), unit="s")
    calls = coerce_calls(pd.DataFrame({"call_id": [str(i) for i in range(300)],
                                       "start_time": starts, "end_time": starts + lengths,
                                       "site": rng.choice(["LA", "NY"], 300)}))
    settings = {"method": "bouncing", "tz": "America/New_York", "days": "weekdays",
                "top_days": 2, "min_coverage": 0.5}
    cap = capacity_table(calls, **settings)
    window = observation_window(calls, tz="America/New_York")
    for site in ("LA", "NY"):
        alone = busy_hour(calls[calls["site"] == site], window=window, **settings)
        assert cap.loc[site, "traffic"] == alone.traffic
        assert cap.loc[site, "busy_hour"] == alone.hour
        assert cap.loc[site, "coverage"] == alone.coverage
    assert cap.loc["all", "traffic"] == busy_hour(calls, **settings).traffic
    # observed_peak: the largest number at once on a chosen (week)day, by brute force
    # the step function peaks at a call's start or where a chosen day begins
    local = calls["start_time"].dt.tz_convert("America/New_York")
    midnights = pd.date_range("2024-01-01", "2024-01-06", freq="D", tz="America/New_York")
    probe = [s for s, d in zip(calls["start_time"], local) if d.weekday() < 5] + \
        [m.tz_convert("UTC") for m in midnights if m.weekday() < 5]
    peak = max(int(((calls["start_time"] <= s) & (calls["end_time"] > s)).sum())
               for s in probe)
    assert cap.loc["all", "observed_peak"] == peak


# --------------------------------------------------------------------------- sites and tz


def test_extension_stats_keeps_sites_apart():
    calls = table([("2024-01-01 09:00", "2024-01-01 09:30"),
                   ("2024-01-01 09:10", "2024-01-01 09:20"),
                   ("2024-01-01 10:00", "2024-01-01 10:06")],
                  caller=["1073", "1073", "1073"], callee=["+44201", "+12125", "+12126"],
                  site=["LONDON", "NEW-YORK", "NEW-YORK"])
    out = extension_stats(calls, by="site", window=("2024-01-01 09:00", "2024-01-01 11:00"))
    assert out.index.names == ["site", "extension"]
    assert out.index.tolist() == [("NEW-YORK", "1073"), ("LONDON", "1073")]  # by calls
    assert out["calls"].tolist() == [2, 1]
    # NEW-YORK: 10 + 6 min over 120; LONDON: 30 over 120
    assert out["traffic"].tolist() == pytest.approx([16 / 120, 30 / 120])
    assert out["peak_concurrent"].tolist() == [1, 1]
    merged = extension_stats(calls, window=("2024-01-01 09:00", "2024-01-01 11:00"))
    assert merged.loc["1073", "calls"] == 3 and merged.loc["1073", "peak_concurrent"] == 2


def test_concurrency_bins_local_days_and_hours():
    # New York springs forward on 2024-03-10: that local day has 23 hours
    calls = table([("2024-03-10 04:00", "2024-03-10 06:00")])  # 23:00-01:00 EST
    days = concurrency(calls, freq="1D", tz="America/New_York")
    assert days.index.tolist() == [t("2024-03-09 05:00"), t("2024-03-10 05:00")]
    assert days["mean"].tolist() == pytest.approx([1 / 24, 1 / 23])
    assert days["coverage"].tolist() == [1.0, 1.0]
    # India is UTC+5:30: hour bins start at half past the UTC hour
    calls = table([("2024-01-01 04:30", "2024-01-01 05:30")])  # 10:00-11:00 IST
    hours = concurrency(calls, freq="1h", tz="Asia/Kolkata")
    assert len(hours) == 24 and hours.index[0] == t("2023-12-31 18:30")
    assert hours.loc[t("2024-01-01 04:30"), "mean"] == 1.0 and hours["mean"].sum() == 1.0
    # Berlin's 2024-10-27 has 25 hours: 25 hour bins, one day bin
    calls = table([("2024-10-27 00:00", "2024-10-27 02:00")])
    assert len(concurrency(calls, freq="1h", tz="Europe/Berlin")) == 25
    day = concurrency(calls, freq="1D", tz="Europe/Berlin")
    assert len(day) == 1 and day["mean"].iloc[0] == pytest.approx(2 / 25)
    with pytest.raises(ValueError, match="unknown time zone"):
        concurrency(calls, freq="1h", tz="Berlin")


# --------------------------------------------------------------------------- brute force

DAY0 = t("2024-01-08")  # a Monday; January: no DST change in these zones


def minute_reference(spans, window, gap, tz):
    """Per-minute sampling (every time is a whole minute): each local (date, hour)
    slot's observed minutes and the calls in progress summed over them."""
    minutes = np.arange(*window)
    if gap is not None:  # site A's gap: the total is not observed then
        minutes = minutes[(minutes < gap[0]) | (minutes >= gap[1])]
    starts = np.array([s for s, _ in spans])[:, None]
    ends = np.array([e for _, e in spans])[:, None]
    counts = ((starts <= minutes) & (minutes < ends)).sum(axis=0)
    local = (DAY0 + pd.to_timedelta(minutes, unit="min")).tz_convert(tz)
    slots: dict = {}
    for date, hour, count in zip(local.date, local.hour, counts):
        seen, total = slots.get((date, hour), (0, 0))
        slots[(date, hour)] = (seen + 1, total + int(count))
    return slots


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2 * 1440), st.integers(0, 300),
                          st.sampled_from(["A", "B"])), min_size=1, max_size=12),
       st.integers(0, 1440), st.integers(60, 1440), st.one_of(st.none(), st.tuples(
           st.integers(0, 2 * 1440), st.integers(1, 180))),
       st.sampled_from(["UTC", "Asia/Kolkata", "America/New_York"]))
def test_busy_hour_and_profile_match_minute_sampling(calls_, first, length, gap, tz):
    window = (first, first + length)
    spans = [(s, s + n) for s, n, _ in calls_]
    frame = table([((DAY0 + pd.Timedelta(minutes=s)).isoformat(),
                    (DAY0 + pd.Timedelta(minutes=e)).isoformat()) for s, e in spans],
                  site=[site for _, _, site in calls_])
    gaps = None if gap is None else (gap[0], gap[0] + gap[1])
    if gaps is not None:  # the total is unobserved in the gaps of the table's sites
        frame.attrs["gaps"] = [{"server": "a", "site": "A",
                                "start": (DAY0 + pd.Timedelta(minutes=gaps[0])).isoformat(),
                                "end": (DAY0 + pd.Timedelta(minutes=gaps[1])).isoformat()}]
        if not any(site == "A" for _, _, site in calls_):
            gaps = None
    bounds = tuple(DAY0 + pd.Timedelta(minutes=m) for m in window)
    slots = minute_reference(spans, window, gaps, tz)
    # each slot's mean over its observed minutes; eligible when >= 30 of its 60 observed
    eligible = {k: total / seen for k, (seen, total) in slots.items() if seen >= 30}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)  # calls outside: expected
        profile = traffic_profile(frame, tz=tz, window=bounds)
        binned = concurrency(frame, freq="1h", tz=tz, window=bounds)
        for time, row in binned.iterrows():  # local hours: the bins are the slots
            local = time.tz_convert(tz)
            seen, total = slots.get((local.date(), local.hour), (0, 0))
            assert row["coverage"] == pytest.approx(seen / 60)
            assert row["mean"] == pytest.approx(total / seen if seen else np.nan, nan_ok=True)
        if not eligible:
            with pytest.raises(ValueError, match="was observed for at least 50%"):
                busy_hour(frame, tz=tz, window=bounds)
            return
        bh = busy_hour(frame, tz=tz, window=bounds)
    by_hour: dict = {}
    for (_, hour), value in eligible.items():
        by_hour.setdefault(hour, []).append(value)
    means = {h: sum(v) / len(v) for h, v in by_hour.items()}
    best = max(means.values())
    assert bh.traffic == pytest.approx(best)
    assert bh.hour == min(h for h, v in means.items() if v == pytest.approx(best))
    weekday_cells: dict = {}
    for (date, hour), (seen, total) in slots.items():
        weekday_cells.setdefault((date.weekday(), hour), []).append(total / seen)
    expected = np.full((7, 24), np.nan)
    for (w, h), values in weekday_cells.items():
        expected[w, h] = sum(values) / len(values)
    np.testing.assert_allclose(profile.to_numpy(), expected, equal_nan=True)
