"""Reading archives of CDR files into one calls table, and writing it as Parquet.

An archive is a folder tree, a ``.zip``, a ``.tar``/``.tar.gz``/``.tgz`` (any tarfile
compression), or a list of files. Every ``*.xml`` file (any case) is a CDR; every other
file is media. Names starting with ``.`` and ``__MACOSX`` folders are skipped (macOS
resource forks look like XML files but are not).

Path convention: ``cdr_path``/``media_path`` are file paths as given (joined with the
folder the user passed); an archive member is ``<archive path>/<member name>``, e.g.
``calls.zip/NY-RECORDER/2026/11/02/4a9d.xml``.

Media pairing: a CDR ``dir/stem.xml`` is paired with ``dir/stem.<ext>`` for any other
extension (``.wav``, ``.txt`` transcripts, ...), the first by name when several exist.
Only the file name stem counts, never the folder layout.

Speed: each file is read with one raw ``read``; flat documents (most CDRs) are checked a
batch at a time by one syntax-only libxml2 pass and their fields extracted into Arrow
columns with NumPy (:mod:`recstats._fastparse`), every other document is parsed with the
hardened lxml parser (:mod:`recstats._archive_parse`), and a process's fields become a
table in one vectorised pass per :data:`MAX_CHUNK` files (:mod:`recstats._table`).
The files go out in small units, each with its media already paired
(:mod:`recstats._archive_run`); with several workers, this process and a persistent
pool take units from one queue until none is left, and each hands back finished
chunks (workers as Arrow IPC bytes, never per-row objects), so what is left after the
pool is one concatenation, one sort and the schema (:mod:`recstats._archive_pool`). A
folder is walked lazily, so parsing starts while the walk goes on.

Boundaries (:mod:`recstats._archive_find`): nothing outside the folder, archive or file
list given is read. Symbolic links that lead outside are error entries unless
``follow_links=True``; archive members are read in memory, never extracted, and links
between members resolve inside the archive.

A file that cannot be parsed is an error row, never the end of the batch; a damaged
tar keeps the members before the damage and adds one error entry for it; a container
that cannot be read at all (a zip without its central directory, a tar damaged in its
first header) is a ``ValueError``.
"""

from __future__ import annotations

import itertools
import operator
import os
import sys
import warnings
from collections.abc import Generator, Iterator, Mapping, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ._archive_find import tar_blobs
from ._archive_list import ARCHIVE_SUFFIXES as _ARCHIVE_SUFFIXES
from ._archive_list import (
    MEDIA_EXTENSIONS,  # noqa: F401 - part of this module's API
    archive_files,
    found_tasks,
)
from ._archive_list import Listing as _Listing
from ._archive_list import discover as _discover
from ._archive_list import walk_on as _walk_on
from ._archive_parse import OPEN_ZIPS, shown_path
from ._archive_pool import broken as _pool_broken
from ._archive_pool import in_process as _pool_in_process
from ._archive_pool import run_pool as _run_pool
from ._archive_pool import warm as pool_is_warm
from ._archive_run import paired, parse_chunk
from ._archive_run import parse_chunk as _fast_parse_chunk
from ._archive_run import units as _units
from ._archive_split import WorkersFailed as _WorkersFailed
from ._archive_split import run_folders as _run_folders
from ._calls_file import archive_errors, write_parquet
from ._extras import DEFAULT_MAX_COLUMNS, limit_columns
from ._table import coerce_calls, empty_calls
from ._time import check_tz
from .errors import CDRParseError

__all__ = ["archive_errors", "archive_files", "read_archive", "write_parquet"]

