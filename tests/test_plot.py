"""recstats.plot: the figures draw exactly what recstats.stats computes."""

from __future__ import annotations

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from recstats import plot, stats
from recstats._table import coerce_calls, empty_calls


@pytest.fixture
def calls(four_calls):
    return four_calls  # see conftest.py: peak 3 at 09:10 UTC


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")  # the plots make pyplot figures, as DataFrame.plot does


def _utc(texts):
    return pd.DatetimeIndex(pd.to_datetime(texts)).as_unit("us").to_numpy()


def _lines(ax, gid):
    return [line for line in ax.lines if line.get_gid() == gid]


def _texts(ax, gid):
    return [t for t in ax.texts if t.get_gid() == gid]


# --------------------------------------------------------------------------- concurrency


def test_exact_step_curve_is_the_concurrency_frame(calls):
    fig = plot.plot_concurrency(calls, freq=None)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    (line,) = _lines(ax, "exact")
    assert line.get_drawstyle() == "steps-post"
    expected = stats.concurrency(calls)
    np.testing.assert_array_equal(line.get_xdata(), expected["time"].dt.tz_convert(None))
    np.testing.assert_array_equal(line.get_ydata(), expected["concurrent"])
    # and independently of stats: the hand-computed step function
    np.testing.assert_array_equal(line.get_xdata(), _utc(
        ["2026-11-02 09:00", "2026-11-02 09:05", "2026-11-02 09:10", "2026-11-02 09:20",
         "2026-11-02 09:30", "2026-11-02 09:50", "2026-11-02 10:00", "2026-11-02 10:05"]))
    np.testing.assert_array_equal(line.get_ydata(), [1, 2, 3, 2, 1, 2, 1, 0])
    assert not _lines(ax, "bin-peak") and not _lines(ax, "bin-mean")


def test_binned_peak_and_mean_lines(calls):
    fig = plot.plot_concurrency(calls, freq="30min", exact=False)
    ax = fig.axes[0]
    assert not _lines(ax, "exact")
    (peak,), (mean,) = _lines(ax, "bin-peak"), _lines(ax, "bin-mean")
    binned = stats.concurrency(calls, freq="30min")
    starts = binned.index.tz_convert(None).as_unit("us").to_numpy()
    for line, column in ((peak, "peak"), (mean, "mean")):
        assert line.get_drawstyle() == "steps-post"
        x, y = line.get_xdata(), line.get_ydata()
        np.testing.assert_array_equal(x[:-1], starts)
        assert x[-1] == starts[-1] + np.timedelta64(30, "m")  # the last bin's end
        np.testing.assert_allclose(y[:-1], binned[column])
        assert y[-1] == y[-2]
    # bins cover the observed window: the whole day 2026-11-02, 48 half hours
    assert len(starts) == 48 and starts[0] == np.datetime64("2026-11-02T00:00")
    # by hand: 09:00-09:30 peak 3, mean (20+20+25+0)/30; 09:30-10:00 peak 2,
    # mean (30+10)/30; 10:00-10:30 peak 1, mean 5/30; every other bin 0 (observed, quiet)
    at = 18  # 09:00 is the 19th half hour
    np.testing.assert_array_equal(peak.get_ydata()[at:at + 3], [3, 2, 1])
    np.testing.assert_allclose(mean.get_ydata()[at:at + 3], [65 / 30, 40 / 30, 5 / 30])
    assert np.nansum(peak.get_ydata()[:-1]) == 6 and np.nansum(mean.get_ydata()[:-1]) == \
        pytest.approx(110 / 30)


def test_exact_and_binned_together(calls):
    ax = plot.plot_concurrency(calls, freq="15min").axes[0]
    assert len(_lines(ax, "exact")) == len(_lines(ax, "bin-peak")) == 1
    assert len(_lines(ax, "bin-mean")) == 1
    assert "[erlang]" in ax.get_ylabel()


