"""LiveDashboard: widget state and chart data after refresh, filter, pause, timer."""

from __future__ import annotations

import asyncio

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from recstats._table import calls_from_fields
from recstats.sim.traffic import generate_calls
from recstats.widgets import LiveDashboard

NOW = pd.Timestamp("2026-11-02 10:00", tz="UTC")


class FakeCapture:
    """The snapshot attributes of recstats.Capture, over a fixed calls table at NOW."""

    def __init__(self, calls: pd.DataFrame, now: pd.Timestamp = NOW):
        self.set(calls, now)

    def set(self, calls: pd.DataFrame, now: pd.Timestamp) -> None:
        seen = calls[calls["start_time"] <= now].copy()
        running = seen["end_time"] > now
        seen.loc[running, "end_time"] = pd.NaT             # not ended yet at NOW
        seen.loc[running, "duration"] = np.nan
        self.calls = seen.reset_index(drop=True)
        self.ongoing = self.calls[self.calls["end_time"].isna()].reset_index(drop=True)
        # the last event seen: the latest start or end before `now`
        self.latest = max(self.calls["start_time"].max(), self.calls["end_time"].max()) \
            if len(self.calls) else None
        self.status = pd.DataFrame({
            "server": ["127.0.0.1:1", "127.0.0.1:2"], "connected": [True, False],
            "since": [now - pd.Timedelta("1h"), pd.NaT], "last_keepalive": [now, pd.NaT],
            "reconnects": [0, 3], "events": [2 * len(self.calls), 17],
            "last_error": [None, "connection refused <x>"]})


@pytest.fixture(scope="module")
def calls():
    rows = (generate_calls("2026-11-02 08:30", 5400, rate=0.2, location="NY", rng=11)
            + generate_calls("2026-11-02 08:30", 5400, rate=0.1, location="LDN", rng=12))
    frame, _ = calls_from_fields(rows)
    return frame


def _value_at(line, moment: pd.Timestamp) -> float:
    """The steps-post value a line shows at ``moment``."""
    x = np.asarray(line.get_xdata(), dtype="float64")
    at = np.searchsorted(x, mdates.date2num(moment.tz_convert("UTC").tz_localize(None)),
                         side="right") - 1
    return float(line.get_ydata()[at]) if at >= 0 else 0.0


def _brute_force(calls: pd.DataFrame, moment, site=None):
    """Calls in progress at ``moment`` (one time or many) over [start, end), by broadcasting.

    Ongoing calls (no end) are open-ended.
    """
    if site is not None:
        calls = calls[calls["site"] == site]
    start = calls["start_time"].to_numpy(dtype="datetime64[us]")
    end = calls["end_time"].to_numpy(dtype="datetime64[us]")
    end = np.where(np.isnat(end), np.datetime64("9999-01-01", "us"), end)
    at = np.atleast_1d(pd.DatetimeIndex(np.atleast_1d(moment)).tz_convert("UTC")
                       .tz_localize(None).as_unit("us").to_numpy())
    counts = ((start[None, :] <= at[:, None]) & (at[:, None] < end[None, :])).sum(axis=1)
    return int(counts[0]) if np.ndim(moment) == 0 and not isinstance(moment, list) else counts


def test_refresh_counters_show_the_capture_numbers(calls):
    capture = FakeCapture(calls)
    dash = LiveDashboard(capture, span="30min")
    assert dash.refresh() is True
    ended = int(capture.calls["end_time"].notna().sum())
    assert dash.counts == {"servers": 2, "connected": 1, "ongoing": len(capture.ongoing),
                           "ended": ended, "events": 2 * len(capture.calls) + 17,
                           "reconnects": 3}
    # the status line of `recstats capture`, counted from the same snapshot
    assert f"events {2 * len(capture.calls) + 17:,} | 1/2 servers connected" in \
        dash.counters_html.value
    assert f"{len(capture.ongoing):,} ongoing, {ended:,} ended" in dash.counters_html.value
    assert "connection refused &lt;x&gt;" in dash.status_html.value      # escaped
    assert dash.status_html.value.count('title="disconnected"') == 1
    assert dash.image.value[:8] == b"\x89PNG\r\n\x1a\n"


def test_counters_chart_and_table_come_from_one_snapshot(calls):
    # a live capture moves on between two reads: a call that starts after `.calls` was
    # read must not show in the counters while the chart and "ended" miss it
    capture = FakeCapture(calls)
    late = calls[calls["start_time"] > NOW].head(1).assign(end_time=pd.NaT, duration=np.nan)
    capture.ongoing = pd.concat([capture.ongoing, late], ignore_index=True)  # read later
    dash = LiveDashboard(capture, span="30min")
    dash.refresh()
    running = int(capture.calls["end_time"].isna().sum())
    assert dash.counts["ongoing"] == running == dash.lines["total"].get_ydata()[-1]
    assert dash.counts["ongoing"] + dash.counts["ended"] == len(capture.calls)
    assert f"Ongoing calls: {running:,}" in dash.table_html.value
    # a call that ended while the capture was away (end unknown) is not in progress
    lost = capture.calls["end_time"].isna().to_numpy() & (
        capture.calls.index == capture.calls["end_time"].isna().to_numpy().argmax())
    capture.calls = capture.calls.assign(end_unknown=lost)
    dash.refresh()
    assert dash.counts["ongoing"] == running - 1 == dash.lines["total"].get_ydata()[-1]


