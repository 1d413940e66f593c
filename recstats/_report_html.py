"""HTML building blocks of :mod:`recstats.report` (private).

Tables are formatted here once, so every number in a report is rounded alike: counts
as integers with thousands separators, every other quantity with two decimals,
fractions (column headings ending in ``[%]``) as whole percentages, and moments as
local wall-clock time. Tables sit in a scrolling box, so a wide one never widens the page.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;
max-width:1100px;color:#222;padding:0 1em}
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.table{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{padding:.2em .5em;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #eee}.muted{color:#777}
.ok{color:#1a7f37;font-weight:bold}.bad{color:#c62828;font-weight:bold}
dl.summary{display:grid;grid-template-columns:max-content auto;gap:.2em 1.2em}
dl.summary dt{font-weight:bold}dl.summary dd{margin:0}
"""


def format_cell(value: Any, column: str, tz: str) -> str:
    """One value as the report writes it (see the module docstring).

    >>> format_cell(1234, "calls", "UTC"), format_cell(1.5, "mean [erlang]", "UTC")
    ('1,234', '1.50')
    >>> format_cell(0.5, "coverage [%]", "UTC"), format_cell(float("nan"), "x", "UTC")
    ('50%', '')
    >>> format_cell(12.0, "NY peak [calls]", "UTC")
    '12'
    >>> format_cell(pd.Timestamp("2026-11-02 09:00", tz="UTC"), "t", "Europe/Budapest")
    '2026-11-02 10:00:00'
    """
    if value is None or value is pd.NaT or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        stamp = value.tz_localize("UTC") if value.tzinfo is None else value
        return f"{stamp.tz_convert(tz):%Y-%m-%d %H:%M:%S}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (hasattr(value, "dtype") and value.dtype.kind in "iu"):
        return f"{int(value):,}"
    if isinstance(value, float) or (hasattr(value, "dtype") and value.dtype.kind == "f"):
        if column.endswith("[%]"):
            return f"{float(value):.0%}"
        if column.endswith("[calls]"):  # counts that a pivot or a NaN made float
            return f"{float(value):,.0f}"
        return f"{float(value):,.2f}"
    return str(value)


def table(frame: pd.DataFrame, max_rows: int = 60, tz: str = "UTC",
          index: bool = False) -> str:
    """A DataFrame as an escaped HTML table in a scrolling box, cut to ``max_rows``."""
    shown = frame.head(max_rows)
    if index:
        shown = shown.reset_index()
    columns = [str(c) for c in shown.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = []
    for record in shown.itertuples(index=False, name=None):
        cells = "".join(f"<td>{html.escape(format_cell(v, c, tz))}</td>"
                        for v, c in zip(record, columns, strict=True))
        rows.append(f"<tr>{cells}</tr>")
    text = (f'<div class="table"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")
    if len(frame) > max_rows:
        text += f'<p class="muted">first {max_rows} of {len(frame):,} rows</p>'
    return text


def definitions(items: dict[str, str]) -> str:
    rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>"
                   for k, v in items.items())
    return f'<dl class="summary">{rows}</dl>'


def chart(out: Path, name: str, draw: Callable[[], Any], alt: str, notes: list[str]) -> str:
    """Draw one chart into ``out/name``; on failure put the reason in the page instead."""
    import matplotlib.pyplot as plt

    try:
        fig = draw()
        try:
            fig.savefig(out / name, dpi=100, bbox_inches="tight")
        finally:
            plt.close(fig)  # the plots make pyplot figures; a report keeps none open
    except Exception as exc:  # noqa: BLE001 - one broken chart must not lose the whole report
        notes.append(f"{name}: {type(exc).__name__}: {exc}")
        return f'<p class="bad">chart unavailable: {html.escape(str(exc))}</p>'
    return f'<p><img src="{html.escape(name)}" alt="{html.escape(alt)}"></p>'


def section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>\n{body}\n</section>'


def paragraph(text: str, css: str = "") -> str:
    cls = f' class="{css}"' if css else ""
    return f"<p{cls}>{html.escape(text)}</p>"


def moment(value: Any, tz: str) -> str:
    """An instant as local wall-clock minutes with the zone.

    >>> moment("2026-11-02T00:00:00+00:00", "Europe/Budapest")
    '2026-11-02 01:00 Europe/Budapest'
    """
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    return f"{stamp.tz_convert(tz):%Y-%m-%d %H:%M} {tz}"


def length(span: pd.Timedelta) -> str:
    """A duration in the largest unit that reads well.

    >>> length(pd.Timedelta("14D")), length(pd.Timedelta("30min")), length(pd.Timedelta("36h"))
    ('14 days', '30 minutes', '1.5 days')
    """
    hours = span / pd.Timedelta(hours=1)
    if hours >= 24:
        days = hours / 24
        return f"{days:g} days" if days != 1 else "1 day"
    if hours >= 1:
        return f"{hours:.3g} hours" if hours != 1 else "1 hour"
    return f"{span / pd.Timedelta(minutes=1):.3g} minutes"
