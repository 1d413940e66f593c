"""``recstats parse ARCHIVE -o calls.parquet``: a CDR archive -> one Parquet calls table."""

from __future__ import annotations

import os
import sys
import warnings

import pandas as pd

from .._output import check_output
from . import UsageError

#: How many failure reasons the summary lists before "... and N more".
SHOW_ERRORS = 5
_WIDTH = 100


def _clip(text: str, width: int = _WIDTH) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _span(calls: pd.DataFrame) -> str:
    starts = calls["start_time"].dropna()
    if starts.empty:
        return "no times"
    first = starts.min()
    last = max(starts.max(), calls["end_time"].max()) if calls["end_time"].notna().any() \
        else starts.max()
    fmt = "%Y-%m-%d %H:%M:%S"
    length = str((last - first).floor("s")).removeprefix("0 days ")
    return f"{first:{fmt}} .. {last:{fmt}} UTC ({length})"


def summary(calls: pd.DataFrame, output: str | os.PathLike | None = None) -> str:
    """A one-screen text summary of a :func:`recstats.read_archive` result.

    >>> import recstats as rs
    >>> calls = rs.read_archive("data/samples/odd", progress=False)  # doctest: +SKIP
    >>> print(summary(calls))  # doctest: +SKIP
    """
    attrs = calls.attrs
    errors = attrs.get("errors", [])
    lines = []
    source = attrs.get("source", "?")
    if isinstance(source, list):
        source = f"{len(source)} listed files"
    lines.append(f"{source} -> {output}" if output is not None else str(source))
    lines.append(f"  CDR files           {attrs.get('files', len(calls) + len(errors)):>8}")
    lines.append(f"  parsed              {len(calls):>8}")
    lines.append(f"  failed              {len(errors):>8}")
    for error in errors[:SHOW_ERRORS]:
        lines.append("    " + _clip(f"{error['path']}: {error['error']}", _WIDTH - 4))
    if len(errors) > SHOW_ERRORS:
        lines.append(f"    ... and {len(errors) - SHOW_ERRORS} more "
                     "(recstats.archive_errors(pd.read_parquet(OUT)) lists them)")
    lines.append(f"  calls               {calls['call_id'].nunique():>8}")
    counts = calls["site"].value_counts()
    counts = counts[counts > 0]
    shown = ", ".join(f"{site} {n}" for site, n in counts.head(4).items())
    more = f", +{len(counts) - 4} more" if len(counts) > 4 else ""
    lines.append(f"  sites               {len(counts):>8}" + (f"  ({shown}{more})" if shown
                                                               else ""))
    lines.append(f"  time span           {_span(calls):>8}")
    lines.append(f"  CDRs without media  {int(calls['media_path'].isna().sum()):>8}")
    orphans = attrs.get("media_without_cdr", [])
    first = f"  (e.g. {_clip(orphans[0], 60)})" if orphans else ""
    lines.append(f"  media without CDR   {len(orphans):>8}{first}")
    return "\n".join(lines)


def _check_output(output: str) -> None:
    folder = check_output(output).parent  # a FIFO, a device, a folder, "": refused
    if not os.access(folder, os.W_OK):
        raise UsageError(f"cannot write {output}: folder {folder} is not writable")


def run(args) -> int:
    """Parse ``args.archive``, write ``args.output``, print the summary.

    Exit 0 even when some files failed (they are listed), 1 with ``--strict`` if any
    failed, 1 without writing anything when the archive holds no CDR file at all; a
    missing or unreadable archive or an output that must not be written is a
    :class:`UsageError` (exit 2).
    """
    from ..archive import read_archive, write_parquet

    if not os.path.exists(args.archive):
        raise UsageError(f"no such file or folder: {args.archive}")
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if getattr(args, "dataset", None) is not None:
        return _run_dataset(args)
    _check_output(args.output)
    if os.path.exists(args.output) and os.path.samefile(args.output, args.archive):
        raise UsageError(f"output {args.output} is the archive itself; give another file "
                         "name")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            calls = read_archive(args.archive, workers=args.workers,
                                 progress=not args.no_progress, tz=args.tz)
    except (ValueError, OSError) as exc:  # unknown zone, not an archive, unreadable
        raise UsageError(str(exc)) from None
    for warning in caught:  # one line each, not Python's file:line + source format
        text = str(warning.message).removeprefix("recstats.read_archive: ")
        print(f"recstats parse: warning: {text}", file=sys.stderr)
    if not calls.attrs.get("files", len(calls)):
        # an empty table would look like a quiet period, not like a wrong folder
        print(f"recstats parse: error: no CDR file (*.xml) found in {args.archive}; "
              "nothing written", file=sys.stderr)
        return 1
    write_parquet(calls, args.output)
    print(summary(calls, args.output))
    if args.strict and calls.attrs["errors"]:
        print(f"recstats parse: {len(calls.attrs['errors'])} file(s) could not be parsed "
              "(--strict)", file=sys.stderr)
        return 1
    return 0


def _run_dataset(args) -> int:
    """``--dataset DIR``: bring the dataset up to date with the archive, print the counts."""
    from .._dataset import ingest

    if os.path.exists(args.dataset) and not os.path.isdir(args.dataset):
        raise UsageError(f"--dataset {args.dataset} is a file; give a folder")
    try:
        report = ingest(args.archive, args.dataset, tz=args.tz, workers=args.workers,
                        progress=not args.no_progress)
    except ValueError as exc:  # unknown zone, not an archive, another archive's dataset
        raise UsageError(str(exc)) from None
    print(report)
    if args.strict and report.errors:
        print(f"recstats parse: {report.errors} file(s) could not be parsed (--strict)",
              file=sys.stderr)
        return 1
    return 0