def test_chart_lines_carry_the_concurrency(calls):
    capture = FakeCapture(calls)
    dash = LiveDashboard(capture, span="30min")
    dash.refresh()
    now = capture.latest
    assert dash.now == now and now <= NOW < now + pd.Timedelta("1min")
    assert set(dash.lines) == {"NY", "LDN", "total"}
    left, right = dash.ax.get_xlim()
    assert right == pytest.approx(mdates.date2num(now.tz_localize(None)))
    assert right - left == pytest.approx(30 / 1440)
    for minute in (0.01, 1, 7.5, 13.2, 22, 29.9):
        moment = now - pd.Timedelta(minutes=minute)
        expected = _brute_force(capture.calls, moment)
        assert _value_at(dash.lines["total"], moment) == expected
        for site in ("NY", "LDN"):
            assert _value_at(dash.lines[site], moment) == \
                _brute_force(capture.calls, moment, site)
    # at the right edge the line holds the number of ongoing calls
    assert dash.lines["total"].get_ydata()[-1] == len(capture.ongoing)


def test_window_scrolls_with_the_data(calls):
    capture = FakeCapture(calls)
    dash = LiveDashboard(capture, span="10min")
    dash.refresh()
    later = NOW + pd.Timedelta("20min")
    capture.set(calls, later)
    dash.refresh()
    assert dash.now == capture.latest > NOW
    moment = capture.latest - pd.Timedelta("3min")
    assert _value_at(dash.lines["total"], moment) == _brute_force(capture.calls, moment)
    assert dash.ax.get_xlim()[1] == pytest.approx(
        mdates.date2num(capture.latest.tz_localize(None)))


def test_filter_box_restricts_the_table(calls):
    capture = FakeCapture(calls)
    dash = LiveDashboard(capture, max_rows=1000)
    dash.refresh()
    assert len(dash.table) == len(capture.ongoing)
    extension = capture.ongoing["caller"].value_counts().index[0]
    dash.filter.value = extension            # the observer re-renders at once
    expected = sum(extension in str(a) or extension in str(b)
                   for a, b in zip(capture.ongoing["caller"], capture.ongoing["callee"]))
    assert 0 < len(dash.table) == expected < len(capture.ongoing)
    assert all(extension in f"{a} {b}" for a, b in zip(dash.table["caller"],
                                                       dash.table["callee"]))
    assert f"Ongoing calls: {expected:,} matching" in dash.table_html.value
    dash.filter.value = ""
    assert len(dash.table) == len(capture.ongoing)


def test_table_is_capped_newest_first(calls):
    capture = FakeCapture(calls)
    dash = LiveDashboard(capture, max_rows=5)
    dash.refresh()
    newest = capture.ongoing.sort_values("start_time", ascending=False).head(5)
    assert dash.table["start_time"].tolist() == newest["start_time"].tolist()
    assert "newest 5 shown" in dash.table_html.value


def test_top_extensions_count_calls_in_the_window(calls):
    capture = FakeCapture(calls)
    dash = LiveDashboard(capture, span="15min", top=3)
    dash.refresh()
    begin = capture.latest - pd.Timedelta("15min")
    c = capture.calls
    inside = c[ (c["end_time"].isna() | (c["end_time"] > begin))]
    counts: dict[tuple[str, str], int] = {}
    for site, a, b in zip(inside["site"], inside["caller"], inside["callee"], strict=True):
        # extensions as extension_stats counts them: 1-6 digits, once per call, and
        # each site's apart (two sites here)
        for ext in {a, b}:
            if isinstance(ext, str) and ext.isdigit() and len(ext) <= 6:
                counts[(site, ext)] = counts.get((site, ext), 0) + 1
    best = sorted(counts.values(), reverse=True)[:3]
    assert dash.top_extensions.tolist() == best
    for key, n in dash.top_extensions.items():
        assert counts[key] == n
    assert "<th>site</th><th>extension</th>" in dash.top_html.value


