"""How a worker's finished table reaches the parent process.

The parent's wait for the workers' tables, at the end of a read, is time no process
parses in. As bytes, a table is copied three times on the way (into a Python object,
through the pool's pipe, out of it) and read in the parent by a thread that needs the
interpreter lock while the parent's own typing holds it. As an Arrow IPC file in shared
memory it is written once and mapped by the parent, not copied: for a worker's half of
20 000 files that took about a third of the time. The pool makes one private folder for
these files (:func:`spill_folder`) and removes it with the pool or at exit; the parent
removes each file as it maps it (:func:`taken_over`), and the files of a stopped read
when its workers end (:func:`drop_handed_over`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from concurrent.futures import Future

import pyarrow as pa

__all__ = ["SPILL_BYTES", "chunks_handed_over", "chunks_taken_over", "drop_handed_over",
           "hand_over", "remove_spill", "spill_folder", "taken_over"]

#: A worker's table at least this large reaches the parent as a file (see
#: :func:`hand_over`); a smaller one as bytes through the pool's pipe.
SPILL_BYTES = 1 << 20


def hand_over(table: pa.Table, folder: str | None, spill_bytes: int = SPILL_BYTES
              ) -> bytes | str:
    """In a worker: ``table`` for the parent, as the path of an Arrow IPC file in
    ``folder`` (the pool's) when it holds ``spill_bytes`` or more, else as Arrow IPC
    bytes (see :func:`taken_over`).

    A folder that cannot take the file (gone, or full: a container's ``/dev/shm`` is
    often small) leaves the table to go as bytes.
    """
    if folder is not None and table.nbytes >= spill_bytes:
        path = None
        try:
            handle, path = tempfile.mkstemp(suffix=".arrow", dir=folder)
            os.close(handle)
            with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
            return path
        except OSError:
            if path is not None:
                with contextlib.suppress(OSError):
                    os.unlink(path)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def taken_over(data: bytes | str) -> pa.Table:
    """In the parent: a worker's table from :func:`hand_over`; its file is removed
    (the table keeps the mapped memory until it is dropped)."""
    if isinstance(data, bytes):
        return pa.ipc.open_stream(data).read_all()
    try:
        return pa.ipc.open_file(pa.memory_map(data)).read_all()
    finally:
        os.unlink(data)


def chunks_handed_over(chunks: list[tuple[pa.Table, list, int]], folder: str | None,
                       spill_bytes: int = SPILL_BYTES) -> list[tuple[bytes | str, list, int]]:
    """A worker's finished chunks ``(table, errors, seen)`` with each table handed over."""
    return [(hand_over(table, folder, spill_bytes), errors, seen)
            for table, errors, seen in chunks]


def chunks_taken_over(chunks: list[tuple[bytes | str, list, int]]
                      ) -> list[tuple[pa.Table, list, int]]:
    """The parent's side of :func:`chunks_handed_over`."""
    return [(taken_over(data), errors, seen) for data, errors, seen in chunks]


def drop_handed_over(future: Future) -> None:
    """Remove the files of a worker's tables that were not taken over (a stopped
    read's); a done-callback, harmless on results already taken."""
    if future.cancelled() or future.exception() is not None:
        return
    for data, _, _ in future.result()[0]:
        if isinstance(data, str):
            with contextlib.suppress(OSError):
                os.unlink(data)


def spill_folder() -> str | None:
    """A new private folder for the workers' tables: in memory (``/dev/shm``) where
    there is one; None when no folder can be made (tables then go as bytes)."""
    if os.name != "posix":  # Windows cannot remove a file while it is mapped
        return None
    memory = "/dev/shm"
    try:
        return tempfile.mkdtemp(prefix="recstats-pool-",
                                dir=memory if os.access(memory, os.W_OK) else None)
    except OSError:
        return None


def remove_spill(folder: str | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
