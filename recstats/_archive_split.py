"""Reading a large folder with the pool: its folders are listed by whichever process is
free, not by the parent alone.

The parent walks a folder until it knows the input is large (see
:func:`recstats.archive.read_archive`); then the folders its walk has not listed yet go
into the pool's queue as *folder items*, next to the units of the files it found. Every
process (the parent and each worker) takes items from the queue: a folder item is
listed (:meth:`recstats._archive_find.FolderWalk.list_folder`), which puts its subfolders back
as folder items and its CDR files as units, paired with their media then and there (a
CDR and its media share a folder); a unit is parsed. The process that lists a folder
parses the last unit of it itself, which saves a trip through the queue.

The read ends when nothing is left: a count of the items put and not yet done, shared
by the processes and tagged with the run's number (a process still busy with a stopped
run changes nothing in the next), reaches zero in the process that finishes the last
item, which then puts an end mark for every process. Each worker hands back its chunks
and what its listing found that is not in its chunks: media without a CDR, folders that
could not be listed, the links to folders it met (read after every real folder, see
:class:`recstats._archive_find.FolderWalk`) and the folders it listed. The parent then
follows those links itself, a rare case, and parses the refused files its own walk
found.

If a worker fails, the files it held are not known: the parent raises
:class:`WorkersFailed` and :func:`recstats.read_archive` reads the folder again in one
process.
"""

from __future__ import annotations

import functools
import itertools
import queue as queue_module
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future

import pyarrow as pa

from . import _archive_pool as pool_module
from ._archive_find import FolderWalk
from ._archive_handover import chunks_taken_over
from ._archive_list import Listing, warn_unreadable
from ._archive_run import Mark, Parser, units

__all__ = ["Share", "WorkersFailed", "run_folders"]

Chunk = tuple[pa.Table, list[tuple[str, str]], int]


class WorkersFailed(RuntimeError):
    """A worker process failed during a split read: read again in one process."""


class Share:
    """One process's part of a split read: its walk, its listing and its parser."""

    def __init__(self, walk: FolderWalk, tz: str, directions: Mapping[str, str] | None,
                 max_files: int, unit_files: int, listing: Listing | None = None) -> None:
        self.unreadable: list[tuple[str, str]] = []
        if listing is None:  # a worker's: it lists the folders it is given and says
            walk.pending = []  # which it could not, for the parent to warn
            walk.on_unreadable = self._unreadable
        self.walk = walk
        self.listing = Listing() if listing is None else listing
        self.parser = Parser(tz, directions, max_files)
        self.unit_files = unit_files
        self.folders = 0

    def _unreadable(self, exc: OSError) -> None:
        self.unreadable.append((exc.filename, exc.strerror or str(exc)))

    def serve(self, item: tuple, put: Callable[[list[tuple]], None]) -> None:
        """List a folder item (its subfolders and units go to ``put``, but the last
        unit, parsed here) or parse a unit item."""
        if item[0] == "unit":
            self.parser.add(*item[1])
            return
        _, folder, ancestors = item
        self.folders += 1
        found, subfolders = self.walk.list_folder(folder, ancestors, self.listing)
        size = self.unit_files
        tasks = [("files", None, found[i:i + size]) for i in range(0, len(found), size)]
        made = list(units(tasks, self.listing.media))
        items: list[tuple] = [("folder", path, chain) for path, chain in subfolders]
        items += [("unit", unit) for unit in made[:-1]]
        if items:
            put(items)
        if made:
            self.parser.add(*made[-1])

    def finish(self) -> list[Chunk]:
        """The chunks of all it parsed, the files its listing refused included."""
        refused = self.listing.errors
        if refused:
            self.parser.add(("blobs", None, list(refused)), [None] * len(refused))
            self.listing.errors = []
        return self.parser.finish()

    def handback(self) -> dict:
        """What the parent needs from this process's listing, besides its chunks."""
        return {"linked": self.walk.linked, "seen": self.walk.seen,
                "unpaired": self.listing.media_without_cdr(),
                "unreadable": self.unreadable, "cdrs": len(self.listing.cdrs),
                "folders": self.folders}


def put_items(run: int, items: list[tuple]) -> None:
    """Count ``items`` as outstanding for ``run`` and queue them (in any process)."""
    queue, counts = pool_module.shared("queue"), pool_module.shared("counts")
    with counts.get_lock():
        if counts[0] != run:  # the run was stopped: its items are worthless
            return
        counts[1] += len(items)
    for item in items:
        queue.put((run, 0, item))


def item_done(run: int, processes: int) -> None:
    """One item of ``run`` is done; after the last, an end mark for each process."""
    queue, counts = pool_module.shared("queue"), pool_module.shared("counts")
    with counts.get_lock():
        if counts[0] != run:
            return
        counts[1] -= 1
        last = counts[1] == 0
    if last:
        for _ in range(processes):
            queue.put((run, None, None))