def test_top_extensions_leave_out_outside_numbers_and_count_a_call_once():
    t = NOW - pd.Timedelta("5min")
    rows = [{"call_id": str(i), "site": "NY", "caller": a, "callee": b, "start_time": t}
            for i, (a, b) in enumerate(
                [("+3612345678", "1001"), ("+3612345678", "1002"), ("+3612345678", "1001"),
                 ("1003", "1003"), ("1003", "1002")])]
    frame = pd.DataFrame(rows).assign(end_time=pd.Series([pd.NaT] * 5,
                                                         dtype="datetime64[us, UTC]"))
    capture = FakeCapture(frame.assign(duration=np.nan))
    dash = LiveDashboard(capture, span="15min", top=5)
    dash.refresh()
    assert dash.top_extensions.to_dict() == {"1001": 2, "1002": 2, "1003": 2}
    assert "+3612345678" not in dash.top_html.value


def test_pause_stops_updates_and_resume_catches_up(calls):
    capture = FakeCapture(calls)
    dash = LiveDashboard(capture)
    dash.refresh()
    before = (dict(dash.counts), dash.image.value, dash.refreshes)
    dash.pause.value = True
    assert dash.paused and dash.pause.description == "Resume"
    capture.set(calls, NOW + pd.Timedelta("10min"))
    assert dash.refresh() is False
    assert (dash.counts, dash.image.value, dash.refreshes) == before
    dash.pause.value = False                 # resuming redraws at once
    assert dash.refreshes == before[2] + 1
    assert dash.counts["ongoing"] == len(capture.ongoing)
    assert dash.now == capture.latest


def test_chart_is_rendered_again_only_when_something_changed(calls):
    capture = FakeCapture(calls)
    dash = LiveDashboard(capture)
    dash.refresh()
    image = dash.image.value
    dash.refresh()
    assert (dash.refreshes, dash.redraws) == (2, 1) and dash.image.value is image
    ended = capture.calls["end_time"].notna()
    capture.calls = capture.calls.assign(end_time=capture.calls["end_time"].where(
        ended, capture.latest))                 # the ongoing calls end, nothing is added
    dash.refresh()
    assert dash.redraws == 2 and dash.lines["total"].get_ydata()[-1] == 0


def test_empty_capture_and_a_given_clock():
    empty, _ = calls_from_fields([])
    capture = FakeCapture(empty)
    fixed = pd.Timestamp("2026-01-01 12:00", tz="UTC")
    dash = LiveDashboard(capture, clock=lambda: fixed)
    dash.refresh()
    assert dash.now == fixed
    assert dash.counts["ongoing"] == 0 and len(dash.table) == 0
    assert len(dash.lines["total"].get_xdata()) == 0


def test_start_without_a_loop_degrades_to_manual_refresh(calls):
    dash = LiveDashboard(FakeCapture(calls))
    assert dash.start() is dash and not dash.running
    assert dash.refreshes == 0


def test_start_refreshes_from_the_running_loop_until_stopped(calls):
    capture = FakeCapture(calls)
    dash = LiveDashboard(capture, refresh=0.05)

    async def session():
        assert dash.start() is dash and dash.running
        deadline = asyncio.get_running_loop().time() + 30  # a loaded machine draws slowly
        while dash.refreshes < 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        dash.stop()
        counted = dash.refreshes
        await asyncio.sleep(0.2)
        return counted

    counted = asyncio.run(session())
    assert counted >= 3
    assert dash.refreshes == counted and not dash.running


def test_timer_survives_a_failing_snapshot(calls):
    class Broken(FakeCapture):
        @property
        def status(self):
            raise RuntimeError("boom")

        @status.setter
        def status(self, value):
            pass

    dash = LiveDashboard(Broken(calls), refresh=0.05)

    async def session():
        dash.start()
        await asyncio.sleep(0.2)
        dash.stop()

    asyncio.run(session())
    assert dash.last_error == "RuntimeError: boom"
    assert "boom" in dash.error_html.value


def test_resume_with_a_failing_snapshot_shows_the_error_instead_of_raising(calls):
    capture = FakeCapture(calls)
    dash = LiveDashboard(capture)
    dash.pause.value = True
    capture.status = None                      # the next refresh fails on it
    dash.pause.value = False                   # resume: refreshes from a widget callback
    assert dash.last_error is not None and dash.last_error.startswith("TypeError")
    assert "TypeError" in dash.error_html.value and dash.pause.description == "Pause"


def test_snapshot_is_a_static_copy(calls):
    dash = LiveDashboard(FakeCapture(calls), span="20min")
    dash.refresh()
    fig = dash.snapshot()
    assert isinstance(fig, Figure)
    copied = {line.get_gid(): line for line in fig.axes[0].lines}
    assert set(copied) == set(dash.lines)
    np.testing.assert_array_equal(copied["total"].get_ydata(),
                                  dash.lines["total"].get_ydata())
    assert fig.axes[0].get_xlim() == dash.ax.get_xlim()


def test_display_hooks_expose_the_widget(calls):
    dash = LiveDashboard(FakeCapture(calls))
    bundle = dash._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    with pytest.raises(ValueError):
        LiveDashboard(FakeCapture(calls), refresh=0)


