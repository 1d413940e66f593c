"""The ``df.rs`` pandas accessor: recstats' statistics and charts as DataFrame methods.

Importing :mod:`recstats` registers it. The accessor checks in ``__init__`` that the
frame is a calls table (as from :func:`recstats.read_archive` or a capture), then only
delegates: every method returns exactly what the :mod:`recstats.stats` or
:mod:`recstats.plot` function of the same purpose returns for the frame, and never
modifies the frame. Method names are the functions' names (``df.rs.extension_stats``,
``df.rs.capacity_table``; ``df.rs.check`` is :func:`recstats.stats.check_calls`) and
their settings are the same keyword-only arguments. This module imports pandas and
NumPy only; stats and plotting load on first use.

>>> import pandas as pd, recstats
>>> from recstats import coerce_calls
>>> calls = coerce_calls(pd.DataFrame({
...     "call_id": ["a", "b"], "site": ["NY", "NY"],
...     "start_time": ["2026-11-02 09:00", "2026-11-02 09:10"],
...     "end_time": ["2026-11-02 09:20", "2026-11-02 09:30"]}))
>>> calls.rs.concurrency()["concurrent"].max()
np.int64(2)
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["REQUIRED_COLUMNS", "CallsAccessor", "CallsSummary"]

#: Columns ``df.rs`` needs; the rest of the calls-table schema is optional.
REQUIRED_COLUMNS = ("call_id", "start_time", "end_time")
_TIME_COLUMNS = ("start_time", "end_time")


@dataclass(frozen=True)
class CallsSummary:
    """A calls table at a glance, from :meth:`CallsAccessor.summary`.

    ``calls`` rows; ``sites`` the site names seen (empty without a ``site`` column);
    ``first_start``/``last_end`` the span covered (``last_end`` is the latest start when
    every call is still ongoing); ``ongoing`` calls with a start but no end time (not
    ``end_unknown``); ``peak`` the highest number of calls in progress at once and
    ``peak_time`` when it was first reached (UTC); ``busy_hour`` the time-consistent
    busy hour (``None`` without one), ``busy_hour_traffic`` its mean traffic [erlang],
    ``tz`` the zone of that hour; ``window`` the observed period (UTC) and
    ``busy_hour_coverage`` the observed fraction of the busy hour (0..1).

    >>> from recstats import coerce_calls
    >>> calls = coerce_calls(pd.DataFrame({"call_id": ["a"], "site": ["NY"],
    ...     "start_time": ["2026-11-02 09:00"], "end_time": ["2026-11-02 09:30"]}))
    >>> summary = calls.rs.summary()
    >>> summary.peak, summary.busy_hour, summary.busy_hour_traffic
    (1, 9, 0.5)
    """

    calls: int
    sites: tuple[str, ...]
    first_start: pd.Timestamp | None
    last_end: pd.Timestamp | None
    ongoing: int
    peak: int
    peak_time: pd.Timestamp | None
    busy_hour: int | None
    busy_hour_traffic: float | None
    tz: str = "UTC"
    window: tuple[pd.Timestamp, pd.Timestamp] | None = None
    busy_hour_coverage: float | None = None

    def _rows(self) -> list[tuple[str, str]]:
        def moment(value: pd.Timestamp | None) -> str:
            if value is None:
                return "–"
            # a frame converted to another zone must not show local times labelled UTC
            utc = value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")
            return utc.strftime("%Y-%m-%d %H:%M:%S UTC")

        span = "–"
        if self.first_start is not None:
            span = f"{moment(self.first_start)} → {moment(self.last_end)}"
        busy = "–"
        if self.busy_hour is not None:
            busy = (f"{self.busy_hour:02d}:00–{(self.busy_hour + 1) % 24:02d}:00 {self.tz}, "
                    f"{self.busy_hour_traffic:.2f} erlangs")
            if self.busy_hour_coverage is not None:
                busy += f" ({self.busy_hour_coverage:.0%} observed)"
        observed = "–"
        if self.window is not None:
            length = self.window[1] - self.window[0]
            observed = (f"{moment(self.window[0])} → {moment(self.window[1])} "
                        f"({length / pd.Timedelta(hours=1):,.1f} h)")
        peak = f"{self.peak}"
        if self.peak_time is not None:
            peak += f" at {moment(self.peak_time)}"
        sites = ", ".join(self.sites) if self.sites else "–"
        return [("calls", f"{self.calls:,}"), (f"sites ({len(self.sites)})", sites),
                ("span", span), ("observed window", observed),
                ("ongoing", f"{self.ongoing:,}"),
                ("peak concurrency", peak), ("busy hour", busy)]

    def __repr__(self) -> str:
        rows = self._rows()
        width = max(len(name) for name, _ in rows)
        lines = [f"  {name:<{width}}  {value}" for name, value in rows]
        return "CallsSummary\n" + "\n".join(lines)

    def _repr_html_(self) -> str:
        cells = "".join(
            f"<tr><th style='text-align:left'>{html.escape(name)}</th>"
            f"<td style='text-align:left'>{html.escape(value)}</td></tr>"
            for name, value in self._rows())
        return f"<table><caption>Calls summary</caption><tbody>{cells}</tbody></table>"


@pd.api.extensions.register_dataframe_accessor("rs")
class CallsAccessor:
    """``df.rs``: the stats and charts of :mod:`recstats` for a calls table.

    Raises ``AttributeError`` (so ``hasattr(df, "rs")`` is False) when the frame
    lacks ``call_id``, ``start_time`` or ``end_time`` or its time columns are not
    datetimes. Times should be UTC (``datetime64[us, UTC]``), as recstats readers give.
    Every setting is keyword-only, as in the functions the methods call.

    >>> from recstats import coerce_calls
    >>> calls = coerce_calls(pd.DataFrame({
    ...     "call_id": ["a", "b"], "site": ["NY", "NY"],
    ...     "start_time": ["2026-11-02 09:00", "2026-11-02 09:10"],
    ...     "end_time": ["2026-11-02 09:20", "2026-11-02 09:30"]}))
    >>> calls.rs.summary().peak
    2
    >>> calls.rs.concurrency()["concurrent"].tolist()
    [1, 2, 1, 0]
    >>> pd.DataFrame({"x": [1]}).rs  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AttributeError: df.rs needs a calls table (...); missing columns: call_id, end_time, start_time
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        missing = sorted(set(REQUIRED_COLUMNS) - set(frame.columns))
        if missing:
            raise AttributeError(
                "df.rs needs a calls table (see recstats.read_archive); "
                f"missing columns: {', '.join(missing)}")
        wrong = [f"{c} is {frame[c].dtype}" for c in _TIME_COLUMNS
                 if not pd.api.types.is_datetime64_any_dtype(frame[c])]
        if wrong:
            raise AttributeError(
                "df.rs needs datetime start_time and end_time columns "
                f"({'; '.join(wrong)}); convert them with recstats.coerce_calls(df)")
        self._frame = frame

    # ------------------------------------------------------------------ statistics

    def concurrency(self, *, freq: str | None = None, by: str | None = None,
                    tz: str = "UTC", window: Any = None) -> pd.DataFrame:
        """Calls in progress over time: :func:`recstats.stats.concurrency`.

        ``freq=None`` gives the exact step function (``time``, ``concurrent``); a bin
        size such as ``"15min"`` gives each bin's ``peak``, ``mean`` [erlang],
        ``started`` and ``coverage``. ``by="site"`` splits by site.

        >>> calls.rs.concurrency(freq="1h")["peak"].max()  # doctest: +SKIP
        2
        """
        from . import stats
        return stats.concurrency(self._frame, freq=freq, by=by, tz=tz, window=window)

    def busy_hour(self, *, method: str = "time-consistent", tz: str = "UTC",
                  window: Any = None, days: Any = None, top_days: int | None = None,
                  min_coverage: float = 0.5) -> Any:
        """The busy hour (ITU-T E.500): :func:`recstats.stats.busy_hour`.

        >>> calls.rs.busy_hour(days="weekdays").hour  # doctest: +SKIP
        9
        """
        from . import stats
        return stats.busy_hour(self._frame, method=method, tz=tz, window=window, days=days,
                               top_days=top_days, min_coverage=min_coverage)

    def traffic_profile(self, *, tz: str = "UTC", window: Any = None,
                        days: Any = None) -> pd.DataFrame:
        """Mean erlangs per weekday x hour: :func:`recstats.stats.traffic_profile`.

        >>> calls.rs.traffic_profile().shape  # doctest: +SKIP
        (7, 24)
        """
        from . import stats
        return stats.traffic_profile(self._frame, tz=tz, window=window, days=days)

    def extension_stats(self, *, extensions: Any = None, by: str | None = None,
                        tz: str = "UTC", window: Any = None) -> pd.DataFrame:
        """Per-extension figures: :func:`recstats.stats.extension_stats`.

        >>> calls.rs.extension_stats(by="site").index.names  # doctest: +SKIP
        FrozenList(['site', 'extension'])
        """
        from . import stats
        return stats.extension_stats(self._frame, extensions=extensions, by=by, tz=tz,
                                     window=window)

    def capacity_table(self, *, blocking: Sequence[float] = (0.001, 0.01, 0.05),
                       method: str = "time-consistent", tz: str = "UTC",
                       window: Any = None, days: Any = None, top_days: int | None = None,
                       min_coverage: float = 0.5) -> pd.DataFrame:
        """Channels needed per site at each blocking target:
        :func:`recstats.stats.capacity_table`.

        >>> int(calls.rs.capacity_table().loc["all", "observed_peak"])  # doctest: +SKIP
        2
        """
        from . import stats
        return stats.capacity_table(self._frame, blocking=blocking, method=method, tz=tz,
                                    window=window, days=days, top_days=top_days,
                                    min_coverage=min_coverage)

    def check(self, *, window: Any = None, max_duration: float = 86400.0) -> pd.DataFrame:
        """What no analysis should trust (``call_id``, ``problem``):
        :func:`recstats.stats.check_calls`.

        >>> calls.rs.check().empty  # doctest: +SKIP
        True
        """
        from . import stats
        return stats.check_calls(self._frame, window=window, max_duration=max_duration)

    def summary(self, *, tz: str = "UTC", window: Any = None) -> CallsSummary:
        """Calls, sites, span, window, ongoing calls, peak concurrency and busy hour.

        Ongoing calls are :func:`recstats.stats.ongoing_mask`'s; peak and busy hour
        (time-consistent, clock hours in ``tz``) come from
        :func:`recstats.stats.concurrency` and :func:`recstats.stats.busy_hour` over the
        observation window (``window``, else the table's ``attrs["window"]``, else whole
        days). Without an hour to call busy, the busy hour is ``None``.

        >>> calls.rs.summary().peak  # doctest: +SKIP
        2
        """
        from . import stats
        frame = self._frame
        sites: tuple[str, ...] = ()
        if "site" in frame.columns:
            sites = tuple(sorted(str(s) for s in frame["site"].dropna().unique()))
        ongoing = int(np.asarray(stats.ongoing_mask(frame), dtype=bool).sum())
        if frame.empty or frame["start_time"].isna().all():
            return CallsSummary(len(frame), sites, None, None, ongoing, 0, None, None, None, tz)
        first = pd.Timestamp(frame["start_time"].min())
        last = frame["end_time"].max()
        last = pd.Timestamp(frame["start_time"].max() if pd.isna(last) else last)
        observed = stats.observation_window(frame, tz=tz, window=window)
        steps = stats.concurrency(frame, tz=tz, window=window)
        peak, peak_time = 0, None
        if len(steps):
            counts = steps["concurrent"].to_numpy()
            at = int(counts.argmax())
            peak, peak_time = int(counts[at]), pd.Timestamp(steps["time"].to_numpy()[at])
        hour = traffic = coverage = None
        if peak:
            try:
                busy = stats.busy_hour(frame, tz=tz, window=window)
            except ValueError:  # no hour observed enough to be called busy
                busy = None
            if busy is not None:
                hour, traffic = int(busy.hour), float(busy.traffic)
                coverage = float(busy.coverage)
        return CallsSummary(
            calls=len(frame), sites=sites, first_start=first, last_end=last, ongoing=ongoing,
            peak=peak, peak_time=peak_time, busy_hour=hour, busy_hour_traffic=traffic, tz=tz,
            window=(pd.Timestamp(observed[0]), pd.Timestamp(observed[1])),
            busy_hour_coverage=coverage)

    # ------------------------------------------------------------------ charts

    def plot_concurrency(self, *, freq: str | None = "15min", by: str | None = None,
                         exact: bool = True, tz: str = "UTC", window: Any = None,
                         ax: Any = None) -> Any:
        """Concurrency chart: :func:`recstats.plot.plot_concurrency`; returns the Figure.

        >>> calls.rs.plot_concurrency(by="site", tz="Europe/Budapest")  # doctest: +SKIP
        """
        from . import plot
        return plot.plot_concurrency(self._frame, freq=freq, by=by, exact=exact, tz=tz,
                                     window=window, ax=ax)

    def plot_traffic_heatmap(self, *, tz: str = "UTC", window: Any = None, days: Any = None,
                             ax: Any = None) -> Any:
        """Weekday x hour traffic heatmap: :func:`recstats.plot.plot_traffic_heatmap`.

        >>> calls.rs.plot_traffic_heatmap(tz="Europe/Budapest")  # doctest: +SKIP
        """
        from . import plot
        return plot.plot_traffic_heatmap(self._frame, tz=tz, window=window, days=days, ax=ax)

    def plot_extensions(self, *, top: int = 10, sort_by: str = "calls",
                        by: str | None = "site", extensions: Any = None, tz: str = "UTC",
                        window: Any = None, ax: Any = None) -> Any:
        """Top extensions bar chart: :func:`recstats.plot.plot_extensions`.

        >>> calls.rs.plot_extensions(top=5, sort_by="traffic")  # doctest: +SKIP
        """
        from . import plot
        return plot.plot_extensions(self._frame, top=top, sort_by=sort_by, by=by,
                                    extensions=extensions, tz=tz, window=window, ax=ax)

    def plot_capacity(self, *, blocking: Sequence[float] = (0.001, 0.01, 0.05),
                      traffic: float | None = None, peak: float | None = None,
                      method: str = "time-consistent", tz: str = "UTC", window: Any = None,
                      days: Any = None, top_days: int | None = None,
                      min_coverage: float = 0.5, ax: Any = None) -> Any:
        """Erlang B channels-vs-traffic chart with the observed busy hour and peak:
        :func:`recstats.plot.plot_capacity`.

        >>> calls.rs.plot_capacity(blocking=(0.01,), days="weekdays")  # doctest: +SKIP
        """
        from . import plot
        return plot.plot_capacity(self._frame, blocking=blocking, traffic=traffic, peak=peak,
                                  method=method, tz=tz, window=window, days=days,
                                  top_days=top_days, min_coverage=min_coverage, ax=ax)
