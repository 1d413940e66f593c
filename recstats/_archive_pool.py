"""Parsing an archive's units in several processes: a persistent pool the parent joins.

With ``workers=n``, ``n - 1`` worker processes each run one long task per call
(:func:`drain`) that takes units (:mod:`recstats._archive_run`) from a queue shared by
the pool, parses them and types what it gathered once, at the end. For a zip, a tar or
a list of files the parent puts units in the queue as it finds them, parsing the next
one itself whenever :data:`QUEUED_PER_WORKER` per worker are still waiting, then takes
units from the same queue until they run out: every process parses until there is
nothing left, so they end together. A large folder is listed by all the processes
(:mod:`recstats._archive_split`, whose items go through the same queue). After the pool the
parent has no per-file work left: each process hands back finished chunks (media
paired, ``end_unknown`` set), which the parent concatenates, sorts and gives the
schema, vectorised. A worker's chunks come as Arrow IPC files in shared memory that the
parent maps instead of copying (:mod:`recstats._archive_handover`). Each worker counts
the files it parses in a counter shared with the parent (:func:`count_parsed`), which
the parent turns into progress marks among its results (:class:`WorkersProgress`), so
a read's progress bar moves with every process, not once per finished chunk.

The pool is started in a background thread the first time a process needs it; until it
is up the parent parses the units itself, and it stays up for later calls (one pool per
process; a pool still starting when the interpreter exits is waited for, so no
half-started worker prints a traceback). The parent knows which units each process
parsed: any unit a failed worker took is parsed again in the parent, with one warning.

Worker processes do not import the caller's ``__main__`` script (see
:func:`_without_main`), so a script needs no ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import multiprocessing
import queue as queue_module
import sys
import threading
import time
import types
import warnings
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor

from ._archive_handover import (
    SPILL_BYTES,
    chunks_handed_over,
    chunks_taken_over,
    drop_handed_over,
    remove_spill,
    spill_folder,
)
from ._archive_run import Mark, Parser, Result, progress_mark

#: CPU seconds the worker processes of the latest run spent parsing (for bench/).
POOL_CPU_SECONDS = [0.0]
#: Folders the worker processes of the latest split read listed (for tests and bench/).
POOL_FOLDERS = [0]

_lock = threading.Lock()
_busy = threading.Lock()  # held by the read using the pool's queue
_state: dict = {"pool": None, "size": 0, "ready": None, "starter": None, "queue": None,
                "cancelled": None, "taken": None, "counts": None, "parsed": None,
                "spill": None}
_runs = itertools.count(1)

#: In a worker process: the pool's queue of items, the number of a cancelled run, the
#: count of units taken by workers, a split read's ``[run, items outstanding]`` and the
#: latest run's ``[run, files the workers parsed]`` (all shared with the parent), and
#: the folder for the tables it hands over.
_worker: dict = {}


def _init_worker(units, cancelled, taken, counts, parsed, spill) -> None:
    _worker.update(queue=units, cancelled=cancelled, taken=taken, counts=counts,
                   parsed=parsed, spill=spill)


def shared(name: str):
    """The pool's shared ``queue``, ``cancelled``, ``taken``, ``counts`` or ``parsed``,
    in the parent or in a worker."""
    return _worker[name] if _worker else _state[name]


def count_parsed(run: int, files: int) -> None:
    """In a worker: ``files`` more files of ``run`` parsed (for the parent's progress
    bar; a late worker of an earlier run changes nothing)."""
    parsed = _worker["parsed"]
    with parsed.get_lock():
        if parsed[0] == run:
            parsed[1] += files


class WorkersProgress:
    """In the parent: progress marks (:data:`recstats._archive_run.Mark`) for the files
    the workers of ``run`` parsed, as :func:`count_parsed` counts them."""

    def __init__(self, run: int) -> None:
        self.run, self.marked = run, 0

    def marks(self) -> list[Mark]:
        parsed = _state["parsed"]
        with parsed.get_lock():
            files = parsed[1] if parsed[0] == self.run else self.marked
        new, self.marked = files - self.marked, files
        return progress_mark(new)


def drain(run: int, tz: str, directions: Mapping[str, str] | None, max_files: int,
          spill_bytes: int, folders: tuple[str, bool, int, int] | None = None
          ) -> tuple[list[tuple[bytes | str, list[tuple[str, str]], int]], list[int] | dict,
                     float]:
    """In a worker process: parse units of ``run`` from the queue until its end mark.

    Returns ``(chunks as (tables handed over, errors, seen), numbers of the units
    parsed, CPU seconds)``; tables of ``spill_bytes`` or more as files (see
    :mod:`recstats._archive_handover`). Items of earlier runs are left-overs, skipped;
    an item of a later run means this task's own run is over (its caller finished
    without it): the item goes back and the task ends. With ``folders`` (the root, ``follow_links``, files
    per unit and processes of a split read, :mod:`recstats._archive_split`) items are
    folders or units, and the second element is what the worker's listing hands back.
    """
    start = time.process_time()
    if folders is not None:
        from ._archive_find import FolderWalk
        from ._archive_split import Share, serve_items

        root, follow_links, unit_files, processes = folders
        share = Share(FolderWalk(root, follow_links), tz, directions, max_files, unit_files)
        serve_items(run, share, processes)
        chunks = chunks_handed_over(share.finish(), _worker["spill"], spill_bytes)
        return chunks, share.handback(), time.process_time() - start
    units, cancelled, taken = _worker["queue"], _worker["cancelled"], _worker["taken"]
    parser = Parser(tz, directions, max_files)
    parsed: list[int] = []
    while True:
        item = units.get()
        if item[0] != run:
            if item[0] > run:
                units.put(item)
                break
            continue
        if item[1] is None:
            break
        with taken.get_lock():
            taken.value += 1
        if cancelled.value != run:
            parser.add(*item[2])
            parsed.append(item[1])
            count_parsed(run, len(item[2][0][2]))
    chunks = chunks_handed_over(parser.finish(), _worker["spill"], spill_bytes)
    return chunks, parsed, time.process_time() - start


def _ready_check() -> int:
    return 0


def _context() -> multiprocessing.context.BaseContext:
    # Not "fork": the parent often has threads (tqdm's monitor, a notebook's kernel
    # threads, a live Capture, Arrow's pool), and a forked child inherits their locks in
    # whatever state they were, which can deadlock. "forkserver" forks workers from a
    # clean single-threaded server that pre-imports the parser once, so workers start
    # fast and safe; "spawn" where forkserver does not exist (Windows, some macOS).
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["recstats._archive_pool"])
        return ctx
    return multiprocessing.get_context("spawn")


@contextlib.contextmanager
def _without_main() -> Iterator[None]:
    """Start processes that do not re-run the caller's ``__main__`` script.

    multiprocessing makes every new process import the parent's main script so that
    objects defined there can be unpickled; workers here only receive plain data and
    recstats' own functions, and an unguarded script re-run in them would parse the
    archive again (or fail). A blank ``__main__`` while processes are launched gives
    them nothing to import; the caller's module object is left untouched.
    """
    saved = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if saved is not None:
            sys.modules["__main__"] = saved


def _start(size: int) -> None:
    """Start a pool of ``size`` processes in a background thread (runs until ready)."""
    ctx = _context()
    units = ctx.Queue()
    # units left in it when the interpreter exits (a stopped read, dead workers) are
    # worthless: never wait for them to be written to a pipe nobody reads
    units.cancel_join_thread()
    cancelled = ctx.Value("q", 0)  # the number of a run whose units are to be skipped
    taken = ctx.Value("q", 0)      # the units workers took from the queue (all runs)
    counts = ctx.Array("q", 2)     # a split read's [run, items outstanding]
    parsed = ctx.Array("q", 2)     # the latest run's [run, files the workers parsed]
    spill = spill_folder()
    atexit.register(remove_spill, spill)
    pool = ProcessPoolExecutor(max_workers=size, mp_context=ctx, initializer=_init_worker,
                               initargs=(units, cancelled, taken, counts, parsed, spill))
    ready = threading.Event()

    def launch() -> None:
        with contextlib.suppress(Exception):  # a broken pool shows when units are sent
            with _without_main():
                futures = [pool.submit(_ready_check) for _ in range(size)]
            for future in futures:
                future.result()
        ready.set()

    starter = threading.Thread(target=launch, name="recstats-pool-start", daemon=True)
    _state.update(pool=pool, size=size, ready=ready, starter=starter, queue=units,
                  cancelled=cancelled, taken=taken, counts=counts, parsed=parsed,
                  spill=spill)
    starter.start()


#: Units waiting in the queue per worker process: past it, the parent parses the next
#: unit itself (also bounds the memory of a tar's units in flight).
QUEUED_PER_WORKER = 3


def _finish_starting() -> None:
    # A pool still starting when the interpreter exits would leave its half-started
    # processes printing tracebacks: wait for it, before concurrent.futures shuts pools
    # down (its exit hook is registered before this one, and these run in reverse).
    starter = _state["starter"]
    if starter is not None:
        starter.join()


if hasattr(threading, "_register_atexit"):  # every CPython this package supports
    threading._register_atexit(_finish_starting)


def warm(size: int) -> bool:
    """Whether a pool of ``size`` worker processes is up in this process."""
    ready = _state["ready"]
    return _state["size"] == size and ready is not None and ready.is_set()


def start(size: int, timeout: float | None = None) -> bool:
    """Start the pool of ``size`` worker processes (if not up) and wait until it is
    ready; False when ``timeout`` seconds were not enough. For benchmarks and for
    callers who know a large archive follows."""
    return _pool(size)["ready"].wait(timeout)


def _pool(size: int) -> dict:
    with _lock:
        if _state["pool"] is not None and _state["size"] != size:
            _stop(_state["pool"], _state["starter"], _state["spill"])
            _state["pool"] = None
        if _state["pool"] is None:
            _start(size)
        return dict(_state)


def _discard_pool() -> None:
    with _lock:
        pool, starter, spill = _state["pool"], _state["starter"], _state["spill"]
        _state.update(pool=None, size=0, ready=None, starter=None, queue=None,
                      cancelled=None, taken=None, counts=None, parsed=None, spill=None)
    if pool is not None:
        _stop(pool, starter, spill)


def _stop(pool: ProcessPoolExecutor, starter: threading.Thread, spill: str | None) -> None:
    starter.join()
    pool.shutdown(wait=False, cancel_futures=True)
    remove_spill(spill)


def claim() -> bool:
    """Take the pool for one read; False when another thread's read has it."""
    return _busy.acquire(blocking=False)