def test_envelope_keeps_each_columns_extremes_and_final_value():
    from recstats._dashboard import envelope

    rng = np.random.default_rng(5)
    x = np.sort(rng.choice(np.arange(-50_000, 1_000_000), 4000, replace=False))
    y = rng.integers(0, 40, len(x)).astype("float64")
    lo, hi, bins = 0, 900_000, 60
    ex, ey = envelope(x, y, lo, hi, bins)
    assert ex[-1] == hi and len(ex) == 3 * bins + 1

    def exact(t):                                   # steps-post value at t
        i = np.searchsorted(x, t, side="right") - 1
        return y[i] if i >= 0 else 0.0

    width = (hi - lo) / bins
    for k in range(bins):
        s, e = lo + k * width, lo + (k + 1) * width
        values = [exact(s)] + [y[i] for i in range(len(x)) if s < x[i] < e]
        high, low, last = ey[3 * k: 3 * k + 3]
        assert (high, low) == (max(values), min(values))
        assert last == (exact(hi) if k == bins - 1 else exact(np.nextafter(e, -np.inf)))
    assert ey[-1] == exact(hi)


def test_many_calls_are_drawn_as_an_envelope_with_the_true_peak(calls):
    capture = FakeCapture(calls)
    dash = LiveDashboard(capture, span="1h", max_points=50)
    dash.refresh()
    line = dash.lines["total"]
    assert len(line.get_xdata()) == 3 * dash.pixels + 1
    begin = capture.latest - pd.Timedelta("1h")
    changes = pd.concat([capture.calls["start_time"], capture.calls["end_time"]]).dropna()
    changes = changes[(changes >= begin) & (changes <= capture.latest)]
    peak = _brute_force(capture.calls, list(changes)).max()
    assert line.get_ydata().max() == peak
    assert line.get_ydata()[-1] == len(capture.ongoing)


@pytest.mark.timeout(60)
def test_dashboard_over_a_real_simulator_and_capture():
    import time

    from recstats.capture import Capture
    from recstats.sim import RecorderSimulator

    with RecorderSimulator(location="SIM", rate=2, speed=60, seed=4, keepalive=0) as sim, \
            Capture([sim.address]) as capture:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(capture.calls) < 30:
            time.sleep(0.1)
        sim.pause()                                 # freeze the server: snapshots settle
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and set(capture.ongoing["call_id"]) != {
                c["id"] for c in sim.ongoing}:
            time.sleep(0.05)
        # max_rows above any plausible count: the table must list every ongoing call
        dash = LiveDashboard(capture, span="10min", max_rows=100_000)
        dash.refresh()
        truth = sim.truth
    assert len(capture.calls) >= 30
    ongoing = capture.ongoing
    assert dash.counts["ongoing"] == len(ongoing) == int(truth["end_time"].isna().sum())
    assert dash.counts["ended"] == int(capture.calls["end_time"].notna().sum())
    assert dash.counts["connected"] == 1
    assert set(dash.lines) == {"SIM", "total"}
    assert dash.lines["total"].get_ydata()[-1] == len(ongoing)
    assert sorted(dash.table["start_time"]) == sorted(ongoing["start_time"])
    assert "<td>SIM</td>" in dash.status_html.value          # the site of the server
    assert "None" not in dash.status_html.value and "nan" not in dash.status_html.value


@pytest.mark.parametrize("span", [900, 15.0, "abc", "0s", "-5min", None])
def test_span_without_a_unit_or_not_positive_is_a_clear_error(calls, span):
    # 900 used to become 900 nanoseconds (pandas' unit for bare numbers): an empty chart
    with pytest.raises(ValueError, match="span must be a positive length with a unit"):
        LiveDashboard(FakeCapture(calls), span=span)
    assert LiveDashboard(FakeCapture(calls), span="15min").span == pd.Timedelta(minutes=15)


def test_settings_are_keyword_only_and_tz_is_checked(calls):
    with pytest.raises(TypeError):
        LiveDashboard(FakeCapture(calls), "15min")
    with pytest.raises(ValueError, match="Europe/Budapets"):
        LiveDashboard(FakeCapture(calls), tz="Europe/Budapets")


def test_status_line_counts_each_sites_calls_from_the_snapshot(calls):
    capture = FakeCapture(calls)
    capture.status = capture.status.assign(site=["NY", "LDN"])
    dash = LiveDashboard(capture, span="30min")
    dash.refresh()
    ongoing = capture.calls[capture.calls["end_time"].isna()]
    ny, ldn = (int((ongoing["site"] == s).sum()) for s in ("NY", "LDN"))
    assert ny and ldn
    assert f"LDN: {ldn} ongoing, NY: {ny} ongoing" in dash.counters_html.value