#: Below this many CDR files every unit parses in-process, whatever ``workers`` says:
#: under it, a worker process costs more than it saves (each process types its share
#: once, a fixed cost, and the worker's table travels back). bench/parse.py measures
#: the break-even (its "forced" rows). On the 2-core machine, with a worker's table
#: handed back through shared memory, workers=2 broke even at 1 000-2 000 files (a
#: folder or a list) and ran 1.25-1.4 x at 3 000, best and median of 9 turns each.
#: The lower the threshold, the less of a folder one process walks alone before the
#: others join. Above it, this process parses too, also while the pool starts
#: (:mod:`recstats._archive_pool`).
IN_PROCESS_BELOW = 3000
#: The same before this process has a pool. Starting one (a forkserver that imports
#: pandas, pyarrow and lxml, about 0.7 s) happens in the background while this process
#: parses, and the workers join when they are up, so it pays once the input takes well
#: over that. Measured on the 2-core machine, each run in a fresh process: a cold
#: workers=2 read of 20 000 files took 1.04-1.29 s against workers=1's 0.90-1.12 s; of
#: 50 000, 1.84-2.11 s against 2.11-2.57 s; of 100 000, 3.43-4.25 s against 4.84-5.02 s.
COLD_IN_PROCESS_BELOW = 50_000
#: Upper bound on files per chunk, the files each process types at once (memory: a
#: chunk's fields live at once, as Arrow columns or, for unusual documents, dicts).
#: Each chunk has a fixed cost of 10-20 ms (building its table), so chunks are large.
MAX_CHUNK = 32000
#: Files per unit of work (:mod:`recstats._archive_run`): what processes share. Small,
#: so that they end together; a unit costs little more than its files.
UNIT_FILES = 1000
#: A tar's unit (bytes the parent read) holds at most this many bytes of documents.
TAR_CHUNK_BYTES = 8 * 1024 * 1024

# --------------------------------------------------------------------------- discovery


# --------------------------------------------------------------------------- scheduling


def _tasks(kind: str, source: str | None, batches: Iterator[list[str]], size: int
           ) -> Iterator[tuple]:
    """Tasks of ``size`` files (a tar's: also at most :data:`TAR_CHUNK_BYTES`), taken
    lazily from ``batches``."""
    if kind == "tar":
        assert source is not None, "a tar archive is read from its path"
        # read front to back in bounded chunks of bytes (see _archive_find.tar_blobs);
        # the final sort makes the order irrelevant
        for blobs in tar_blobs(source, itertools.repeat(size), TAR_CHUNK_BYTES):
            yield "blobs", source, blobs
        return
    pending: list[str] = []
    for batch in batches:
        pending.extend(batch)
        if len(pending) >= size:
            whole = len(pending) - len(pending) % size
            for start in range(0, whole, size):
                yield kind, source, pending[start:start + size]
            pending = pending[whole:]
    if pending:
        yield kind, source, pending


def _all_tasks(kind: str, source: str | None, batches: Iterator[list[str]],
               listing: _Listing, size: int) -> Iterator[tuple]:
    """The archive's tasks, then those of what discovery read or refused itself
    (:func:`recstats._archive_list.found_tasks`, known once the walk is done)."""
    yield from _tasks(kind, source, batches, size)
    yield from found_tasks(listing, source, size, TAR_CHUNK_BYTES)


def _in_process(units: Iterator[tuple], tz: str, directions) -> Iterator[tuple]:
    """Finished chunks of ``units``, parsed in this process, and progress marks."""
    if parse_chunk is not _fast_parse_chunk:  # a stand-in parser (the tests' reference)
        # in tasks of MAX_CHUNK files, as that reader read them (it pays per task)
        for task, media in _merged(units, MAX_CHUNK):
            yield paired(parse_chunk(task, tz, directions), task, media)
        return
    yield from _pool_in_process(units, tz, directions, MAX_CHUNK)


def _merged(units: Iterator[tuple], size: int) -> Iterator[tuple]:
    """Consecutive units of one kind and source as units of up to ``size`` files."""
    kind = source = None
    items: list = []
    media: list = []
    for (unit_kind, unit_source, unit_items), unit_media in units:
        if items and (unit_kind, unit_source) != (kind, source) \
                or len(items) + len(unit_items) > size:
            yield (kind, source, items), media
            items, media = [], []
        kind, source = unit_kind, unit_source
        items.extend(unit_items)
        media.extend(unit_media)
    if items:
        yield (kind, source, items), media


# --------------------------------------------------------------------------- public API


def _progress_bar(total: int | None, progress: bool):
    from tqdm.auto import tqdm

    # disable=None: tqdm shows the bar on a terminal or in a notebook, not in logs/pipes
    return tqdm(total=total, unit=" files", desc="parsing CDRs", leave=False,
                disable=None if progress else True, file=sys.stderr)


