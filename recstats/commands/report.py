"""``recstats report SOURCE --out DIR``: an HTML report for a calls table.

SOURCE is a calls table written as Parquet (``recstats parse``, a previous report's
``calls.parquet``) or a CDR archive (folder, .zip, .tar[.gz]), parsed on the way.
"""

from __future__ import annotations

from pathlib import Path

from ..cli import UsageError


def load_calls(source: str | Path, tz: str = "UTC", progress: bool = True):
    """A calls table and its parse errors (a DataFrame, maybe empty) from ``source``."""
    import pandas as pd

    from .. import archive
    from ..cdr import coerce_calls

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
        return coerce_calls(calls), None
    calls = archive.read_archive(path, progress=progress, tz=tz)
    return calls, archive.archive_errors(calls)


def run(args) -> int:
    from ..report import write_report

    calls, errors = load_calls(args.source, tz=args.tz)
    if not len(calls):
        raise UsageError(f"{args.source}: no calls found")
    index = write_report(calls, args.out, title=f"recstats report: {Path(args.source).name}",
                         tz=args.tz, errors=errors)
    print(f"{len(calls):,} calls" + (f", {len(errors):,} files with errors"
                                    if errors is not None and len(errors) else ""))
    print(f"report: {index}")
    return 0