def serve_items(run: int, share: Share, processes: int) -> None:
    """In a worker process: serve items of ``run`` until its end mark, counting the
    files parsed for the parent's progress bar."""
    queue, cancelled = pool_module.shared("queue"), pool_module.shared("cancelled")
    put = functools.partial(put_items, run)
    while True:
        item = queue.get()
        if item[0] != run:
            if item[0] > run:  # a later run: this one is over without this task
                queue.put(item)
                return
            continue
        if item[1] is None:
            return
        if cancelled.value != run:
            before = share.parser.parsed
            share.serve(item[2], put)
            pool_module.count_parsed(run, share.parser.parsed - before)
        item_done(run, processes)


def run_folders(head: Iterable[tuple], listing: Listing, workers: int, tz: str,
                directions: Mapping[str, str] | None, max_files: int, unit_files: int,
                rest: Callable[[], Iterator[tuple]]) -> Iterator[Chunk | Mark]:
    """Parse a folder's walk so far (``head``: units of the files found) and the
    folders left in ``listing.walk`` with ``workers`` processes; then ``rest()``, the
    units of what is left for the parent (links to folders, refused files). Yields
    chunks, and progress marks for the files any process parsed as they are parsed.

    Raises :class:`WorkersFailed` when a worker failed (nothing it held can be known).
    """
    if not pool_module.claim():  # another thread's read has the pool: all here
        yield from pool_module.in_process(itertools.chain(head, rest()), tz, directions,
                                          max_files)
        return
    try:
        yield from _split(head, listing, workers, tz, directions, max_files, unit_files,
                          rest)
    finally:
        pool_module.release()


def _split(head: Iterable[tuple], listing: Listing, workers: int, tz: str,
           directions: Mapping[str, str] | None, max_files: int, unit_files: int,
           rest: Callable[[], Iterator[tuple]]) -> Iterator[Chunk | Mark]:
    walk = listing.walk
    assert walk is not None, "a split read is a folder's"
    directions = dict(directions) if directions is not None else None
    pool = pool_module.begin_run(workers - 1)
    run = pool["run"]
    queue, ready, cancelled, counts = (pool[k] for k in ("queue", "ready", "cancelled",
                                                         "counts"))
    # the parent lists with its own walk and listing: what it finds joins the walk so far
    share = Share(walk, tz, directions, max_files, unit_files, listing)
    progress = pool_module.WorkersProgress(run)
    folders = [("folder", path, chain) for path, chain in reversed(walk.pending)]
    walk.pending = []
    futures: list[Future] = []
    broken = finished = False

    def join_workers() -> None:
        """Have the workers join the run once the pool is up (not broken)."""
        nonlocal futures, broken
        if not futures and not broken and ready.is_set():
            try:
                futures = pool_module.submit_all(
                    workers - 1, pool_module.drain, run, tz, directions, max_files,
                    pool_module.SPILL_BYTES, (walk.root, walk.follow_links, unit_files,
                                              workers))
            except RuntimeError:  # broken since the last call (BrokenProcessPool)
                broken = True

    put = functools.partial(put_items, run)
    try:
        # the folders first and the workers called at once: they start listing while
        # this process makes the units of the files the walk found (one item more
        # stands for those, so the count cannot reach zero before they are queued)
        with counts.get_lock():
            counts[0], counts[1] = run, len(folders) + 1
        for item in folders:
            queue.put((run, 0, item))
        join_workers()
        put([("unit", unit) for unit in head])
        item_done(run, workers)
        while True:
            join_workers()
            yield from progress.marks()
            try:
                item = queue.get(timeout=0.05)
            except queue_module.Empty:
                if any(f.done() and f.exception() is not None for f in futures):
                    raise WorkersFailed("a worker process failed") from None
                continue
            if item[0] != run:
                continue
            if item[1] is None:
                break
            share.serve(item[2], put)
            item_done(run, workers)
            yield from share.parser.take()
        yield from progress.marks()  # complete: a worker counts before its item is done
        # this process types its chunk while the workers type theirs, and settles its
        # listing's media while they hand their tables over
        yield from share.parser.finish()
        listing.settle_media()
        gathered: list[Chunk] = []
        for future in futures:
            try:
                chunks, back, cpu = future.result()
                tables = chunks_taken_over(chunks)
            except Exception:  # noqa: BLE001 - whatever it held is lost
                raise WorkersFailed("a worker process failed") from None
            pool_module.POOL_CPU_SECONDS[0] += cpu
            pool_module.POOL_FOLDERS[0] += back["folders"]
            walk.linked.extend(back["linked"])
            walk.seen |= back["seen"]
            listing.unpaired.extend(back["unpaired"])
            listing.elsewhere += back["cdrs"]
            for folder, reason in back["unreadable"]:
                warn_unreadable(folder, reason)
            gathered.extend(tables)
        finished = True
        yield from gathered
        for unit in rest():  # its refused files too: in the parent's listing
            share.parser.add(*unit)
            yield from share.parser.take()
        yield from share.parser.finish()  # nothing when there was no rest
    finally:
        for future in futures:  # the tables of a stopped read are not left behind
            future.add_done_callback(pool_module.drop_handed_over)
        with counts.get_lock():
            counts[0] = 0  # no run on: a late worker's count changes nothing
        if not finished:  # stopped early (an error raised, a worker failed)
            cancelled.value = run
            for _ in range(workers - 1):
                queue.put((run, None, None))
        if broken:
            pool_module.broken()
