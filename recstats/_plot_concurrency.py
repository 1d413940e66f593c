"""The concurrency chart of :mod:`recstats.plot` (private; import it from there)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from . import stats
from ._plotting import (
    MAX_OVERLAID,
    annotate_peak,
    figure_axes,
    format_moment,
    no_data,
    small_multiples,
    time_axis,
    utc_values,
)

__all__ = ["plot_concurrency"]


@dataclass
class _Series:
    """What one group's lines show, as naive UTC ``datetime64[us]`` x values."""

    exact: tuple[np.ndarray, np.ndarray] | None = None
    bins: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # x, peak, mean


def _groups(frame: pd.DataFrame, by: str | None, binned: bool):
    if by is None:
        yield None, frame
    elif binned:
        for group, part in frame.groupby(level=0, observed=True, sort=True):
            yield group, part.droplevel(0)
    else:
        yield from frame.groupby(by, observed=True, sort=True)


def _collect(calls: pd.DataFrame, freq: str | None, by: str | None, exact: bool, tz: str,
             window: Any) -> dict[Any, _Series]:
    series: dict[Any, _Series] = {}
    if exact:
        frame = stats.concurrency(calls, by=by, tz=tz, window=window)
        end = None
        if len(frame):
            end = utc_values([stats.observation_window(calls, tz=tz, window=window)[1]])[0]
        for group, part in _groups(frame, by, binned=False):
            if part.empty:
                continue
            x = utc_values(part["time"])
            y = part["concurrent"].to_numpy(dtype="float64")
            # calls in progress at the window's end (ongoing, or running on past it) stop
            # counting there because observation stops: hold their count to the end
            # instead of drawing a drop to 0 that no call made
            if end is not None and len(y) > 1 and x[-1] >= end:
                y[-1] = y[-2]
            series.setdefault(group, _Series()).exact = (x, y)
    if freq is not None:
        binned = stats.concurrency(calls, freq=freq, by=by, tz=tz, window=window)
        step = pd.tseries.frequencies.to_offset(freq)
        for group, part in _groups(binned, by, binned=True):
            peaks = part["peak"].to_numpy(dtype="float64")
            if part.empty or not np.isfinite(peaks).any():
                continue
            starts = pd.DatetimeIndex(part.index)
            x = utc_values(starts.append(pd.DatetimeIndex([starts[-1] + step])))
            means = part["mean"].to_numpy(dtype="float64")
            # each bin's value holds to the next bin: repeat the last to show its width
            series.setdefault(group, _Series()).bins = (
                x, np.append(peaks, peaks[-1]), np.append(means, means[-1]))
    return dict(sorted(series.items(), key=lambda item: str(item[0])))


def plot_concurrency(calls: pd.DataFrame, *, freq: str | None = "15min",
                     by: str | None = None, exact: bool = True, tz: str = "UTC",
                     window: Any = None, ax: Axes | None = None) -> Figure:
    """Concurrent calls over time: the exact step curve and/or per-bin peak and mean.

    Parameters
    ----------
    calls : pandas.DataFrame
        A calls table.
    freq : str or None, default "15min"
        Adds that bin size's summaries from :func:`recstats.stats.concurrency`: the bin
        peak (dotted, gid ``"bin-peak"``) and time-weighted mean (dashed, gid
        ``"bin-mean"``) [erlang], each holding from its bin's start to the next; one
        point is appended at the last bin's end. Bins not observed (outside the window)
        are NaN and left as gaps. ``None`` leaves them out.
    by : str, optional
        A column to group by (e.g. ``"site"``): one colour per group; past four groups,
        one panel per group (small multiples sharing both axes) instead of overlapping
        lines, unless ``ax`` is given.
    exact : bool, default True
        Draws the exact step function as a ``steps-post`` curve (gid ``"exact"``).
        Calls still in progress at the window's end (ongoing, or ending after it)
        count until that end, where the curve stops at their count (no drop to 0).
    tz : str, default "UTC"
        Zone of the time axis and of day and hour bins; the data stay UTC.
    window : tuple of two moments, optional
        The observed period (see :func:`recstats.stats.observation_window`).
    ax : matplotlib.axes.Axes, optional
        Where to draw every series; default a new pyplot figure.

    Returns
    -------
    matplotlib.figure.Figure
        The highest point drawn (exact peak if drawn, else the highest bin peak) is
        marked and annotated with its value and local time (gid ``"peak"``).

    Examples
    --------
    >>> fig = plot_concurrency(calls, freq=None, by="site")  # doctest: +SKIP
    >>> import matplotlib.pyplot as plt; plt.savefig("concurrency.png")  # doctest: +SKIP
    """
    if not exact and freq is None:
        raise ValueError("nothing to draw: pass exact=True or a freq such as '15min'")
    series = _collect(calls, freq, by, exact, tz, window)
    multiples = by is not None and ax is None and len(series) > MAX_OVERLAID
    title = "Concurrent calls" if by is None else f"Concurrent calls by {by}"
    ylabel = "calls in progress" if freq is None else "calls in progress (mean [erlang])"
    if multiples:
        fig, panels = small_multiples(len(series))
        fig.suptitle(title)
        fig.supxlabel(f"time ({tz})")
        fig.supylabel(ylabel)
    else:
        fig, ax = figure_axes(ax, (10, 4))
        panels = [ax] * max(1, len(series))
        ax.set_title(title)
        ax.set_xlabel(f"time ({tz})")
        ax.set_ylabel(ylabel)

    peak: tuple[float, Any, Any, Axes] | None = None  # value, moment, group, panel
    for k, (group, lines) in enumerate(series.items()):
        panel = panels[k]
        colour = "C0" if multiples else f"C{k % 10}"

        def name(what: str, group: Any = group) -> str:
            return what if group is None or multiples else f"{group}: {what}"

        if multiples:
            panel.set_title(str(group), fontsize="small", loc="left")
        if lines.exact is not None:
            x, y = lines.exact
            # lighter under bin summaries, which would otherwise drown in a long curve
            panel.plot(x, y, drawstyle="steps-post", color=colour, linewidth=1.0,
                       alpha=1.0 if freq is None else 0.5, label=name("calls in progress"),
                       gid="exact")
            at = int(np.argmax(y))
            if peak is None or y[at] > peak[0]:
                peak = (y[at], x[at], group, panel)
        if lines.bins is not None:
            x, peaks, means = lines.bins
            panel.plot(x, peaks, drawstyle="steps-post", linestyle=":", color=colour,
                       label=name(f"peak per {freq}"), gid="bin-peak")
            panel.plot(x, means, drawstyle="steps-post", linestyle="--", color=colour,
                       label=name(f"mean per {freq} [erlang]"), gid="bin-mean")
            if lines.exact is None:
                at = int(np.nanargmax(peaks[:-1]))
                if peak is None or peaks[at] > peak[0]:
                    peak = (peaks[at], x[at], group, panel)
    for panel in dict.fromkeys(panels):
        time_axis(panel, tz)
    if peak is None:
        no_data(panels[0])
        return fig
    value, moment, group, panel = peak
    where = "" if group is None else f" ({group})"
    what = "peak" if exact else f"highest {freq} bin peak"
    annotate_peak(panel, value, moment,
                  f"{what}{where}: {int(value)} calls\nat {format_moment(moment, tz)}")
    panels[0].set_ylim(bottom=0, top=max(1.0, float(value)) * 1.3)  # shared when multiples
    if freq is None:
        panels[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    # outside the axes: "best" placement would scan every vertex of a long step curve
    panels[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return fig
