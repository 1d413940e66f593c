"""A live dashboard over a :class:`recstats.Capture`, made of ipywidgets.

The capture's threads only fill buffers; every widget update happens in
:meth:`LiveDashboard.refresh`, called on the kernel's main thread, either directly or
by the periodic timer :meth:`LiveDashboard.start` puts on the kernel's running asyncio
loop (JupyterLab, Notebook, VS Code and headless kernels all run one). Where no loop
runs (a plain script), call ``refresh()`` yourself.

The chart is a matplotlib Figure drawn off-screen and shown as a PNG
(``ipywidgets.Image``): no GUI backend and no front-end extension beyond ipywidgets,
so it renders the same in JupyterLab and in headless notebook runs. Each refresh moves
the existing lines' data instead of re-plotting.
"""

from __future__ import annotations

import asyncio
import html
import io
import time
from collections.abc import Callable
from typing import Any, Self

import ipywidgets as widgets
import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from . import stats
from ._dashboard import (
    clock_time,
    envelope,
    latest_time,
    micro,
    micros,
    naive_utc,
    ongoing_calls,
    snapshot_status,
    span_text,
    status_table,
    top_extensions,
)
from ._time import check_tz
from .capture import status_line

__all__ = ["LiveDashboard"]

_TOTAL = "total"
_US_PER_DAY = 86_400_000_000
_STYLE = ("<style>.rs-dash table{border-collapse:collapse;font-size:12px}"
          ".rs-dash td,.rs-dash th{padding:1px 6px;border-bottom:1px solid #eee;"
          "text-align:left}.rs-dash th{background:#f4f4f4}</style>")


