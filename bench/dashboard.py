"""How long one LiveDashboard.refresh() takes with 10 000 ongoing calls.

Target: each refresh redraws within 50 ms for 10 000 ongoing calls. Baselines measured
in the same run: re-plotting the same lines on a fresh Figure (what the dashboard
avoids by moving existing lines' data), and the bare PNG encoding of the dashboard's
figure (the floor of any redraw). The capture is a stand-in exposing prebuilt snapshot
tables, so the figure measures the dashboard, not the capture's snapshotting.

Run: ``.venv/bin/python bench/dashboard.py``; the last line is JSON.
"""

from __future__ import annotations

import io
import json
import statistics
import time

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from recstats import stats
from recstats._table import coerce_calls
from recstats.widgets import LiveDashboard

NOW = pd.Timestamp("2026-11-02 12:00", tz="UTC")


def make_capture(ongoing: int = 10_000, ended: int = 20_000, seed: int = 1):
    rng = np.random.default_rng(seed)
    n = ongoing + ended
    start = NOW - pd.to_timedelta(rng.uniform(0, 3600, n), unit="s")
    held = pd.to_timedelta(rng.uniform(1, 3600, n), unit="s")
    end = pd.Series(start + held)
    end[:ongoing] = pd.NaT                                   # the ongoing ones
    ext = rng.integers(1000, 1100, n).astype(str)
    calls = coerce_calls(pd.DataFrame({
        "call_id": [f"c{i}" for i in range(n)],
        "site": rng.choice(["NEW-YORK", "LONDON", "TOKYO"], n),
        "start_time": start, "end_time": end.where(end <= NOW, NOW),
        "caller": ext, "callee": rng.integers(1000, 1100, n).astype(str)}))
    calls.loc[:ongoing - 1, "end_time"] = pd.NaT

    class Capture:
        pass

    capture = Capture()
    capture.calls = calls
    capture.ongoing = calls[calls["end_time"].isna()].reset_index(drop=True)
    capture.status = pd.DataFrame({
        "server": ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"], "connected": [True] * 3,
        "since": [NOW] * 3, "last_keepalive": [NOW] * 3, "reconnects": [0] * 3,
        "events": [n] * 3, "last_error": [None] * 3})
    return capture


def timed(fn, repeat: int) -> float:
    fn()  # warm-up
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - began)
    return statistics.median(samples)


def replot(calls: pd.DataFrame, now: pd.Timestamp) -> bytes:
    """The naive way: a fresh Figure and fresh lines on every update."""
    fig = Figure(figsize=(9, 3), dpi=80, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    frame = stats.concurrency(calls, by="site", until=now)
    for site, part in frame.groupby("site", observed=True):
        ax.plot(part["time"].dt.tz_localize(None).to_numpy(), part["concurrent"].to_numpy(),
                drawstyle="steps-post", label=str(site))
    total = stats.concurrency(calls, until=now)
    ax.plot(total["time"].dt.tz_localize(None).to_numpy(), total["concurrent"].to_numpy(),
            drawstyle="steps-post", color="k", label="total")
    ax.legend(loc="upper left")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def main() -> None:
    capture = make_capture()
    dash = LiveDashboard(capture, window="1h")
    refresh = timed(lambda: dash.refresh(force=True), 15)  # force: a full redraw each time

    def png_only():
        dash.figure.savefig(io.BytesIO(), format="png")

    floor = timed(png_only, 15)
    naive = timed(lambda: replot(capture.calls, dash.now), 10)
    result = {"bench": "dashboard", "ongoing": len(capture.ongoing),
              "calls": len(capture.calls), "refresh_ms": round(refresh * 1e3, 1),
              "png_floor_ms": round(floor * 1e3, 1), "replot_ms": round(naive * 1e3, 1),
              "refresh_over_png_floor": round(refresh / floor, 2),
              "refresh_over_replot": round(refresh / naive, 2),
              "target_ms": 50, "meets_target": refresh <= 0.050}
    print(f"refresh with {len(capture.ongoing):,} ongoing of {len(capture.calls):,} calls: "
          f"{refresh * 1e3:.1f} ms (PNG floor {floor * 1e3:.1f} ms, "
          f"re-plot {naive * 1e3:.1f} ms; target 50 ms)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