def read_archive(path: str | os.PathLike | Sequence[str | os.PathLike], *,
                 workers: int | None = None, progress: bool = True, tz: str = "UTC",
                 on_error: str = "collect",
                 directions: Mapping[str, str] | None = None,
                 follow_links: bool = False,
                 max_columns: int = DEFAULT_MAX_COLUMNS) -> pd.DataFrame:
    """Parse every CDR file of an archive into one calls table.

    Every ``*.xml`` is a CDR; the file beside it with the same stem and another
    extension is its media (``media_path``, NA when missing); ``cdr_path`` is the CDR's
    own path, and an archive member is named ``<archive path>/<member name>``.

    Nothing outside what ``path`` names is read:

    * in a folder, a symbolic link to a file or folder inside it is read as what it
      points to (each folder once, so link loops end); a link whose target lies outside
      is an error entry, "points outside the archive", unless ``follow_links``; a link
      that loops or dangles is an error entry; FIFOs and devices are error entries
      ("not a regular file"), never waited on;
    * zip and tar members are read in memory, never extracted, whatever their names
      (``../x.xml``, ``/etc/x.xml``); a member that is a hard or symbolic link is read
      as the member it names (a backup's second name for a CDR is a row of its own), or
      is an error entry when that leaves the archive, loops or names nothing; device
      and FIFO members are error entries;
    * a damaged tar (cut inside a header or a member's data, a truncated ``.tar.gz``)
      gives every member before the damage plus one error entry for the damage, named
      by the archive's path.

    Rows + errors = CDR files seen, always: ``df.attrs`` holds ``files`` (seen) =
    ``parsed`` (rows) + ``failed``, ``errors`` (``{"path", "error"}`` dicts, see
    :func:`archive_errors`), ``media_without_cdr``, ``source`` and ``tz``, all plain
    data, so merge, astype, concat and Parquet keep working.

    Every archive row is a finished call: a CDR without ``end_time`` but with a start
    and a ``duration`` ends at ``start_time + duration``; a start or end in the
    repeated autumn hour is read with the ``duration`` field (see
    :func:`recstats.read_cdr`); ``end_unknown`` (bool, after ``end_time``) is True
    where nothing gives the end (``end_time`` is then NaT).

    Parameters
    ----------
    path : str, os.PathLike or sequence of them
        A folder (searched recursively), a ``.zip``, a ``.tar``/``.tar.gz``/``.tgz``,
        one ``.xml`` file, or a list of files (a folder in it stands for its files, read
        by the folder rules; a file listed twice counts once; a listed file is read as
        named).
    workers : int, optional
        Processes that parse: this one and ``workers - 1`` worker processes of a pool
        that stays up for later calls. Default: one per usable core. Inputs under
        :data:`IN_PROCESS_BELOW` files (:data:`COLD_IN_PROCESS_BELOW` before this
        process has a pool) stay in this process, where workers would not pay. The
        result is the same for any number of workers. Worker processes do not import
        your ``__main__`` script, so a script needs no ``if __name__ == "__main__":``
        guard; if they fail, the batch finishes in this process with one warning line.
        In a large folder every process lists folders as well as parsing files.
    progress : bool, default True
        Show a tqdm bar when stderr is a terminal or in a notebook. It counts the files
        as they are parsed (in units of :data:`UNIT_FILES`), by every worker process.
    tz : str, default "UTC"
        The sites' time zone (an IANA name): CDR times carry none.
    on_error : {"collect", "raise"}, default "collect"
        Files that cannot be parsed (unreadable, empty, binary, truncated, not a CDR,
        with a DTD, over 16 MiB or 1000 fields) are listed in ``df.attrs["errors"]``;
        ``"raise"`` raises :class:`recstats.CDRParseError` at the first instead.
    directions : Mapping[str, str], optional
        Overrides the ``direction_id`` table.
    follow_links : bool, default False
        Follow symbolic links in a folder whose target lies outside it.
    max_columns : int, default :data:`recstats._extras.DEFAULT_MAX_COLUMNS`
        Distinct undocumented field names, across the archive, kept as columns of their
        own (the first by name; documented CDR fields always are). Every other field of
        a row goes into one ``extras`` column, JSON text of ``{name: value}``, so a
        flood of distinct names costs time and memory linear in the fields, not in
        files x names.

    Returns
    -------
    DataFrame
        The calls table, ordered by ``start_time`` (missing last), then ``call_id``,
        then ``cdr_path``; index 0..n-1. The same call in two files gives two rows.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    PermissionError
        The folder given cannot be listed (a subfolder that cannot be listed, or a
        folder holding archives but no CDR, gives a ``RuntimeWarning``).
    ValueError
        An archive that cannot be opened at all, an unknown ``tz``, a bad ``workers``,
        ``on_error`` or ``max_columns``.

    Warns
    -----
    RuntimeWarning
        For a subfolder that cannot be listed, a folder holding archives but no CDR
        (archives inside a folder are not opened), and worker processes that failed.

    Examples
    --------
    >>> import recstats as rs
    >>> calls = rs.read_archive("data/samples/archive", progress=False)  # doctest: +SKIP
    >>> calls.attrs["files"] == len(calls) + len(calls.attrs["errors"])  # doctest: +SKIP
    True
    """
    if on_error not in ("collect", "raise"):
        raise ValueError(f"on_error must be 'collect' or 'raise', not {on_error!r}")
    if workers is not None:
        given = workers
        try:  # any integer type (numpy's too, which is no int): "not 2" would puzzle
            workers = operator.index(workers)
        except TypeError:
            workers = 0
        if workers < 1 or isinstance(given, bool):
            raise ValueError(f"workers must be a positive integer, not {given!r}")
    tz = check_tz(tz)
    max_columns = _check_max_columns(max_columns)
    if not isinstance(path, (str, os.PathLike)):
        path = list(path)  # a generator would be spent before attrs["source"] is made
    listing, kind, source, batches = _discover(path, follow_links)
    total = listing.count() if listing.complete else None
    n_workers = workers if workers is not None else _usable_cores()
    walking, head = batches, []
    if n_workers > 1:
        below = IN_PROCESS_BELOW if pool_is_warm(n_workers - 1) else COLD_IN_PROCESS_BELOW
        if total is None:  # a folder: walk far enough to see whether it is small
            seen_so_far = 0
            for batch in batches:
                head.append(batch)
                seen_so_far += len(batch)
                if seen_so_far >= below:
                    break
            batches = itertools.chain(head, batches)
            total = listing.count() if listing.complete else None
        if total is not None and total < below:
            n_workers = 1
    unit = min(UNIT_FILES, MAX_CHUNK)
    fast = parse_chunk is _fast_parse_chunk
    if n_workers > 1 and fast and listing.walk is not None and not listing.complete:
        # a large folder: the folders not walked yet are listed by all the processes
        if isinstance(walking, Generator):  # its state is in listing.walk: the rest
            walking.close()                 # of the walk is another generator's
        results = _run_folders(
            _units(_tasks("files", None, iter(head), unit), listing.media), listing,
            n_workers, tz, directions, MAX_CHUNK, unit,
            lambda: _units(_all_tasks("files", None, _walk_on(listing), listing, unit),
                           listing.media))
    else:
        units = _units(_all_tasks(kind, source, batches, listing, unit), listing.media)
        if n_workers > 1 and fast:
            results = _run_pool(units, n_workers, tz, directions, MAX_CHUNK)
        else:
            results = _in_process(units, tz, directions)
    with _progress_bar(total, progress) as bar:
        try:
            tables, errors, seen = _gather(results, listing, bar, on_error)
        except _WorkersFailed:  # what the failed worker held is unknown: all again
            _pool_broken()
            listing, kind, source, batches = _discover(path, follow_links)
            bar.reset(total=None)
            units = _units(_all_tasks(kind, source, batches, listing, unit), listing.media)
            tables, errors, seen = _gather(_in_process(units, tz, directions), listing,
                                           bar, on_error)
    errors.sort(key=lambda e: e["path"])  # the same order from any source or workers
    if seen == 0:
        _warn_nested_archives(listing)
    # every chunk came with its media and end_unknown (True where the end rules found
    # no end); the schema is given once to the whole table, whose rows are in order
    frame = coerce_calls(_assemble(limit_columns(tables, max_columns)))
    frame.attrs = {
        "source": shown_path(path) if isinstance(path, str) else
        shown_path(os.fspath(path)) if isinstance(path, os.PathLike) else
        [shown_path(os.fspath(p)) for p in path],
        "tz": tz, "files": seen, "parsed": len(frame), "failed": len(errors),
        "errors": errors, "media_without_cdr": listing.media_without_cdr(),
    }
    return frame