class LiveDashboard:
    """Live concurrent calls per site, ongoing calls, top extensions and site status.

    Parameters
    ----------
    capture : recstats.Capture
        Or any object with the same snapshot attributes ``calls`` and ``status``. The
        ongoing calls (:func:`recstats.stats.ongoing_mask`) are those of the ``calls``
        snapshot, so status line, chart and table always show the same moment.
    span : str or pandas.Timedelta, default "1h"
        How much time the chart shows, ending at "now" (a length with a unit).
    refresh : float, default 1.0
        Seconds between automatic updates after :meth:`start` [s].
    tz : str, default "UTC"
        Zone the times are shown in.
    top : int, default 5
        Extensions in the top list.
    max_rows : int, default 50
        Ongoing calls shown in the table.
    clock : callable, optional
        Returns "now"; see below.
    max_points : int, default 5000
        Steps above which a line is drawn as its per-pixel envelope.

    Notes
    -----
    The line above the chart is the capture's status line (the one ``recstats capture``
    prints): events, calls in progress per site, servers connected; then calls ended.

    "Now" is ``clock()`` when a clock is given, otherwise the latest start or end time
    the capture has seen, so the window follows a server whose clock runs fast or
    slow (the simulator at ``speed=60``) just as well as a real one.

    The chart is the exact step function of calls in progress
    (:func:`recstats.stats.concurrency`, calls counting over ``[start, end)``), one
    line per site plus the total. The ongoing-calls table shows at most ``max_rows``
    calls, newest first; the filter box keeps calls whose caller or callee contains
    its text. While the Pause button is down, :meth:`refresh` changes nothing. A line
    with more than ``max_points`` steps in the window is drawn as its per-pixel
    envelope (maximum, minimum and final value of each pixel column), which looks the
    same and keeps a redraw fast with tens of thousands of calls.

    >>> import recstats as rs                                       # doctest: +SKIP
    >>> with rs.Capture([("127.0.0.1", 10300)]) as capture:          # doctest: +SKIP
    ...     dash = rs.LiveDashboard(capture, span="30min")
    ...     dash.start()        # refreshes every second from the kernel's event loop
    ...     dash                # displays the widgets
    """

    def __init__(self, capture: Any, *, span: str | pd.Timedelta = "1h", refresh: float = 1.0,
                 tz: str = "UTC", top: int = 5, max_rows: int = 50,
                 clock: Callable[[], pd.Timestamp] | None = None, max_points: int = 5000):
        if refresh <= 0:
            raise ValueError(f"refresh must be a positive number of seconds, not {refresh}")
        check_tz(tz)
        self.capture = capture
        length = None
        try:  # a bare number would be nanoseconds to pandas: ask for a unit instead
            length = None if isinstance(span, (int, float)) else pd.Timedelta(span)
        except ValueError:
            pass
        if length is None or pd.isna(length) or length <= pd.Timedelta(0):
            raise ValueError(f"span must be a positive length with a unit, e.g. '15min', "
                             f"not {span!r}")
        self.span: pd.Timedelta = length
        self.interval = float(refresh)
        self.tz = tz
        self.top = int(top)
        self.max_rows = int(max_rows)
        self.clock = clock
        #: what the last refresh showed (tests and notebooks read these)
        self.counts: dict[str, int] = {}
        self.now: pd.Timestamp | None = None
        self.table = pd.DataFrame()
        self.top_extensions = pd.Series(dtype="int64")
        self.refreshes = 0
        self.redraws = 0  # refreshes that re-rendered the chart
        self._chart_key: tuple | None = None
        self.last_error: str | None = None
        self._handle: asyncio.Handle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ongoing = pd.DataFrame()

        # fixed margins: a layout engine would cost more than the whole rest of a redraw
        self.figure = Figure(figsize=(9, 3), dpi=80)
        self.figure.subplots_adjust(left=0.07, right=0.985, bottom=0.16, top=0.9)
        FigureCanvasAgg(self.figure)
        self.ax = self.figure.add_subplot()
        #: lines with more vertices than this are drawn as a per-pixel envelope
        self.max_points = int(max_points)
        self.pixels = int(self.figure.get_figwidth() * self.figure.dpi * 0.915)
        # matplotlib's date number of 1970-01-01 (0 unless the user moved the epoch)
        self._day0 = float(mdates.date2num(np.datetime64("1970-01-01T00:00:00")))
        self.ax.set_ylabel("calls in progress")
        self.ax.set_xlabel(f"time ({tz})")
        self.ax.grid(True, alpha=0.3)
        locator = mdates.AutoDateLocator(tz=tz)
        self.ax.xaxis.set_major_locator(locator)
        self.ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=tz))
        self.lines: dict[str, Any] = {}

        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.status_html = widgets.HTML()
        self.counters_html = widgets.HTML()
        self.table_html = widgets.HTML(layout=widgets.Layout(flex="3 1 0%"))
        self.top_html = widgets.HTML(layout=widgets.Layout(flex="1 1 0%"))
        self.error_html = widgets.HTML()
        self.filter = widgets.Text(placeholder="extension, e.g. 1001",
                                   description="Filter:", continuous_update=True)
        self.pause = widgets.ToggleButton(value=False, description="Pause", icon="pause",
                                          tooltip="stop updating the dashboard")
        self.filter.observe(self._on_filter, names="value")
        self.pause.observe(self._on_pause, names="value")
        self.widget = widgets.VBox(
            [widgets.HTML(_STYLE), widgets.HBox([self.filter, self.pause, self.counters_html]),
             self.status_html, self.image,
             widgets.HBox([self.table_html, self.top_html]), self.error_html],
            layout=widgets.Layout(width="100%"))
        self.widget.add_class("rs-dash")

    # ------------------------------------------------------------------ display

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)

    # ------------------------------------------------------------------ state

    @property
    def paused(self) -> bool:
        """True while the Pause button is down (refresh() then changes nothing)."""
        return bool(self.pause.value)

    @property
    def running(self) -> bool:
        """True while the periodic refresh started by :meth:`start` is scheduled."""
        return self._handle is not None

    def _on_pause(self, change) -> None:
        self.pause.description = "Resume" if change["new"] else "Pause"
        self.pause.icon = "play" if change["new"] else "pause"
        if not change["new"]:
            self._refresh_safely()  # a widget callback: an exception would only be logged

    def _on_filter(self, change) -> None:
        if not self.paused:
            self._render_table()

    # ------------------------------------------------------------------ refresh

    def refresh(self, force: bool = False) -> bool:
        """Redraw everything from the capture's current snapshots, on the calling thread.

        Returns False (and changes nothing) while paused. The chart is rendered again
        only when "now" or the calls changed; ``force=True`` redraws everything, paused
        or not.
        """
        if self.paused and not force:
            return False
        capture = self.capture
        calls = capture.calls
        # from the same snapshot as the chart: a second read (capture.ongoing) would see
        # the events that arrived meanwhile, and the counters would disagree with the chart
        ongoing = ongoing_calls(calls)
        status = capture.status
        now = self.clock() if self.clock is not None else latest_time(calls)
        if now is None:
            now = pd.Timestamp.now(tz="UTC")
        self.now = pd.Timestamp(now)
        self._ongoing = ongoing
        # the chart only changes with "now" or the calls (an end, or an end found to be
        # unknown, changes an existing row: the calls in progress tell both)
        key = (self.now, len(calls), len(ongoing))
        if force or key != self._chart_key:
            self._render_chart(calls, self.now)
            self._chart_key = key
            self.redraws += 1
        self._render_status(status, calls, ongoing)
        self._render_table()
        self._render_top(calls, ongoing, self.now)
        self.refreshes += 1
        return True

    def _window_calls(self, calls: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
        """Calls that overlap ``[now - span, now]``: ended ones and ongoing ones.

        A call without an end that is not ongoing (its end is unknown) is left out.
        """
        if not len(calls):
            return calls
        ongoing = np.asarray(stats.ongoing_mask(calls), dtype=bool)
        ended = calls["end_time"].notna().to_numpy()
        begin = now - self.span
        keep = (calls["start_time"] <= now).to_numpy() & (
            ongoing | (ended & (calls["end_time"] > begin).to_numpy()))
        return calls[keep]

    def _line(self, name: str):
        line = self.lines.get(name)
        if line is None:
            style: dict[str, Any] = {"color": "k", "linewidth": 1.6} if name == _TOTAL else \
                {"linewidth": 1.0, "color": f"C{len(self.lines) % 10}"}
            (line,) = self.ax.plot([], [], drawstyle="steps-post", label=name, gid=name,
                                   **style)
            self.lines[name] = line
            self.ax.legend(loc="upper left", fontsize="small")
        return line

    def _render_chart(self, calls: pd.DataFrame, now: pd.Timestamp) -> None:
        visible = self._window_calls(calls, now)
        lo, hi = micro(now - self.span), micro(now)
        # one microsecond past now, so that a call starting exactly at now is counted
        window = (now - self.span, now + pd.Timedelta(1, "us"))
        total = stats.concurrency(visible, tz=self.tz, window=window) if len(visible) \
            else None
        seen = set()
        if len(visible):
            per_site = stats.concurrency(visible, by="site", tz=self.tz, window=window)
            for site, part in per_site.groupby("site", observed=True, sort=True):
                name = str(site)
                self._set_step(self._line(name), part, lo, hi)
                seen.add(name)
        self._set_step(self._line(_TOTAL), total, lo, hi)
        seen.add(_TOTAL)
        for name, line in self.lines.items():
            if name not in seen:
                line.set_data([], [])
        top = max((float(np.max(line.get_ydata())) for line in self.lines.values()
                   if len(line.get_ydata())), default=0.0)
        self.ax.set_xlim(self._day0 + lo / _US_PER_DAY, self._day0 + hi / _US_PER_DAY)
        self.ax.set_ylim(0, max(1.0, top) * 1.15)
        self.ax.set_title(f"Concurrent calls, last {span_text(self.span)} "
                          f"(now {now.tz_convert(self.tz):%Y-%m-%d %H:%M:%S} {self.tz})",
                          fontsize="medium")
        buffer = io.BytesIO()
        # fast zlib level: the PNG is shown once and replaced within a second
        self.figure.savefig(buffer, format="png", pil_kwargs={"compress_level": 1})
        self.image.value = buffer.getvalue()

    def _set_step(self, line, frame: pd.DataFrame | None, lo: int, hi: int) -> None:
        """Point a steps-post line at an exact concurrency frame, held flat up to ``hi``.

        Times become matplotlib date numbers (float days since 1970) computed here, so
        drawing converts nothing. A line with more than ``max_points`` vertices is cut
        to a per-pixel envelope (:func:`recstats._dashboard.envelope`), which draws the same picture.
        """
        if frame is None or not len(frame):
            line.set_data([], [])
            return
        x = micros(frame["time"])
        y = frame["concurrent"].to_numpy(dtype="float64")
        if x[-1] < hi:  # hold the last value up to "now" so the line reaches the edge
            x = np.append(x, hi)
            y = np.append(y, y[-1])
        elif x[-1] > hi and len(y) > 1:  # ongoing calls "end" at the window's end
            y = y.copy()
            y[-1] = y[-2]
        if len(x) > self.max_points:
            x, y = envelope(x, y, lo, hi, self.pixels)
        line.set_data(self._day0 + x / _US_PER_DAY, y)

    def _render_status(self, status: pd.DataFrame, calls: pd.DataFrame,
                       ongoing: pd.DataFrame) -> None:
        ended = int(calls["end_time"].notna().sum()) if len(calls) else 0
        events = int(status["events"].sum()) if len(status) and "events" in status else 0
        self.counts = {
            "servers": len(status),
            "connected": int(status["connected"].sum()) if len(status) else 0,
            "ongoing": len(ongoing), "ended": ended, "events": events,
            "reconnects": int(status["reconnects"].sum()) if len(status) else 0,
        }
        line = status_line(snapshot_status(status, ongoing))
        self.counters_html.value = (f"<b>{html.escape(line)}</b> · {self.counts['ongoing']:,} "
                                    f"ongoing, {ended:,} ended")
        self.status_html.value = status_table(status, self.tz)

    def _time(self, value) -> str:
        return clock_time(value, self.tz)

    def filtered_ongoing(self) -> pd.DataFrame:
        """The ongoing calls that match the filter box (all of them when it is empty)."""
        ongoing = self._ongoing
        text = self.filter.value.strip()
        if not text or not len(ongoing):
            return ongoing
        keep = np.zeros(len(ongoing), dtype=bool)
        for column in ("caller", "callee"):
            if column in ongoing.columns:
                keep |= ongoing[column].astype("str").str.contains(
                    text, regex=False, na=False).to_numpy()
        return ongoing[keep]

    def _render_table(self) -> None:
        shown = self.filtered_ongoing()
        matching = len(shown)
        if matching:
            order = np.argsort(naive_utc(shown["start_time"]))[::-1][: self.max_rows]
            shown = shown.iloc[order]
        columns = [c for c in ("site", "caller", "callee", "start_time", "direction")
                   if c in shown.columns]
        self.table = shown[columns].reset_index(drop=True) if matching else \
            pd.DataFrame(columns=columns)
        now = self.now
        body = []
        for record in self.table.to_dict("records"):
            start = record.get("start_time")
            held = "" if now is None or pd.isna(start) else \
                f"{max(0.0, (now - start).total_seconds()):,.0f} s"
            cells = [html.escape("" if pd.isna(record.get(c)) else str(record.get(c)))
                     for c in columns if c != "start_time"]
            body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells)
                        + f"<td>{self._time(start)}</td><td>{held}</td></tr>")
        header = "".join(f"<th>{html.escape(c)}</th>" for c in columns if c != "start_time")
        text = self.filter.value.strip()
        caption = (f"Ongoing calls: {matching:,}"
                   + (f" matching “{html.escape(text)}”" if text else "")
                   + (f" (newest {self.max_rows} shown)" if matching > self.max_rows else ""))
        self.table_html.value = (f"<b>{caption}</b><table><tr>{header}<th>started</th>"
                                 f"<th>held</th></tr>{''.join(body)}</table>")

    def _render_top(self, calls: pd.DataFrame, ongoing: pd.DataFrame,
                    now: pd.Timestamp) -> None:
        """Extensions in the most calls that ran inside the span (caller or callee).

        Extensions as :func:`recstats.stats.extension_stats` counts them by default
        (numbers of 1 to 6 digits, not outside ``+...`` numbers), once per call; with
        several sites, each site's extensions apart (``top_extensions`` is then indexed
        by site and extension).
        """
        several, counts = top_extensions(self._window_calls(calls, now))
        self.top_extensions = counts.head(self.top)
        rows = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>"
                             for cell in (tuple(key) if several else (key,)))  # type: ignore[arg-type]
            + f"<td>{n:,}</td></tr>" for key, n in self.top_extensions.items())
        header = "<th>site</th><th>extension</th>" if several else "<th>extension</th>"
        self.top_html.value = (f"<b>Top extensions, last {span_text(self.span)}</b><table>"
                               f"<tr>{header}<th>calls</th></tr>{rows}</table>")

    # ------------------------------------------------------------------ periodic

    def start(self) -> Self:
        """Refresh every ``refresh`` seconds from the running asyncio loop (the kernel's);
        returns ``self``, as ``Capture.start`` and ``RecorderSimulator.start`` do.

        Without a running loop (a plain script) nothing is scheduled and
        :attr:`running` stays False: call :meth:`refresh` yourself.
        """
        if self._handle is not None:
            return self
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return self
        self._loop = loop
        self._handle = loop.call_soon(self._tick)
        return self

    def stop(self) -> None:
        """Stop the periodic refresh (the widgets keep their last state)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _refresh_safely(self) -> None:
        """refresh(), showing a failure in the dashboard instead of raising it."""
        try:
            self.refresh()
            self.last_error = None
            self.error_html.value = ""
        except Exception as exc:  # noqa: BLE001 - a timer must survive a bad snapshot
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.error_html.value = f'<span style="color:#c62828">{html.escape(self.last_error)}'\
                                    "</span>"

    def _tick(self) -> None:
        began = time.monotonic()
        self._refresh_safely()
        if self._handle is not None and self._loop is not None:
            delay = max(0.05, self.interval - (time.monotonic() - began))
            self._handle = self._loop.call_later(delay, self._tick)

    def snapshot(self, *, tz: str | None = None) -> Figure:
        """A static copy of the current chart as a new Figure (e.g. for a report)."""
        tz = tz or self.tz
        fig = Figure(figsize=(9, 3.5), layout="constrained")
        ax = fig.add_subplot()
        for name, line in self.lines.items():
            ax.plot(line.get_xdata(), line.get_ydata(), drawstyle="steps-post",
                    color=line.get_color(), linewidth=line.get_linewidth(), label=name,
                    gid=name)
        ax.set_xlim(self.ax.get_xlim())
        ax.set_ylim(self.ax.get_ylim())
        ax.set_title(self.ax.get_title())
        ax.set_ylabel("calls in progress")
        ax.set_xlabel(f"time ({tz})")
        ax.grid(True, alpha=0.3)
        locator = mdates.AutoDateLocator(tz=tz)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=tz))
        if self.lines:
            ax.legend(loc="upper left", fontsize="small")
        return fig
