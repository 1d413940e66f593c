"""``recstats capture``: subscribe to recording servers and write the events table.

One :class:`recstats.Capture` over every ``HOST:PORT``; a status line on stderr (events,
calls in progress per site, servers connected) refreshed every second on a terminal and
written as a plain line every few seconds otherwise. A server that cannot be reached is
reported and retried while the others go on. The events table is written to Parquet
when ``--duration`` is over or on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .._output import check_output, replacing
from ..capture import status_line
from . import UsageError

_PLAIN_EVERY = 5.0  # seconds between status lines when stderr is not a terminal


@contextlib.contextmanager
def _ctrl_c_sets(interrupted: threading.Event) -> Iterator[None]:
    """While inside: Ctrl-C sets ``interrupted`` (a second one interrupts at once).

    A ``KeyboardInterrupt`` raised wherever the main thread happens to be (inside a
    library's cleanup, where it is ignored, or half-way through a status) can be lost
    or leave things half done; an event is checked where it is safe."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame) -> None:
        interrupted.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _watch(capture, duration: float | None, stream, interrupted: threading.Event
           ) -> None:
    """Show the status until ``duration`` seconds have passed (forever: None) or
    ``interrupted`` is set."""
    tty = hasattr(stream, "isatty") and stream.isatty()
    began = time.monotonic()
    shown_errors: dict[str, str] = {}
    last_plain = None
    while True:
        left = None if duration is None else began + duration - time.monotonic()
        if left is not None and left <= 0:
            break
        if interrupted.wait(1.0 if left is None else min(1.0, left)):
            break
        status = capture.status
        for server, connected, error in zip(status["server"], status["connected"],
                                            status["last_error"], strict=True):
            if not connected and isinstance(error, str) and shown_errors.get(server) != error:
                shown_errors[server] = error
                if tty:
                    stream.write("\r\x1b[K")
                stream.write(f"{server}: {error} (retrying)\n")
        line = status_line(status)
        if tty:
            stream.write(f"\r\x1b[K{line}")
        elif last_plain is None or time.monotonic() - last_plain >= _PLAIN_EVERY:
            stream.write(line + "\n")
            last_plain = time.monotonic()
        stream.flush()
    if tty:
        stream.write("\n")


def run(args) -> int:
    from ..capture import Capture

    if args.duration is not None and not args.duration > 0:
        raise UsageError(f"--duration must be positive, not {args.duration}")
    check_output(args.output)  # a FIFO, a device, a folder, "": refused before capturing
    out = Path(args.output)
    try:
        capture = Capture(args.servers, extensions=args.extension, journal=args.journal,
                          keep=args.keep)
    except ValueError as exc:  # e.g. --keep 0 or --keep soon
        raise UsageError(str(exc)) from None
    names = ", ".join(f"{host}:{port}" for host, port in capture.servers)
    print(f"capturing {names}" + (f" for {args.duration:g} s" if args.duration else
                                   " until Ctrl-C"), file=sys.stderr, flush=True)
    capture.start()
    interrupted = threading.Event()
    try:
        with _ctrl_c_sets(interrupted):
            _watch(capture, args.duration, sys.stderr, interrupted)
    finally:
        # also on Ctrl-C: what was captured is written before the interrupt goes on
        capture.stop()
        events = capture.events
        events.attrs = capture.calls.attrs  # the window and gaps, in the servers' clock
        with replacing(out) as temp:
            events.to_parquet(temp, index=False)
        status = capture.status
        print(f"wrote {len(events):,} events of {events['call_id'].nunique():,} calls "
              f"to {out}; {int(status['reconnects'].sum())} reconnects", file=sys.stderr)
    if interrupted.is_set():
        raise KeyboardInterrupt  # written: now the usual exit of an interrupted command
    never = status["since"].isna() & (status["events"] == 0)
    if never.all():
        # an empty file written after reaching nothing must not look like a quiet day
        print(f"recstats capture: error: no server could be reached ({names}); check the "
              "addresses and that the recording servers listen there", file=sys.stderr)
        return 1
    return 0
