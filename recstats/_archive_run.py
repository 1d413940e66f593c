"""Units of an archive's files, and parsing them into finished chunks of the calls table.

A :class:`Chunk` reads files, sends flat documents through the fast path
(:mod:`recstats._fastparse`) a batch at a time and every other one through the
reference path, and types all it holds in one vectorised pass.

A unit is ``(task, media)``: a task of :mod:`recstats._archive_parse` (files, zip
members or bytes read by the parent) and, for each of its files, the path of its media
file or ``None`` (paired when the unit is made, see :func:`units`). A :class:`Parser`
takes units one by one, in whichever process parses them, and types what it gathered
once per :data:`recstats.archive.MAX_CHUNK` files: the per-chunk cost (building a
table) is paid a few times per process, not once per unit, so units can be small and
the processes sharing them end together. Its chunks come out finished (``media_path``
and ``end_unknown`` set), so the process that gathers them only concatenates, sorts
and gives the whole table its schema once (giving each chunk its dtypes first costs
the workers more than it saves the parent: labels become categories of the whole
table anyway)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ._archive_parse import (
    document_fields,
    fields_frame,
    read_file,
    shown_path,
    task_blobs,
    to_arrow,
)
from ._fastparse import (
    BATCH_BYTES,
    BATCH_FILES,
    FAST_MAX_BYTES,
    SMALLEST_BATCH,
    USUAL,
    USUAL_LENGTH,
    flat_body,
    joined,
    scan,
    well_formed,
)
from ._table import calls_from_raw

__all__ = ["Chunk", "Mark", "Parser", "item_paths", "paired", "parse_chunk", "progress_mark",
           "shown_all", "units"]

Result = tuple[pa.Table, list[tuple[str, str]], int]
#: ``(None, [], files)``: among a read's results, ``files`` more files parsed, for its
#: progress bar (the files come again in a chunk's count when its table is done).
Mark = tuple[None, list[tuple[str, str]], int]


def progress_mark(files: int) -> list[Mark]:
    """The mark for ``files`` more files parsed, or none when there are none."""
    return [(None, [], files)] if files > 0 else []


def item_paths(task: tuple) -> list[str]:
    """The path of each file of a task, as :func:`recstats._archive_parse.task_blobs`
    names them."""
    kind, source, items = task
    if kind == "files":
        return list(items)
    if kind == "zip":
        return [f"{source}/{name}" for name in items]
    return [path for path, _ in items]


def units(tasks: Iterable[tuple], media: Mapping[str, str]) -> Iterator[tuple]:
    """``(task, media paths)`` for each task: a CDR ``dir/stem.xml`` gets ``media``'s
    path for the key ``dir/stem`` (see :class:`recstats._archive_list.Listing`)."""
    get = media.get
    for task in tasks:
        yield task, [get(path[:-4]) for path in item_paths(task)]


class Parser:
    """Parses units; :meth:`take` gives the chunks finished so far and a progress mark
    for the files parsed since (chunks are large), :meth:`finish` the rest of the
    chunks. Each chunk is ``(table, errors, files seen)``; errors in file order."""

    def __init__(self, tz: str, directions: Mapping[str, str] | None, max_files: int
                 ) -> None:
        self.tz, self.directions = tz, directions
        self.max_files = max(1, max_files)
        self._chunk = Chunk()
        self._done: list[Result] = []
        self.parsed = 0  # files read and parsed so far (typed or not)
        self._marked = 0

    def add(self, task: tuple, media: list[str | None]) -> None:
        chunk = self._chunk
        before = len(chunk.paths)
        chunk.add(task)
        chunk.media.extend(media)
        self.parsed += len(chunk.paths) - before
        if len(chunk.paths) >= self.max_files:
            self._close()

    def _close(self) -> None:
        chunk, self._chunk = self._chunk, Chunk()
        if chunk.paths:
            table, errors = chunk.calls(self.tz, self.directions)
            self._done.append((table, errors, len(chunk.paths)))

    def take(self) -> list[Result | Mark]:
        """The chunks finished since the last call, and the :data:`Mark` of the files
        parsed since (none if none)."""
        files, self._marked = self.parsed - self._marked, self.parsed
        return [*self._chunks(), *progress_mark(files)]

    def finish(self) -> list[Result]:
        """The chunks not taken yet, the last one closed (no mark: a worker hands
        these over, and a reader's count of chunks covers them)."""
        self._close()
        return self._chunks()

    def _chunks(self) -> list[Result]:
        done, self._done = self._done, []
        return done


def paired(result: Result, task: tuple, media: list[str | None]) -> Result:
    """A chunk parsed by a stand-in for :class:`Parser` (the tests' reference reader),
    given ``media_path`` and ``end_unknown`` as :class:`Parser` gives them."""
    table, errors, seen = result
    by_path = {shown_path(p): None if m is None else shown_path(m)
               for p, m in zip(item_paths(task), media)}
    frame = table.to_pandas()
    frame["media_path"] = pd.Series([by_path[p] for p in frame["cdr_path"]],
                                    index=frame.index, dtype="str")
    frame["end_unknown"] = frame["end_time"].isna()
    return pa.Table.from_pandas(frame, preserve_index=False), errors, seen


class Chunk:
    """What a chunk's documents become: fast-path field tables, reference-path dicts
    and errors, each with the document's position in the chunk; :meth:`add` reads and
    parses a task's files, :meth:`calls` types them all at once."""

    def __init__(self) -> None:
        self.tables: list[pa.Table] = []   # raw fields of flat documents, by batch
        self.fast: list[int] = []          # their positions, in row order
        self.rows: list[dict[str, str]] = []  # raw fields of the other documents
        self.slow: list[int] = []
        self.errors: list[tuple[int, str, str]] = []
        self.paths: list[str] = []          # by position
        self.media: list[str | None] = []   # by position, when tasks come with media

    def reference(self, pos: int, data: bytes | str) -> None:
        fields = document_fields(data, self.paths[pos])
        if isinstance(fields, str):
            self.errors.append((pos, self.paths[pos], fields))
        else:
            self.rows.append(fields)
            self.slow.append(pos)

    def batch(self, where: list[int], bodies: list[memoryview],
              datas: list[bytes | str]) -> None:
        data = joined(bodies)
        if not well_formed(data):
            if len(bodies) <= SMALLEST_BATCH:
                for pos, document in zip(where, datas):
                    self.reference(pos, document)
                return
            # halves until the bad documents are in small batches: a syntax pass costs
            # a tenth of the reference path
            half = len(bodies) // 2
            self.batch(where[:half], bodies[:half], datas[:half])
            self.batch(where[half:], bodies[half:], datas[half:])
            return
        flat, columns = scan(bodies, data)
        for pos, document, ok in zip(where, datas, flat.tolist()):
            if ok:
                self.fast.append(pos)
            else:
                self.reference(pos, document)
        n_rows = int(flat.sum())
        if n_rows:
            self.tables.append(pa.table(columns) if columns else
                               pa.table({"_": pa.nulls(n_rows)}).drop_columns(["_"]))

    def add(self, task: tuple) -> None:
        """Read and parse a task's files (batches of at most :data:`BATCH_BYTES`)."""
        where: list[int] = []
        bodies: list[memoryview] = []
        datas: list[bytes | str] = []
        size = 0
        paths = self.paths
        kind, _, items = task
        # files: read in a C-level loop (task_blobs is a generator, a frame per file)
        blobs = zip(items, map(read_file, items)) if kind == "files" else task_blobs(task)
        for path, data in blobs:
            pos = len(paths)
            paths.append(path)
            body = None
            if data.__class__ is bytes and len(data) <= FAST_MAX_BYTES:
                # the usual declaration inline: a function call per file is a tenth of
                # the time the fast path spends on it
                body = memoryview(data)[USUAL_LENGTH:] if data.startswith(USUAL) \
                    else flat_body(data)
            if body is None:
                self.reference(pos, data)
                continue
            if bodies and (len(bodies) >= BATCH_FILES or size + len(body) > BATCH_BYTES):
                self.batch(where, bodies, datas)
                where, bodies, datas, size = [], [], [], 0
            where.append(pos)
            bodies.append(body)
            datas.append(data)
            size += len(body)
        if bodies:
            self.batch(where, bodies, datas)

    def calls(self, tz: str, directions: Mapping[str, str] | None
              ) -> tuple[pa.Table, list[tuple[str, str]]]:
        """The chunk's calls (with ``cdr_path``; ``media_path`` and ``end_unknown`` too
        when its tasks came with media) and its errors ``(shown path, reason)`` in file
        order. Labels are plain strings (chunks' categories differ): the gathered table
        gets the schema once (:func:`recstats._table.coerce_calls`)."""
        parts: list[tuple[pd.DataFrame, list[int]]] = []  # calls, and their positions
        fast = _fast_frame(self, tz, directions)
        if fast is not None:
            parts.append(fast)
        if self.rows or fast is None:
            slow, rejected = fields_frame(self.rows, [self.paths[p] for p in self.slow],
                                          tz, directions)
            self.errors.extend((self.slow[row], self.paths[self.slow[row]], reason)
                               for row, reason in rejected.items())
            parts.append((slow, [self.slow[i] for i in slow.index]))
        made = [self._table(frame, positions, fast is not None and i == 0)
                for i, (frame, positions) in enumerate(parts)]
        tables = [table for table in made if table.num_rows]
        if not tables:
            table = made[-1]
        elif len(tables) == 1:
            table = tables[0]
        else:
            table = pa.concat_tables(tables, promote_options="permissive")
        self.errors.sort(key=lambda e: e[0])
        return table, [(shown_path(p), r) for _, p, r in self.errors]

    def _table(self, frame: pd.DataFrame, positions: list[int], add_path: bool
               ) -> pa.Table:
        """``frame`` (the calls of the documents at ``positions``) as Arrow, with its
        ``cdr_path`` if ``add_path``, and its media and ``end_unknown`` when the chunk
        has media, in place of fields of those names a document may have. Added to the
        Arrow table: as pandas columns built from lists they cost several times more."""
        table = to_arrow(frame)
        ours = ["cdr_path"] * add_path + ["media_path", "end_unknown"] * bool(self.media)
        table = table.drop_columns([name for name in ours if name in table.column_names])
        if add_path:
            table = table.append_column("cdr_path", _texts([self.paths[p] for p in positions]))
        if self.media:
            table = table.append_column("media_path",
                                        _texts([self.media[p] for p in positions]))
            table = table.append_column("end_unknown", pc.is_null(table.column("end_time")))
        return table


def _texts(paths: list[str | None]) -> pa.Array:
    """Paths as the table shows them (:func:`shown_all`), an Arrow column."""
    return pa.array(shown_all(paths), type=pa.large_string())


def shown_all(paths: list) -> list:
    r""":func:`recstats._archive_parse.shown_path` of each path (``None`` stays), at C
    speed when all are ASCII (as file names usually are).

    >>> shown_all(["a.xml", None]), shown_all(["\udcff.xml", None])
    (['a.xml', None], ['\\xff.xml', None])
    """
    if "".join(filter(None, paths)).isascii():
        return paths
    return [None if path is None else shown_path(path) for path in paths]


def parse_chunk(task: tuple, tz: str, directions: Mapping[str, str] | None
                ) -> tuple[pa.Table, list[tuple[str, str]], int]:
    """Parse one chunk of CDR files -> (Arrow table incl. cdr_path, errors, files seen).

    The same result as :func:`recstats._archive_parse._parse_chunk` (the reference
    reader), with flat documents taking the fast path described in this module.
    Documents are held a batch at a time (at most :data:`BATCH_BYTES`).
    """
    chunk = Chunk()
    chunk.add(task)
    table, errors = chunk.calls(tz, directions)
    return table, errors, len(chunk.paths)


def _fast_frame(chunk: Chunk, tz: str, directions
                ) -> tuple[pd.DataFrame, list[int]] | None:
    """The calls of the chunk's flat documents (their rejects go to ``chunk.errors``),
    and the documents' positions in the chunk."""
    if not chunk.fast:
        return None
    fields = chunk.tables[0] if len(chunk.tables) == 1 else \
        pa.concat_tables(chunk.tables, promote_options="permissive")
    raw = fields.to_pandas() if fields.num_columns else \
        pd.DataFrame(index=range(fields.num_rows))
    try:
        frame, rejected = calls_from_raw(raw, tz=tz, directions=directions, coerce=False)
    except Exception:  # noqa: BLE001 - the reference path isolates the one that breaks
        for pos, row in zip(chunk.fast, raw.to_dict("records")):
            chunk.rows.append({k: v for k, v in row.items() if isinstance(v, str)})
            chunk.slow.append(pos)
        return None
    chunk.errors.extend((chunk.fast[row], chunk.paths[chunk.fast[row]], reason)
                        for row, reason in rejected.items())
    return frame, [chunk.fast[i] for i in frame.index]