def test_one_line_per_group_with_by(calls):
    ax = plot.plot_concurrency(calls, freq="1h", by="site").axes[0]
    exact = _lines(ax, "exact")
    assert [line.get_label() for line in exact] == ["LA: calls in progress",
                                                     "NY: calls in progress"]
    frame = stats.concurrency(calls, by="site")
    for line, site in zip(exact, ["LA", "NY"], strict=True):
        part = frame[frame["site"] == site]
        np.testing.assert_array_equal(line.get_xdata(), part["time"].dt.tz_convert(None))
        np.testing.assert_array_equal(line.get_ydata(), part["concurrent"])
    np.testing.assert_array_equal(exact[1].get_ydata(), [1, 2, 1, 0])  # NY by hand
    binned = stats.concurrency(calls, freq="1h", by="site")
    for line, site in zip(_lines(ax, "bin-peak"), ["LA", "NY"], strict=True):
        np.testing.assert_array_equal(line.get_ydata()[:-1], binned.loc[site, "peak"])
    # a group keeps one colour across its lines
    colours = {line.get_label().split(":")[0]: set() for line in ax.lines
               if line.get_gid() in ("exact", "bin-peak", "bin-mean")}
    for line in ax.lines:
        if line.get_gid() in ("exact", "bin-peak", "bin-mean"):
            colours[line.get_label().split(":")[0]].add(line.get_color())
    assert all(len(c) == 1 for c in colours.values()) and len(colours) == 2
    assert ax.get_title() == "Concurrent calls by site"


def test_peak_annotated_with_value_and_local_time(calls):
    ax = plot.plot_concurrency(calls, freq=None, tz="Europe/Budapest").axes[0]
    (note,) = _texts(ax, "peak")
    # 09:10 UTC is 10:10 in Budapest (CET, UTC+1, in November)
    assert "3 calls" in note.get_text()
    assert "2026-11-02 10:10:00 Europe/Budapest" in note.get_text()
    assert note.xy == pytest.approx((mdates.date2num(np.datetime64("2026-11-02T09:10")), 3))
    assert ax.get_xlabel() == "time (Europe/Budapest)"


def test_time_axis_ticks_in_the_requested_zone(calls):
    fig = plot.plot_concurrency(calls, freq=None, tz="America/New_York")
    ax = fig.axes[0]
    formatter = ax.xaxis.get_major_formatter()
    assert isinstance(formatter, mdates.ConciseDateFormatter)
    # 09:00 UTC is 04:00 in New York (EST, UTC-5, in November)
    ticks = [mdates.date2num(np.datetime64("2026-11-02T09:00")),
             mdates.date2num(np.datetime64("2026-11-02T09:30"))]
    assert formatter.format_ticks(ticks) == ["04:00", "04:30"]


def test_binned_only_annotates_the_highest_bin_peak(calls):
    ax = plot.plot_concurrency(calls, freq="30min", exact=False).axes[0]
    (note,) = _texts(ax, "peak")
    assert "3 calls" in note.get_text() and "2026-11-02 09:00:00 UTC" in note.get_text()


def test_concurrency_needs_something_to_draw(calls):
    with pytest.raises(ValueError, match="nothing to draw"):
        plot.plot_concurrency(calls, freq=None, exact=False)


def test_concurrency_of_no_calls_is_an_empty_chart():
    fig = plot.plot_concurrency(empty_calls(), freq="15min")
    ax = fig.axes[0]
    assert not ax.lines or all(len(line.get_xdata()) == 0 for line in ax.lines)
    assert [t.get_text() for t in _texts(ax, "no-data")] == ["no calls"]
    assert ax.get_title() == "Concurrent calls"


# --------------------------------------------------------------------------- ax handling


