"""Matplotlib figures of what :mod:`recstats.stats` computes.

Every function takes a calls table, computes its figures with :mod:`recstats.stats`
(never on its own), draws them and returns the :class:`~matplotlib.figure.Figure`.
Pass ``ax=`` to draw on an existing Axes (the Figure it belongs to is returned);
otherwise a new Figure is made with the object-oriented API, so nothing depends on a
GUI backend or on pyplot's global figure list (no figure leaks in loops or tests).

Artists carry a ``gid`` naming what they show (``"exact"``, ``"peak"``, ...) so code
and tests can find them again.

>>> import pandas as pd
>>> from recstats import coerce_calls
>>> calls = coerce_calls(pd.DataFrame({
...     "call_id": ["a", "b"], "site": ["NY", "NY"],
...     "start_time": ["2026-11-02 09:00", "2026-11-02 09:10"],
...     "end_time": ["2026-11-02 09:20", "2026-11-02 09:30"]}))
>>> fig = plot_concurrency(calls)
>>> fig.axes[0].get_title()
'Concurrent calls'
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from . import stats

__all__ = ["plot_capacity", "plot_concurrency", "plot_extensions", "plot_traffic_heatmap"]

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

#: extension_stats column -> axis label with its unit
_EXTENSION_UNITS = {
    "calls": "calls", "inbound": "inbound calls", "outbound": "outbound calls",
    "internal": "internal calls", "total_duration": "total duration (s)",
    "mean_duration": "mean duration (s)", "median_duration": "median duration (s)",
    "p90_duration": "90th percentile duration (s)", "traffic": "traffic (erlangs)",
    "peak_concurrent": "peak concurrent calls",
}


# --------------------------------------------------------------------------- helpers


def _figure_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is None:
        fig = Figure(figsize=figsize, layout="constrained")
        return fig, fig.add_subplot()
    return ax.get_figure(root=True), ax


def _utc_values(times: pd.Series | pd.Index) -> np.ndarray:
    """UTC instants as naive ``datetime64[us]``, the form matplotlib reads as UTC.

    tz-aware pandas values would reach matplotlib as an object array of Timestamps,
    which is slow and depends on pandas' optional converters.
    """
    index = pd.DatetimeIndex(times)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.as_unit("us").to_numpy()


def _format_moment(moment: Any, tz: str) -> str:
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    local = stamp.tz_convert(tz)
    text = local.strftime("%Y-%m-%d %H:%M:%S")
    return f"{text} {tz}"


def _time_axis(ax: Axes, tz: str) -> None:
    locator = mdates.AutoDateLocator(tz=tz)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=tz))


def _no_data(ax: Axes, text: str = "no calls") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center",
            color="0.4", gid="no-data")


def _exact_groups(frame: pd.DataFrame, by: str | None) -> Iterator[tuple[Any, pd.DataFrame]]:
    if by is None:
        yield None, frame
        return
    yield from frame.groupby(by, observed=True, sort=True)


def _binned_groups(frame: pd.DataFrame, by: str | None) -> Iterator[tuple[Any, pd.DataFrame]]:
    if by is None:
        yield None, frame
        return
    for group, part in frame.groupby(level=0, observed=True, sort=True):
        yield group, part.droplevel(0)


def _percent(blocking: float) -> str:
    return f"{blocking * 100:g}%"


# --------------------------------------------------------------------------- concurrency


def plot_concurrency(calls: pd.DataFrame, freq: str | None = "15min", by: str | None = None,
                     tz: str = "UTC", ax: Axes | None = None, exact: bool = True, *,
                     until: Any = None) -> Figure:
    """Concurrent calls over time: the exact step curve and/or per-bin peak and mean.

    * ``exact=True`` draws :func:`recstats.stats.concurrency` ``(calls, by=by)`` as a
      step curve (``drawstyle="steps-post"``: each value holds from its time until the
      next row's), gid ``"exact"``.
    * ``freq`` (e.g. ``"15min"``) adds that bin size's summaries from
      ``concurrency(calls, freq=freq, by=by)``: the bin peak (dotted, gid ``"bin-peak"``)
      and the bin's time-weighted mean (dashed, gid ``"bin-mean"``), which is the carried
      traffic in erlangs. Each bin's value holds from its start to the next bin's; one
      point is appended at the last bin's end so the last bin shows its width.
      ``freq=None`` leaves them out.
    * ``by`` (e.g. ``"site"``) draws one set of lines per group, one colour per group.
    * ``until``: where ongoing calls (no ``end_time``) stop counting, as in
      :func:`recstats.stats.concurrency` (default: now, or the table's latest time if
      later).

    The highest point drawn (the exact peak if drawn, else the highest bin peak) is
    marked and annotated with its value and time (gid ``"peak"``). The time axis is
    labelled in zone ``tz``; the data stay UTC.

    >>> fig = plot_concurrency(calls, freq=None, by="site")  # doctest: +SKIP
    >>> fig.savefig("concurrency.png")  # doctest: +SKIP
    """
    if not exact and freq is None:
        raise ValueError("nothing to draw: pass exact=True or a freq such as '15min'")
    fig, ax = _figure_axes(ax, (10, 4))
    peak: tuple[float, Any, Any] | None = None  # (value, UTC time, group)
    colours: dict[Any, str] = {}

    def colour(group: Any) -> str:
        return colours.setdefault(group, f"C{len(colours) % 10}")

    def name(group: Any, what: str) -> str:
        return what if group is None else f"{group}: {what}"

    if exact:
        frame = stats.concurrency(calls, by=by, until=until)
        for group, part in _exact_groups(frame, by):
            if part.empty:
                continue
            x = _utc_values(part["time"])
            y = part["concurrent"].to_numpy()
            # lighter under bin summaries, which would otherwise drown in a long curve
            ax.plot(x, y, drawstyle="steps-post", color=colour(group), linewidth=1.0,
                    alpha=1.0 if freq is None else 0.5,
                    label=name(group, "calls in progress"), gid="exact")
            at = int(np.argmax(y))
            if peak is None or y[at] > peak[0]:
                peak = (y[at], x[at], group)
    if freq is not None:
        binned = stats.concurrency(calls, freq=freq, by=by, until=until)
        step = pd.tseries.frequencies.to_offset(freq)
        for group, part in _binned_groups(binned, by):
            if part.empty:
                continue
            starts = pd.DatetimeIndex(part.index)
            x = _utc_values(starts.append(pd.DatetimeIndex([starts[-1] + step])))
            peaks = part["peak"].to_numpy()
            means = part["mean"].to_numpy()
            ax.plot(x, np.append(peaks, peaks[-1]), drawstyle="steps-post", linestyle=":",
                    color=colour(group), label=name(group, f"peak per {freq}"), gid="bin-peak")
            ax.plot(x, np.append(means, means[-1]), drawstyle="steps-post", linestyle="--",
                    color=colour(group), label=name(group, f"mean per {freq} (erlangs)"),
                    gid="bin-mean")
            if not exact:
                at = int(np.argmax(peaks))
                if peak is None or peaks[at] > peak[0]:
                    peak = (peaks[at], x[at], group)

    title = "Concurrent calls" if by is None else f"Concurrent calls by {by}"
    ax.set_title(title)
    ax.set_xlabel(f"time ({tz})")
    ax.set_ylabel("calls in progress" if freq is None
                  else "calls in progress (mean = erlangs)")
    _time_axis(ax, tz)
    if peak is None:
        _no_data(ax)
        return fig
    value, moment, group = peak
    where = "" if group is None else f" ({group})"
    what = "peak" if exact else f"highest {freq} bin peak"
    ax.plot([moment], [value], marker="o", linestyle="none", color="k", gid="peak-marker")
    # keep the label inside the axes: write it towards the middle of the time range
    left, right = ax.get_xlim()
    on_right = mdates.date2num(moment) > (left + right) / 2
    ax.annotate(f"{what}{where}: {int(value)} calls\nat {_format_moment(moment, tz)}",
                xy=(mdates.date2num(moment), value), xytext=(-8 if on_right else 8, 8),
                textcoords="offset points", ha="right" if on_right else "left",
                va="bottom", fontsize="small", gid="peak",
                bbox={"boxstyle": "round", "fc": "white", "alpha": 0.8})
    ax.set_ylim(bottom=0, top=max(1.0, float(value)) * 1.3)
    if freq is None:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    # outside the axes: "best" placement would scan every vertex of a long step curve
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return fig


# --------------------------------------------------------------------------- heatmap


def plot_traffic_heatmap(calls: pd.DataFrame, tz: str = "UTC", ax: Axes | None = None, *,
                         until: Any = None) -> Figure:
    """Weekday x hour heatmap of :func:`recstats.stats.traffic_profile` (mean erlangs).

    Rows are Monday..Sunday, columns the hours 0..23 of the day in zone ``tz``; the
    colour bar is in erlangs. Cells never observed are left blank. ``until`` is passed
    on to traffic_profile (where ongoing calls stop counting).

    >>> plot_traffic_heatmap(calls, tz="Europe/Budapest")  # doctest: +SKIP
    """
    fig, ax = _figure_axes(ax, (10, 3.8))
    profile = stats.traffic_profile(calls, tz=tz, until=until)
    values = profile.to_numpy(dtype="float64")
    image = ax.imshow(values, aspect="auto", interpolation="nearest", cmap="viridis",
                      vmin=0, gid="traffic-profile")
    ax.set_xticks(range(profile.shape[1]), labels=[str(h) for h in profile.columns])
    ax.set_yticks(range(profile.shape[0]), labels=[str(d) for d in profile.index])
    ax.tick_params(axis="x", labelsize="small")
    fig.colorbar(image, ax=ax, label="erlangs")
    ax.set_title("Mean traffic by weekday and hour")
    ax.set_xlabel(f"hour of day ({tz})")
    ax.set_ylabel("weekday")
    if not np.isfinite(values).any():
        _no_data(ax)
    return fig


# --------------------------------------------------------------------------- extensions


def plot_extensions(calls: pd.DataFrame, top: int = 10, by: str = "calls",
                    extensions: Any = None, ax: Axes | None = None, *, tz: str = "UTC",
                    until: Any = None) -> Figure:
    """Horizontal bars of the ``top`` extensions by ``by``, largest at the top.

    ``by`` is a column of :func:`recstats.stats.extension_stats`: ``"calls"`` or
    ``"traffic"`` (erlangs) usually, or any other of its numeric columns. Ties keep
    extension_stats' order. ``extensions`` (which numbers are extensions), ``tz`` and
    ``until`` are passed on to extension_stats.
    Each bar is labelled with its value.

    >>> plot_extensions(calls, top=5, by="traffic")  # doctest: +SKIP
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, not {top}")
    fig, ax = _figure_axes(ax, (7, 1.2 + 0.35 * top))
    table = stats.extension_stats(calls, extensions=extensions, tz=tz, until=until)
    numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
    if by not in numeric:
        raise ValueError(f"by must be one of {', '.join(numeric)}; got {by!r}")
    chosen = table[by].sort_values(ascending=False, kind="stable").head(top)
    positions = np.arange(len(chosen))
    bars = ax.barh(positions, chosen.to_numpy(dtype="float64"), color="C0", gid="extensions")
    ax.set_yticks(positions, labels=[str(e) for e in chosen.index])
    ax.invert_yaxis()
    integral = pd.api.types.is_integer_dtype(table[by])
    ax.bar_label(bars, fmt="{:,.0f}" if integral else "{:,.2f}", padding=3, fontsize="small")
    ax.set_title(f"Top {len(chosen)} extensions by {by}")
    ax.set_xlabel(_EXTENSION_UNITS.get(by, by))
    ax.set_ylabel("extension")
    ax.margins(x=0.12)
    if chosen.empty:
        _no_data(ax)
    return fig


# --------------------------------------------------------------------------- capacity


def plot_capacity(calls: pd.DataFrame | None = None,
                  blocking: Sequence[float] = (0.001, 0.01, 0.05),
                  traffic: float | None = None, peak: float | None = None,
                  ax: Axes | None = None, tz: str = "UTC", *, until: Any = None) -> Figure:
    """Erlang B: channels needed against offered traffic, one curve per blocking target.

    Each curve is :func:`recstats.stats.channels_for` ``(x, b)`` sampled on an even grid
    of offered traffic ``x`` in erlangs (gid ``"capacity"``). Marked on top:

    * the busy-hour traffic (vertical line, gid ``"busy-hour-traffic"``) with the
      channels each target needs for it;
    * the observed peak concurrency (horizontal line, gid ``"observed-peak"``).

    Both come from :func:`recstats.stats.capacity_table` ``(calls, blocking, tz)`` (its
    ``"all"`` row; ``until`` is passed on) or are given as ``traffic`` / ``peak``, which
    win over ``calls``.

    >>> fig = plot_capacity(traffic=12.5, peak=19)
    >>> [line.get_label() for line in fig.axes[0].lines][:3]
    ['blocking 0.1%', 'blocking 1%', 'blocking 5%']
    """
    targets = [float(b) for b in blocking]
    if not targets or not all(0.0 < b < 1.0 for b in targets):
        raise ValueError(f"blocking targets must be probabilities in (0, 1); got {blocking!r}")
    fig, ax = _figure_axes(ax, (8, 5))
    busy_hour = None
    if calls is not None and (traffic is None or peak is None) and len(calls):
        table = stats.capacity_table(calls, blocking=tuple(targets), tz=tz, until=until)
        row = table.loc["all"] if "all" in table.index else table.iloc[-1]
        if traffic is None:
            traffic = float(row["busy_hour_traffic"])
            busy_hour = row.get("busy_hour")
        if peak is None:
            peak = float(row["observed_peak"])
    traffic = None if traffic is None or not np.isfinite(traffic) else float(traffic)
    peak = None if peak is None or not np.isfinite(peak) else float(peak)

    xmax = max(5.0, 1.5 * (traffic or 0.0), 1.2 * (peak or 0.0))
    grid = np.linspace(0.0, xmax, 601)
    for i, target in enumerate(targets):
        channels = np.asarray(stats.channels_for(grid, target), dtype="float64")
        # steps-pre: between two samples draw the later (higher) need, never under-sizing
        ax.plot(grid, channels, drawstyle="steps-pre", color=f"C{i % 10}",
                label=f"blocking {_percent(target)}", gid="capacity")
    if traffic is not None:
        when = ""
        if busy_hour is not None and pd.notna(busy_hour):
            when = f", busy hour {int(busy_hour):02d}:00 {tz}"
        ax.axvline(traffic, color="0.25", linestyle="--", gid="busy-hour-traffic",
                   label=f"busy-hour traffic {traffic:.2f} E{when}")
        for i, target in enumerate(targets):
            need = float(np.asarray(stats.channels_for(traffic, target)))
            ax.plot([traffic], [need], marker="o", color=f"C{i % 10}", linestyle="none",
                    gid="busy-hour-need")
            ax.annotate(f"{need:.0f}", xy=(traffic, need), xytext=(5, -10),
                        textcoords="offset points", fontsize="small", color=f"C{i % 10}")
    if peak is not None:
        ax.axhline(peak, color="k", linestyle=":", gid="observed-peak",
                   label=f"observed peak {peak:.0f} concurrent calls")
    ax.set_xlim(0, xmax)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Erlang B: channels needed for the offered traffic")
    ax.set_xlabel("offered traffic (erlangs)")
    ax.set_ylabel("channels")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    return fig
