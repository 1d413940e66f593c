"""Parsing an archive's chunks in several processes: a persistent pool the parent helps.

With ``workers=n`` the parent parses chunks itself and ``n - 1`` worker processes parse
the others, so the parent's own work (walking a folder, reading a tar, gathering
results) overlaps with the workers' and nothing waits for a pool to start: the pool is
started in a background thread the first time a process needs it, the parent parses
until it is ready, and it stays up for later calls (one pool per process; a pool still
starting when the interpreter exits is waited for, so no half-started worker prints a
traceback). Workers send back Arrow IPC bytes, never per-row objects.

Worker processes do not import the caller's ``__main__`` script (see
:func:`_without_main`), so a script needs no ``if __name__ == "__main__":`` guard; if
workers still fail, the batch finishes in this process with one warning line.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import sys
import threading
import time
import types
import warnings
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import pyarrow as pa

from ._fastparse import parse_chunk

#: CPU seconds the worker processes of the latest run spent on chunks (for bench/).
POOL_CPU_SECONDS = [0.0]

_lock = threading.Lock()
_state: dict = {"pool": None, "size": 0, "ready": None, "starter": None}


def worker(task: tuple, tz: str, directions: Mapping[str, str] | None
           ) -> tuple[bytes, list[tuple[str, str]], int, float]:
    """Parse one chunk in a worker process -> (Arrow IPC bytes, errors, seen, CPU s)."""
    start = time.process_time()
    table, errors, seen = parse_chunk(task, tz, directions)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes(), errors, seen, time.process_time() - start


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
    pool = ProcessPoolExecutor(max_workers=size, mp_context=_context())
    ready = threading.Event()

    def launch() -> None:
        with contextlib.suppress(Exception):  # a broken pool shows when chunks are sent
            with _without_main():
                futures = [pool.submit(_ready_check) for _ in range(size)]
            for future in futures:
                future.result()
        ready.set()

    starter = threading.Thread(target=launch, name="recstats-pool-start", daemon=True)
    _state.update(pool=pool, size=size, ready=ready, starter=starter)
    starter.start()


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


def _pool(size: int) -> tuple[ProcessPoolExecutor, threading.Event]:
    with _lock:
        if _state["pool"] is not None and _state["size"] != size:
            _state["starter"].join()
            _state["pool"].shutdown(wait=False, cancel_futures=True)
            _state["pool"] = None
        if _state["pool"] is None:
            _start(size)
        return _state["pool"], _state["ready"]


def _discard_pool() -> None:
    with _lock:
        pool, starter = _state["pool"], _state["starter"]
        _state.update(pool=None, size=0, ready=None, starter=None)
    if pool is not None:
        starter.join()
        pool.shutdown(wait=False, cancel_futures=True)


def run_pool(tasks: Iterable[tuple], workers: int, tz: str,
             directions: Mapping[str, str] | None
             ) -> Iterator[tuple[pa.Table, list[tuple[str, str]], int]]:
    """Parse chunks with ``workers`` processes (this one and ``workers - 1`` others).

    Yields ``(table, errors, seen)`` per task, in task order. The parent parses a task
    whenever no worker is free (or the pool is still starting), so the work is shared
    by what is available; a worker holds at most one task, so at the end nobody waits
    long for a straggler.
    """
    directions = dict(directions) if directions is not None else None
    POOL_CPU_SECONDS[0] = 0.0
    done: dict[int, tuple] = {}
    sent: collections.deque[tuple[int, tuple, Future]] = collections.deque()
    broken = False
    next_out = 0
    tasks = iter(tasks)
    index = 0

    def collect(block: bool) -> None:
        nonlocal broken
        while sent and (block or sent[0][2].done()):
            number, task, future = sent.popleft()
            try:
                data, errors, seen, cpu = future.result()
            except (BrokenProcessPool, OSError, RuntimeError):
                broken = True
                done[number] = parse_chunk(task, tz, directions)
                continue
            POOL_CPU_SECONDS[0] += cpu
            done[number] = (pa.ipc.open_stream(data).read_all(), errors, seen)

    pool, ready = _pool(workers - 1)
    try:
        for task in tasks:
            collect(block=False)
            future = None
            if ready.is_set() and not broken and len(sent) < workers - 1:
                try:
                    future = pool.submit(worker, task, tz, directions)
                except (BrokenProcessPool, RuntimeError):  # died since the last chunk
                    broken = True
            if future is None:
                done[index] = parse_chunk(task, tz, directions)
            else:
                sent.append((index, task, future))
            index += 1
            while next_out in done:
                yield done.pop(next_out)
                next_out += 1
        collect(block=True)
        while next_out in done:
            yield done.pop(next_out)
            next_out += 1
    finally:
        for _, _, future in sent:
            future.cancel()
        if broken:
            warnings.warn("recstats.read_archive: worker processes failed; the rest was "
                          "parsed in this process", RuntimeWarning, stacklevel=3)
            _discard_pool()
