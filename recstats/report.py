"""A self-contained HTML report for a calls table, and the live-vs-archive comparison.

:func:`write_report` writes one folder: ``index.html`` (summary, tables, and charts
referenced by relative path, so the folder can be zipped or served as it is), the PNG
charts, ``calls.parquet`` and, when given, ``events.parquet``. Every figure and table
comes from :mod:`recstats.stats` and :mod:`recstats.plot`; this module only lays them
out. :func:`compare_calls` checks calls captured live against the archive the servers
wrote (the ``recstats demo`` check).
"""

from __future__ import annotations

import datetime as _dt
import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["Comparison", "choose_freq", "compare_calls", "write_report"]

#: Columns that must agree between a call seen live and its CDR file.
COMPARED_COLUMNS = ("site", "start_time", "end_time", "caller", "callee")

#: The extension_stats columns the report shows (the Parquet file has them all).
_EXTENSION_COLUMNS = ("calls", "inbound", "outbound", "internal", "total_duration",
                      "mean_duration", "traffic", "peak_concurrent")

#: Candidate bin widths for the concurrency chart and table, finest first.
_FREQS = ("1min", "5min", "15min", "1h", "1D")

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;
max-width:1100px;color:#222;padding:0 1em}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}
th,td{padding:.25em .6em;border-bottom:1px solid #eee;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee}.muted{color:#777}
.ok{color:#1a7f37;font-weight:bold}.bad{color:#c62828;font-weight:bold}
dl.summary{display:grid;grid-template-columns:max-content auto;gap:.2em 1.2em}
dl.summary dt{font-weight:bold}dl.summary dd{margin:0}
"""


# --------------------------------------------------------------------------- comparison


@dataclass
class Comparison:
    """Calls captured live checked against the calls parsed from the servers' archive.

    Only calls that *ended* during the capture can be checked (an ongoing call has no
    CDR yet). ``missing`` lists ended live calls without a CDR, ``mismatches`` one row
    per (call, column) whose values differ, ``archive_only`` archive calls that ended
    inside the span of the live calls' end times but were never seen live.
    """

    live_calls: int
    live_ended: int
    archive_calls: int
    matched: int
    missing: pd.DataFrame = field(repr=False)
    mismatches: pd.DataFrame = field(repr=False)
    archive_only: pd.DataFrame = field(repr=False)

    @property
    def differences(self) -> int:
        """Ended live calls that are missing from the archive or differ from their CDR."""
        return len(self.missing) + self.mismatches["call_id"].nunique()

    @property
    def ok(self) -> bool:
        """True when every ended live call matched its CDR and none was missed live."""
        return self.differences == 0 and len(self.archive_only) == 0

    def summary(self) -> dict[str, int]:
        """The counts as a plain dict (for printing and JSON)."""
        return {"live calls": self.live_calls, "ended live": self.live_ended,
                "in progress at the end (no CDR yet)": self.live_calls - self.live_ended,
                "archive calls": self.archive_calls, "matched": self.matched,
                "missing from archive": len(self.missing),
                "calls with differences": int(self.mismatches["call_id"].nunique()),
                "archive only": len(self.archive_only)}

    def __str__(self) -> str:
        parts = [f"{k}: {v}" for k, v in self.summary().items()]
        return ("OK " if self.ok else "DIFFERENCES ") + ", ".join(parts)

    def _repr_html_(self) -> str:
        verdict = ('<p class="ok">every ended live call matches its CDR</p>' if self.ok else
                   f'<p class="bad">{self.differences} live call(s) differ from the archive; '
                   f'{len(self.archive_only)} archive call(s) were not seen live</p>')
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>"
                       for k, v in self.summary().items())
        parts = [verdict, f"<table>{rows}</table>"]
        for label, frame in (("Missing from the archive", self.missing),
                             ("Differences", self.mismatches),
                             ("In the archive, not seen live", self.archive_only)):
            if len(frame):
                parts.append(f"<h3>{html.escape(label)}</h3>{_table(frame, 50)}")
        return "\n".join(parts)


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Element-wise equality where two missing values count as equal."""
    a_na, b_na = a.isna().to_numpy(), b.isna().to_numpy()
    eq = (a.astype("object").to_numpy() == b.astype("object").to_numpy())
    return np.where(a_na | b_na, a_na & b_na, eq).astype(bool)


def compare_calls(live: pd.DataFrame, archive: pd.DataFrame,
                  columns: tuple[str, ...] = COMPARED_COLUMNS) -> Comparison:
    """Check calls captured live against the same servers' CDR archive, by ``call_id``.

    Each live call that has an ``end_time`` must have a CDR with equal ``columns``
    (times compared exactly: both sides come from the same millisecond texts).

    >>> from recstats import calls_frame
    >>> t = pd.Timestamp("2026-11-02 09:00", tz="UTC")
    >>> rec = {"call_id": "a", "site": "NY", "start_time": t, "caller": "1000",
    ...        "end_time": t + pd.Timedelta("1min")}
    >>> live = calls_frame([rec, {**rec, "call_id": "b", "end_time": pd.NaT}])
    >>> arch = calls_frame([{**rec, "caller": "1001"}])
    >>> c = compare_calls(live, arch)
    >>> c.live_ended, c.matched, c.differences, c.mismatches["column"].tolist()
    (1, 0, 1, ['caller'])
    """
    ended = live[live["end_time"].notna()].drop_duplicates("call_id", keep="last")
    arch = archive.drop_duplicates("call_id", keep="last").set_index("call_id")
    known = ended["call_id"].isin(arch.index).to_numpy()
    missing = ended.loc[~known, ["call_id", *[c for c in columns if c in ended]]]
    both = ended[known].set_index("call_id")
    other = arch.loc[both.index]
    bad_rows: list[pd.DataFrame] = []
    differs = np.zeros(len(both), dtype=bool)
    for column in columns:
        if column not in both.columns and column not in other.columns:
            continue
        mine = both[column] if column in both.columns else pd.Series(pd.NA, index=both.index)
        theirs = other[column] if column in other.columns else pd.Series(pd.NA,
                                                                         index=both.index)
        if isinstance(mine.dtype, pd.CategoricalDtype):
            mine = mine.astype("str")
        if isinstance(theirs.dtype, pd.CategoricalDtype):
            theirs = theirs.astype("str")
        same = _same(mine, theirs)
        differs |= ~same
        if (~same).any():
            bad_rows.append(pd.DataFrame({
                "call_id": both.index[~same], "column": column,
                "live": mine[~same].astype("str").to_numpy(),
                "archive": theirs[~same].astype("str").to_numpy()}))
    mismatches = (pd.concat(bad_rows, ignore_index=True) if bad_rows else
                  pd.DataFrame({"call_id": pd.Series(dtype="str"),
                                "column": pd.Series(dtype="str"),
                                "live": pd.Series(dtype="str"),
                                "archive": pd.Series(dtype="str")}))
    if len(ended):
        lo, hi = ended["end_time"].min(), ended["end_time"].max()
        window = archive["end_time"].between(lo, hi) & ~archive["call_id"].isin(live["call_id"])
        archive_only = archive.loc[window, ["call_id", *[c for c in columns if c in archive]]]
    else:
        archive_only = archive.iloc[:0][["call_id"]]
    return Comparison(live_calls=int(live["call_id"].nunique()), live_ended=len(ended),
                      archive_calls=len(arch), matched=int((~differs).sum()),
                      missing=missing.reset_index(drop=True),
                      mismatches=mismatches,
                      archive_only=archive_only.reset_index(drop=True))


# --------------------------------------------------------------------------- helpers


def choose_freq(calls: pd.DataFrame, max_bins: int = 60) -> str:
    """The finest bin width in 1min/5min/15min/1h/1D giving at most ``max_bins`` bins.

    >>> t = pd.Timestamp("2026-11-02 09:00", tz="UTC")
    >>> calls = pd.DataFrame({"start_time": [t], "end_time": [t + pd.Timedelta("3h")]})
    >>> choose_freq(calls), choose_freq(calls, max_bins=200)   # 36 and 180 bins
    ('5min', '1min')
    """
    start = calls["start_time"].min()
    end = max(calls["end_time"].max(), calls["start_time"].max()) \
        if calls["end_time"].notna().any() else calls["start_time"].max()
    if pd.isna(start) or pd.isna(end):
        return _FREQS[0]
    span = end - start
    for freq in _FREQS:
        if span / pd.Timedelta(freq) <= max_bins:
            return freq
    return _FREQS[-1]


def _localise(frame: pd.DataFrame, tz: str) -> pd.DataFrame:
    """A copy whose tz-aware columns (and index) show wall-clock time in ``tz``."""
    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = out[column].dt.tz_convert(tz).dt.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(out.index, pd.DatetimeIndex) and out.index.tz is not None:
        out.index = out.index.tz_convert(tz).strftime("%Y-%m-%d %H:%M")
    return out


def _table(frame: pd.DataFrame, max_rows: int = 60, tz: str = "UTC",
           index: bool = False) -> str:
    """A DataFrame as an escaped HTML table, cut to ``max_rows`` with a note."""
    shown = _localise(frame.head(max_rows), tz)
    text = shown.to_html(escape=True, border=0, index=index, na_rep="",
                         float_format=lambda v: f"{v:,.3f}".rstrip("0").rstrip("."))
    if len(frame) > max_rows:
        text += f'<p class="muted">first {max_rows} of {len(frame):,} rows</p>'
    return text


def _save(fig, path: Path) -> None:
    fig.savefig(path, dpi=100, bbox_inches="tight")


def _chart(out: Path, name: str, draw, alt: str, notes: list[str]) -> str:
    """Draw one chart into ``out/name``; on failure put the reason in the page instead."""
    try:
        fig = draw()
        _save(fig, out / name)
    except Exception as exc:  # noqa: BLE001 - one broken chart must not lose the whole report
        notes.append(f"{name}: {type(exc).__name__}: {exc}")
        return f'<p class="bad">chart unavailable: {html.escape(str(exc))}</p>'
    return f'<p><img src="{html.escape(name)}" alt="{html.escape(alt)}"></p>'


def _section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>\n{body}\n</section>'


def _summary(calls: pd.DataFrame, tz: str, events: pd.DataFrame | None) -> dict[str, str]:
    from . import stats

    ended = calls["end_time"].notna()
    start = calls["start_time"].min()
    end = calls["end_time"].max()
    items = {"calls": f"{len(calls):,}",
             "sites": ", ".join(map(str, sorted(calls["site"].dropna().unique()))) or "—",
             "ongoing (no end time)": f"{int((~ended).sum()):,}"}
    if pd.notna(start):
        items["first call starts"] = f"{start.tz_convert(tz):%Y-%m-%d %H:%M:%S %Z}"
    if pd.notna(end):
        items["last call ends"] = f"{end.tz_convert(tz):%Y-%m-%d %H:%M:%S %Z}"
    # calls still in progress have no duration yet; the long ones are the likeliest to
    # be still running, so say which calls these figures cover
    of = " (ended calls)" if not ended.all() else ""
    seconds = calls["duration"].sum(skipna=True)
    items[f"total talk time{of}"] = f"{seconds / 3600:,.2f} h"
    if ended.any():
        items[f"mean holding time{of}"] = f"{calls.loc[ended, 'duration'].mean():,.1f} s"
    exact = stats.concurrency(calls)
    if len(exact):
        at = exact["concurrent"].to_numpy().argmax()
        when = pd.Timestamp(exact["time"].iloc[at]).tz_convert(tz)
        items["peak concurrent calls"] = f"{int(exact['concurrent'].iloc[at])} at " \
                                         f"{when:%Y-%m-%d %H:%M:%S %Z}"
    if events is not None:
        items["live events"] = f"{len(events):,}"
    return items


def _observed_span(calls: pd.DataFrame) -> pd.Timedelta | None:
    start, end = calls["start_time"].min(), calls["end_time"].max()
    return None if pd.isna(start) or pd.isna(end) else end - start


def _concurrency_table(calls: pd.DataFrame, freq: str) -> pd.DataFrame:
    """Per-bin peak and mean per site, one row per bin, sites side by side."""
    from . import stats

    long = stats.concurrency(calls, freq=freq, by="site")
    if isinstance(long.index, pd.DatetimeIndex) or "time" not in long.columns:
        long = long.reset_index()
    wide = long.pivot_table(index="time", columns="site", values=["peak", "mean"],
                            observed=True, aggfunc="first")
    sites = list(dict.fromkeys(site for _, site in wide.columns))
    wide = wide[[(what, site) for site in sites for what in ("peak", "mean")]]
    wide.columns = [f"{site} {what}" for what, site in wide.columns]
    return wide.rename_axis("bin start").reset_index()


def _busy_hour_table(calls: pd.DataFrame, tz: str) -> pd.DataFrame:
    from . import stats

    rows = []
    for method in ("time-consistent", "bouncing"):
        result = stats.busy_hour(calls, method=method, tz=tz)
        hour = getattr(result, "hour", None)
        rows.append({"method": method,
                     "busy hour": "" if hour is None or pd.isna(hour) else
                     (f"{int(hour):02d}:00–{int(hour) + 1:02d}:00"
                      if isinstance(hour, (int, np.integer, float)) else str(hour)),
                     "traffic (erlangs)": float(getattr(result, "traffic", float("nan")))})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- report


def write_report(calls: pd.DataFrame, out_dir: str | Path,
                 events: pd.DataFrame | None = None, title: str = "recstats report",
                 tz: str = "UTC", errors: pd.DataFrame | list[dict] | None = None,
                 comparison: Comparison | None = None) -> Path:
    """Write an HTML report folder for a calls table and return the ``index.html`` path.

    The folder gets ``index.html`` (summary; concurrency per site, traffic heat map, top
    extensions, capacity and busy-hour sections; parse errors and the live-vs-archive
    comparison when given), one PNG per chart (referenced by relative path),
    ``calls.parquet`` and, when ``events`` is given, ``events.parquet``. Times are shown
    in ``tz``. ``errors`` is :func:`recstats.archive_errors`' table (or the list of dicts in
    ``calls.attrs["errors"]``). All text from the data is HTML-escaped. The caller's frames
    are not modified.

    >>> path = write_report(calls, "report", tz="Europe/Budapest")  # doctest: +SKIP
    >>> path.name                                                    # doctest: +SKIP
    'index.html'
    """
    from . import plot, stats

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    sections: list[str] = []

    summary = _summary(calls, tz, events)
    rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>"
                   for k, v in summary.items())
    sections.append(_section("Summary", f'<dl class="summary">{rows}</dl>', "summary"))

    if comparison is not None:
        sections.append(_section("Live capture vs archive", comparison._repr_html_(),
                                 "comparison"))

    # the chart can show finer bins than a table stays readable with
    freq, chart_freq = choose_freq(calls), choose_freq(calls, max_bins=240)
    body = _chart(out, "concurrency.png",
                  lambda: plot.plot_concurrency(calls, freq=chart_freq, by="site", tz=tz),
                  "concurrent calls per site", notes)
    try:
        body += (f"<p>Per {html.escape(freq)} bin: the peak of the exact number of calls "
                 "in progress and its time-weighted mean (carried traffic, erlangs).</p>")
        body += _table(_concurrency_table(calls, freq), 60, tz)
    except Exception as exc:  # noqa: BLE001 - listed under Report notes
        notes.append(f"concurrency table: {exc}")
    sections.append(_section("Concurrent calls per site", body, "concurrency"))

    body = _chart(out, "traffic_heatmap.png",
                  lambda: plot.plot_traffic_heatmap(calls, tz=tz),
                  "traffic by weekday and hour", notes)
    try:
        profile = stats.traffic_profile(calls, tz=tz)
        used = profile.fillna(0).ne(0)
        profile = profile.loc[used.any(axis=1), used.any(axis=0)]  # observed cells only
        body += (f"<p>Mean traffic (erlangs) by weekday and hour of day ({html.escape(tz)}), "
                 "for the days and hours with calls.</p>")
        body += _table(profile, 40, tz, index=True)
    except Exception as exc:  # noqa: BLE001 - listed under Report notes
        notes.append(f"traffic profile: {exc}")
    sections.append(_section("Traffic by hour", body, "traffic"))

    body = _chart(out, "extensions.png", lambda: plot.plot_extensions(calls, top=10),
                  "top extensions", notes)
    try:
        ext = stats.extension_stats(calls)
        shown = [c for c in _EXTENSION_COLUMNS if c in ext.columns] or list(ext.columns)
        body += f"<p>The {min(len(ext), 15)} extensions in the most calls, of {len(ext):,}.</p>"
        body += _table(ext[shown].head(15), 15, tz,
                       index=not isinstance(ext.index, pd.RangeIndex))
    except Exception as exc:  # noqa: BLE001 - listed under Report notes
        notes.append(f"extension statistics: {exc}")
    sections.append(_section("Top extensions", body, "extensions"))

    finished = (calls["end_time"] > calls["start_time"]).to_numpy(dtype=bool, na_value=False)
    if not finished.any():
        body = "<p>No finished call with a duration: no traffic to size channels for.</p>"
    else:
        body = _chart(out, "capacity.png", lambda: plot.plot_capacity(calls, tz=tz),
                      "Erlang B channels against blocking", notes)
        try:
            body += ("<p>Channels needed (Erlang B) for the busy-hour traffic at each blocking "
                     "target, against the observed peak.</p>")
            span = _observed_span(calls)
            if span is not None and span < pd.Timedelta("2h"):
                body += (f'<p class="bad">Only {span / pd.Timedelta("1min"):,.0f} minutes of calls '
                         "were observed. Busy-hour traffic is the mean over a whole clock hour, "
                         "so hours observed in part understate it; the per-bin means above show "
                         "the traffic while calls were observed.</p>")
            cap = stats.capacity_table(calls, tz=tz)
            body += _table(cap, 20, tz, index=not isinstance(cap.index, pd.RangeIndex))
            body += "<h3>Busy hour</h3>" + _table(_busy_hour_table(calls, tz), 5, tz)
        except Exception as exc:  # noqa: BLE001 - listed under Report notes
            notes.append(f"capacity: {exc}")
    sections.append(_section("Capacity", body, "capacity"))

    if errors is not None and not isinstance(errors, pd.DataFrame):
        errors = pd.DataFrame(list(errors))  # e.g. calls.attrs["errors"], a list of dicts
    if errors is not None and len(errors):
        sections.append(_section(f"Files that could not be parsed ({len(errors):,})",
                                 _table(errors, 100, tz), "errors"))
    if notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
        sections.append(_section("Report notes", f"<ul>{items}</ul>", "notes"))

    calls.to_parquet(out / "calls.parquet", index=False)
    if events is not None:
        events.to_parquet(out / "events.parquet", index=False)

    made = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            f"<h1>{html.escape(title)}</h1>"
            f'<p class="muted">written by recstats {_version()} on {made}; times in '
            f"{html.escape(tz)}; data: <a href=\"calls.parquet\">calls.parquet</a>"
            + (' · <a href="events.parquet">events.parquet</a>' if events is not None else "")
            + "</p>\n" + "\n".join(sections) + "\n</body></html>\n")
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index


def _version() -> str:
    from . import __version__
    return __version__


def report_notes(index: str | Path) -> list[str]:
    """The problems a written report lists under "Report notes" (empty when none).

    A chart or table that could not be made is left out of the page and its reason
    listed there, so one failing figure never loses the whole report.

    >>> report_notes(write_report(calls, "report"))  # doctest: +SKIP
    []
    """
    text = Path(index).read_text(encoding="utf-8")
    if 'id="notes"' not in text:
        return []
    block = text.split('id="notes"', 1)[1].split("</ul>", 1)[0]
    return [html.unescape(item.split("</li>", 1)[0]) for item in block.split("<li>")[1:]]