def release() -> None:
    _busy.release()


def begin_run(size: int) -> dict:
    """The pool of ``size`` workers (started if need be) and a new run's number, whose
    workers' parsed files are counted from zero."""
    POOL_CPU_SECONDS[0] = 0.0
    POOL_FOLDERS[0] = 0
    pool, run = _pool(size), next(_runs)
    with pool["parsed"].get_lock():
        pool["parsed"][0], pool["parsed"][1] = run, 0
    return {**pool, "run": run}


def submit_all(count: int, fn, *args) -> list[Future]:
    """``fn(*args)`` once per worker of the pool, which is up (RuntimeError: broken)."""
    with _without_main():  # the pool is up: no process starts here
        return [_state["pool"].submit(fn, *args) for _ in range(count)]


def broken() -> None:
    """Say once that workers failed and drop the pool (a new one next time)."""
    warnings.warn("recstats.read_archive: worker processes failed; the rest was "
                  "parsed in this process", RuntimeWarning, stacklevel=5)
    _discard_pool()


def run_pool(units: Iterable[tuple], workers: int, tz: str,
             directions: Mapping[str, str] | None, max_files: int
             ) -> Iterator[Result | Mark]:
    """Parse units with ``workers`` processes (this one and ``workers - 1`` others).

    Yields finished chunks ``(table, errors, seen)`` (see
    :class:`recstats._archive_run.Parser`): this process's as it types them, the
    workers' at the end; and progress marks for the files any process parsed, as they
    are parsed. One read at a time uses the pool: a read in another thread meanwhile
    parses in this process.
    """
    if not claim():
        yield from in_process(units, tz, directions, max_files)
        return
    try:
        yield from _shared(units, workers, tz, directions, max_files)
    finally:
        release()


