"""``recstats demo``: two simulated sites, captured live, checked against their archive.

1. start two simulated recording servers (distinct sites and seeds, 60x accelerated
   time, tens of erlangs each, already in steady state: the calls a real recorder has
   in progress when a client connects) writing their CDR + media archive under
   ``<out>/archive``; their clocks wait until the capture holds their ongoing calls;
2. capture both live for ``--seconds`` with a progress line;
3. parse the archive they wrote with :func:`recstats.read_archive`;
4. check every call that ended during the capture against its CDR
   (:func:`recstats.report.compare_calls`);
5. write the HTML report (:func:`recstats.report.write_report`) of the archive's calls
   plus the calls still in progress when the capture stopped (:func:`with_ongoing`),
   with the live events; ``attrs["window"]`` is the simulated period observed, from
   the simulators' start to the capture's end.
"""

from __future__ import annotations

import shutil
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from . import UsageError

#: The simulated sites: (location, seed offset, calls per simulated second). With
#: MEAN_HOLDING that is 0.5 x 180 = 90 and 0.35 x 180 = 63 erlangs offered: a contact
#: centre's load, in progress from the first second (the simulators start in steady state).
SITES = (("NEW-YORK", 0, 0.5), ("LONDON", 1, 0.35))
SPEED = 60.0
MEAN_HOLDING = 180.0
#: Real seconds to wait for the capture to hold every simulator's ongoing calls.
CONNECT_TIMEOUT = 10.0


def offered_erlangs() -> dict[str, float]:
    """Each demo site's offered traffic, rate x mean holding time [erlang].

    >>> offered_erlangs()
    {'NEW-YORK': 90.0, 'LONDON': 63.0}
    """
    return {location: round(rate * MEAN_HOLDING, 6) for location, _, rate in SITES}


def _await_ongoing(capture, sims, timeout: float = CONNECT_TIMEOUT) -> bool:
    """Wait until the capture holds the ongoing calls of every (paused) simulator."""
    wanted = sum(len(sim.ongoing) for sim in sims)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bool(capture.status["connected"].all()) and len(capture.ongoing) >= wanted:
            return True
        time.sleep(0.05)
    return False


def _iso(moment) -> str:
    return moment.tz_convert("UTC").isoformat()


