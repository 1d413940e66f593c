"""Matplotlib figures of what :mod:`recstats.stats` computes.

Every function takes a calls table, computes its figures with :mod:`recstats.stats`
(never on its own), draws them and returns the :class:`~matplotlib.figure.Figure`.
As with ``DataFrame.plot``, without ``ax`` each function draws on a new pyplot figure,
so it shows in a notebook with no magic and ``plt.savefig`` saves it in a script
(close figures you no longer need with ``plt.close(fig)``); with ``ax=`` it draws there
and returns the Figure that Axes belongs to.

Settings are keyword-only after the calls table and mean what they mean in
:mod:`recstats.stats`: ``tz`` (zone of clock hours and of the time axis; validated
there), ``window`` (the observed period; default the table's ``attrs["window"]``, else
whole local days from the first to the last activity), ``days`` (which days count), and
``by`` (always a column to group by).

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

from collections.abc import Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from . import stats
from ._plot_concurrency import plot_concurrency
from ._plotting import days_text, figure_axes, no_data, percent

__all__ = ["plot_capacity", "plot_concurrency", "plot_extensions", "plot_traffic_heatmap"]

#: extension_stats column -> axis label with its unit
_EXTENSION_UNITS = {
    "calls": "calls", "inbound": "inbound calls", "outbound": "outbound calls",
    "internal": "internal calls", "total_duration": "total duration [s]",
    "mean_duration": "mean duration [s]", "median_duration": "median duration [s]",
    "p90_duration": "90th percentile duration [s]", "traffic": "traffic [erlang]",
    "peak_concurrent": "peak concurrent calls",
}


# --------------------------------------------------------------------------- heatmap


def plot_traffic_heatmap(calls: pd.DataFrame, *, tz: str = "UTC", window: Any = None,
                         days: Any = None, ax: Axes | None = None) -> Figure:
    """Weekday x hour heatmap of :func:`recstats.stats.traffic_profile` (mean erlangs).

    Parameters
    ----------
    calls : pandas.DataFrame
        A calls table.
    tz : str, default "UTC"
        Zone whose clock hours the columns are.
    window : tuple of two moments, optional
        The observed period (see :func:`recstats.stats.observation_window`).
    days : None, "weekdays", "weekends", list of dates or callable, optional
        Which days are averaged.
    ax : matplotlib.axes.Axes, optional
        Where to draw; default a new pyplot figure.

    Returns
    -------
    matplotlib.figure.Figure
        Rows Monday..Sunday, columns hours 0..23, colour bar in [erlang]; cells never
        observed are grey (NaN, never 0).

    Examples
    --------
    >>> plot_traffic_heatmap(calls, tz="Europe/Budapest", days="weekdays")  # doctest: +SKIP
    """
    fig, ax = figure_axes(ax, (10, 3.8))
    profile = stats.traffic_profile(calls, tz=tz, window=window, days=days)
    values = profile.to_numpy(dtype="float64")
    cmap = mpl.colormaps["viridis"].with_extremes(bad="0.9")
    image = ax.imshow(values, aspect="auto", interpolation="nearest", cmap=cmap,
                      vmin=0, gid="traffic-profile")
    ax.set_xticks(range(profile.shape[1]), labels=[str(h) for h in profile.columns])
    ax.set_yticks(range(profile.shape[0]), labels=[str(d) for d in profile.index])
    ax.tick_params(axis="x", labelsize="small")
    fig.colorbar(image, ax=ax, label="traffic [erlang]")
    ax.set_title(f"Mean traffic by weekday and hour ({days_text(days)}; grey: not observed)")
    ax.set_xlabel(f"hour of day ({tz})")
    ax.set_ylabel("weekday")
    if not np.isfinite(values).any():
        no_data(ax)
    return fig


# --------------------------------------------------------------------------- extensions


def plot_extensions(calls: pd.DataFrame, *, top: int = 10, sort_by: str = "calls",
                    by: str | None = "site", extensions: Any = None, tz: str = "UTC",
                    window: Any = None, ax: Axes | None = None) -> Figure:
    """Horizontal bars of the ``top`` extensions by ``sort_by``, largest at the top.

    Parameters
    ----------
    calls : pandas.DataFrame
        A calls table.
    top : int, default 10
        How many bars.
    sort_by : str, default "calls"
        A numeric column of :func:`recstats.stats.extension_stats`: ``"calls"``,
        ``"traffic"`` [erlang], ``"total_duration"`` [s], ... Ties keep its order.
    by : str or None, default "site"
        Keep the groups of this column apart when the table has several: extension
        1073 at LONDON and 1073 at NEW-YORK are two bars, labelled ``1073 (LONDON)``
        and coloured by group. ``None`` merges them.
    extensions, tz, window
        Passed on to :func:`recstats.stats.extension_stats`.
    ax : matplotlib.axes.Axes, optional
        Where to draw; default a new pyplot figure.

    Returns
    -------
    matplotlib.figure.Figure
        Each bar (gid ``"extensions"``) labelled with its value.

    Examples
    --------
    >>> plot_extensions(calls, top=5, sort_by="traffic")  # doctest: +SKIP
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, not {top}")
    split = by is not None and by in calls.columns and calls[by].nunique(dropna=True) > 1
    fig, ax = figure_axes(ax, (7, 1.2 + 0.35 * top))
    table = stats.extension_stats(calls, extensions=extensions, by=by if split else None,
                                  tz=tz, window=window)
    numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
    if sort_by not in numeric:
        raise ValueError(f"sort_by must be one of {', '.join(numeric)}; got {sort_by!r}")
    chosen = table[sort_by].sort_values(ascending=False, kind="stable").head(top)
    positions = np.arange(len(chosen))
    if split and isinstance(chosen.index, pd.MultiIndex):
        groups = [str(g) for g in chosen.index.get_level_values(0)]
        labels = [f"{e} ({g})" for g, e in zip(groups, chosen.index.get_level_values(-1),
                                                strict=True)]
        order = sorted(set(groups))
        colours = [f"C{order.index(g) % 10}" for g in groups]
    else:
        labels, colours = [str(e) for e in chosen.index], ["C0"] * len(chosen)
    bars = ax.barh(positions, chosen.to_numpy(dtype="float64"), color=colours,
                   gid="extensions")
    ax.set_yticks(positions, labels=labels)
    ax.invert_yaxis()
    integral = pd.api.types.is_integer_dtype(table[sort_by])
    ax.bar_label(bars, fmt="{:,.0f}" if integral else "{:,.2f}", padding=3, fontsize="small")
    if integral:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"Top {len(chosen)} extensions by {sort_by}"
                 + (f", {by}s apart" if split else ""))
    ax.set_xlabel(_EXTENSION_UNITS.get(sort_by, sort_by))
    ax.set_ylabel("extension" + (f" ({by})" if split else ""))
    ax.margins(x=0.12)
    if chosen.empty:
        no_data(ax)
    return fig


