"""Units of an archive's files, and parsing them into finished chunks of the calls table.

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

from ._archive_parse import shown_path
from ._fastparse import Chunk

__all__ = ["Parser", "item_paths", "paired", "units"]

Result = tuple[pa.Table, list[tuple[str, str]], int]


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
    """Parses units; :meth:`take` gives the chunks finished so far, :meth:`finish` the
    rest. Each chunk is ``(table, errors, files seen)``; errors in file order."""

    def __init__(self, tz: str, directions: Mapping[str, str] | None, max_files: int
                 ) -> None:
        self.tz, self.directions = tz, directions
        self.max_files = max(1, max_files)
        self._chunk = Chunk()
        self._done: list[Result] = []

    def add(self, task: tuple, media: list[str | None]) -> None:
        chunk = self._chunk
        chunk.add(task)
        chunk.media.extend(media)
        if len(chunk.paths) >= self.max_files:
            self._close()

    def _close(self) -> None:
        chunk, self._chunk = self._chunk, Chunk()
        if chunk.paths:
            table, errors = chunk.calls(self.tz, self.directions)
            self._done.append((table, errors, len(chunk.paths)))

    def take(self) -> list[Result]:
        done, self._done = self._done, []
        return done

    def finish(self) -> list[Result]:
        self._close()
        return self.take()


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