def _gather(results: Iterator[tuple], listing: _Listing, bar, on_error: str
            ) -> tuple[list[pa.Table], list[dict[str, str]], int]:
    """The chunks of a read: ``(tables, error entries, files seen)``. The bar shows
    the files parsed: the progress marks' count, or the chunks' where it is ahead (a
    worker's refused files are only in its chunk)."""
    tables: list[pa.Table] = []
    errors: list[dict[str, str]] = []
    seen = marked = shown = 0
    try:
        for table, chunk_errors, chunk_seen in results:
            if table is None:  # a progress mark
                marked += chunk_seen
            else:
                if chunk_errors and on_error == "raise":
                    raise CDRParseError(chunk_errors[0][1], chunk_errors[0][0])
                tables.append(table)
                errors.extend({"path": p, "error": r} for p, r in chunk_errors)
                seen += chunk_seen
            if bar.total is None and listing.complete:
                bar.total = listing.count()
            # at most the total: a failed worker's files are parsed again
            done = max(seen, marked) if bar.total is None else \
                min(max(seen, marked), bar.total)
            if done > shown:
                bar.update(done - shown)
                shown = done
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()  # stops the pool at once when raising
        for zf in OPEN_ZIPS.values():
            zf.close()
        OPEN_ZIPS.clear()
    return tables, errors, seen


