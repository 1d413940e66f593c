"""A self-contained HTML report for a calls table, and the live-vs-archive comparison.

:func:`write_report` writes one folder: ``index.html`` (summary, data quality,
concurrency, traffic, extensions, capacity, parse errors; charts referenced by relative
path, so the folder can be zipped or served as it is), the PNG charts,
``calls.parquet`` (with its attrs: window, gaps, parse errors) and, when given,
``events.parquet``. Every figure and table comes from :mod:`recstats.stats` and
:mod:`recstats.plot`; this module only lays them out, with units in every column
heading and numbers rounded alike. :func:`compare_calls` checks calls captured live
against the archive the servers wrote (the ``recstats demo`` check).
"""

from __future__ import annotations

import datetime as _dt
import html
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ._comparison import COMPARED_COLUMNS, Comparison, compare_calls
from ._report_html import CSS, chart, definitions, paragraph, section, table
from ._report_sections import capacity_section, quality_section, summary_items, traffic_table
from .errors import DataQualityWarning

__all__ = ["COMPARED_COLUMNS", "Comparison", "choose_freq", "compare_calls", "report_notes",
           "write_report"]

#: Candidate bin widths for the concurrency chart and table, finest first.
_FREQS = ("1min", "5min", "15min", "1h", "1D")

#: extension_stats columns the report shows (the Parquet file has them all) and headings
_EXTENSION_HEADINGS = {
    "calls": "calls", "inbound": "inbound", "outbound": "outbound", "internal": "internal",
    "total_duration": "total duration [s]", "mean_duration": "mean duration [s]",
    "traffic": "traffic [erlang]", "peak_concurrent": "peak [calls]"}


def choose_freq(calls: pd.DataFrame, max_bins: int = 60, *, window: Any = None) -> str:
    """The finest bin width in 1min/5min/15min/1h/1D giving at most ``max_bins`` bins.

    Parameters
    ----------
    calls : pandas.DataFrame
        A calls table (``start_time``, ``end_time``).
    max_bins : int, default 60
        The most bins wanted.
    window : tuple of two moments, optional
        The span to cover; default from the first start to the last start or end.

    Returns
    -------
    str
        A pandas frequency string.

    Examples
    --------
    >>> t = pd.Timestamp("2026-11-02 09:00", tz="UTC")
    >>> calls = pd.DataFrame({"start_time": [t], "end_time": [t + pd.Timedelta("3h")]})
    >>> choose_freq(calls), choose_freq(calls, max_bins=200)   # 36 and 180 bins
    ('5min', '1min')
    >>> choose_freq(calls, window=(t, t + pd.Timedelta("14D")))  # 14 days: 14 bins
    '1D'
    """
    if window is not None:
        start, end = pd.Timestamp(window[0]), pd.Timestamp(window[1])
    else:
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


def _several(calls: pd.DataFrame, column: str = "site") -> bool:
    return column in calls.columns and calls[column].nunique(dropna=True) > 1


def _concurrency_table(calls: pd.DataFrame, freq: str, tz: str, window: Any) -> pd.DataFrame:
    """Observed bins: peak and mean per site (side by side for up to three sites)."""
    from . import stats

    overall = stats.concurrency(calls, freq=freq, tz=tz, window=window)
    observed = overall["coverage"].to_numpy(dtype="float64") > 0
    if not _several(calls):
        out = overall.loc[observed, ["peak", "mean", "coverage"]]
        out.columns = ["peak [calls]", "mean [erlang]", "coverage [%]"]
        return out.rename_axis(f"bin start ({tz})").reset_index()
    long = stats.concurrency(calls, freq=freq, by="site", tz=tz, window=window)
    long = long[long["coverage"].to_numpy(dtype="float64") > 0].reset_index()
    sites = list(dict.fromkeys(long["site"].astype("str")))
    if len(sites) > 3:  # one row per bin and site: many sites side by side overflow
        out = long[["time", "site", "peak", "mean", "coverage"]]
        out.columns = [f"bin start ({tz})", "site", "peak [calls]", "mean [erlang]",
                       "coverage [%]"]
        return out
    wide = long.assign(site=long["site"].astype("str")).pivot(
        index="time", columns="site", values=["peak", "mean"])
    pairs = [(what, site) for site in sites for what in ("peak", "mean")]
    wide = wide[pairs]
    wide.columns = [f"{site} {'peak [calls]' if what == 'peak' else 'mean [erlang]'}"
                    for what, site in pairs]
    wide["coverage [%]"] = overall.loc[observed, "coverage"].reindex(wide.index)
    return wide.rename_axis(f"bin start ({tz})").reset_index()


def _extension_table(calls: pd.DataFrame, tz: str, window: Any) -> pd.DataFrame:
    from . import stats

    ext = stats.extension_stats(calls, by="site" if _several(calls) else None, tz=tz,
                                window=window)
    ext = ext.sort_values("calls", ascending=False, kind="stable")
    shown = [c for c in _EXTENSION_HEADINGS if c in ext.columns]
    return ext[shown].rename(columns=_EXTENSION_HEADINGS)


