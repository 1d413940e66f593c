"""Parsing one chunk of CDR files into an Arrow table: the work of each worker process.

:mod:`recstats.archive` finds the files and schedules chunks; this module reads them
(bounded raw reads, archive members), parses each document with the hardened parser
(a fast path for plain documents, :func:`recstats._xml.fields_of` otherwise), turns the
chunk's fields into a calls table with :func:`recstats._table.calls_from_fields`, and
returns it as Arrow (IPC bytes from a worker process), with the files that failed.
"""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Iterable, Iterator, Mapping

import pandas as pd
import pyarrow as pa
from lxml import etree

from ._table import calls_from_fields, coerce_calls, empty_calls
from ._xml import MAX_DOCUMENT_BYTES, fields_of, parse_document, safe_parser
from .errors import CDRParseError

_FIRST_READ = 64 * 1024
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def read_file(path: str) -> bytes | str:
    """A file's bytes, or the reason it cannot be read.

    Raw reads: ``read(limit)`` on a buffered file allocates the whole limit every time
    (16 MiB: 4x slower than parsing). A small file is one read; an empty read or a
    large file gets an fstat (type, size limit). Non-blocking open: a FIFO named
    ``*.xml`` is refused instead of hanging the batch.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        return f"cannot read file: {exc.strerror or exc}"
    try:
        data = os.read(fd, _FIRST_READ)
        if 0 < len(data) < _FIRST_READ:
            return data
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file"
        if info.st_size > MAX_DOCUMENT_BYTES:
            return f"file is over the {MAX_DOCUMENT_BYTES} byte limit"
        parts = [data]
        while data and len(data) >= _FIRST_READ:
            data = os.read(fd, MAX_DOCUMENT_BYTES + 1 - sum(map(len, parts)))
            parts.append(data)
        return b"".join(parts)
    except OSError as exc:
        return f"cannot read file: {exc.strerror or exc}"
    finally:
        os.close(fd)


def shown_path(path: str) -> str:
    r"""A path as it goes into the table: a file name that is not UTF-8 (bytes Python
    keeps as surrogates, e.g. Latin-1 names) gets ``\xNN`` escapes, since Arrow, pandas'
    ``str`` and a UTF-8 terminal refuse surrogates (they failed the whole batch).
    Applied to every character alike, so a prefix of a shown path is the shown prefix.

    >>> shown_path("a/\udcffb.xml"), shown_path("a/é.xml")
    ('a/\\xffb.xml', 'a/é.xml')
    """
    if path.isascii():
        return path
    try:
        return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate no file name decodes to
        return path.encode("utf-8", "backslashreplace").decode("utf-8")


OPEN_ZIPS: dict[str, zipfile.ZipFile] = {}  # per process: the zip's directory is read once


def _zip(path: str) -> zipfile.ZipFile:
    zf = OPEN_ZIPS.get(path)
    if zf is None:
        zf = OPEN_ZIPS[path] = zipfile.ZipFile(path)
    return zf


def _read_member(zf: zipfile.ZipFile, name: str) -> bytes | str:
    try:
        with zf.open(name) as handle:  # bounded read: a lying header cannot blow memory
            return handle.read(MAX_DOCUMENT_BYTES + 1)
    except (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError, KeyError,
            EOFError) as exc:
        return f"cannot read archive member: {exc}"


def task_blobs(task: tuple) -> Iterator[tuple[str, bytes | str]]:
    kind, source, items = task
    if kind == "files":
        for path in items:
            yield path, read_file(path)
    elif kind == "zip":
        zf = _zip(source)
        for name in items:
            yield f"{source}/{name}", _read_member(zf, name)
    else:  # "blobs": (path, bytes) pairs read by the parent
        yield from items


def _fields(data: bytes, path: str) -> dict[str, str]:
    """``fields_of(parse_document(data, path))``, faster for plain documents.

    Plain: starts with ``<``, UTF-8 (no other declared encoding, no NUL: a DTD would
    show as bytes), no ``<!`` (no DTD, comment or CDATA), no ``=`` after the XML
    declaration (no attribute or namespace anywhere), and no field nested in another:
    then the fields are the root's children's texts. Anything else takes the general path, which also
    gives every error its usual reason. tests/test_archive.py checks both agree.
    """
    body = data
    if data[:5] == b"<?xml":
        end = data.find(b"?>")
        declaration = data[:end].lower()
        # another declared encoding (UTF-7!) could hide a DTD from the byte checks
        body = data[end + 2:] if end > 0 and (b"encoding" not in declaration
                                              or b"utf-8" in declaration) else b"="
    if data[:1] != b"<" or b"=" in body or b"<!" in data or b"\x00" in data:
        return fields_of(parse_document(data, path))
    try:
        root = etree.fromstring(data, safe_parser())
    except Exception:  # noqa: BLE001 - the general path says what is wrong
        return fields_of(parse_document(data, path))
    fields: dict[str, str] = {}
    for child in root:
        if len(child):
            return fields_of(root)
        text = child.text
        if text is not None:
            text = text.strip()
            if text:
                tag = child.tag
                old = fields.get(tag)
                fields[tag] = text if old is None else f"{old}; {text}"
    return fields


def _parse_chunk(task: tuple, tz: str, directions: Mapping[str, str] | None
                 ) -> tuple[pa.Table, list[tuple[str, str]], int]:
    """Parse one chunk of CDR files -> (Arrow table incl. cdr_path, errors, files seen).

    The reference reader: every document through lxml's tree, one dict per document.
    :func:`recstats._archive_run.parse_chunk` gives the same result faster.
    """
    blobs = [(pos, path, data) for pos, (path, data) in enumerate(task_blobs(task))]
    frame, errors = parse_blobs(blobs, tz, directions)
    errors.sort(key=lambda e: e[0])
    return to_arrow(frame), [(shown_path(p), r) for _, p, r in errors], len(blobs)


def parse_blobs(blobs: Iterable[tuple[int, str, bytes | str]], tz: str,
                directions: Mapping[str, str] | None
                ) -> tuple[pd.DataFrame, list[tuple[int, str, str]]]:
    """``(position, path, bytes or reason)`` items -> (calls with cdr_path, errors).

    Errors are ``(position, path, reason)``, in no particular order.
    """
    rows: list[dict[str, str]] = []
    paths: list[str] = []
    where: list[int] = []  # position in the chunk of each parsed row
    errors: list[tuple[int, str, str]] = []
    for pos, path, data in blobs:
        fields = document_fields(data, path)
        if isinstance(fields, str):
            errors.append((pos, path, fields))
        else:
            rows.append(fields)
            paths.append(path)
            where.append(pos)
    frame, rejected = fields_frame(rows, paths, tz, directions)
    errors.extend((where[row], paths[row], reason) for row, reason in rejected.items())
    return frame, errors


def document_fields(data: bytes | str, path: str) -> dict[str, str] | str:
    """One document's raw fields, or the reason it cannot be read (``data`` if a str)."""
    if isinstance(data, str):
        return data
    if len(data) > MAX_DOCUMENT_BYTES:
        return f"file is over the {MAX_DOCUMENT_BYTES} byte limit"
    try:
        return _fields(data, path)
    except CDRParseError as exc:
        return exc.reason
    except Exception as exc:  # noqa: BLE001 - untrusted input never stops the batch
        return f"unexpected error: {type(exc).__name__}: {exc}"