def _prepare(out: Path) -> Path:
    """The archive folder under ``out``, emptied when ``out`` is a previous demo report."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file; --out needs a folder")
    if out.exists() and any(out.iterdir()) and not (out / "index.html").exists():
        raise UsageError(f"{out} is not empty and not a previous report; choose another --out")
    archive = out / "archive"
    if archive.exists():
        shutil.rmtree(archive)  # the old run's files would be parsed with the new ones
    archive.mkdir(parents=True)
    return archive


def _progress(seconds: float, capture, stream=None) -> None:
    """Wait ``seconds`` while showing live counts (a tqdm bar on a terminal)."""
    from tqdm.auto import tqdm

    stream = stream or sys.stderr
    interactive = hasattr(stream, "isatty") and stream.isatty()
    deadline = time.monotonic() + seconds
    # a terminal that reports no size (some ptys) would get no bar at all
    size = shutil.get_terminal_size(fallback=(80, 24))
    with tqdm(total=round(seconds), unit="s", desc="capturing", file=stream,
              ncols=size.columns or 80, nrows=size.lines or 24,
              disable=not interactive, bar_format="{desc}: {bar} {n:.0f}/{total}s{postfix}"
              ) as bar:
        last_line = 0.0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(0.5, left))
            ongoing, ended = _counts(capture)
            bar.n = min(seconds, seconds - max(0.0, deadline - time.monotonic()))
            bar.set_postfix_str(f"{ongoing} ongoing, {ended} ended")
            if not interactive and time.monotonic() - last_line >= 5:
                print(f"capturing: {bar.n:.0f}/{seconds:.0f}s, {ongoing} ongoing, "
                      f"{ended} ended", file=stream, flush=True)
                last_line = time.monotonic()


def with_ongoing(archive, live):
    """The archive's calls plus the live calls still in progress (no CDR yet, NaT end).

    A report of the archive alone would show the last minutes of every chart declining
    as if traffic died away: the calls still running when the capture stopped are simply
    not in it yet. Calls whose end became unknown are left out (they are not running).

    >>> import pandas as pd
    >>> from recstats import calls_frame
    >>> t = pd.Timestamp("2026-11-02 09:00", tz="UTC")
    >>> archive = calls_frame([{"call_id": "a", "start_time": t,
    ...                         "end_time": t + pd.Timedelta("1min")}])
    >>> live = calls_frame([{"call_id": "a", "start_time": t},
    ...                     {"call_id": "b", "start_time": t + pd.Timedelta("30s")}])
    >>> both = with_ongoing(archive, live)
    >>> both["call_id"].tolist(), both["end_time"].isna().tolist()
    (['a', 'b'], [False, True])
    """
    import pandas as pd

    from .._table import coerce_calls
    from ..stats import ongoing_mask

    running = ongoing_mask(live) & ~live["call_id"].isin(archive["call_id"]).to_numpy()
    if not running.any():
        return archive
    extra = live[running].drop(columns=["server", "end_unknown"], errors="ignore")
    both = coerce_calls(pd.concat([archive.astype("object"), extra.astype("object")],
                                  ignore_index=True))
    both = both[list(archive.columns) + [c for c in both.columns if c not in archive.columns]]
    both.attrs = dict(archive.attrs)
    return both.sort_values(["start_time", "call_id"], kind="stable", ignore_index=True)


def _counts(capture) -> tuple[int, int]:
    calls = capture.calls
    ended = int(calls["end_time"].notna().sum()) if len(calls) else 0
    return len(capture.ongoing), ended


def run(args) -> int:
    import pandas as pd

    from .. import archive as archive_module
    from ..capture import Capture
    from ..report import compare_calls, write_report
    from ..sim import RecorderSimulator

    if args.seconds <= 0:
        raise UsageError(f"--seconds must be positive, not {args.seconds}")
    began = time.monotonic()
    out = Path(args.out)
    archive_dir = _prepare(out)
    seed = args.seed

    with ExitStack() as stack:
        # simulated time starts on a clock hour, so the default 30 simulated minutes
        # observe half of one hour (not two quarters of two); paused: no call may end
        # before the capture has heard of it
        start = pd.Timestamp.now("UTC").floor("h")
        sims = [stack.enter_context(RecorderSimulator(
                    host="127.0.0.1", port=0, location=location, rate=rate,
                    mean_holding=MEAN_HOLDING, speed=SPEED,
                    seed=None if seed is None else seed + offset, archive=archive_dir,
                    start_time=start, paused=True))
                for location, offset, rate in SITES]
        servers = [("127.0.0.1", sim.port) for sim in sims]
        load = ", ".join(f"{site} {e:g}" for site, e in offered_erlangs().items())
        print(f"simulating {len(sims)} sites at {SPEED:g}x speed on "
              + ", ".join(f"{h}:{p}" for h, p in servers)
              + f"; offered load (erlangs): {load}", file=sys.stderr)
        capture = Capture(servers)
        capture.start()
        try:
            if not _await_ongoing(capture, sims):
                print("recstats demo: warning: the capture did not get every ongoing "
                      "call in time; calls ending meanwhile show as archive-only",
                      file=sys.stderr)
            window_start = start
            for sim in sims:
                sim.resume()
            _progress(args.seconds, capture)
        finally:
            window_end = min(sim.now for sim in sims)
            capture.stop()
        live = capture.calls
        events = capture.events
        status = capture.status
    # the simulators have stopped: every call that ended has its CDR on disk
    archive = archive_module.read_archive(archive_dir, progress=False)
    errors = archive_module.archive_errors(archive)
    comparison = compare_calls(live, archive)
    seen = with_ongoing(archive, live)
    # every call in progress in this period is in ``seen``: ended (archive) or ongoing
    seen.attrs["window"] = [_iso(window_start), _iso(window_end)]
    index = write_report(seen, out, events=events,
                         title="recstats demo: two simulated sites", errors=errors,
                         comparison=comparison)
    reconnects = int(status["reconnects"].sum()) if "reconnects" in status else 0
    print(f"captured {len(events):,} events, {len(live):,} calls "
          f"({comparison.live_ended:,} ended, {reconnects} reconnects); "
          f"archive: {len(archive):,} calls, {len(errors):,} unreadable files")
    print(f"live vs archive: {comparison}")
    if len(seen):
        from ..stats import concurrency
        exact = concurrency(seen)
        if len(exact):
            at = int(exact["concurrent"].to_numpy().argmax())
            print(f"peak: {int(exact['concurrent'].iloc[at])} calls at once, "
                  f"{exact['time'].iloc[at]:%Y-%m-%d %H:%M:%S} UTC (simulated clock); the "
                  f"report adds the {len(seen) - len(archive):,} calls still in progress "
                  "to the archive's")
    print(f"report: {index.resolve()}  ({time.monotonic() - began:.1f} s)")
    return 0 if comparison.ok and not len(errors) else 1