# --------------------------------------------------------------------------- capacity


def plot_capacity(calls: pd.DataFrame | None = None, *,
                  blocking: Sequence[float] = (0.001, 0.01, 0.05),
                  traffic: float | None = None, peak: float | None = None,
                  method: str = "time-consistent", tz: str = "UTC", window: Any = None,
                  days: Any = None, top_days: int | None = None, min_coverage: float = 0.5,
                  ax: Axes | None = None) -> Figure:
    """Erlang B: channels needed against offered traffic, one curve per blocking target.

    Each curve is :func:`recstats.stats.channels_for` ``(x, b)`` sampled on an even grid
    of offered traffic ``x`` (gid ``"capacity"``). Marked on top: the busy-hour traffic
    (vertical line, gid ``"busy-hour-traffic"``) with the channels each target needs for
    it, the busiest single day's busy-hour traffic (gid ``"busiest-day-traffic"``) and
    the observed peak concurrency (horizontal line, gid ``"observed-peak"``).

    Parameters
    ----------
    calls : pandas.DataFrame, optional
        A calls table; its marks come from the ``"all"`` row of
        :func:`recstats.stats.capacity_table` with the settings below.
    blocking : sequence of float, default (0.001, 0.01, 0.05)
        Blocking targets, probabilities in (0, 1).
    traffic : float, optional
        Busy-hour traffic [erlang]; wins over the one from ``calls``.
    peak : float, optional
        Observed peak [calls]; wins over the one from ``calls``.
    method, tz, window, days, top_days, min_coverage
        Passed on to :func:`recstats.stats.capacity_table`.
    ax : matplotlib.axes.Axes, optional
        Where to draw; default a new pyplot figure.

    Returns
    -------
    matplotlib.figure.Figure

    References
    ----------
    ITU-T Recommendation E.500, Traffic intensity measurement principles.

    Examples
    --------
    >>> fig = plot_capacity(traffic=12.5, peak=19)
    >>> [line.get_label() for line in fig.axes[0].lines][:3]
    ['blocking 0.1%', 'blocking 1%', 'blocking 5%']
    """
    targets = [float(b) for b in blocking]
    if not targets or not all(0.0 < b < 1.0 for b in targets):
        raise ValueError(f"blocking targets must be probabilities in (0, 1); got {blocking!r}")
    busiest = coverage = hour = None
    if calls is not None and (traffic is None or peak is None) and len(calls):
        table = stats.capacity_table(calls, blocking=tuple(targets), method=method, tz=tz,
                                     window=window, days=days, top_days=top_days,
                                     min_coverage=min_coverage)
        row: dict[str, Any] = {str(name): value for name, value in table.loc["all"].items()}
        if traffic is None:
            traffic = float(row["traffic"])
            busiest = row.get("busiest_day_traffic")
            coverage = row.get("coverage")
            hour = row.get("busy_hour")
        if peak is None:
            peak = float(row["observed_peak"])
    fig, ax = figure_axes(ax, (8, 5))
    traffic = None if traffic is None or not np.isfinite(traffic) else float(traffic)
    peak = None if peak is None or not np.isfinite(peak) else float(peak)
    busiest = None if busiest is None or pd.isna(busiest) else float(busiest)

    xmax = max(5.0, 1.5 * max(traffic or 0.0, busiest or 0.0), 1.2 * (peak or 0.0))
    grid = np.linspace(0.0, xmax, 601)
    for i, target in enumerate(targets):
        channels = np.asarray(stats.channels_for(grid, target), dtype="float64")
        # steps-pre: between two samples draw the later (higher) need, never under-sizing
        ax.plot(grid, channels, drawstyle="steps-pre", color=f"C{i % 10}",
                label=f"blocking {percent(target)}", gid="capacity")
    if traffic is not None:
        covered = "" if coverage is None or pd.isna(coverage) else \
            f", {float(coverage):.0%} observed"
        when = "" if hour is None or pd.isna(hour) else f", {int(hour):02d}:00 {tz}"
        ax.axvline(traffic, color="0.25", linestyle="--", gid="busy-hour-traffic",
                   label=f"busy-hour traffic {traffic:.2f} E ({method}{when}{covered})")
        for i, target in enumerate(targets):
            need = float(np.asarray(stats.channels_for(traffic, target)))
            ax.plot([traffic], [need], marker="o", color=f"C{i % 10}", linestyle="none",
                    gid="busy-hour-need")
            ax.annotate(f"{need:.0f}", xy=(traffic, need), xytext=(5, -10),
                        textcoords="offset points", fontsize="small", color=f"C{i % 10}")
    if busiest is not None:
        ax.axvline(busiest, color="0.55", linestyle="-.", gid="busiest-day-traffic",
                   label=f"busiest day's busy hour {busiest:.2f} E")
    if peak is not None:
        ax.axhline(peak, color="k", linestyle=":", gid="observed-peak",
                   label=f"observed peak {peak:.0f} concurrent calls")
    ax.set_xlim(0, xmax)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Erlang B: channels needed for the offered traffic")
    ax.set_xlabel("offered traffic [erlang]")
    ax.set_ylabel("channels")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    return fig