def in_process(units: Iterable[tuple], tz: str, directions: Mapping[str, str] | None,
               max_files: int) -> Iterator[Result | Mark]:
    """:func:`run_pool`'s results when this process parses every unit itself."""
    parser = Parser(tz, directions, max_files)
    for unit in units:
        parser.add(*unit)
        yield from parser.take()
    yield from parser.finish()


def _shared(units: Iterable[tuple], workers: int, tz: str,
            directions: Mapping[str, str] | None, max_files: int
            ) -> Iterator[Result | Mark]:
    directions = dict(directions) if directions is not None else None
    pool = begin_run(workers - 1)
    queue, ready, cancelled, taken, run = (pool[k] for k in ("queue", "ready", "cancelled",
                                                             "taken", "run"))
    taken_before = taken.value
    most = QUEUED_PER_WORKER * (workers - 1)
    parser = Parser(tz, directions, max_files)
    progress = WorkersProgress(run)
    sent: dict[int, tuple] = {}   # number -> unit, for the units put in the queue
    mine: set[int] = set()        # the ones this process took back and parsed
    futures: list[Future] = []
    failed = finished = False

    def parse_one() -> bool:
        """Take a unit of this run from the queue and parse it; False at an end mark,
        or when the queue is empty and every worker has ended (failed)."""
        while True:
            try:
                item = queue.get(timeout=0.05)
            except queue_module.Empty:
                if all(future.done() for future in futures):
                    return False
                continue
            if item[0] == run:
                break
        if item[1] is None:
            return False
        parser.add(*item[2])
        mine.add(item[1])
        return True

    try:
        for number, unit in enumerate(units):
            if not futures and not failed and ready.is_set():
                try:
                    futures = submit_all(workers - 1, drain, run, tz, directions, max_files,
                                         SPILL_BYTES)
                except RuntimeError:  # broken since the last call (BrokenProcessPool)
                    failed = True
            waiting = len(sent) - len(mine) - (taken.value - taken_before)
            if futures and waiting < most:
                queue.put((run, number, unit))
                sent[number] = unit
            else:  # the workers are busy, or the pool is starting (or broken)
                parser.add(*unit)
            yield from parser.take()
            yield from progress.marks()
        if futures:
            for _ in range(workers):  # one end mark for each process, this one's too
                queue.put((run, None, None))
            while parse_one():
                yield from parser.take()
                yield from progress.marks()
        finished = True
        yield from parser.finish()
        left = set(sent) - mine
        for future in futures:
            if not left and not future.done():
                continue  # nothing of this run in it: it ends at its end mark
            try:
                chunks, parsed, cpu = future.result()
                tables = chunks_taken_over(chunks)
            except Exception:  # noqa: BLE001 - a dead or failing worker: redo its units
                failed = True
                continue
            POOL_CPU_SECONDS[0] += cpu
            left.difference_update(parsed)
            yield from tables
        yield from progress.marks()  # complete: the workers that counted have ended
        for number in sorted(left):
            parser.add(*sent[number])
        yield from parser.finish()
    finally:
        for future in futures:  # the tables of a stopped read are not left behind
            future.add_done_callback(drop_handed_over)
        if futures and not finished:  # stopped early (an error raised): end the drains
            cancelled.value = run
            for _ in range(workers - 1):
                queue.put((run, None, None))
        if failed:
            broken()