@pytest.mark.parametrize("draw", [
    lambda calls, ax: plot.plot_concurrency(calls, ax=ax),
    lambda calls, ax: plot.plot_traffic_heatmap(calls, ax=ax),
    lambda calls, ax: plot.plot_extensions(calls, ax=ax),
    lambda calls, ax: plot.plot_capacity(calls, ax=ax),
], ids=["concurrency", "heatmap", "extensions", "capacity"])
def test_draws_on_the_given_axes(calls, draw):
    fig = Figure()
    left, right = fig.subplots(1, 2)
    assert draw(calls, right) is fig
    assert right.has_data() and not left.has_data()
    assert right.get_title() and right.get_xlabel() and right.get_ylabel()


def test_each_plot_without_ax_is_a_new_current_pyplot_figure(calls):
    before = set(plt.get_fignums())
    figures = [plot.plot_concurrency(calls), plot.plot_traffic_heatmap(calls),
               plot.plot_extensions(calls), plot.plot_capacity(calls)]
    assert len(set(plt.get_fignums()) - before) == 4
    assert len({id(f) for f in figures}) == 4
    assert plt.gcf() is figures[-1]  # so plt.savefig / plt.show act on the last one


def test_a_plot_saved_through_pyplot_is_not_blank(calls, tmp_path):
    import matplotlib.image as mpimg

    plot.plot_concurrency(calls, by="site")
    plt.savefig(tmp_path / "c.png")
    pixels = mpimg.imread(tmp_path / "c.png")
    # a blank figure is one colour; the curve, labels and legend make many
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 20
    plt.figure()  # an empty figure, for contrast: uniformly white
    plt.savefig(tmp_path / "blank.png")
    blank = mpimg.imread(tmp_path / "blank.png")
    assert len(np.unique(blank.reshape(-1, blank.shape[-1]), axis=0)) == 1


def test_a_notebook_shows_a_returned_figure_once(calls, monkeypatch):
    # the inline backend shows open pyplot figures when a cell ends, through display():
    # whether the cell returns the figure or not, it must be shown exactly once
    import IPython.display
    import matplotlib

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append(obj))
    monkeypatch.setattr(plt, "isinteractive", lambda: True)
    monkeypatch.setattr(matplotlib, "get_backend",
                        lambda: "module://matplotlib_inline.backend_inline")
    fig = plot.plot_concurrency(calls)
    fig._ipython_display_()                     # the cell's value
    (image,) = shown
    assert image.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert fig.number not in plt.get_fignums()  # so the end of the cell skips it
    # another interactive backend (a widget, a window) shows open figures itself
    monkeypatch.setattr(matplotlib, "get_backend", lambda: "qtagg")
    other = plot.plot_traffic_heatmap(calls)
    other._ipython_display_()
    assert len(shown) == 1 and other.number in plt.get_fignums()


def test_settings_are_keyword_only(calls):
    with pytest.raises(TypeError):
        plot.plot_concurrency(calls, "15min")
    with pytest.raises(TypeError):
        plot.plot_traffic_heatmap(calls, "UTC")
    with pytest.raises(TypeError):
        plot.plot_extensions(calls, 5)
    with pytest.raises(TypeError):
        plot.plot_capacity(calls, (0.01,))


def test_figures_render_headless(calls, tmp_path):
    fig = plot.plot_concurrency(calls, by="site", tz="Europe/Budapest")
    fig.savefig(tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- heatmap


def test_heatmap_is_the_traffic_profile(calls):
    fig = plot.plot_traffic_heatmap(calls, tz="Europe/Budapest")
    ax = fig.axes[0]
    (image,) = ax.images
    profile = stats.traffic_profile(calls, tz="Europe/Budapest")
    np.testing.assert_array_equal(np.ma.filled(image.get_array(), np.nan),
                                  profile.to_numpy(dtype="float64"))
    assert image.get_array().shape == (7, 24)
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(h) for h in range(24)]
    colorbar = image.colorbar
    assert colorbar is not None and colorbar.ax.get_ylabel() == "traffic [erlang]"
    assert ax.get_xlabel() == "hour of day (Europe/Budapest)"
    assert ax.get_title()
    # by hand: Monday 2026-11-02, 10:00 Budapest carries 105 call-minutes = 1.75 E
    assert image.get_array()[0, 10] == pytest.approx(1.75)
    assert image.get_array()[0, 11] == pytest.approx(5 / 60)


