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
hardened lxml parser (:mod:`recstats._archive_parse`), and a chunk's fields become a
table in one vectorised pass (:mod:`recstats._table`). With several workers, this process
and a persistent pool share the chunks and workers send back Arrow IPC bytes, never
per-row objects (:mod:`recstats._archive_pool`); a folder is walked lazily, so parsing
starts while the walk goes on.

A file that cannot be parsed is an error row, never the end of the batch; a container
that cannot be read at all (a corrupt ``.zip``/``.tar`` directory) is a ``ValueError``.
"""

from __future__ import annotations

import itertools
import json
import operator
import os
import sys
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ._archive_parse import _ZIPS, shown_path
from ._archive_pool import run_pool as _run_pool
from ._archive_pool import warm as pool_is_warm
from ._fastparse import parse_chunk
from ._table import coerce_calls, empty_calls
from ._time import check_tz
from ._xml import MAX_DOCUMENT_BYTES
from .errors import CDRParseError

__all__ = ["archive_errors", "archive_files", "read_archive", "write_parquet"]

#: Below this many CDR files every batch parses in-process, whatever ``workers`` says:
#: under it, shipping chunks to worker processes costs more than it saves (each chunk
#: has a fixed cost; bench/parse.py prints workers=2 vs 1 at several sizes). Above it,
#: this process parses too, also while the pool starts (:mod:`recstats._archive_pool`).
IN_PROCESS_BELOW = 5000
#: The same before this process has a pool: starting one takes a second or more (a
#: forkserver that imports pandas, pyarrow and lxml) on the other cores.
COLD_IN_PROCESS_BELOW = 20000
#: Upper bound on files per chunk (memory: a chunk's fields live at once, as Arrow
#: columns or, for unusual documents, dicts). Each chunk has a fixed cost of a few
#: milliseconds (building its table), so chunks are large.
MAX_CHUNK = 16000
#: A tar chunk shipped to a worker holds at most this many bytes of documents.
TAR_CHUNK_BYTES = 8 * 1024 * 1024

# --------------------------------------------------------------------------- discovery


def _is_cdr(name: str) -> bool:
    return name[-4:].lower() == ".xml"


def _skipped(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


#: Extensions reported as "media without CDR" (pairing itself accepts any extension).
MEDIA_EXTENSIONS = frozenset({
    ".wav", ".mp3", ".mp4", ".m4a", ".ogg", ".opus", ".oga", ".webm", ".mkv", ".avi",
    ".mov", ".wma", ".wmv", ".amr", ".gsm", ".g729", ".vox", ".flac", ".aac", ".3gp",
    ".txt", ".html", ".htm", ".json", ".pdf", ".png", ".jpg", ".jpeg",
})


_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz")


def _looks_like_media(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in MEDIA_EXTENSIONS


def _stem_key(path: str) -> str:
    """The pairing key: the path without its last extension."""
    return path[: len(path) - len(os.path.splitext(path)[1])]


class _Listing:
    """What discovery found: CDR entries in order, and media paths by stem key.

    For a folder it fills up while the walk is consumed; ``complete`` says it is done.
    """

    def __init__(self) -> None:
        self.cdrs: list[str] = []          # display paths, in a deterministic order
        self.cdr_keys: set[str] = set()
        self.media: dict[str, str] = {}    # stem key -> first media path by name
        self.complete = True

    def add(self, path: str) -> None:
        if _is_cdr(path):
            self.cdrs.append(path)
            self.cdr_keys.add(path[:-4])
        else:
            key = _stem_key(path)
            if key not in self.media or path < self.media[key]:
                self.media[key] = path

    def media_without_cdr(self) -> list[str]:
        # only files that look like recordings: a README or script beside the archive
        # is not a recording whose CDR went missing
        return sorted(shown_path(p) for k, p in self.media.items()
                      if k not in self.cdr_keys and _looks_like_media(p))


def _walk(root: str, listing: _Listing) -> Iterator[list[str]]:
    """Yield the CDR paths under ``root``, a folder at a time, recording every file.

    Lazy, so worker processes parse the first chunks while the walk goes on. Sorted
    names: the same order on every file system.
    """
    cdrs, keys, media = listing.cdrs, listing.cdr_keys, listing.media
    # symbolic links to folders are followed (a day or site folder linked in from another
    # disk was skipped without a word); each folder is read once, so a link loop ends
    seen = {_folder_id(root)}
    for dirpath, dirnames, filenames in os.walk(root, onerror=_unreadable_folder,
                                                followlinks=True):
        kept = []
        for name in sorted(dirnames):
            if not _skipped(name):
                folder = _folder_id(os.path.join(dirpath, name))
                if folder is None or folder not in seen:
                    seen.add(folder)
                    kept.append(name)
        dirnames[:] = kept
        prefix = dirpath if dirpath.endswith(os.sep) else dirpath + os.sep
        names = sorted(n for n in filenames if n[0] != "." and n != "__MACOSX")
        found = [prefix + n for n in names if n[-4:].lower() == ".xml"]
        if len(found) < len(names):
            for name in names:
                if name[-4:].lower() != ".xml":
                    path = prefix + name
                    dot = name.rfind(".")
                    key = prefix + name[:dot] if dot > 0 else path
                    if key not in media or path < media[key]:
                        media[key] = path
        if found:
            cdrs.extend(found)
            keys.update([p[:-4] for p in found])
            yield found
    listing.complete = True


def _folder_id(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:  # os.walk reports it (_unreadable_folder)
        return None
    return info.st_dev, info.st_ino


def _unreadable_folder(exc: OSError) -> None:
    # os.walk skips a folder it cannot list without a word: its CDRs would be missing
    # from both rows and errors
    warnings.warn(f"recstats.read_archive: cannot read folder {exc.filename} "
                  f"({exc.strerror or exc}); its files are left out", RuntimeWarning,
                  stacklevel=2)


def _kind(path: str) -> str:
    if os.path.isdir(path):
        return "dir"
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file or folder: {path}")
    if _is_cdr(path):
        return "list"  # one CDR file
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    if path.lower().endswith(_ARCHIVE_SUFFIXES):  # named like one: damaged, not unknown
        raise ValueError(f"cannot read the archive {path}: not a valid zip or tar file "
                         "(damaged or incomplete?)")
    raise ValueError(f"{path} is not a folder, .zip, .tar[.gz] or .xml file")


def _member_ok(name: str) -> bool:
    return not any(_skipped(part) for part in name.split("/") if part not in ("", ".", ".."))


def _member_name(name: str) -> str:
    """A member's name as shown: ``./a/b.xml`` and ``/a/b.xml`` -> ``a/b.xml``."""
    while name.startswith(("./", "/")):
        name = name[1:] if name.startswith("/") else name[2:]
    return name