def fields_frame(rows, paths, tz, directions) -> tuple[pd.DataFrame, dict[int, str]]:
    """Raw fields of documents -> (calls with cdr_path, {row: reason} for rejected rows)."""
    try:
        frame, rejected = calls_from_fields(rows, tz=tz, directions=directions)
    except Exception:  # noqa: BLE001 - isolate the one document that breaks the batch
        frames, rejected = [], {}
        for i, row in enumerate(rows):
            try:
                one, bad = calls_from_fields([row], tz=tz, directions=directions)
            except Exception as exc:  # noqa: BLE001
                rejected[i] = f"unexpected error: {type(exc).__name__}: {exc}"
                continue
            if bad:
                rejected[i] = bad[0]
            else:
                frames.append(one.set_axis([i]))
        frame = coerce_calls(pd.concat(frames)) if frames else empty_calls()
    frame = frame.assign(cdr_path=pd.Series([shown_path(paths[i]) for i in frame.index],
                                            index=frame.index, dtype="str"))
    return frame, rejected


def to_arrow(frame: pd.DataFrame) -> pa.Table:
    # categories travel as plain strings (chunks' dictionaries differ); the final
    # coerce_calls rebuilds them once for the whole table
    table = pa.Table.from_pandas(frame, preserve_index=False)
    columns = [col.cast(pa.large_string()) if pa.types.is_dictionary(col.type) else col
               for col in table.columns]
    return pa.table(columns, names=table.column_names)