def _check_max_columns(max_columns) -> int:
    given = max_columns
    try:
        max_columns = operator.index(max_columns)
    except TypeError:
        max_columns = -1
    if max_columns < 0 or isinstance(given, bool):
        raise ValueError(f"max_columns must be an integer >= 0, not {given!r}")
    return max_columns


def _usable_cores() -> int:
    """The cores this process may run on (a container or ``taskset`` may allow fewer)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on macOS and Windows
        return os.cpu_count() or 1


def _warn_nested_archives(listing: _Listing) -> None:
    # a folder of zips (one per site or day) reads as no CDR at all, without a word
    nested = sorted(p for p in listing.media.values() if p.lower().endswith(_ARCHIVE_SUFFIXES))
    if nested:
        warnings.warn(f"recstats.read_archive: no CDR file found, but {len(nested)} archive "
                      f"file(s) such as {shown_path(nested[0])}: archives inside a folder "
                      "are not opened: pass each archive itself",
                      RuntimeWarning, stacklevel=3)


#: The calls table's row order: missing start times last.
SORT_KEYS = ("start_time", "call_id", "cdr_path")


def _assemble(tables: list[pa.Table]) -> pd.DataFrame:
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return empty_calls().assign(cdr_path=pd.Series([], dtype="str"),
                                    media_path=pd.Series([], dtype="str"),
                                    end_unknown=pd.Series([], dtype=bool))
    if len(tables) == 1:
        table = tables[0]
    else:
        table = pa.concat_tables([t.replace_schema_metadata(None) for t in tables],
                                 promote_options="permissive")
    # the table's row order, sorted by Arrow before pandas (several times faster than
    # sort_values on these keys; cdr_path is unique, so there are no ties)
    try:
        order = pc.sort_indices(table, sort_keys=[(key, "ascending", "at_end")
                                                  for key in SORT_KEYS])
    except ValueError:  # pyarrow before 20: one null placement for all keys
        order = pc.sort_indices(table, sort_keys=[(key, "ascending") for key in SORT_KEYS],
                                null_placement="at_end")
    return table.take(order).replace_schema_metadata(None).to_pandas()