def archive_files(path: str | os.PathLike | Sequence[str | os.PathLike]) -> pd.DataFrame:
    """The CDR files of an archive and their paired media, without parsing anything.

    Returns a frame with columns ``cdr_path`` and ``media_path`` (NA when no media file
    has the CDR's stem), in reading order. Tar archives are listed by reading them once.

    >>> archive_files("data/samples/odd").cdr_path.str.endswith(".xml").all()  # doctest: +SKIP
    True
    """
    listing, _, _, batches = _discover(path)
    for _ in batches:  # a folder's listing fills up as its walk is consumed
        pass
    cdrs = pd.Series([shown_path(p) for p in listing.cdrs], dtype="str")
    return pd.DataFrame({"cdr_path": cdrs, "media_path": _pair(cdrs, listing)})


def _discover(path) -> tuple[_Listing, str, str | None, Iterator[list[str]]]:
    """List an archive: ``(listing, kind, source, batches)``.

    ``kind`` is ``files`` (``batches`` are lists of file paths; lazy for a folder),
    ``zip`` (lists of member names of ``source``) or ``tar`` (read by
    :func:`_tar_tasks`, no batches).
    """
    listing = _Listing()
    if isinstance(path, (str, os.PathLike)):
        path = os.fspath(path)
        kind = _kind(path)
        if kind == "dir":
            os.scandir(path).close()  # an unreadable top folder: PermissionError at once
            listing.complete = False  # now: the generator's body starts only when consumed
            return listing, "files", None, _walk(path, listing)
        if kind == "zip":
            try:
                with zipfile.ZipFile(path) as zf:
                    names = sorted(i.filename for i in zf.infolist()
                                   if not i.is_dir() and _member_ok(i.filename))
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise ValueError(f"cannot read the zip archive {path}: {exc}") from None
            for name in names:
                listing.add(f"{path}/{name}")
            cut = len(path) + 1
            return listing, "zip", path, iter([[p[cut:] for p in listing.cdrs]])
        if kind == "tar":
            try:
                with tarfile.open(path, "r:*") as tf:
                    names = sorted(_member_name(m.name) for m in tf.getmembers()
                                   if m.isfile() and _member_ok(m.name))
            except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
                raise ValueError(f"cannot read the tar archive {path}: {exc}") from None
            for name in names:
                listing.add(f"{path}/{name}")
            return listing, "tar", path, iter([])
        paths = [path]
    else:
        paths = [os.fspath(p) for p in path]
    # a list of files: its CDRs in the order given; media from the list and, for a CDR
    # whose media is not listed, from its folder on disk ("beside it"). A folder in the
    # list stands for its files (it was taken for a media file: no rows, no word);
    # a file listed twice, or also inside a listed folder, counts once
    if any(not _is_cdr(p) and os.path.isdir(p) for p in paths):
        paths = list(itertools.chain.from_iterable(
            _folder_files(p) if not _is_cdr(p) and os.path.isdir(p) else [p]
            for p in paths))
    paths = list(dict.fromkeys(paths))
    for p in paths:
        listing.add(p)
    listed_media = set(listing.media.values())
    seen_dirs: set[str] = set()
    for cdr in listing.cdrs:
        folder = os.path.dirname(cdr)
        if cdr[:-4] in listing.media or folder in seen_dirs:
            continue
        seen_dirs.add(folder)
        try:
            names = sorted(os.listdir(folder or "."))
        except OSError:
            continue
        for name in names:
            if not _is_cdr(name) and not _skipped(name):
                full = os.path.join(folder, name)
                key = _stem_key(full)
                if key in listing.cdr_keys and (key not in listing.media
                                                or full < listing.media[key]):
                    listing.media[key] = full
    # only listed media can be "media without CDR"
    listing.media = {k: p for k, p in listing.media.items()
                     if p in listed_media or k in listing.cdr_keys}
    return listing, "files", None, iter([list(listing.cdrs)])


