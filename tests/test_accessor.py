"""recstats.accessor: df.rs validates its frame and only delegates to stats/plot."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import recstats
from recstats import plot, stats
from recstats._accessor import CallsAccessor, CallsSummary
from recstats._table import coerce_calls, empty_calls


def _calls(rows):
    return coerce_calls(pd.DataFrame(rows, columns=["call_id", "site", "start_time",
                                                    "end_time", "caller", "callee"]))


@pytest.fixture
def calls(four_calls):
    return four_calls  # see conftest.py for the hand-computed figures


# --------------------------------------------------------------------------- validation


def test_registered_by_importing_recstats():
    assert pd.DataFrame.rs is CallsAccessor
    assert recstats._accessor.CallsAccessor is CallsAccessor


def test_missing_columns_are_named():
    frame = pd.DataFrame({"call_id": ["a"], "duration": [1.0]})
    with pytest.raises(AttributeError) as info:
        frame.rs  # noqa: B018
    assert str(info.value) == ("df.rs needs a calls table (see recstats.read_archive); "
                               "missing columns: end_time, start_time")
    assert not hasattr(frame, "rs")


def test_time_columns_must_be_datetimes():
    frame = pd.DataFrame({"call_id": ["a"], "start_time": ["2026-11-02 09:00"],
                          "end_time": pd.to_datetime(["2026-11-02 09:01"], utc=True)})
    with pytest.raises(AttributeError, match=r"start_time is (str|object).*coerce_calls"):
        frame.rs  # noqa: B018


def test_a_calls_column_does_not_hide_the_accessor(calls):
    with_column = calls.assign(calls=1)
    assert with_column.rs.summary().calls == len(calls)
    pd.testing.assert_series_equal(with_column.calls, with_column["calls"])


def test_minimal_frame_is_enough():
    frame = pd.DataFrame({
        "call_id": ["a", "b"],
        "start_time": pd.to_datetime(["2026-11-02 09:00", "2026-11-02 09:10"], utc=True),
        "end_time": pd.to_datetime(["2026-11-02 09:20", "2026-11-02 09:30"], utc=True)})
    assert frame.rs.concurrency()["concurrent"].tolist() == [1, 2, 1, 0]


# --------------------------------------------------------------------------- delegation


@pytest.mark.parametrize("kwargs", [{}, {"freq": "15min"}, {"by": "site"},
                                    {"freq": "1h", "by": "site"}])
def test_concurrency_delegates(calls, kwargs):
    pd.testing.assert_frame_equal(calls.rs.concurrency(**kwargs),
                                  stats.concurrency(calls, **kwargs))


def test_traffic_profile_delegates(calls):
    pd.testing.assert_frame_equal(calls.rs.traffic_profile(tz="Europe/Budapest"),
                                  stats.traffic_profile(calls, tz="Europe/Budapest"))


def test_extension_stats_delegates(calls):
    pd.testing.assert_frame_equal(calls.rs.extension_stats(), stats.extension_stats(calls))
    pd.testing.assert_frame_equal(calls.rs.extension_stats(extensions=["100", "101"]),
                                  stats.extension_stats(calls, extensions=["100", "101"]))
    pd.testing.assert_frame_equal(calls.rs.extension_stats(by="site"),
                                  stats.extension_stats(calls, by="site"))


def test_capacity_table_delegates(calls):
    pd.testing.assert_frame_equal(calls.rs.capacity_table(), stats.capacity_table(calls))
    pd.testing.assert_frame_equal(
        calls.rs.capacity_table(blocking=(0.02,), tz="Asia/Tokyo", days="weekdays"),
        stats.capacity_table(calls, blocking=(0.02,), tz="Asia/Tokyo", days="weekdays"))


def test_check_delegates(calls):
    odd = pd.concat([calls, calls.iloc[:1]], ignore_index=True)  # call a twice
    pd.testing.assert_frame_equal(odd.rs.check(), stats.check_calls(odd))
    assert "duplicate call id" in set(odd.rs.check()["problem"])
    assert calls.rs.check().empty


def test_method_names_match_the_functions():
    names = {n for n in dir(CallsAccessor) if not n.startswith("_")}
    assert {"concurrency", "busy_hour", "traffic_profile", "extension_stats",
            "capacity_table", "check", "summary", "plot_concurrency",
            "plot_traffic_heatmap", "plot_extensions", "plot_capacity"} == names


@pytest.mark.parametrize("call", [
    lambda acc: acc.concurrency("15min"), lambda acc: acc.busy_hour("bouncing"),
    lambda acc: acc.traffic_profile("UTC"), lambda acc: acc.extension_stats(["100"]),
    lambda acc: acc.capacity_table((0.01,)), lambda acc: acc.summary("UTC"),
    lambda acc: acc.plot_concurrency("15min"), lambda acc: acc.plot_extensions(5),
], ids=["concurrency", "busy_hour", "traffic_profile", "extension_stats", "capacity_table",
        "summary", "plot_concurrency", "plot_extensions"])
def test_settings_are_keyword_only(calls, call):
    with pytest.raises(TypeError):
        call(calls.rs)


@pytest.mark.parametrize("method", ["time-consistent", "bouncing"])
def test_busy_hour_delegates(calls, method):
    got = calls.rs.busy_hour(method=method, tz="Europe/Budapest")
    want = stats.busy_hour(calls, method=method, tz="Europe/Budapest")
    assert (got.method, got.hour, got.traffic) == (want.method, want.hour, want.traffic)
    pd.testing.assert_frame_equal(got.per_day, want.per_day)
    pd.testing.assert_series_equal(got.profile, want.profile)


def _line_data(fig):
    return [(line.get_gid(), line.get_label(), np.asarray(line.get_xdata()),
             np.asarray(line.get_ydata())) for ax in fig.axes for line in ax.lines]


def _assert_same_lines(a, b):
    left, right = _line_data(a), _line_data(b)
    assert len(left) == len(right)
    for (g1, l1, x1, y1), (g2, l2, x2, y2) in zip(left, right, strict=True):
        assert (g1, l1) == (g2, l2)
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


def test_plot_concurrency_delegates(calls):
    got = calls.rs.plot_concurrency(freq="30min", by="site", tz="Europe/Budapest")
    assert isinstance(got, Figure)
    _assert_same_lines(got, plot.plot_concurrency(calls, freq="30min", by="site",
                                                  tz="Europe/Budapest"))
    fig = Figure()
    ax = fig.add_subplot()
    assert calls.rs.plot_concurrency(ax=ax, exact=False) is fig


def test_plot_traffic_heatmap_delegates(calls):
    got = calls.rs.plot_traffic_heatmap(tz="Asia/Tokyo")
    want = plot.plot_traffic_heatmap(calls, tz="Asia/Tokyo")
    np.testing.assert_array_equal(got.axes[0].images[0].get_array(),
                                  want.axes[0].images[0].get_array())


def test_plot_extensions_delegates(calls):
    got = calls.rs.plot_extensions(top=2, sort_by="traffic")
    want = plot.plot_extensions(calls, top=2, sort_by="traffic")
    assert [p.get_width() for p in got.axes[0].patches] == \
        [p.get_width() for p in want.axes[0].patches]
    assert [t.get_text() for t in got.axes[0].get_yticklabels()] == \
        [t.get_text() for t in want.axes[0].get_yticklabels()]


def test_plot_capacity_delegates(calls):
    _assert_same_lines(calls.rs.plot_capacity(blocking=(0.01,)),
                       plot.plot_capacity(calls, blocking=(0.01,)))
    _assert_same_lines(calls.rs.plot_capacity(traffic=4.0, peak=9),
                       plot.plot_capacity(calls, traffic=4.0, peak=9))


def test_no_method_mutates_the_frame(calls):
    before = calls.copy(deep=True)
    acc = calls.rs
    acc.concurrency(freq="15min", by="site")
    acc.busy_hour()
    acc.traffic_profile(tz="Europe/Budapest")
    acc.extension_stats(by="site")
    acc.capacity_table(days="weekdays")
    acc.check()
    acc.summary()
    acc.plot_concurrency(by="site")
    acc.plot_traffic_heatmap()
    acc.plot_extensions()
    acc.plot_capacity()
    pd.testing.assert_frame_equal(calls, before)
    assert list(calls.columns) == list(before.columns)


def test_erlang_b_is_not_a_frame_method(calls):
    assert not hasattr(calls.rs, "erlang_b")


# --------------------------------------------------------------------------- summary


def test_summary_by_hand(calls):
    summary = calls.rs.summary()
    assert isinstance(summary, CallsSummary)
    assert summary.calls == 4
    assert summary.sites == ("LA", "NY")
    assert summary.first_start == pd.Timestamp("2026-11-02 09:00", tz="UTC")
    assert summary.last_end == pd.Timestamp("2026-11-02 10:05", tz="UTC")
    assert summary.ongoing == 0
    assert summary.peak == 3
    assert summary.peak_time == pd.Timestamp("2026-11-02 09:10", tz="UTC")
    assert summary.busy_hour == 9
    assert summary.busy_hour_traffic == pytest.approx(1.75)
    # no attrs: the archive rule, whole days; the busy hour was observed in full
    assert summary.window == (pd.Timestamp("2026-11-02", tz="UTC"),
                              pd.Timestamp("2026-11-03", tz="UTC"))
    assert summary.busy_hour_coverage == 1.0


def test_summary_busy_hour_in_zone(calls):
    summary = calls.rs.summary(tz="Europe/Budapest")
    assert (summary.busy_hour, summary.tz) == (10, "Europe/Budapest")  # 09 UTC = 10 CET
    assert "10:00–11:00 Europe/Budapest" in repr(summary)


def test_summary_reprs(calls):
    text = repr(calls.rs.summary())
    assert text.startswith("CallsSummary")
    for piece in ("4", "LA, NY", "2026-11-02 09:00:00 UTC → 2026-11-02 10:05:00 UTC",
                  "3 at 2026-11-02 09:10:00 UTC", "09:00–10:00 UTC, 1.75 erlangs",
                  "(100% observed)",
                  "2026-11-02 00:00:00 UTC → 2026-11-03 00:00:00 UTC (24.0 h)"):
        assert piece in text
    page = calls.rs.summary()._repr_html_()
    assert page.startswith("<table") and "1.75 erlangs" in page


def test_summary_html_escapes_site_names(calls):
    odd = calls.assign(site=pd.Categorical(["<b>&", "<b>&", "LA", "LA"]))
    page = odd.rs.summary()._repr_html_()
    assert "&lt;b&gt;&amp;" in page and "<b>&" not in page


def test_summary_counts_ongoing_calls(calls):
    live = calls.copy()
    live.loc[3, "end_time"] = pd.NaT
    summary = live.rs.summary()
    assert summary.ongoing == 1 and summary.calls == 4
    assert summary.first_start == pd.Timestamp("2026-11-02 09:00", tz="UTC")


def test_summary_ongoing_needs_a_start(calls):
    # the sample archive's odd CDRs have neither time: they are not calls in progress
    odd = calls.copy()
    odd.loc[2, ["start_time", "end_time"]] = pd.NaT
    odd.loc[3, "end_time"] = pd.NaT
    odd["end_unknown"] = [False, False, True, False]  # as the archive marks a CDR with no end
    window = ("2026-11-02 00:00", "2026-11-02 12:00")
    # the analyses behind the summary leave c out and say so
    with pytest.warns(recstats.DataQualityWarning, match="ids: c"):
        assert odd.rs.summary(window=window).ongoing == 1
    odd.loc[3, "end_unknown"] = True  # a capture lost its end
    with pytest.warns(recstats.DataQualityWarning, match="ids: c, d"):
        summary = odd.rs.summary(window=window)
    assert summary.ongoing == 0 == int(stats.ongoing_mask(odd).sum())


def test_summary_shows_utc_whatever_the_columns_zone(calls):
    local = calls.assign(start_time=calls["start_time"].dt.tz_convert("America/New_York"),
                         end_time=calls["end_time"].dt.tz_convert("America/New_York"))
    assert "2026-11-02 09:00:00 UTC → 2026-11-02 10:05:00 UTC" in repr(local.rs.summary())


def test_summary_of_no_calls():
    summary = empty_calls().rs.summary()
    assert dataclasses.astuple(summary)[:7] == (0, (), None, None, 0, 0, None)
    assert summary.busy_hour is None
    assert "calls" in repr(summary) and "<table" in summary._repr_html_()


# --------------------------------------------------------------------------- import cost


def test_import_recstats_does_not_load_stats_or_matplotlib():
    code = ("import sys, pandas as pd, recstats\n"
            "frame = pd.DataFrame({'call_id': [], 'start_time': pd.to_datetime([], utc=True),"
            " 'end_time': pd.to_datetime([], utc=True)})\n"
            "frame.rs\n"
            "print(sorted(m for m in ('matplotlib', 'recstats.stats', 'recstats.plot')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "[]"


def test_summary_without_traffic():
    frame = _calls([("z", "NY", "2026-11-02 09:00", "2026-11-02 09:00", "100", "101")])
    summary = frame.rs.summary()
    assert (summary.calls, summary.peak, summary.peak_time, summary.busy_hour) == \
        (1, 0, None, None)
    assert summary.first_start == summary.last_end


def test_window_is_passed_on_for_ongoing_calls(calls):
    live = calls.copy()
    live.loc[2, "end_time"] = pd.NaT  # c (09:05, LA) still in progress
    window = (pd.Timestamp("2026-11-02 09:00", tz="UTC"), pd.Timestamp("2026-11-02 11:00", tz="UTC"))
    got = live.rs.concurrency(window=window)
    pd.testing.assert_frame_equal(got, stats.concurrency(live, window=window))
    assert got["time"].iat[-1] == window[1]
    pd.testing.assert_frame_equal(live.rs.capacity_table(window=window),
                                  stats.capacity_table(live, window=window))
    pd.testing.assert_frame_equal(live.rs.extension_stats(window=window),
                                  stats.extension_stats(live, window=window))
    pd.testing.assert_frame_equal(live.rs.traffic_profile(window=window),
                                  stats.traffic_profile(live, window=window))
    summary = live.rs.summary(window=window)
    # c now runs 09:05-11:00, so 10:00-11:00 carries 1 E and 09:00-10:00 still 1.75 E
    assert (summary.busy_hour, summary.busy_hour_traffic) == (9, pytest.approx(1.75))
    assert summary.window == window and summary.ongoing == 1
    ax = live.rs.plot_concurrency(freq=None, window=window).axes[0]
    line = next(ln for ln in ax.lines if ln.get_gid() == "exact")
    assert line.get_xdata()[-1] == np.datetime64("2026-11-02T11:00")


def test_window_from_the_tables_attrs(calls):
    observed = calls.copy()
    observed.attrs["window"] = ["2026-11-02T09:00:00+00:00", "2026-11-02T09:30:00+00:00"]
    with pytest.warns(recstats.DataQualityWarning, match=r"outside the window \(ids: d\)"):
        summary = observed.rs.summary()  # d starts at 09:50
    assert summary.window == (pd.Timestamp("2026-11-02 09:00", tz="UTC"),
                              pd.Timestamp("2026-11-02 09:30", tz="UTC"))
    assert "(0.5 h)" in repr(summary)


def test_accessor_registered_when_pandas_comes_after_recstats():
    code = ("import sys, recstats\n"
            "assert 'pandas' not in sys.modules\n"
            "import pandas as pd\n"
            "frame = pd.DataFrame({'call_id': ['a'], 'start_time': pd.to_datetime(['2026-11-02 09:00'], utc=True),"
            " 'end_time': pd.to_datetime(['2026-11-02 09:10'], utc=True)})\n"
            "print(frame.rs.summary().calls)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "1"
