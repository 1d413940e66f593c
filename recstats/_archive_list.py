"""What an archive holds: listing its CDR files and media, pairing them, and the
entries the parent process reads itself. Private to :mod:`recstats.archive`, which
schedules the parsing; the boundary rules (never leaving the folder or archive given)
are :mod:`recstats._archive_find`'s.
"""

from __future__ import annotations

import itertools
import os
import tarfile
import warnings
import zipfile
import zlib
from collections.abc import Iterator, Sequence

import pandas as pd

from ._archive_find import (
    NOT_REGULAR,
    FolderWalk,
    is_cdr,
    member_ok,
    tar_listing,
)
from ._archive_parse import shown_path
from ._archive_zip import looks_like_zip, zip_listing, zip_scan
from ._xml import MAX_DOCUMENT_BYTES

__all__ = ["ARCHIVE_SUFFIXES", "MEDIA_EXTENSIONS", "Listing", "archive_files", "discover",
           "found_tasks", "pair_media"]


#: Extensions reported as "media without CDR" (pairing itself accepts any extension).
MEDIA_EXTENSIONS = frozenset({
    ".wav", ".mp3", ".mp4", ".m4a", ".ogg", ".opus", ".oga", ".webm", ".mkv", ".avi",
    ".mov", ".wma", ".wmv", ".amr", ".gsm", ".g729", ".vox", ".flac", ".aac", ".3gp",
    ".txt", ".html", ".htm", ".json", ".pdf", ".png", ".jpg", ".jpeg",
})


ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz")