# --------------------------------------------------------------------------- extensions


def test_extension_bars_are_the_top_of_extension_stats(calls):
    table = stats.extension_stats(calls)
    for sort_by in ("calls", "traffic"):
        ax = plot.plot_extensions(calls, top=3, sort_by=sort_by, by=None).axes[0]
        want = table[sort_by].sort_values(ascending=False, kind="stable").head(3)
        bars = ax.patches
        assert [p.get_width() for p in bars] == pytest.approx(want.tolist())
        assert [t.get_text() for t in ax.get_yticklabels()] == list(want.index)
        # the largest bar is drawn at the top
        assert ax.yaxis_inverted()
        assert ax.get_title() == f"Top 3 extensions by {sort_by}"
    assert ax.get_xlabel() == "traffic [erlang]"


def test_extension_bars_by_hand(calls):
    # merged: 100 takes part in a (caller), b (callee) and d (caller)
    ax = plot.plot_extensions(calls, top=1, by=None).axes[0]
    assert ax.get_yticklabels()[0].get_text() == "100"
    assert ax.patches[0].get_width() == 3
    assert ax.get_xlabel() == "calls"
    ax = plot.plot_extensions(calls, top=1, sort_by="traffic", by=None,
                              extensions=["101", "102"]).axes[0]
    assert ax.get_yticklabels()[0].get_text() == "102"  # 60 minutes against 20


def test_extension_bars_keep_sites_apart(calls):
    # by hand: NY has a (100 -> 200) and b (101 -> 100): 100 twice, 101 and 200 once;
    # LA has c (+36... -> 102) and d (100 -> +36...): 102 and 100 once. Five bars.
    ax = plot.plot_extensions(calls, top=10).axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "100 (NY)" and ax.patches[0].get_width() == 2
    assert sorted(labels) == ["100 (LA)", "100 (NY)", "101 (NY)", "102 (LA)", "200 (NY)"]
    assert [p.get_width() for p in ax.patches] == [2, 1, 1, 1, 1]
    assert len(stats.extension_stats(calls, by="site")) == 5
    assert "sites apart" in ax.get_title()
    # one site only: plain extension labels
    one = calls[calls["site"] == "NY"]
    labels = [t.get_text() for t in plot.plot_extensions(one).axes[0].get_yticklabels()]
    assert labels == ["100", "101", "200"]


def test_extensions_rejects_unknown_measure(calls):
    with pytest.raises(ValueError, match="sort_by must be one of"):
        plot.plot_extensions(calls, sort_by="colour")
    with pytest.raises(ValueError, match="top"):
        plot.plot_extensions(calls, top=0)


# --------------------------------------------------------------------------- capacity


def test_capacity_curves_are_channels_for(calls):
    ax = plot.plot_capacity(traffic=10.0, peak=21).axes[0]
    curves = _lines(ax, "capacity")
    assert [c.get_label() for c in curves] == ["blocking 0.1%", "blocking 1%", "blocking 5%"]
    for curve, target in zip(curves, (0.001, 0.01, 0.05), strict=True):
        x = np.asarray(curve.get_xdata())
        assert x[0] == 0 and x[-1] >= 21 and np.all(np.diff(x) > 0)
        np.testing.assert_array_equal(curve.get_ydata(), stats.channels_for(x, target))
    # the classic Erlang B table: 10 E needs 18 channels at 1 %, 15 at 5 %, 21 at 0.1 %
    needs = [line.get_ydata()[0] for line in _lines(ax, "busy-hour-need")]
    assert needs == [21, 18, 15]
    (vline,) = _lines(ax, "busy-hour-traffic")
    assert list(vline.get_xdata()) == [10.0, 10.0]
    (hline,) = _lines(ax, "observed-peak")
    assert list(hline.get_ydata()) == [21, 21]
    assert ax.get_xlabel() == "offered traffic [erlang]" and ax.get_ylabel() == "channels"
    assert ax.get_title()