def _folder_files(folder: str) -> list[str]:
    """The CDRs and media files under ``folder``, as a folder archive reads them."""
    inner = _Listing()
    for _ in _walk(folder, inner):
        pass
    return inner.cdrs + sorted(inner.media.values())


def _pair(cdr_paths: pd.Series, listing: _Listing) -> pd.Series:
    """``media_path`` for shown ``cdr_path`` values (see :func:`shown_path`)."""
    keys = cdr_paths.str.slice(0, -4)
    media = listing.media
    if not all(k.isascii() and p.isascii() for k, p in media.items()):
        media = {shown_path(k): shown_path(p) for k, p in media.items()}
    return keys.map(media).astype("str")


# --------------------------------------------------------------------------- scheduling


def _tasks(kind: str, source: str | None, batches: Iterator[list[str]],
           sizes: Iterator[int]) -> Iterator[tuple]:
    """Chunks of work, taken lazily from ``batches``; each holds ``next(sizes)`` files."""
    if kind == "tar":
        yield from _tar_tasks(source, sizes)
        return
    pending: list[str] = []
    size = next(sizes)
    for batch in batches:
        pending.extend(batch)
        while len(pending) >= size:
            part, pending = pending[:size], pending[size:]
            yield kind, source, part
            size = next(sizes)
    if pending:
        yield kind, source, pending


