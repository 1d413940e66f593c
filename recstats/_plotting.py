"""Drawing helpers shared by :mod:`recstats.plot` (private).

Where figures come from (pyplot, as ``DataFrame.plot`` does), how UTC instants reach
matplotlib, time axes in a zone, and the grid of small multiples.
"""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

#: past this many series a chart becomes small multiples instead of overlapping lines
MAX_OVERLAID = 4


class PyplotFigure(Figure):
    """A pyplot figure that a notebook shows once, whether or not a cell returns it.

    Notebook backends show open pyplot figures when a cell ends, and a plot function's
    Figure, returned as the cell's value, would be shown a second time. So displaying
    it shows it as a PNG and closes it in pyplot (the inline backend then skips it),
    unless another interactive backend (a widget or a window) already shows it.
    """

    def _ipython_display_(self) -> None:
        import matplotlib
        import matplotlib.pyplot as plt
        from IPython.display import Image, display
        from matplotlib._pylab_helpers import Gcf  # pyplot's open figures, as backends see

        managed = any(m.canvas.figure is self for m in Gcf.get_all_fig_managers())
        if managed and plt.isinteractive() and "inline" not in matplotlib.get_backend():
            return
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        if managed:
            plt.close(self)
        display(Image(buffer.getvalue()))


def figure_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """``ax``'s figure and ``ax``, or a new pyplot figure with one Axes.

    A pyplot figure is what pandas users expect: it shows in any notebook without
    ``%matplotlib`` magic and ``plt.savefig`` saves it in a script.
    """
    if ax is not None:
        owner = ax.get_figure(root=True)
        if owner is None:
            raise ValueError("ax belongs to no figure; pass an Axes made by a Figure")
        return owner, ax
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=figsize, layout="constrained", FigureClass=PyplotFigure)
    return fig, fig.add_subplot()


def small_multiples(count: int, width: float = 10.0,
                    panel_height: float = 1.8) -> tuple[Figure, list[Axes]]:
    """A new pyplot figure of ``count`` panels sharing both axes, reading down columns."""
    import matplotlib.pyplot as plt

    ncols = 1 if count <= 6 else 2
    nrows = math.ceil(count / ncols)
    fig, grid = plt.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False,
                             figsize=(width, 1.0 + panel_height * nrows),
                             layout="constrained", FigureClass=PyplotFigure)
    panels = list(grid.T.ravel())  # down the first column, then the next
    for spare in panels[count:]:
        spare.set_visible(False)
    return fig, panels[:count]


def utc_values(times: Any) -> np.ndarray:
    """UTC instants as naive ``datetime64[us]``, the form matplotlib reads as UTC.

    tz-aware pandas values would reach matplotlib as an object array of Timestamps,
    which is slow and depends on pandas' optional converters.
    """
    index = pd.DatetimeIndex(times)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.as_unit("us").to_numpy()


def format_moment(moment: Any, tz: str) -> str:
    """An instant (naive means UTC) as local wall-clock text with the zone's name.

    >>> format_moment("2026-11-02 09:10", "Europe/Budapest")
    '2026-11-02 10:10:00 Europe/Budapest'
    """
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return f"{stamp.tz_convert(tz):%Y-%m-%d %H:%M:%S} {tz}"


def time_axis(ax: Axes, tz: str) -> None:
    """Concise date ticks labelled in zone ``tz`` (the data stay UTC)."""
    locator = mdates.AutoDateLocator(tz=tz)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=tz))


def no_data(ax: Axes, text: str = "no calls") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center",
            color="0.4", gid="no-data")


def annotate_peak(ax: Axes, value: float, moment: np.datetime64, text: str) -> None:
    """Mark the highest point and write ``text`` beside it, towards the middle."""
    ax.plot([moment], [value], marker="o", linestyle="none", color="k", gid="peak-marker")
    left, right = ax.get_xlim()
    on_right = mdates.date2num(moment) > (left + right) / 2
    ax.annotate(text, xy=(mdates.date2num(moment), value), xytext=(-8 if on_right else 8, 8),
                textcoords="offset points", ha="right" if on_right else "left",
                va="bottom", fontsize="small", gid="peak",
                bbox={"boxstyle": "round", "fc": "white", "alpha": 0.8})


def percent(fraction: float) -> str:
    """A fraction as a percentage for labels.

    >>> percent(0.001), percent(0.05)
    ('0.1%', '5%')
    """
    return f"{fraction * 100:g}%"


def days_text(days: Any) -> str:
    """Which days a ``days=`` setting keeps, in words.

    >>> days_text(None), days_text("weekdays"), days_text(["2026-11-02", "2026-11-03"])
    ('all days', 'weekdays', '2 listed days')
    """
    if days is None:
        return "all days"
    if isinstance(days, str) and days in ("weekdays", "weekends"):
        return days
    if callable(days):
        return f"days chosen by {getattr(days, '__name__', 'a function')}"
    if isinstance(days, str):
        return "1 listed day"
    return f"{len(list(days))} listed days"
