"""``recstats report SOURCE --out DIR``: an HTML report for a calls table.

SOURCE is a calls table written as Parquet (``recstats parse``, a previous report's
``calls.parquet``), an events table (``recstats capture -o``, folded into one row per
call) or a CDR archive (folder, .zip, .tar[.gz]), parsed on the way.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import UsageError


def calls_from_events(events):
    """Fold an events table (``recstats capture -o``) into a calls table, one row per call.

    The capture's own folding (:class:`recstats._typed_tables.TypedTables`): per server and
    call, the later event's fields win and missing ones keep the earlier values;
    ``duration`` comes from the merged times. Rows are ordered by start time.

    >>> import pandas as pd
    >>> t = pd.Timestamp("2026-11-02 09:00", tz="UTC")
    >>> events = pd.DataFrame({"received_at": [t, t], "event": ["start", "end"],
    ...     "origin": "notification", "server": "h:1", "call_id": "a", "caller": ["1000", None],
    ...     "start_time": [t, pd.NaT], "end_time": [pd.NaT, t + pd.Timedelta("90s")]})
    >>> calls = calls_from_events(events)
    >>> len(calls), calls.loc[0, "caller"], float(calls.loc[0, "duration"])
    (1, '1000', 90.0)
    """
    import pandas as pd

    from .._table import coerce_calls
    from .._time import to_micros
    from .._typed_tables import TypedTables

    typed = TypedTables()
    head = ("received_at", "server", "event", "origin")
    fields = [c for c in events.columns if c not in head]
    servers = events["server"] if "server" in events.columns else pd.Series("", index=events.index)
    for received, server, event, origin, values in zip(
            events["received_at"], servers.astype(str), events["event"].astype(str),
            events["origin"].astype(str) if "origin" in events.columns else events["event"],
            events[fields].itertuples(index=False, name=None), strict=True):
        record = {name: None if pd.isna(value) else value
                  for name, value in zip(fields, values, strict=True)}
        typed.add(to_micros(received), server, event, origin, record)
    calls = typed.calls_frame().drop(columns=["server", "end_unknown"], errors="ignore")
    return coerce_calls(calls)


def load_calls(source: str | Path, tz: str = "UTC", progress: bool = True):
    """A calls table and its parse errors (a DataFrame, maybe empty) from ``source``."""
    import pandas as pd

    from .. import archive
    from .._table import coerce_calls

    path = Path(source)
    if not path.exists():
        raise UsageError(f"{source}: no such file or folder")
    if path.is_file() and path.suffix.lower() in (".parquet", ".pq"):
        try:
            calls = pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
            raise UsageError(f"{source}: not a readable Parquet file ({exc})") from None
        missing = {"call_id", "start_time", "end_time"} - set(calls.columns)
        if missing:
            raise UsageError(f"{source}: not a calls table (no {', '.join(sorted(missing))} "
                             "column); write one with `recstats parse`")
        if {"event", "received_at"} <= set(calls.columns):  # recstats capture's output
            folded = calls_from_events(calls)
            folded.attrs = calls.attrs  # the capture's window and gaps
            return folded, None
        return coerce_calls(calls), archive.archive_errors(calls)
    try:
        calls = archive.read_archive(path, progress=progress, tz=tz)
    except (ValueError, OSError) as exc:  # e.g. a CSV file: neither Parquet nor archive
        raise UsageError(f"{exc}; give a calls .parquet file (recstats parse) or a CDR "
                         "archive") from None
    return calls, archive.archive_errors(calls)


def check_report_folder(out: str | Path) -> Path:
    """``out`` as a report folder that may be written: new, or a folder whose files the
    report replaces are regular files (a FIFO or a device there is refused)."""
    from .._output import check_output

    if not str(out).strip():
        raise UsageError("--out is empty; give a folder name")
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    if folder.is_dir():
        for name in ("index.html", "calls.parquet", "events.parquet", *(
                p.name for p in folder.glob("*.png"))):
            if os.path.lexists(folder / name):
                check_output(folder / name)
    return folder


def run(args) -> int:
    from ..report import write_report

    check_report_folder(args.out)
    calls, errors = load_calls(args.source, tz=args.tz)
    if not len(calls):
        raise UsageError(f"{args.source}: no calls found")
    index = write_report(calls, args.out, title=f"recstats report: {Path(args.source).name}",
                         tz=args.tz, errors=errors)
    print(f"{len(calls):,} calls" + (f", {len(errors):,} files with errors"
                                    if errors is not None and len(errors) else ""))
    print(f"report: {index}")
    return 0
