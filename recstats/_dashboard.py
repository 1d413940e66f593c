"""Data and HTML pieces of :class:`recstats.widgets.LiveDashboard` (private).

No widgets here: step functions cut to pixel columns, the ongoing calls of a snapshot,
the status table and the top extensions, each testable without a front end.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from . import stats

__all__ = ["clock_time", "envelope", "latest_time", "micro", "micros", "naive_utc", "ongoing_calls",
           "snapshot_status", "span_text", "status_table", "top_extensions"]


def naive_utc(values: pd.Series | pd.Index) -> np.ndarray:
    """tz-aware times -> naive ``datetime64[us]`` UTC (what matplotlib reads fast)."""
    index = pd.DatetimeIndex(values)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index.as_unit("us").to_numpy()


def micros(values: pd.Series | pd.Index) -> np.ndarray:
    """tz-aware times -> int64 microseconds since the epoch (UTC)."""
    return naive_utc(values).astype("int64")


def micro(moment: pd.Timestamp) -> int:
    """A tz-aware moment -> int microseconds since the epoch (UTC)."""
    return int(moment.value // 1000)  # .value is always nanoseconds


def envelope(x: np.ndarray, y: np.ndarray, lo: int, hi: int,
              bins: int) -> tuple[np.ndarray, np.ndarray]:
    """A step function (``y[i]`` holds from ``x[i]`` to ``x[i+1]``) cut to ``bins`` columns.

    Each column of ``[lo, hi]`` becomes three steps: the column's maximum, its minimum
    and the value it ends with, so the drawn envelope (peaks included) and the final
    value are those of the exact function at that resolution. Points before ``lo``
    only set the value carried into the first column.
    """
    width = (hi - lo) / bins
    starts = lo + width * np.arange(bins)
    # value carried into each column: the last step at or before its start
    carry_at = np.searchsorted(x, starts, side="right") - 1
    carried = np.where(carry_at >= 0, y[np.maximum(carry_at, 0)], 0.0)
    inside = (x > lo) & (x <= hi)
    xs, ys = x[inside], y[inside]
    col = np.minimum(((xs - lo) / width).astype("int64"), bins - 1)
    high, low = carried.copy(), carried.copy()
    if len(xs):
        first = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
        cols = col[first]
        high[cols] = np.maximum(high[cols], np.maximum.reduceat(ys, first))
        low[cols] = np.minimum(low[cols], np.minimum.reduceat(ys, first))
    last_at = np.searchsorted(x, starts + width, side="left") - 1
    last = np.where(last_at >= 0, y[np.maximum(last_at, 0)], 0.0)
    last[-1] = y[np.searchsorted(x, hi, side="right") - 1] if x[0] <= hi else 0.0
    out_x = np.column_stack([starts, starts + width / 3, starts + 2 * width / 3]).ravel()
    out_y = np.column_stack([high, low, last]).ravel()
    return np.append(out_x, hi).astype("int64"), np.append(out_y, last[-1])


def span_text(span: pd.Timedelta) -> str:
    """A window length as people write it.

    >>> span_text(pd.Timedelta("15min")), span_text(pd.Timedelta("90min"))
    ('15 min', '1 h 30 min')
    """
    seconds = int(span.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{v} {unit}" for v, unit in ((days, "d"), (hours, "h"), (minutes, "min"),
                                           (seconds, "s")) if v]
    return " ".join(parts) or "0 s"


def latest_time(calls: pd.DataFrame) -> pd.Timestamp | None:
    """The latest start or end time in a calls table (the data's own "now")."""
    if calls is None or not len(calls):
        return None
    latest = calls["start_time"].max()
    end = calls["end_time"].max()
    if pd.notna(end) and (pd.isna(latest) or end > latest):
        latest = end
    return None if pd.isna(latest) else latest


def ongoing_calls(calls: pd.DataFrame) -> pd.DataFrame:
    """The calls in progress (:func:`recstats.stats.ongoing_mask`)."""
    if not len(calls):
        return calls
    return calls[np.asarray(stats.ongoing_mask(calls), dtype=bool)].reset_index(drop=True)


def snapshot_status(status: pd.DataFrame, ongoing: pd.DataFrame) -> pd.DataFrame:
    """``status`` with each site's calls in progress counted from the calls snapshot.

    The status line then says what the chart and the table show: a second read of the
    capture would include calls that arrived meanwhile. A site served by several
    servers gets its count on its first row (the line adds the rows of a site up).
    """
    out = status.copy()
    if "site" not in out.columns:
        out["site"] = None
    per_site = ongoing["site"].astype("str").value_counts() if "site" in ongoing.columns \
        else pd.Series(dtype="int64")
    first = ~out["site"].duplicated()
    out["ongoing"] = [int(per_site.get(str(site), 0)) if is_first and isinstance(site, str)
                      else 0 for site, is_first in zip(out["site"], first, strict=True)]
    for column, empty in (("events", 0), ("connected", False)):
        if column not in out.columns:
            out[column] = empty
    return out


def clock_time(value, tz: str) -> str:
    """A moment as escaped ``HH:MM:SS`` in ``tz`` (naive means UTC; missing: empty)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return html.escape(f"{stamp.tz_convert(tz):%H:%M:%S}")


def status_table(status: pd.DataFrame, tz: str) -> str:
    """One row per server: a connected light, server, since, keep-alive, counts, error."""

    def text(value) -> str:
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            return ""
        return html.escape(str(value))

    # optional columns (a real Capture has them) are shown when present
    extra = [c for c in ("site", "ongoing") if c in status.columns]
    rows = []
    for record in status.to_dict("records"):
        light = ('<span style="color:#1a7f37" title="connected">●</span>'
                 if bool(record.get("connected")) else
                 '<span style="color:#c62828" title="disconnected">●</span>')
        cells = [light, text(record.get("server")), *(text(record[c]) for c in extra),
                 clock_time(record.get("since"), tz),
                 clock_time(record.get("last_keepalive"), tz),
                 text(record.get("events")), text(record.get("reconnects")),
                 text(record.get("last_error"))]
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    header = ["", "server", *extra, "since", "last keep-alive", "events", "reconnects",
              "last error"]
    return ("<table><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>"
            + "".join(rows) + "</table>")


def top_extensions(visible: pd.DataFrame) -> tuple[bool, pd.Series]:
    """(several sites?, calls per extension, most first) of the calls in view.

    Extensions as :func:`recstats.stats.extension_stats` counts them by default
    (numbers of 1 to 6 digits, not outside ``+...`` numbers), once per call; with several
    sites the index is (site, extension).
    """
    # 1073 at LONDON and 1073 at NEW-YORK are two extensions
    several = "site" in visible.columns and visible["site"].nunique(dropna=True) > 1
    caller = visible["caller"].astype("str").str.strip() if "caller" in visible.columns \
        else None
    parts = []
    for column in ("caller", "callee"):
        if column not in visible.columns:
            continue
        numbers = visible[column].astype("str").str.strip()
        if column == "callee" and caller is not None:  # a call to itself counts once
            numbers = numbers[numbers != caller]
        parts.append(pd.DataFrame({"site": visible.loc[numbers.index, "site"].astype("str"),
                                   "extension": numbers}) if several
                     else numbers.rename("extension"))
    counts = pd.concat(parts).value_counts() if parts else pd.Series(dtype="int64")
    # which numbers are extensions: decided once per distinct number
    numbers = counts.index.get_level_values(-1).to_series()
    counts = counts[stats.is_extension(numbers, None)]
    return several, counts