def _looks_like_media(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in MEDIA_EXTENSIONS


def _stem_key(path: str) -> str:
    """The pairing key: the path without its last extension."""
    return path[: len(path) - len(os.path.splitext(path)[1])]


class Listing:
    """What discovery found: CDR entries in order, and media paths by stem key.

    For a folder it fills up while the walk is consumed; ``complete`` says it is done.
    """

    def __init__(self) -> None:
        self.cdrs: list[str] = []          # display paths, in a deterministic order
        self.cdr_keys: set[str] = set()
        self.media: dict[str, str] = {}    # stem key -> first media path by name
        self.complete = True
        # read by the parent after the walk: (shown path, reason) for files refused,
        # (shown path, zip member to read) for zip members that are links
        self.errors: list[tuple[str, str]] = []
        self.zip_links: list[tuple[str, str]] = []
        self.damaged_zip = False
        # a folder's walk, and media without CDR that other processes found in it
        self.walk: FolderWalk | None = None
        self.unpaired: list[str] = []
        self.elsewhere = 0  # CDRs other processes listed

    def count(self) -> int:
        """The CDR files found so far, by every process."""
        return len(self.cdrs) + self.elsewhere

    def add(self, path: str) -> None:
        if is_cdr(path):
            self.cdrs.append(path)
            self.cdr_keys.add(path[:-4])
        else:
            self.add_media(path)

    def add_media(self, path: str) -> None:
        key = _stem_key(path)
        if key not in self.media or path < self.media[key]:
            self.media[key] = path

    def add_media_names(self, prefix: str, names: list[str]) -> None:
        """``add_media(prefix + name)`` for each name (none starting with ``.``)."""
        media = self.media
        for name in names:
            # the stem as os.path.splitext gives it for a name not starting with "."
            dot = name.rfind(".")
            key = prefix + name[:dot] if dot > 0 else prefix + name
            path = prefix + name
            old = media.get(key)
            if old is None or path < old:
                media[key] = path

    def add_cdrs(self, paths: list[str]) -> None:
        self.cdrs.extend(paths)
        self.cdr_keys.update(p[:-4] for p in paths)

    def error(self, path: str, reason: str) -> None:
        self.errors.append((path, reason))

    def media_without_cdr(self) -> list[str]:
        return sorted([*self._unpaired_so_far(), *self.unpaired])

    def _unpaired_so_far(self) -> list[str]:
        # only files that look like recordings: a README or script beside the archive
        # is not a recording whose CDR went missing
        media = self.media
        return [shown_path(media[k]) for k in media.keys() - self.cdr_keys
                if _looks_like_media(media[k])]

    def settle_media(self) -> None:
        """Move the media found so far without a CDR to :attr:`unpaired` and forget
        the pairing: for a walk once its units are made, as a CDR and its media share
        a folder and no folder is listed twice (folders listed later pair as before).
        A split read does this while it waits for the workers' tables."""
        self.unpaired.extend(self._unpaired_so_far())
        self.media.clear()
        self.cdr_keys.clear()


def _walk(walk: FolderWalk, listing: Listing) -> Iterator[list[str]]:
    """Yield the CDR paths of ``walk``, a folder at a time (see
    :class:`recstats._archive_find.FolderWalk`); ``listing.complete`` at the end."""
    yield from walk.folders(listing)
    listing.complete = True


def walk_on(listing: Listing) -> Iterator[list[str]]:
    """The rest of a folder's walk, after the first one was abandoned."""
    assert listing.walk is not None, "a folder's listing"
    return _walk(listing.walk, listing)


def unreadable_folder(exc: OSError) -> None:
    # os.walk skips a folder it cannot list without a word: its CDRs would be missing
    # from both rows and errors
    warn_unreadable(exc.filename, exc.strerror or str(exc))


def warn_unreadable(folder: str, reason: str) -> None:
    """The warning for a folder that cannot be listed (from any process)."""
    warnings.warn(f"recstats.read_archive: cannot read folder {folder} ({reason}); its "
                  "files are left out", RuntimeWarning, stacklevel=2)


def _kind(path: str) -> str:
    if os.path.isdir(path):
        return "dir"
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file or folder: {path}")
    if is_cdr(path):
        return "list"  # one CDR file
    if zipfile.is_zipfile(path):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    if looks_like_zip(path):  # its members, but its end is damaged: read what is there
        return "zip"
    if path.lower().endswith(ARCHIVE_SUFFIXES):  # named like one: damaged, not unknown
        raise ValueError(f"cannot read the archive {path}: not a valid zip or tar file "
                         "(damaged or incomplete?)")
    raise ValueError(f"{path} is not a folder, .zip, .tar[.gz] or .xml file")


def discover(path, follow_links: bool = False
              ) -> tuple[Listing, str, str | None, Iterator[list[str]]]:
    """List an archive: ``(listing, kind, source, batches)``.

    ``kind`` is ``files`` (``batches`` are lists of file paths; lazy for a folder),
    ``zip`` (lists of member names of ``source``) or ``tar`` (read by
    :func:`_tar_tasks`, no batches). What the parent reads itself (refused files, zip
    link members) is in ``listing.errors`` / ``listing.zip_links``, see
    :func:`found_tasks`.
    """
    listing = Listing()
    if isinstance(path, (str, os.PathLike)):
        path = os.fspath(path)
        kind = _kind(path)
        if kind == "dir":
            os.scandir(path).close()  # an unreadable top folder: PermissionError at once
            listing.complete = False  # now: the generator's body starts only when consumed
            listing.walk = FolderWalk(path, follow_links, unreadable_folder)
            return listing, "files", None, _walk(listing.walk, listing)
        if kind == "zip":
            try:
                with zipfile.ZipFile(path) as zf:
                    names, odd = zip_listing(zf)
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
                if not looks_like_zip(path):
                    raise ValueError(f"cannot read the zip archive {path}: {exc}") from None
                # its directory is damaged (a cut download): read the members front to
                # back from their own headers, in this process (see found_tasks)
                listing.damaged_zip = True
                for name, _ in zip_scan(path, lambda name: False):
                    if name and member_ok(name):
                        listing.add(f"{path}/{name}")
                return listing, "zip", path, iter([])
            for name in names:
                listing.add(f"{path}/{name}")
            cut = len(path) + 1
            batch = [p[cut:] for p in listing.cdrs]
            for name, target, reason in odd:
                shown = f"{path}/{name}"
                if not is_cdr(name):
                    listing.add_media(shown)
                elif target is None:
                    listing.error(shown, reason or NOT_REGULAR)
                else:
                    listing.add(shown)
                    listing.zip_links.append((shown, target))
            return listing, "zip", path, iter([batch])
        if kind == "tar":
            try:
                names = tar_listing(path)
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
    if any(not is_cdr(p) and os.path.isdir(p) for p in paths):
        paths = list(itertools.chain.from_iterable(
            _folder_files(p, listing, follow_links)
            if not is_cdr(p) and os.path.isdir(p) else [p] for p in paths))
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
            names = os.listdir(folder or ".")
        except OSError:
            continue
        prefix = os.path.join(folder, "")
        keys, media = listing.cdr_keys, listing.media
        for name in names:  # any order: the first media path by name wins
            if name[-4:].lower() == ".xml" or name[0] == "." or name == "__MACOSX":
                continue  # a CDR, or skipped
            # _stem_key(prefix + name), inline: per file
            dot = name.rfind(".")
            key = prefix + name[:dot] if dot > 0 else prefix + name
            if key in keys:
                full = prefix + name
                old = media.get(key)
                if old is None or full < old:
                    media[key] = full
    # only listed media can be "media without CDR"
    listing.media = {k: p for k, p in listing.media.items()
                     if p in listed_media or k in listing.cdr_keys}
    return listing, "files", None, iter([list(listing.cdrs)])


def _folder_files(folder: str, listing: Listing, follow_links: bool) -> list[str]:
    """The CDRs and media files under ``folder``, as a folder archive reads them; what
    it refuses goes to ``listing.errors``."""
    inner = Listing()
    for _ in FolderWalk(folder, follow_links, unreadable_folder).folders(inner):
        pass
    listing.errors.extend(inner.errors)
    return inner.cdrs + sorted(inner.media.values())


def pair_media(cdr_paths: pd.Series, listing: Listing) -> pd.Series:
    """``media_path`` for shown ``cdr_path`` values (see :func:`shown_path`)."""
    keys = cdr_paths.str.slice(0, -4)
    media = listing.media
    if not all(k.isascii() and p.isascii() for k, p in media.items()):
        media = {shown_path(k): shown_path(p) for k, p in media.items()}
    return keys.map(media).astype("str")


def found_tasks(listing: Listing, source: str | None, max_files: int,
                max_bytes: int) -> Iterator[tuple]:
    """Chunks of what discovery read or refused itself: error entries, and zip members
    that are links, read as the member they name. Taken after the walk is done."""
    batch: list[tuple[str, bytes | str]] = list(listing.errors)
    archive = source or ""  # a zip's path when it has damage or links
    if listing.damaged_zip:
        size = 0
        for name, data in zip_scan(archive, lambda name: member_ok(name) and is_cdr(name)):
            if data is None:
                continue
            batch.append((f"{archive}/{name}" if name else archive, data))
            size += len(data)
            if size >= max_bytes or len(batch) >= max_files:
                yield "blobs", source, batch
                batch, size = [], 0
    if listing.zip_links:
        size = 0
        with zipfile.ZipFile(archive) as zf:
            for shown, target in listing.zip_links:
                data = _zip_member(zf, target)
                batch.append((shown, data))
                size += len(data)
                if size >= max_bytes:
                    yield "blobs", source, batch
                    batch, size = [], 0
    if batch:
        yield "blobs", source, batch


def _zip_member(zf: zipfile.ZipFile, name: str) -> bytes | str:
    try:
        with zf.open(name) as handle:  # bounded: a lying header cannot blow memory
            data = handle.read(MAX_DOCUMENT_BYTES + 1)
    except (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError, KeyError,
            EOFError, zlib.error) as exc:
        return f"cannot read archive member: {exc}"
    if len(data) > MAX_DOCUMENT_BYTES:
        return f"file is over the {MAX_DOCUMENT_BYTES} byte limit"
    return data


def archive_files(path: str | os.PathLike | Sequence[str | os.PathLike], *,
                  follow_links: bool = False) -> pd.DataFrame:
    """The CDR files of an archive and their paired media, without parsing anything.

    Lists what :func:`recstats.read_archive` reads, by the same rules: a folder never leads
    outside itself (unless ``follow_links``), zip and tar members are listed from the
    archive, never extracted.

    Parameters
    ----------
    path : str, os.PathLike or sequence of them
        A folder, a ``.zip``, a ``.tar``/``.tar.gz``/``.tgz``, one ``.xml`` file, or a
        list of files (a folder in it stands for its files).
    follow_links : bool, default False
        Follow symbolic links whose target lies outside the folder given.

    Returns
    -------
    DataFrame
        Columns ``cdr_path`` and ``media_path`` (NA when no media file has the CDR's
        stem), in reading order: every file named like a CDR that the archive holds,
        including the ones :func:`recstats.read_archive` would report as errors (a link
        leaving the folder, a device member). Tar archives are listed by reading them
        once; a damaged tar lists the members before the damage.

    Examples
    --------
    >>> archive_files("data/samples/odd").cdr_path.str.endswith(".xml").all()  # doctest: +SKIP
    True
    """
    listing, _, _, batches = discover(path, follow_links)
    for _ in batches:  # a folder's listing fills up as its walk is consumed
        pass
    found = listing.cdrs + [p for p, _ in listing.errors if is_cdr(p)]
    cdrs = pd.Series([shown_path(p) for p in found], dtype="str")
    return pd.DataFrame({"cdr_path": cdrs, "media_path": pair_media(cdrs, listing)})