def write_report(calls: pd.DataFrame, out_dir: str | Path, *,
                 events: pd.DataFrame | None = None, title: str = "recstats report",
                 tz: str = "UTC", window: Any = None, days: Any = None,
                 method: str = "time-consistent", top_days: int | None = None,
                 min_coverage: float = 0.5, blocking: Sequence[float] = (0.001, 0.01, 0.05),
                 errors: pd.DataFrame | list[dict] | None = None,
                 comparison: Comparison | None = None) -> Path:
    """Write an HTML report folder for a calls table and return the ``index.html`` path.

    Parameters
    ----------
    calls : pandas.DataFrame
        A calls table; not modified.
    out_dir : str or path
        The folder to write (made if missing).
    events : pandas.DataFrame, optional
        A live capture's events table, saved beside as ``events.parquet``.
    title : str, default "recstats report"
    tz : str, default "UTC"
        Zone of every time shown and of clock hours; validated by the stats functions.
    window : tuple of two moments, optional
        The observed period; default the table's ``attrs["window"]``, else whole days
        from the first to the last activity.
    days, method, top_days, min_coverage, blocking
        How the busy hour and channels are found (see
        :func:`recstats.stats.capacity_table`); the capacity section states them in words.
    errors : pandas.DataFrame or list of dict, optional
        Files that could not be parsed (:func:`recstats.archive_errors`); default the
        list in ``calls.attrs["errors"]`` (kept by Parquet files).
    comparison : Comparison, optional
        A live-vs-archive check (:func:`compare_calls`) to include.

    Returns
    -------
    pathlib.Path
        The ``index.html`` written. Sections: summary, live vs archive (when given),
        data quality (:func:`recstats.stats.check_calls`), concurrency per site, traffic
        by hour, top extensions (sites apart), capacity, parse errors, report notes
        (what could not be made, see :func:`report_notes`). All text from the data is
        HTML-escaped.

    Examples
    --------
    >>> path = write_report(calls, "report", tz="Europe/Budapest", days="weekdays")  # doctest: +SKIP
    >>> path.name                                                    # doctest: +SKIP
    'index.html'
    """
    from . import plot, stats

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    sections: list[str] = []
    with warnings.catch_warnings():
        # the data-quality section states what the analyses leave out, once
        warnings.simplefilter("ignore", DataQualityWarning)
        observed = stats.observation_window(calls, tz=tz, window=window) if len(calls) \
            else None
        sections.append(section("Summary", definitions(
            summary_items(calls, tz, window, observed, events)), "summary"))
        if comparison is not None:
            sections.append(section("Live capture vs archive", comparison._repr_html_(),
                                    "comparison"))
        sections.append(section("Data quality", quality_section(calls, tz, window),
                                "quality"))

        # the chart can show finer bins than a table stays readable with
        freq = choose_freq(calls, window=observed)
        chart_freq = choose_freq(calls, max_bins=400, window=observed)
        by = "site" if _several(calls) else None
        body = chart(out, "concurrency.png",
                     lambda: plot.plot_concurrency(calls, freq=chart_freq, by=by, tz=tz,
                                                   window=window),
                     "concurrent calls per site", notes)
        if len(calls):
            try:
                table_ = _concurrency_table(calls, freq, tz, window)
                body += paragraph(f"Per {freq} bin observed: the peak of the exact number of "
                                  "calls in progress and its time-weighted mean (carried "
                                  "traffic); coverage is the observed part of the bin.")
                body += table(table_, 60, tz)
            except Exception as exc:  # noqa: BLE001 - listed under Report notes
                notes.append(f"concurrency table: {exc}")
        sections.append(section("Concurrent calls per site", body, "concurrency"))

        body = chart(out, "traffic_heatmap.png",
                     lambda: plot.plot_traffic_heatmap(calls, tz=tz, window=window, days=days),
                     "traffic by weekday and hour", notes)
        if len(calls):
            try:
                body += traffic_table(calls, tz, window, days)
            except Exception as exc:  # noqa: BLE001 - listed under Report notes
                notes.append(f"traffic profile: {exc}")
        sections.append(section("Traffic by hour", body, "traffic"))

        body = chart(out, "extensions.png",
                     lambda: plot.plot_extensions(calls, top=10, tz=tz, window=window),
                     "top extensions", notes)
        if len(calls):
            try:
                ext = _extension_table(calls, tz, window)
                apart = " (each site's extensions apart)" if _several(calls) else ""
                body += paragraph(f"The {min(len(ext), 15)} extensions in the most calls, "
                                  f"of {len(ext):,}{apart}.")
                body += table(ext.head(15), 15, tz, index=True)
            except Exception as exc:  # noqa: BLE001 - listed under Report notes
                notes.append(f"extension statistics: {exc}")
        sections.append(section("Top extensions", body, "extensions"))

        sections.append(section("Capacity", capacity_section(
            calls, out, notes, tz=tz, window=window, days=days, method=method,
            top_days=top_days, min_coverage=min_coverage, blocking=blocking), "capacity"))

    if errors is None:
        errors = calls.attrs.get("errors")
    if errors is not None and not isinstance(errors, pd.DataFrame):
        errors = pd.DataFrame(list(errors))  # e.g. calls.attrs["errors"], a list of dicts
    if errors is not None and len(errors):
        sections.append(section(f"Files that could not be parsed ({len(errors):,})",
                                table(errors, 100, tz), "errors"))
    if notes:
        items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
        sections.append(section("Report notes", f"<ul>{items}</ul>", "notes"))

    calls.to_parquet(out / "calls.parquet", index=False)
    if events is not None:
        events.to_parquet(out / "events.parquet", index=False)

    made = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>\n"
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

    Parameters
    ----------
    index : str or path
        An ``index.html`` written by :func:`write_report`.

    Returns
    -------
    list of str

    Examples
    --------
    >>> report_notes(write_report(calls, "report"))  # doctest: +SKIP
    []
    """
    text = Path(index).read_text(encoding="utf-8")
    if 'id="notes"' not in text:
        return []
    block = text.split('id="notes"', 1)[1].split("</ul>", 1)[0]
    return [html.unescape(item.split("</li>", 1)[0]) for item in block.split("<li>")[1:]]

