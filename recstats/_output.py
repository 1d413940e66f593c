"""Output files that replace only what they should: regular files or new paths.

Every file recstats writes for a user (``recstats parse -o``, ``capture -o``, the
report's files, :func:`recstats.archive.write_parquet`) goes through :func:`replacing`:
the data is written to a hidden temporary file in the target's folder and renamed over
the target only when complete, so a crash never leaves half a file. Renaming over a
FIFO, a device node or a directory would silently replace it by a regular file (or fail
with an obscure error), so :func:`check_output` refuses those, and an empty path, with
one clear :class:`OutputPathError`. A symlink to a regular file is followed: the file
it points to is replaced and the link stays.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import RecstatsError

__all__ = ["OutputPathError", "check_output", "replacing", "write_bytes", "write_text"]


class OutputPathError(RecstatsError, ValueError):
    """An output path recstats will not write: empty, a folder, a FIFO, a device, ..."""


def _kind(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_output(path: str | os.PathLike) -> Path:
    """The file that writing ``path`` will create or replace, or an :class:`OutputPathError`.

    A new path in an existing folder, or an existing regular file, is accepted; a symlink
    is followed to its target (the target is what gets replaced). An empty path, a
    folder, a FIFO, a device node or a socket is refused, as is a path whose folder does
    not exist.

    >>> check_output("")
    Traceback (most recent call last):
    ...
    recstats._output.OutputPathError: the output path is empty; give a file name
    >>> check_output("/dev/null")
    Traceback (most recent call last):
    ...
    recstats._output.OutputPathError: cannot write /dev/null: it is a device, not a regular file
    """
    text = os.fspath(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text.strip():
        raise OutputPathError("the output path is empty; give a file name")
    if os.path.isdir(text):
        raise OutputPathError(f"cannot write {text}: it is a folder; give a file name")
    if text.endswith(os.sep):
        raise OutputPathError(f"cannot write {text}: it names a folder; give a file name")
    target = Path(os.path.realpath(text))  # follows every link in the chain
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        if not target.parent.is_dir():
            raise OutputPathError(f"cannot write {text}: folder {target.parent} does not "
                                  "exist") from None
        return target
    except OSError as exc:
        raise OutputPathError(f"cannot write {text}: {exc.strerror}") from None
    kind = _kind(mode)
    if kind is not None:
        raise OutputPathError(f"cannot write {text}: it is {kind}, not a regular file")
    return target


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces the file at ``path``.

    The target is checked with :func:`check_output` (before and again just before the
    rename). The temporary file lives in the target's folder (so the rename is atomic),
    is created with mode ``0666 & ~umask`` (or the replaced file's permissions), and is
    removed if the block raises.

    >>> import tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> with replacing(os.path.join(folder, "out.txt")) as temp:
    ...     _ = temp.write_text("done")
    >>> open(os.path.join(folder, "out.txt")).read(), len(os.listdir(folder))
    ('done', 1)
    """
    target = check_output(path)
    temp = target.parent / f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        # not mkstemp: its 0600 mode would make the output private to its writer
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:  # name the file asked for, not the hidden temporary one
        raise type(exc)(exc.errno, f"cannot write {os.fspath(path)}: {exc.strerror}") \
            from None
    try:
        if target.exists():
            os.chmod(temp, stat.S_IMODE(os.stat(target).st_mode))
        yield temp
        # the target may have changed kind while the data was written
        if check_output(path) != target:
            raise OutputPathError(f"cannot write {os.fspath(path)}: it changed while "
                                  "being written")
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through :func:`replacing`; returns the file written."""
    with replacing(path) as temp:
        temp.write_bytes(data)
    return check_output(path)


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` through :func:`replacing`; returns the file written.

    >>> import tempfile, os
    >>> p = write_text(os.path.join(tempfile.mkdtemp(), "a.html"), "<p>hi</p>")
    >>> p.read_text()
    '<p>hi</p>'
    """
    with replacing(path) as temp:
        temp.write_text(text, encoding=encoding)
    return check_output(path)