def _pool_sizes(total: int | None, workers: int) -> Iterator[int]:
    # known total: chunks shrink as the work left does (each a share of what is left),
    # so there are few (each has a fixed cost) and the parent, which also walks and
    # gathers, and the workers end together; unknown (a folder being walked): start
    # small so every worker gets going at once, then double up to MAX_CHUNK
    if total is not None:
        smallest = max(256, total // (workers * 8))
        left = total
        while left > 0:
            size = min(MAX_CHUNK, max(smallest, left // (workers * 2)))
            yield size
            left -= size
    size = 512
    while True:
        yield size
        size = min(MAX_CHUNK, size * 2)


def _tar_tasks(path: str, sizes: Iterator[int]) -> Iterator[tuple]:
    # a compressed tar has no index: read it front to back (sorting the members would
    # decompress from the start for every backward seek), shipping bounded chunks of
    # bytes; the final sort makes the order irrelevant
    with tarfile.open(path, "r:*") as tf:
        batch: list[tuple[str, bytes | str]] = []
        size, chunk = 0, next(sizes)
        for member in tf:
            if not (member.isfile() and _member_ok(member.name) and _is_cdr(member.name)):
                continue
            display = f"{path}/{_member_name(member.name)}"
            if member.size > MAX_DOCUMENT_BYTES:
                data: bytes | str = f"file is over the {MAX_DOCUMENT_BYTES} byte limit"
            else:
                try:
                    handle = tf.extractfile(member)
                    data = handle.read() if handle is not None else "not a regular file"
                except (OSError, tarfile.TarError, EOFError, zlib.error) as exc:
                    data = f"cannot read archive member: {exc}"
            batch.append((display, data))
            size += len(data)
            if len(batch) >= chunk or size >= TAR_CHUNK_BYTES:
                yield "blobs", path, batch
                batch, size, chunk = [], 0, next(sizes)
        if batch:
            yield "blobs", path, batch


# --------------------------------------------------------------------------- public API


def _progress_bar(total: int | None, progress: bool):
    from tqdm.auto import tqdm

    # disable=None: tqdm shows the bar on a terminal or in a notebook, not in logs/pipes
    return tqdm(total=total, unit=" files", desc="parsing CDRs", leave=False,
                disable=None if progress else True, file=sys.stderr)


def read_archive(path: str | os.PathLike | Sequence[str | os.PathLike],
                 workers: int | None = None, progress: bool = True, tz: str = "UTC",
                 on_error: str = "collect",
                 directions: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Parse every CDR file of an archive into one calls table.

    Every ``*.xml`` is a CDR; the file beside it with the same stem and another
    extension is its media. Files that cannot be parsed (unreadable, empty, binary,
    truncated, not a CDR, with a DTD, over 16 MiB or 1000 fields) never stop the batch:
    they are listed in ``attrs["errors"]``.

    Parameters
    ----------
    path : str, path-like or sequence of them
        A folder (searched recursively, following links to folders), a ``.zip``, a
        ``.tar``/``.tar.gz``/``.tgz``, or a list of files (a folder in it stands for its
        files; a file listed twice counts once).
    workers : int, optional
        Processes that parse: this one and ``workers - 1`` worker processes of a pool
        that stays up for later calls. Default: one per usable core. Inputs under
        :data:`IN_PROCESS_BELOW` files (:data:`COLD_IN_PROCESS_BELOW` before this
        process has a pool) stay in this process, where workers would not pay. The
        result is the same for any number of workers. Worker processes do not import
        your ``__main__`` script, so a script needs no ``if __name__ == "__main__":``
        guard; if they fail, the batch finishes in this process with one warning line.
    progress : bool
        Show a tqdm bar when stderr is a terminal or in a notebook.
    tz : str
        The sites' time zone (CDR times carry none).
    on_error : {"collect", "raise"}
        ``"raise"`` raises :class:`recstats.CDRParseError` at the first file that
        cannot be parsed instead of listing it.
    directions : mapping, optional
        Overrides the ``direction_id`` table.

    Returns
    -------
    pandas.DataFrame
        The calls table, ordered by ``start_time`` (missing last), then ``call_id``,
        then ``cdr_path``; the index is 0..n-1. The same call in two files gives two
        rows. ``cdr_path`` is the CDR's own path (an archive member is
        ``<archive path>/<member name>``), ``media_path`` its media (NA when missing).
        ``attrs`` holds ``errors`` (``{"path", "error"}`` dicts, see
        :func:`archive_errors`), ``files`` (CDR files seen) = ``parsed`` (rows) +
        ``failed``, ``media_without_cdr`` (media paths no CDR pairs with), ``source``
        and ``tz``: plain data, so merge, astype, concat and Parquet keep working.

    Warns
    -----
    RuntimeWarning
        For a subfolder that cannot be listed, a folder holding archives but no CDR
        (archives inside a folder are not opened), and worker processes that failed.

    Raises
    ------
    PermissionError
        When the archive folder itself cannot be listed.

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
    if not isinstance(path, (str, os.PathLike)):
        path = list(path)  # a generator would be spent before attrs["source"] is made
    listing, kind, source, batches = _discover(path)
    total = len(listing.cdrs) if listing.complete else None
    n_workers = workers if workers is not None else _usable_cores()
    if n_workers > 1:
        below = IN_PROCESS_BELOW if pool_is_warm(n_workers - 1) else COLD_IN_PROCESS_BELOW
        if total is None:  # a folder: walk far enough to see whether it is small
            head, seen_so_far = [], 0
            for batch in batches:
                head.append(batch)
                seen_so_far += len(batch)
                if seen_so_far >= below:
                    break
            batches = itertools.chain(head, batches)
            total = len(listing.cdrs) if listing.complete else None
        if total is not None and total < below:
            n_workers = 1
    if n_workers > 1:
        results = _run_pool(_tasks(kind, source, batches, _pool_sizes(total, n_workers)),
                            n_workers, tz, directions)
    else:
        results = (parse_chunk(task, tz, directions)
                   for task in _tasks(kind, source, batches, itertools.repeat(MAX_CHUNK)))
    tables: list[pa.Table] = []
    errors: list[dict[str, str]] = []
    seen = 0
    with _progress_bar(total, progress) as bar:
        try:
            for table, chunk_errors, chunk_seen in results:
                if chunk_errors and on_error == "raise":
                    raise CDRParseError(chunk_errors[0][1], chunk_errors[0][0])
                tables.append(table)
                errors.extend({"path": p, "error": r} for p, r in chunk_errors)
                seen += chunk_seen
                if bar.total is None and listing.complete:
                    bar.total = len(listing.cdrs)
                bar.update(chunk_seen)
        finally:
            close = getattr(results, "close", None)
            if close is not None:
                close()  # stops the pool at once when raising
            for zf in _ZIPS.values():
                zf.close()
            _ZIPS.clear()
    errors.sort(key=lambda e: e["path"])  # the same order from any source or workers
    if seen == 0:
        _warn_nested_archives(listing)
    frame = _assemble(tables)
    frame["media_path"] = _pair(frame["cdr_path"], listing)
    frame = coerce_calls(frame)  # rows are in order (_assemble)
    frame.attrs = {
        "source": shown_path(path) if isinstance(path, str) else
        shown_path(os.fspath(path)) if isinstance(path, os.PathLike) else
        [shown_path(os.fspath(p)) for p in path],
        "tz": tz, "files": seen, "parsed": len(frame), "failed": len(errors),
        "errors": errors, "media_without_cdr": listing.media_without_cdr(),
    }
    return frame


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
        return empty_calls().assign(cdr_path=pd.Series([], dtype="str"))
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


def archive_errors(calls: pd.DataFrame) -> pd.DataFrame:
    """The files :func:`read_archive` could not parse, as a frame (``path``, ``error``).

    >>> import pandas as pd
    >>> df = pd.DataFrame(); df.attrs["errors"] = [{"path": "a.xml", "error": "empty"}]
    >>> archive_errors(df)
        path  error
    0  a.xml  empty
    """
    errors = calls.attrs.get("errors", [])
    return pd.DataFrame({"path": pd.Series([e["path"] for e in errors], dtype="str"),
                         "error": pd.Series([e["error"] for e in errors], dtype="str")})


def write_parquet(calls: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a calls table to Parquet, keeping ``calls.attrs`` (errors, counts).

    ``pandas.read_parquet(path)`` gives back an equal frame, attrs included; the file is
    written to a temporary name and renamed, so a crash never leaves half a file.

    >>> import recstats as rs, pandas as pd
    >>> calls = rs.calls_frame([rs.read_cdr(b"<verbacdr><id>a</id></verbacdr>")])
    >>> p = write_parquet(calls, "/tmp/recstats-doctest.parquet")  # doctest: +SKIP
    >>> pd.read_parquet(p).call_id.tolist()  # doctest: +SKIP
    ['a']
    """
    import pyarrow.parquet as pq

    if not isinstance(calls, pd.DataFrame):
        raise TypeError(f"calls must be a DataFrame, not {type(calls).__name__}")
    target = Path(path)
    table = pa.Table.from_pandas(calls)
    # a category column without any value gets a null/float-typed dictionary, which reads
    # back as object/float: give it string values so it reads back as a category
    for i, column in enumerate(table.columns):
        if pa.types.is_dictionary(column.type) and column.null_count == len(column) \
                and not pa.types.is_string(column.type.value_type):
            kind = pa.dictionary(column.type.index_type, pa.large_string())
            table = table.set_column(i, table.field(i).with_type(kind), column.cast(kind))
    metadata = dict(table.schema.metadata or {})
    metadata[b"PANDAS_ATTRS"] = json.dumps(calls.attrs, default=str).encode()
    table = table.replace_schema_metadata(metadata)
    # not mkstemp: its 0600 mode would make calls.parquet private; 0666 & ~umask, as
    # for any file the user writes
    temp = os.path.join(target.parent, f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}")
    try:
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:  # name the file asked for, not the hidden temporary one
        raise type(exc)(exc.errno, f"cannot write {target}: {exc.strerror}") from None
    try:
        pq.write_table(table, temp)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target

