"""The ``recstats`` command: argument parsing only; each command lives in
``recstats/cli/_<name>.py`` as ``run(args) -> exit code``.

Every error is one line on stderr and an exit code, never a traceback: 2 for a usage
problem (a bad option, a path that cannot be read or must not be written), 1 for a
failure while working (an unwritable folder, a full disk, nothing found to parse).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..errors import RecstatsError


class UsageError(RecstatsError):
    """A problem with the command line or its paths: reported in one line, exit 2."""


def _server(text: str) -> tuple[str, int]:
    from ..client import parse_address

    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recstats",
        description="Capture and analyse call-recording servers' traffic and CDR archives.")
    parser.add_argument("--version", action="version", version="%(prog)s 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("parse", help="parse a CDR archive into a Parquet calls table",
                       description="Parse a folder, .zip or .tar[.gz] of CDR XML files "
                                   "into one calls table written as Parquet.")
    p.add_argument("archive", help="folder, .zip, .tar or .tar.gz of CDR files")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("-o", "--output", help="Parquet file to write")
    out.add_argument("--dataset", metavar="DIR",
                     help="incremental Parquet dataset folder to create or bring up to "
                          "date (parses only new or changed files)")
    p.add_argument("--workers", type=int, default=None,
                   help="parser processes (default: one per core)")
    p.add_argument("--tz", default="UTC", help="the sites' time zone (default UTC)")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 if any file could not be parsed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("simulate", help="run simulated recording servers until Ctrl-C",
                       description="Run one simulated recording server per site on "
                                   "consecutive ports until interrupted.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=10300, help="first port (default 10300)")
    p.add_argument("--sites", type=int, default=1, help="number of sites (default 1)")
    p.add_argument("--rate", type=float, default=2.0, help="calls per simulated second")
    p.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    p.add_argument("--mean-holding", type=float, default=180.0, help="seconds")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--archive", default=None, help="write CDR + media files under DIR")
    p.add_argument("--keepalive", type=float, default=10.0, help="seconds (0: off)")

    p = sub.add_parser("capture", help="capture live call events into Parquet",
                       description="Subscribe to one or more recording servers and "
                                   "write the events table when done or on Ctrl-C.")
    p.add_argument("servers", nargs="+", type=_server, metavar="HOST:PORT")
    p.add_argument("--extension", action="append", default=None, metavar="N",
                   help="only calls with this number (repeatable)")
    p.add_argument("--duration", type=float, default=None, help="seconds (default: forever)")
    p.add_argument("-o", "--output", required=True, help="events Parquet file to write")
    p.add_argument("--journal", default=None, help="folder for the raw message journal")
    p.add_argument("--keep", default=None, metavar="DURATION",
                   help="keep this much in memory (e.g. 1h); older events and ended calls "
                        "spill to Parquet parts in the journal (or a temporary) folder")

    p = sub.add_parser("demo", help="simulate two sites, capture, parse and report",
                       description="Start two simulated sites, capture them live, parse "
                                   "the archive they wrote and write an HTML report.")
    p.add_argument("--out", default="demo-report", help="report folder (default demo-report)")
    p.add_argument("--seconds", type=float, default=30.0, help="capture time (default 30)")
    p.add_argument("--seed", type=int, default=7)

    p = sub.add_parser("report", help="write an HTML report for a calls table",
                       description="Write an HTML report (charts and tables) for a calls "
                                   "table read from Parquet or parsed from an archive.")
    p.add_argument("source", help="calls .parquet file, or a CDR archive")
    p.add_argument("--out", default="report", help="report folder (default report)")
    p.add_argument("--tz", default="UTC", help="zone for the charts' time axis")
    return parser


def _error(command: str, exc: BaseException | str) -> str:
    text = str(exc)
    if isinstance(exc, OSError) and exc.strerror:  # not "[Errno 13] ..."
        text = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    text = " ".join(text.split()) or type(exc).__name__
    return f"recstats {command}: error: {text}"


def main(argv: list[str] | None = None) -> int:
    """Run the ``recstats`` command line ``argv``; returns the exit code."""
    from .._output import OutputPathError
    from .._time import check_tz

    parser = build_parser()
    args = parser.parse_args(argv)
    module = importlib.import_module(f"._{args.command}", __package__)
    try:
        if getattr(args, "tz", None) is not None:
            try:
                check_tz(args.tz)  # every --tz, before any work
            except ValueError as exc:
                raise UsageError(f"--tz: {exc}") from None
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (UsageError, OutputPathError) as exc:
        print(_error(args.command, exc), file=sys.stderr)
        return 2
    except (RecstatsError, OSError) as exc:
        print(_error(args.command, exc), file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: still one line, the traceback only on request
        if os.environ.get("RECSTATS_TRACEBACK"):
            raise
        print(_error(args.command, f"internal error: {type(exc).__name__}: {exc} "
                     "(RECSTATS_TRACEBACK=1 shows where)"), file=sys.stderr)
        return 1

