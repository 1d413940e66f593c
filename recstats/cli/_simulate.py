"""``recstats simulate``: simulated recording servers on consecutive ports until Ctrl-C."""

from __future__ import annotations

import os
import signal
import string
import sys
import threading
import time

from . import UsageError


def site_name(index: int) -> str:
    """``0 -> "SITE-A"``, ``25 -> "SITE-Z"``, ``26 -> "SITE-AA"`` (spreadsheet style).

    >>> [site_name(i) for i in (0, 1, 25, 26)]
    ['SITE-A', 'SITE-B', 'SITE-Z', 'SITE-AA']
    """
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = string.ascii_uppercase[rest] + letters
    return f"SITE-{letters}"


def _stop_on_sigterm() -> None:
    """Treat SIGTERM like Ctrl-C, so ``kill`` also stops the simulators cleanly."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, interrupt)
    except (ValueError, OSError):  # not allowed here (embedded interpreters)
        pass


def run(args, *, wait=None) -> int:
    """Start ``args.sites`` simulators, print where they listen, serve until Ctrl-C.

    ``wait`` (for tests) replaces the endless wait; it is called once with the list of
    running simulators.
    """
    from ..sim import RecorderSimulator

    if args.sites < 1:
        raise UsageError("--sites must be at least 1")
    if not args.rate > 0:
        raise UsageError("--rate must be a positive number of calls per second")
    if not args.speed > 0:
        raise UsageError("--speed must be positive")
    if not args.mean_holding > 0:
        raise UsageError("--mean-holding must be positive seconds")
    if args.keepalive < 0:
        raise UsageError("--keepalive must be >= 0 seconds")
    if not 0 <= args.port <= 65535 or (args.port and args.port + args.sites - 1 > 65535):
        raise UsageError(f"--port {args.port} with {args.sites} sites is out of range")
    if args.archive is not None and os.path.exists(args.archive) \
            and not os.path.isdir(args.archive):
        raise UsageError(f"--archive {args.archive} exists and is not a folder")
    if args.archive is not None:
        _check_archive_writable(args.archive)
    simulators = []
    try:
        for i in range(args.sites):
            port = args.port + i if args.port else 0
            try:
                sim = RecorderSimulator(
                    host=args.host, port=port, location=site_name(i), rate=args.rate,
                    mean_holding=args.mean_holding, speed=args.speed,
                    seed=None if args.seed is None else args.seed + i,
                    archive=args.archive, keepalive=args.keepalive,
                    # a long run keeps the newest calls in memory, the archive keeps all
                    history=200_000)
            except OSError as exc:
                # strerror, not os.strerror(errno): name-resolution errors have negative
                # errnos ("Unknown error -2"); Python appends where it tried to bind
                why = (exc.strerror or str(exc)).split(" (while attempting")[0]
                raise UsageError(f"cannot listen on {args.host}:{port}: {why}") from None
            simulators.append(sim.start())
            print(f"{sim.location} listening on {sim.host}:{sim.port}", flush=True)
        where = f", writing CDR files under {args.archive}" if args.archive else ""
        print(f"{args.rate:g} calls/s per site at {args.speed:g}x speed{where}; "
              "Ctrl-C to stop", flush=True)
        if wait is not None:
            wait(simulators)
        else:
            _stop_on_sigterm()
            warned = False
            while True:
                time.sleep(1.0)
                failed = sum(sim.stats["archive_errors"] for sim in simulators)
                if failed and not warned:  # a full disk mid-run is said at once
                    print(f"recstats simulate: warning: CDR files cannot be written under "
                          f"{args.archive} ({failed} so far); the total follows at the end",
                          file=sys.stderr, flush=True)
                    warned = True
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr, flush=True)
    finally:
        for sim in simulators:
            sim.stop()
    failed = sum(sim.stats["archive_errors"] for sim in simulators)
    if failed:
        print(f"recstats simulate: error: {failed} CDR file(s) could not be written under "
              f"{args.archive}", file=sys.stderr)
        return 1
    return 0


def _check_archive_writable(folder: str) -> None:
    """Create ``folder`` and a probe file in it, or raise a one-line OSError (exit 1):
    a simulator that cannot write its archive must not run on as if it did."""
    probe = os.path.join(folder, f".recstats-probe-{os.getpid()}")
    try:
        os.makedirs(folder, exist_ok=True)
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write CDR files under --archive {folder}: "
                                 f"{exc.strerror}") from None