def test_capacity_marks_come_from_capacity_table(calls):
    ax = plot.plot_capacity(calls, blocking=(0.01,)).axes[0]
    row = stats.capacity_table(calls, blocking=(0.01,)).loc["all"]
    (vline,) = _lines(ax, "busy-hour-traffic")
    (hline,) = _lines(ax, "observed-peak")
    assert vline.get_xdata()[0] == pytest.approx(row["traffic"])
    assert hline.get_ydata()[0] == row["observed_peak"]
    # by hand: peak 3; busy hour 09:00 UTC carries 1.75 E
    assert hline.get_ydata()[0] == 3
    assert vline.get_xdata()[0] == pytest.approx(1.75)
    assert "time-consistent, 09:00 UTC, 100% observed" in vline.get_label()
    # one day only: the busiest day's busy hour is the busy hour
    (busiest,) = _lines(ax, "busiest-day-traffic")
    assert busiest.get_xdata()[0] == pytest.approx(row["busiest_day_traffic"]) == \
        pytest.approx(1.75)


def test_capacity_explicit_values_win_and_calls_are_optional(calls):
    ax = plot.plot_capacity(calls, traffic=4.0, peak=9).axes[0]
    assert _lines(ax, "busy-hour-traffic")[0].get_xdata()[0] == 4.0
    assert _lines(ax, "observed-peak")[0].get_ydata()[0] == 9
    ax = plot.plot_capacity(blocking=(0.02,)).axes[0]
    assert len(_lines(ax, "capacity")) == 1
    assert not _lines(ax, "busy-hour-traffic") and not _lines(ax, "observed-peak")


@pytest.mark.parametrize("blocking", [(), (0.0,), (1.0,), (0.01, 1.5)])
def test_capacity_rejects_bad_blocking(blocking):
    with pytest.raises(ValueError, match="blocking"):
        plot.plot_capacity(blocking=blocking)


@pytest.mark.parametrize("draw", [plot.plot_traffic_heatmap, plot.plot_extensions],
                         ids=["heatmap", "extensions"])
def test_no_calls_gives_an_empty_chart_not_an_error(draw):
    ax = draw(empty_calls()).axes[0]
    assert [t.get_text() for t in _texts(ax, "no-data")] == ["no calls"]
    assert ax.get_title()


# --------------------------------------------------------------------------- windows, sites


def test_ongoing_calls_draw_no_cliff_at_the_windows_end(calls):
    live = calls.copy()
    live.loc[2, "end_time"] = pd.NaT  # c (LA, from 09:05) still in progress
    window = ("2026-11-02 09:00", "2026-11-02 11:00")
    (line,) = _lines(plot.plot_concurrency(live, freq=None, window=window).axes[0], "exact")
    # by hand: 09:00 1, 09:05 2, 09:10 3, 09:20 2, 09:30 1, 09:50 2, 10:00 1, and c alone
    # until the window's end at 11:00, where the curve stops at 1 instead of dropping to 0
    assert line.get_xdata()[-1] == np.datetime64("2026-11-02T11:00")
    np.testing.assert_array_equal(line.get_ydata(), [1, 2, 3, 2, 1, 2, 1, 1])
    # finished calls still end at 0
    (done,) = _lines(plot.plot_concurrency(calls, freq=None, window=window).axes[0], "exact")
    assert done.get_ydata()[-1] == 0
    # a window that ends while c (09:05-10:05) and d (09:50-10:00) run: they count until
    # 09:55 and the curve stops at 2 there, not at 0
    (cut,) = _lines(plot.plot_concurrency(calls, freq=None, window=(
        "2026-11-02 09:00", "2026-11-02 09:55")).axes[0], "exact")
    assert cut.get_xdata()[-1] == np.datetime64("2026-11-02T09:55")
    np.testing.assert_array_equal(cut.get_ydata(), [1, 2, 3, 2, 1, 2, 2])


