"""The sections of :func:`recstats.report.write_report` that say the most (private)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._plotting import days_text
from ._report_html import chart, length, moment, paragraph, table

__all__ = ["capacity_section", "quality_section", "summary_items", "traffic_table"]


def _window_source(calls: pd.DataFrame, window: Any) -> str:
    if window is not None:
        return "as given"
    if "window" in calls.attrs:
        return "as recorded with the table"
    return "whole days from the first to the last call; quiet hours count as 0 erlangs"


def summary_items(calls: pd.DataFrame, tz: str, window: Any, observed: Any,
                  events: pd.DataFrame | None) -> dict[str, str]:
    """Calls, sites, the observed window, ongoing calls, talk time and the peak."""
    from . import stats

    ongoing = np.asarray(stats.ongoing_mask(calls), dtype=bool) if len(calls) else \
        np.zeros(0, dtype=bool)
    sites: list[str] = [str(s) for s in calls["site"].dropna().unique()] \
        if "site" in calls.columns else []
    items = {"calls": f"{len(calls):,}",
             "sites": ", ".join(sorted(sites)) or "—"}
    if observed is not None:
        start, end = (pd.Timestamp(w) for w in observed)
        items["observed window"] = (f"{moment(start, tz)} → {moment(end, tz)} "
                                    f"({length(end - start)}; {_window_source(calls, window)})")
    items["ongoing (no end time)"] = f"{int(ongoing.sum()):,}"
    start, end = calls["start_time"].min(), calls["end_time"].max()
    if pd.notna(start):
        items["first call starts"] = f"{start.tz_convert(tz):%Y-%m-%d %H:%M:%S %Z}"
    if pd.notna(end):
        items["last call ends"] = f"{end.tz_convert(tz):%Y-%m-%d %H:%M:%S %Z}"
    # calls in progress have no duration yet, and the long ones are the likeliest to be
    # still running: say which calls these figures cover
    ended = calls["end_time"].notna()
    of = " (ended calls)" if not ended.all() else ""
    if "duration" in calls.columns:
        items[f"total talk time{of}"] = f"{calls['duration'].sum(skipna=True) / 3600:,.2f} h"
        if ended.any():
            items[f"mean holding time{of}"] = \
                f"{calls.loc[ended, 'duration'].mean():,.1f} s"
    if len(calls):
        exact = stats.concurrency(calls, tz=tz, window=window)
        if len(exact):
            at = exact["concurrent"].to_numpy().argmax()
            when = pd.Timestamp(exact["time"].iloc[at]).tz_convert(tz)
            items["peak concurrent calls"] = (f"{int(exact['concurrent'].iloc[at])} at "
                                              f"{when:%Y-%m-%d %H:%M:%S %Z}")
    if events is not None:
        items["live events"] = f"{len(events):,}"
    return items


def quality_section(calls: pd.DataFrame, tz: str, window: Any) -> str:
    """What :func:`recstats.stats.check_calls` finds, and the periods not observed."""
    from . import stats

    if not len(calls):
        return paragraph("No calls.")
    problems = stats.check_calls(calls, window=window)
    if problems.empty:
        body = paragraph(f"No problems found: all {len(calls):,} calls are used.", "ok")
    else:
        counts = problems["problem"].value_counts()
        listed = ", ".join(f"{n:,} {problem}" for problem, n in counts.items())
        body = paragraph(f"{problems['call_id'].nunique():,} of {len(calls):,} calls have "
                         f"problems no analysis should trust ({listed}); concurrency, "
                         "traffic and capacity leave them out.", "bad")
        body += table(counts.rename_axis("problem").rename("calls").reset_index(), 20, tz)
        body += table(problems, 50, tz)
    gaps = calls.attrs.get("gaps") or []
    if gaps:
        frame = pd.DataFrame(list(gaps))
        for column in ("start", "end"):
            if column in frame:
                frame[column] = pd.to_datetime(frame[column], utc=True)
        if {"start", "end"} <= set(frame.columns):
            frame["length [min]"] = (frame["end"] - frame["start"]).dt.total_seconds() / 60
            frame = frame.rename(columns={"start": f"start ({tz})", "end": f"end ({tz})"})
        body += paragraph(f"Periods in which a site was not observed ({len(frame):,}); its "
                          "coverage is below 100% there:")
        body += table(frame, 50, tz)
    return body


def traffic_table(calls: pd.DataFrame, tz: str, window: Any, days: Any) -> str:
    """The weekday x hour profile, cut to the days and hours with traffic."""
    from . import stats

    profile = stats.traffic_profile(calls, tz=tz, window=window, days=days)
    used = profile.fillna(0).ne(0)
    profile = profile.loc[used.any(axis=1), used.any(axis=0)]
    profile.columns = [f"{int(h):02d}h" for h in profile.columns]
    profile = profile.rename_axis("weekday [erlang]")
    return (paragraph(f"Mean traffic [erlang] by weekday and hour of day ({tz}), "
                      f"{days_text(days)}, for the weekdays and hours with calls; blank: "
                      "not observed.") + table(profile, 7, tz, index=True))


def _capacity_headings(table_: pd.DataFrame) -> pd.DataFrame:
    names = {"traffic": "busy-hour traffic [erlang]", "observed_peak": "observed peak [calls]",
             "busiest_day_traffic": "busiest day's busy hour [erlang]",
             "coverage": "coverage [%]", "busy_hour": "busy hour"}
    for column in table_.columns:
        if str(column).startswith("channels@"):
            names[column] = f"channels for {str(column)[len('channels@'):]} blocking"
    return table_.rename(columns=names)


def _hour_text(hour: Any, tz: str) -> str:
    if hour is None or pd.isna(hour):
        return "—"
    return f"{int(hour):02d}:00–{(int(hour) + 1) % 24:02d}:00 {tz}"


def capacity_section(calls: pd.DataFrame, out: Path, notes: list[str], *, tz: str,
                     window: Any, days: Any, method: str, top_days: int | None,
                     min_coverage: float, blocking: Sequence[float]) -> str:
    """The busy hour stated in words, the Erlang B chart and the channels table."""
    from . import plot, stats

    finished = (calls["end_time"] > calls["start_time"]).to_numpy(dtype=bool, na_value=False)
    if not finished.any():
        return paragraph("No finished call with a duration: no traffic to size channels for.")
    settings = {"tz": tz, "window": window, "days": days, "top_days": top_days,
                "min_coverage": min_coverage}
    try:
        busy = stats.busy_hour(calls, method=method, **settings)
    except ValueError as exc:
        return paragraph(f"No busy hour could be found: {exc}", "bad")
    bounds = busy.window if busy.window is not None else \
        stats.observation_window(calls, tz=tz, window=window)
    start, end = pd.Timestamp(bounds[0]), pd.Timestamp(bounds[1])
    coverage = float(busy.coverage)
    which = f"the mean of the {top_days} busiest of " if top_days else ""
    body = paragraph(
        f"Busy hour {_hour_text(busy.hour, tz)}: {busy.traffic:,.2f} erlangs, by the "
        f"{method} method (ITU-T E.500) over {which}{busy.days_rule} in the window "
        f"{moment(start, tz)} → {moment(end, tz)} ({length(end - start)}); "
        f"{coverage:.0%} of that hour was observed (hours count when at least "
        f"{min_coverage:.0%} of them was).")
    if coverage < 1:
        body += paragraph(f"Only {coverage:.0%} of the busy hour was observed: its traffic is "
                          "the mean over the observed part.", "bad")
    body += chart(out, "capacity.png",
                  lambda: plot.plot_capacity(calls, blocking=blocking, method=method,
                                             **settings),
                  "Erlang B channels against blocking", notes)
    try:
        cap = stats.capacity_table(calls, blocking=tuple(blocking), method=method, **settings)
        body += paragraph("Channels needed (Erlang B) for each site's busy-hour traffic at "
                          "each blocking target, beside the observed peak and the busiest "
                          "single day's busy-hour traffic.")
        body += table(_capacity_headings(cap), 30, tz, index=True)
        rows = []
        for each in ("time-consistent", "bouncing"):
            try:
                found = stats.busy_hour(calls, method=each, **settings)
            except ValueError:
                continue
            rows.append({"method": each, "busy hour": _hour_text(found.hour, tz),
                         "traffic [erlang]": float(found.traffic),
                         "coverage [%]": float(found.coverage), "days": found.days_rule})
        body += "<h3>Busy hour by method</h3>" + table(pd.DataFrame(rows), 5, tz)
    except Exception as exc:  # noqa: BLE001 - listed under Report notes
        notes.append(f"capacity: {exc}")
    return body

