"""Incremental Parquet datasets of an archive: :func:`ingest` and :func:`read_calls`.

A dataset is a folder that mirrors one archive (a folder, a list of files, a ``.zip`` or
a ``.tar[.gz]``)::

    DIR/_manifest.parquet                        every CDR file seen, one row each
    DIR/site=<site>/date=<YYYY-MM-DD>/part-<run>-<n>.parquet    the calls

``date`` is the local date of the call's start in the sites' zone ``tz``; calls without
a site or a start go to the ``__HIVE_DEFAULT_PARTITION__`` folder of that level. Site
names are percent-encoded in folder names. The manifest has the columns ``path``,
``size`` [bytes], ``mtime_ns`` [ns], ``media_path``, ``outcome`` (``parsed`` or
``error``), ``reason`` (the parse error) and ``part`` (the data file holding the call);
its schema metadata holds the dataset's ``tz`` and ``source``.

Consistency: a run writes new data files under new names, then replaces the manifest
in one ``os.replace``; readers only read the data files the manifest names. A run that
is interrupted leaves the previous dataset intact (plus unnamed files, removed by the
next run). One writer at a time.

Change detection: a CDR file is new, changed (size, mtime or paired media file) or
gone. For a folder archive the manifest also records every folder's mtime: when none
changed (files were neither added, removed nor renamed), the next run does not list
the archive again and only stats the CDR files it knows, which is what makes a run
with nothing to do fast. Like ``make`` and ``rsync``, this trusts mtimes: a file
rewritten with the same size within its file system's timestamp resolution of the
previous run goes unnoticed (folders modified within 2 s of a listing are listed again).
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import os
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ._dataset_read import FORMAT, MANIFEST, NULL_PARTITION, read_manifest
from ._time import check_tz
from .archive import archive_files, read_archive

__all__ = ["IngestReport", "ingest"]

_MANIFEST_SCHEMA = pa.schema([
    ("path", pa.string()), ("size", pa.int64()), ("mtime_ns", pa.int64()),
    ("media_path", pa.string()), ("outcome", pa.string()), ("reason", pa.string()),
    ("part", pa.string())])
_CONTAINERS = (".zip", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz")


@dataclass(frozen=True)
class IngestReport:
    """What one :func:`ingest` run did. ``files`` = ``unchanged`` + ``new`` + ``changed``;
    ``parsed`` + ``failed`` are the files parsed in this run; ``removed`` files were in
    the dataset but are no longer in the archive (their calls were dropped); ``errors``
    counts the dataset's files that could not be parsed, this run's or earlier."""

    dataset: str
    files: int
    new: int
    changed: int
    unchanged: int
    removed: int
    parsed: int
    failed: int
    errors: int

    def __str__(self) -> str:
        return (f"{self.dataset}: {self.files} CDR files, {self.new} new, {self.changed} "
                f"changed, {self.removed} removed, {self.unchanged} unchanged; parsed "
                f"{self.parsed}, failed {self.failed}; {self.errors} in the "
                f"dataset could not be parsed")

    def _repr_html_(self) -> str:
        rows = "".join(f"<tr><th>{name}</th><td>{getattr(self, name)}</td></tr>"
                       for name in ("files", "new", "changed", "removed", "unchanged",
                                    "parsed", "failed", "errors"))
        return f"<p><b>Dataset</b> {html.escape(self.dataset)}</p><table>{rows}</table>"


# --------------------------------------------------------------------------- manifest


def _write_manifest(root: str, manifest: pd.DataFrame, meta: dict) -> None:
    table = pa.Table.from_pandas(manifest[_MANIFEST_SCHEMA.names], schema=_MANIFEST_SCHEMA,
                                 preserve_index=False)
    table = table.replace_schema_metadata({b"recstats": json.dumps(meta).encode()})
    temp = os.path.join(root, f".{MANIFEST}.{os.getpid()}.{os.urandom(4).hex()}")
    try:
        pq.write_table(table, temp)
        with open(temp, "rb") as handle:  # on disk before it becomes the manifest
            os.fsync(handle.fileno())
        os.replace(temp, os.path.join(root, MANIFEST))
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def _source_of(archive) -> str | list[str]:
    if isinstance(archive, (str, os.PathLike)):
        return os.path.abspath(os.fspath(archive))
    return sorted(os.path.abspath(os.fspath(p)) for p in archive)


def _is_container(archive) -> bool:
    return isinstance(archive, (str, os.PathLike)) and os.path.isfile(archive) and \
        os.fspath(archive).lower().endswith(_CONTAINERS)


#: A folder modified this close before the listing that recorded it may change again
#: within its timestamp's resolution (coarse on some file systems): listed again.
RACY_NS = 2_000_000_000


def _folders(root: str) -> dict[str, int]:
    """``mtime_ns`` of every folder under ``root`` (links followed, each folder once;
    -1 for one that cannot be read): a folder's entries never change without it."""
    out: dict[str, int] = {}
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            info = os.stat(folder)
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            out[folder] = info.st_mtime_ns
            with os.scandir(folder) as entries:
                stack.extend(e.path for e in entries if e.name[0] != "." and
                             e.name != "__MACOSX" and e.is_dir())
        except OSError:
            out[folder] = -1
    return out