def test_bins_outside_the_window_are_gaps(calls):
    window = ("2026-11-02 09:00", "2026-11-02 09:30")
    ax = plot.plot_concurrency(calls, freq="30min", exact=False, window=window).axes[0]
    binned = stats.concurrency(calls, freq="30min", window=window)
    (peak,), (mean,) = _lines(ax, "bin-peak"), _lines(ax, "bin-mean")
    np.testing.assert_array_equal(mean.get_ydata()[:-1], binned["mean"].to_numpy(float))
    np.testing.assert_array_equal(peak.get_ydata()[:-1], binned["peak"].to_numpy(float))
    # by hand: 09:00-09:30 observed, peak 3 and (20 + 20 + 25) / 30 erlangs; later bins
    # were not observed: NaN, drawn as nothing (never as 0)
    first = binned.index.get_loc(pd.Timestamp("2026-11-02 09:00", tz="UTC"))
    assert mean.get_ydata()[first] == pytest.approx(65 / 30)
    later = binned.index >= pd.Timestamp("2026-11-02 09:30", tz="UTC")
    assert np.isnan(mean.get_ydata()[:-1][later]).all()


def _sites(calls, n):
    parts = [calls.assign(site=f"S{k}", call_id=calls["call_id"] + str(k))
             for k in range(n)]
    return coerce_calls(pd.concat(parts, ignore_index=True))


def test_up_to_four_groups_share_one_axes(calls):
    fig = plot.plot_concurrency(_sites(calls, 4), freq=None, by="site")
    assert len(fig.axes) == 1 and len(_lines(fig.axes[0], "exact")) == 4


def test_past_four_groups_small_multiples_share_the_y_axis(calls):
    fig = plot.plot_concurrency(_sites(calls, 5), freq="30min", by="site")
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title(loc="left") for ax in panels] == ["S0", "S1", "S2", "S3", "S4"]
    for ax in panels:  # each panel one group, the same hand-computed curve
        (line,) = _lines(ax, "exact")
        np.testing.assert_array_equal(line.get_ydata(), [1, 2, 3, 2, 1, 2, 1, 0])
        assert len(_lines(ax, "bin-peak")) == len(_lines(ax, "bin-mean")) == 1
    assert len({ax.get_ylim() for ax in panels}) == 1
    assert panels[0].get_ylim()[0] == 0 and panels[0].get_ylim()[1] == pytest.approx(3 * 1.3)
    assert len([t for ax in panels for t in _texts(ax, "peak")]) == 1
    assert fig.get_suptitle() == "Concurrent calls by site"
    # twelve sites: two columns of six
    fig = plot.plot_concurrency(_sites(calls, 12), freq=None, by="site")
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 12
    # a given Axes takes every line
    target = Figure().add_subplot()
    plot.plot_concurrency(_sites(calls, 5), freq=None, by="site", ax=target)
    assert len(_lines(target, "exact")) == 5


def test_heatmap_days_and_unobserved_cells(calls):
    ax = plot.plot_traffic_heatmap(calls, days="weekdays").axes[0]
    (image,) = ax.images
    np.testing.assert_array_equal(
        np.ma.filled(image.get_array(), np.nan),
        stats.traffic_profile(calls, days="weekdays").to_numpy(dtype="float64"))
    assert "weekdays" in ax.get_title()
    # 2026-11-02 is a Monday: no other weekday was observed, so those rows are blank
    assert np.isnan(np.ma.filled(image.get_array(), np.nan)[1:]).all()