def _folders_unchanged(meta: dict) -> bool:
    """Whether no folder of the archive has changed since the listing ``meta`` records."""
    folders, listed_at = meta.get("folders"), meta.get("listed_at")
    if not folders or listed_at is None:
        return False
    for folder, mtime in folders.items():
        if mtime < 0 or mtime >= listed_at - RACY_NS:
            return False
        try:
            if os.stat(folder).st_mtime_ns != mtime:
                return False
        except OSError:
            return False
    return True


def _stat_files(paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
    sizes = np.empty(len(paths), dtype="int64")
    mtimes = np.empty(len(paths), dtype="int64")
    for i, path in enumerate(paths):
        try:
            info = os.stat(path)
            sizes[i], mtimes[i] = info.st_size, info.st_mtime_ns
        except OSError:  # unreadable: parsed (as an error row) on every run
            sizes[i] = mtimes[i] = -1
    return sizes, mtimes


def _listing(archive, old: pd.DataFrame | None, meta: dict
             ) -> tuple[pd.DataFrame, dict, bool]:
    """The archive's CDR files with size, mtime and paired media (no parsing), and the
    folder record for the next run, and whether the listing is the manifest's.

    A folder archive whose folders are all as the previous run recorded them holds the
    same files (a file's own change shows in its own mtime): its listing is the
    manifest's, and only its CDR files are stat'ed.
    """
    folder_archive = isinstance(archive, (str, os.PathLike)) and os.path.isdir(archive)
    if folder_archive and old is not None and _folders_unchanged(meta):
        paths = old["path"].tolist()
        sizes, mtimes = _stat_files(paths)
        return (pd.DataFrame({"path": old["path"], "size": sizes, "mtime_ns": mtimes,
                              "media_path": old["media_path"]}),
                {"folders": meta["folders"], "listed_at": meta["listed_at"]}, True)
    record: dict = {}
    if folder_archive:  # recorded before listing: a later change shows next time
        record = {"listed_at": time.time_ns(), "folders": _folders(os.fspath(archive))}
    files = archive_files(archive)
    paths = files["cdr_path"].tolist()
    if _is_container(archive):  # members carry their container's identity
        info = os.stat(archive)
        sizes = np.full(len(paths), info.st_size, dtype="int64")
        mtimes = np.full(len(paths), info.st_mtime_ns, dtype="int64")
    else:
        sizes, mtimes = _stat_files(paths)
    return (pd.DataFrame({"path": files["cdr_path"], "size": sizes, "mtime_ns": mtimes,
                          "media_path": files["media_path"]}), record, False)


def _among(paths: pd.Series, values) -> np.ndarray:
    """``paths.isin(values)`` as booleans, in Arrow: pandas' is a Python loop for str."""
    value_set = pa.array(list(values) if isinstance(values, (set, frozenset)) else values,
                         pa.string())
    found = pc.is_in(pa.array(paths, pa.string()), value_set=value_set)
    return found.to_numpy(zero_copy_only=False).astype(bool)


# --------------------------------------------------------------------------- writing


def _partition_dir(site, date) -> str:
    site_text = NULL_PARTITION if pd.isna(site) else urllib.parse.quote(str(site), safe="")
    date_text = NULL_PARTITION if pd.isna(date) else date.isoformat()
    return f"site={site_text}/date={date_text}"


def _to_arrow(frame: pd.DataFrame) -> pa.Table:
    # labels as plain strings: each file's dictionary index width differs, which does
    # not unify across files; read_calls gives them back their category dtype
    frame = frame.drop(columns=["site"]).astype(
        {c: "str" for c, t in frame.dtypes.items() if isinstance(t, pd.CategoricalDtype)
         and c != "site"})
    return pa.Table.from_pandas(frame, preserve_index=False)


def _write_parts(root: str, calls: pd.DataFrame, tz: str, run: str) -> pd.Series:
    """Write ``calls`` partitioned by site and local start date; their part per row."""
    part_of = pd.Series(pd.NA, index=calls.index, dtype="str")
    if calls.empty:
        return part_of
    dates = calls["start_time"].dt.tz_convert(tz).dt.date
    sites = calls["site"].astype("str")
    groups = calls.groupby([sites, dates], dropna=False, sort=True).groups
    for k, (labels, rows) in enumerate(groups.items()):
        folder = _partition_dir(*labels)  # type: ignore[misc]
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        name = f"{folder}/part-{run}-{k}.parquet"
        pq.write_table(_to_arrow(calls.loc[rows]), os.path.join(root, name))
        part_of.loc[rows] = name
    return part_of


def _rewrite_without(root: str, part: str, stale: set[str], run: str, k: int
                     ) -> str | None:
    """Copy ``part`` without the rows of ``stale`` CDR paths; the new part's name."""
    table = pq.ParquetFile(os.path.join(root, part)).read()  # no dataset discovery
    keep = pc.invert(pc.is_in(table["cdr_path"],
                              value_set=pa.array(sorted(stale), pa.string())))
    table = table.filter(keep)
    if table.num_rows == 0:
        return None
    name = f"{os.path.dirname(part)}/part-{run}-r{k}.parquet"
    pq.write_table(table, os.path.join(root, name))
    return name


def _remove_unlisted(root: str, listed: set[str]) -> None:
    """Delete data files the manifest does not name (replaced, or left by a crash)."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        rel = os.path.relpath(dirpath, root)
        if rel != "." and not rel.startswith("site="):
            continue
        for name in filenames:
            path = name if rel == "." else f"{rel.replace(os.sep, '/')}/{name}"
            unlisted = name.startswith("part-") and name.endswith(".parquet") and \
                path not in listed
            if unlisted or name.startswith(f".{MANIFEST}."):
                os.unlink(os.path.join(dirpath, name))
        if rel != "." and not os.listdir(dirpath):
            os.rmdir(dirpath)


def ingest(archive: str | os.PathLike | Sequence[str | os.PathLike],
           dataset: str | os.PathLike, *, tz: str = "UTC", workers: int | None = None,
           progress: bool = True) -> IngestReport:
    """Parse an archive into an incremental, Hive-partitioned Parquet dataset.

    The first run parses every CDR file of ``archive`` (anything
    :func:`recstats.read_archive` reads) and writes the calls under
    ``dataset/site=<site>/date=<local start date in tz>/`` and a manifest of every CDR
    file seen (path, size [bytes], mtime [ns], paired media, outcome ``parsed`` or
    ``error`` with its reason). Later runs on the same archive parse only CDR files that
    are new or whose size, mtime or paired media file changed; the calls of changed
    files are replaced and the calls of files no longer in the archive are dropped, so
    the dataset always mirrors the archive. Members of a ``.zip``/``.tar`` carry the
    container's size and mtime: a changed container is parsed again as a whole.
    Read it back with :func:`recstats.read_calls`.

    Parameters
    ----------
    archive : path or list of paths
        Folder, ``.zip``, ``.tar[.gz]``, or a list of CDR files.
    dataset : path
        The dataset folder (created if missing). It mirrors one archive: another
        ``archive`` or ``tz`` than the first run's is a ``ValueError``.
    tz : str
        The sites' IANA time zone: CDR times carry none, and partition dates are local.
    workers : int, optional
        Parser processes, as in :func:`recstats.read_archive`.
    progress : bool
        Show a progress bar while parsing.

    Returns
    -------
    IngestReport
        Counts of files seen, new, changed, unchanged, removed, parsed and failed.

    Examples
    --------
    >>> import recstats as rs
    >>> rs.ingest("data/samples/archive", "/tmp/calls-ds", progress=False)  # doctest: +SKIP
    >>> rs.ingest("data/samples/archive", "/tmp/calls-ds").changed  # doctest: +SKIP
    0
    """
    tz = check_tz(tz)
    root = os.fspath(dataset)
    if os.path.exists(root) and not os.path.isdir(root):
        raise ValueError(f"dataset {root} is a file; give a folder")
    if not isinstance(archive, (str, os.PathLike)):
        archive = [os.fspath(p) for p in archive]
    source = _source_of(archive)
    old, meta = read_manifest(root) if os.path.isdir(root) else (None, {})
    if old is not None and (meta.get("source") != source or meta.get("tz") != tz):
        raise ValueError(f"dataset {root} mirrors {meta.get('source')} (tz "
                         f"{meta.get('tz')}), not {source} (tz {tz}); give another folder")
    seen, record, reused = _listing(archive, old, meta)
    if old is not None and reused:  # the same files, in the manifest's order
        sizes, mtimes = seen["size"].to_numpy(), seen["mtime_ns"].to_numpy()
        if (sizes >= 0).all() and (sizes == old["size"].to_numpy()).all() and \
                (mtimes == old["mtime_ns"].to_numpy()).all():
            return IngestReport(root, len(old), 0, 0, len(old), 0, 0, 0,
                                int((old["outcome"] == "error").sum()))
    if old is None:
        old = pd.DataFrame({n: pd.Series([], dtype="str" if t == pa.string() else "int64")
                            for n, t in zip(_MANIFEST_SCHEMA.names, _MANIFEST_SCHEMA.types)})
    prior = old.drop_duplicates("path").set_index("path").reindex(seen["path"])
    new = ~_among(seen["path"], old["path"])
    same = ~new & (seen["size"].to_numpy() == prior["size"].to_numpy()) & \
        (seen["mtime_ns"].to_numpy() == prior["mtime_ns"].to_numpy()) & \
        (seen["size"].to_numpy() >= 0) & \
        (seen["media_path"].fillna("\0").to_numpy() ==
         prior["media_path"].fillna("\0").to_numpy())
    todo = seen.loc[~same, "path"].tolist()
    removed = old.loc[~_among(old["path"], seen["path"]), "path"].tolist()
    report = IngestReport(root, len(seen), int(new.sum()), int((~same & ~new).sum()),
                          int(same.sum()), len(removed), 0, 0,
                          int((old["outcome"] == "error").sum()))
    if not todo and not removed and os.path.exists(os.path.join(root, MANIFEST)):
        if record.get("listed_at") != meta.get("listed_at"):  # a new folder record
            _write_manifest(root, old, {**meta, **record})
        return report
    os.makedirs(root, exist_ok=True)
    run = f"{_dt.datetime.now(_dt.UTC):%Y%m%dT%H%M%S%f}-{os.urandom(3).hex()}"
    stale = set(todo) | set(removed)
    # unchanged rows keep their call; parts that also held stale calls are rewritten
    kept = old[_among(old["path"], seen["path"]) & ~_among(old["path"], stale)].copy()
    kept = kept.merge(seen[["path", "size", "mtime_ns", "media_path"]], on="path",
                      suffixes=("_old", ""))[_MANIFEST_SCHEMA.names]
    dirty = sorted(set(old.loc[_among(old["path"], stale), "part"].dropna()))
    renamed = {part: _rewrite_without(root, part, stale, run, k)
               for k, part in enumerate(dirty)}
    kept["part"] = kept["part"].map(lambda p: renamed.get(p, p) if pd.notna(p) else p)
    fresh = _parse(archive, todo, seen, tz, workers, progress, root, run)
    manifest = pd.concat([kept, fresh], ignore_index=True).sort_values(
        "path", kind="stable").reset_index(drop=True)
    _write_manifest(root, manifest, {"format": FORMAT, "tz": tz, "source": source,
                                     **record})
    _remove_unlisted(root, set(manifest["part"].dropna()))
    parsed = int((fresh["outcome"] == "parsed").sum())
    return IngestReport(root, len(seen), report.new, report.changed, report.unchanged,
                        len(removed), parsed, len(fresh) - parsed,
                        int((manifest["outcome"] == "error").sum()))


def _parse(archive, todo: list[str], seen: pd.DataFrame, tz: str, workers, progress,
           root: str, run: str) -> pd.DataFrame:
    """Parse the ``todo`` CDR files, write their calls; their manifest rows."""
    rows = seen[_among(seen["path"], todo)].reset_index(drop=True)
    if rows.empty:
        return rows.assign(outcome=pd.Series([], dtype="str"),
                           reason=pd.Series([], dtype="str"), part=pd.Series([], dtype="str"))
    # a container cannot be read member by member: all of it, or nothing
    target = archive if _is_container(archive) else rows["path"].tolist()
    calls = read_archive(target, workers=workers, progress=progress, tz=tz)
    reasons = {e["path"]: e["error"] for e in calls.attrs["errors"]}
    # pandas deep-copies attrs on every operation: thousands of error dicts and media
    # paths made writing the parts 20 x slower than parsing them
    calls.attrs = {}
    part_of = _write_parts(root, calls, tz, run)
    parts = dict(zip(calls["cdr_path"], part_of))
    rows["part"] = rows["path"].map(parts).astype("str")
    rows["reason"] = rows["path"].map(reasons).astype("str")
    lost = rows["part"].isna() & rows["reason"].isna()
    rows.loc[lost, "reason"] = "not read: the file vanished or could not be listed"
    rows["outcome"] = np.where(rows["part"].notna(), "parsed", "error")
    return rows
