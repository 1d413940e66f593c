"""Finding the CDR files of an archive without ever leaving it, and reading tar members.

:mod:`recstats.archive` lists what it reads with these functions; everything here keeps
to the folder, ``.zip`` or ``.tar`` it was given:

* a folder is walked with :class:`FolderWalk`: a symbolic link whose target lies outside
  the folder is an error entry ("points outside the archive") unless the caller opts in,
  a link loop ends (each folder is read once; a link that resolves to itself is an error
  entry), and nothing outside is opened;
* zip and tar members are read in memory, never extracted; a member that is a link
  resolves to another member by name (:func:`resolve_member`), never to a file on disk;
  device and FIFO members are error entries (zip members: :mod:`recstats._archive_zip`);
* a damaged tar (cut inside a header or inside member data, a truncated ``.tar.gz``)
  gives every member before the damage and one error entry for it (:func:`tar_blobs`).

Error entries are ``(path, reason)`` pairs; they count as CDR files seen, so rows plus
errors always equal the files seen.
"""

from __future__ import annotations

import errno
import operator
import os
import posixpath
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from ._xml import MAX_DOCUMENT_BYTES

__all__ = [
    "LOOP",
    "NOT_REGULAR",
    "OUTSIDE",
    "FolderWalk",
    "damaged",
    "is_cdr",
    "member_name",
    "member_ok",
    "normal_name",
    "resolve_member",
    "skipped",
    "tar_blobs",
    "tar_listing",
]

OUTSIDE = "points outside the archive"
LOOP = "link loop"
NOT_REGULAR = "not a regular file"
#: Links followed in a row before a chain counts as a loop (as the kernel's ELOOP).
MAX_HOPS = 40
_TAR_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)


def is_cdr(name: str) -> bool:
    return name[-4:].lower() == ".xml"


def skipped(name: str) -> bool:
    """Names never read: hidden files and macOS resource-fork folders."""
    return name.startswith(".") or name == "__MACOSX"


def member_name(name: str) -> str:
    """A member's name as shown: ``./a/b.xml`` and ``/a/b.xml`` -> ``a/b.xml``."""
    while name.startswith(("./", "/")):
        name = name[1:] if name.startswith("/") else name[2:]
    return name


def member_ok(name: str) -> bool:
    return not any(skipped(part) for part in name.split("/") if part not in ("", ".", ".."))


# --------------------------------------------------------------------------- folders


class FolderWalk:
    """The walk of a folder tree, one folder at a time, in whichever process lists it.

    :meth:`list_folder` reads one folder: it records every file in ``listing`` (calls of
    ``add_media(path)``, ``add_media_names(folder prefix, names)``, ``add_cdrs(paths)``
    and ``error(path, reason)``) and returns the folder's CDR paths, sorted, and its real
    subfolders to list next. :meth:`folders` walks what is left in this process,
    lazily (workers parse the first folders while the walk goes on): top-down, a
    folder's own files before its subfolders, by sorted names, so the order is the same
    on every file system. Worker processes list folders with walks of their own
    (:mod:`recstats._archive_split`) and hand back :attr:`linked` and :attr:`seen`.

    Symbolic links: one to a file inside ``root`` is read as that file, under the
    link's name; one to a folder inside is read as that folder, once, and only after
    every real folder, so a folder reached both ways keeps its own name whichever
    process lists it (the links of one round are taken in sorted order, each with its
    whole tree, then the links found in those trees, and so on); one that points
    outside is an error entry unless ``follow_links``; one that loops or dangles is an
    error entry when named like a CDR (else a media name, never opened). A real
    subfolder that is one of its own ancestors (a bind mount) is not read again.
    """

    def __init__(self, root: str, follow_links: bool = False,
                 on_unreadable: Callable[[OSError], None] | None = None) -> None:
        self.root = root
        self.base = os.path.realpath(root)
        self.inside = self.base if self.base.endswith(os.sep) else self.base + os.sep
        self.follow_links = follow_links
        self.on_unreadable = on_unreadable
        root_id = _folder_id(root)
        #: folders still to list, as ``(path, ids of it and its ancestors)``; a stack
        self.pending: list[tuple[str, tuple]] = [(root, (root_id,))]
        #: links to folders inside: found so far (the next round's), and the ones of
        #: this round not taken yet (last first)
        self.linked: list[str] = []
        self.round: list[str] = []
        #: ids of the folders listed or about to be
        self.seen: set = {root_id}

    def list_folder(self, folder: str, ancestors: tuple, listing: Any
             ) -> tuple[list[str], list[tuple[str, tuple]]]:
        """Read one folder: ``(its CDR paths sorted, its real subfolders by name, each
        with its ancestors' ids)``."""
        prefix = folder if folder.endswith(os.sep) else folder + os.sep
        found: list[str] = []
        subfolders: list[tuple[str, tuple]] = []
        media: list[str] = []
        others: list[os.DirEntry] = []
        try:
            with os.scandir(folder) as it:
                # regular files first, in any order (their CDRs are sorted below, media
                # pairing does not depend on order); everything else by name
                for entry in it:
                    name = entry.name
                    if name[0] == "." or name == "__MACOSX":  # skipped(), inline
                        continue
                    try:
                        regular = entry.is_file(follow_symlinks=False)
                    except OSError:  # gone since the listing: the general path says so
                        regular = False
                    if not regular:
                        others.append(entry)
                    elif name[-4:].lower() == ".xml":
                        found.append(prefix + name)
                    else:
                        media.append(name)
        except OSError as exc:
            if self.on_unreadable is not None:
                self.on_unreadable(exc)
            return [], []
        others.sort(key=_NAME)
        for entry in others:
            name = entry.name
            path = prefix + name
            try:
                link = entry.is_symlink()
                is_dir = not link and entry.is_dir(follow_symlinks=False)
            except OSError:
                link = is_dir = False
            if link:
                kind = _link_kind(path, self.base, self.inside, self.follow_links)
                if kind == "dir":
                    self.linked.append(path)
                    continue
                if kind != "file":  # outside, loop, dangling
                    if is_cdr(name) or kind == OUTSIDE:
                        listing.error(path, kind)
                    else:
                        listing.add_media(path)  # a media name: paired, never opened
                    continue
            elif is_dir:
                folder_id = _folder_id(path)
                if folder_id is None or folder_id not in ancestors:
                    self.seen.add(folder_id)
                    subfolders.append((path, (*ancestors, folder_id)))
                continue
            if is_cdr(name):
                found.append(path)
            else:
                listing.add_media(path)
        if media:
            listing.add_media_names(prefix, media)
        if found:
            found.sort()
            listing.add_cdrs(found)
        return found, subfolders

    def folders(self, listing: Any) -> Iterator[list[str]]:
        """Yield the CDR paths of each folder left to list (see the class), then of
        the folders that links lead to. All its state is in the walk's attributes,
        so another call goes on where an abandoned one stopped."""
        while True:
            while self.pending:
                folder, ancestors = self.pending.pop()
                found, subfolders = self.list_folder(folder, ancestors, listing)
                self.pending.extend(reversed(subfolders))
                if found:
                    yield found
            if not self.round:  # this round's links are all taken: the next round
                if not self.linked:
                    return
                self.round, self.linked = sorted(set(self.linked), reverse=True), []
            path = self.round.pop()
            folder_id = _folder_id(path)
            if folder_id not in self.seen:  # else read already: once is all
                self.seen.add(folder_id)
                self.pending.append((path, (folder_id,)))


_NAME = operator.attrgetter("name")


def _link_kind(path: str, base: str, inside: str, follow_links: bool) -> str:
    """``dir`` or ``file`` for a link to follow, else the reason it is not followed."""
    try:
        info = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return LOOP
        return f"broken link: {exc.strerror or exc}"
    target = os.path.realpath(path)
    if not follow_links and target != base and not target.startswith(inside):
        return OUTSIDE
    return "dir" if stat.S_ISDIR(info.st_mode) else "file"


def _folder_id(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:  # the walk reports it when it lists the folder
        return None
    return info.st_dev, info.st_ino


# --------------------------------------------------------------------------- members


def resolve_member(name: str, members: dict[str, tuple[str, str | None]]
                   ) -> tuple[str | None, str | None]:
    """Follow a link member to the regular member it names: ``(target, None)``, or
    ``(None, reason)``.

    ``members`` maps normalised member names to ``(kind, link)``: kind ``file``,
    ``hard`` (link named from the archive's root), ``sym`` (from the member's folder),
    or anything else (not readable: a folder, device, FIFO). A target outside the
    archive (absolute, or above its root) is never looked up on disk.

    >>> m = {"a.xml": ("file", None), "b.xml": ("sym", "a.xml"),
    ...      "c.xml": ("sym", "/etc/passwd"), "d.xml": ("sym", "d.xml")}
    >>> resolve_member("b.xml", m), resolve_member("c.xml", m)[1], resolve_member("d.xml", m)
    (('a.xml', None), 'points outside the archive', (None, 'link loop'))
    """
    current, visited = name, set()
    for _ in range(MAX_HOPS):
        entry = members.get(current)
        if entry is None:
            return None, f"link target {current!r} is not in the archive"
        kind, link = entry
        if kind == "file":
            return current, None
        if kind not in ("hard", "sym") or link is None:
            return None, f"link target {current!r} is {NOT_REGULAR}"
        visited.add(current)
        if link.startswith("/"):
            return None, OUTSIDE
        joined = link if kind == "hard" else posixpath.join(posixpath.dirname(current), link)
        target = posixpath.normpath(member_name(joined) if kind == "hard" else joined)
        if target == ".." or target.startswith("../"):
            return None, OUTSIDE
        if target in visited:
            return None, LOOP
        current = target
    return None, LOOP


def normal_name(name: str) -> str:
    """A member name as links name it: ``./a/../b.xml`` -> ``b.xml``."""
    return posixpath.normpath(member_name(name)) if name else name


def _read_limited(handle) -> bytes | str:
    data = handle.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        return f"file is over the {MAX_DOCUMENT_BYTES} byte limit"
    return data


# --------------------------------------------------------------------------- tar

_TAR_KINDS = {tarfile.LNKTYPE: "hard", tarfile.SYMTYPE: "sym"}


def _tar_kind(member: tarfile.TarInfo) -> str:
    if member.isfile():
        return "file"
    return _TAR_KINDS.get(member.type, "dir" if member.isdir() else "special")


def _tar_members(tf: tarfile.TarFile, damage: list[str]) -> Iterator[tarfile.TarInfo]:
    """The members in archive order; at damage, one reason in ``damage`` and the end."""
    last = None
    while True:
        try:
            member = tf.next()
        except _TAR_ERRORS as exc:
            damage.append(damaged(last, exc))
            return
        if member is None:
            problem = _tar_end_problem(tf)
            if problem:
                damage.append(damaged(last, problem))
            return
        last = member.name
        yield member


def damaged(last: str | None, problem: object) -> str:
    where = f"after member {member_name(last)!r}" if last else "at its start"
    return f"archive damaged {where}: {problem}; the members after it are lost"


def _tar_end_problem(tf: tarfile.TarFile) -> str | None:
    # tarfile stops without a word at a cut header; a whole archive ends with zero blocks
    try:
        tf.fileobj.seek(tf.offset)
        block = tf.fileobj.read(tarfile.BLOCKSIZE)
    except _TAR_ERRORS as exc:
        return str(exc) or type(exc).__name__
    if len(block) == tarfile.BLOCKSIZE and block.count(0) == tarfile.BLOCKSIZE:
        return None
    if not block:
        return "it ends without the end-of-archive marker (cut short?)"
    if len(block) < tarfile.BLOCKSIZE:
        return "truncated header"
    return "invalid header"


def tar_listing(path: str) -> list[str]:
    """The shown names of a tar's file-like members (regular, links, devices), sorted;
    a damaged tar lists the members before the damage."""
    damage: list[str] = []
    with tarfile.open(path, "r:*") as tf:
        names = [member_name(m.name) for m in _tar_members(tf, damage)
                 if not m.isdir() and member_ok(m.name)]
    return sorted(names)


def tar_blobs(path: str, chunk_sizes: Iterator[int], chunk_bytes: int
              ) -> Iterator[list[tuple[str, bytes | str]]]:
    """Read a tar front to back: batches of ``(shown path, bytes or reason)`` for its CDR
    members, each at most ``next(chunk_sizes)`` entries or about ``chunk_bytes`` bytes.

    A compressed tar has no index, so it is read in archive order (a backward seek
    decompresses from the start). Link members named like CDRs are read as the member
    they name, in a second pass when there are any; device and FIFO members, links
    leaving the archive or looping, and the damage of a damaged archive are error
    entries.
    """
    members: dict[str, tuple[str, str | None]] = {}
    links: list[tuple[str, str]] = []  # (shown path, normalised name) of CDR-named links
    damage: list[str] = []
    batch: list[tuple[str, bytes | str]] = []
    size, chunk = 0, next(chunk_sizes)
    with tarfile.open(path, "r:*") as tf:
        for member in _tar_members(tf, damage):
            kind = _tar_kind(member)
            normal = normal_name(member.name)
            members[normal] = (kind, member.linkname or None)
            if kind == "dir" or not (member_ok(member.name) and is_cdr(member.name)):
                continue
            shown = f"{path}/{member_name(member.name)}"
            if kind in ("hard", "sym"):
                links.append((shown, normal))
                continue
            if kind == "special":
                data: bytes | str = NOT_REGULAR
            elif member.size > MAX_DOCUMENT_BYTES:
                data = f"file is over the {MAX_DOCUMENT_BYTES} byte limit"
            else:
                try:
                    handle = tf.extractfile(member)
                    data = _read_limited(handle) if handle is not None else NOT_REGULAR
                except _TAR_ERRORS as exc:
                    # cut inside this member's data: it is the damage, nothing follows
                    damage.append(damaged(member.name, exc).replace(
                        "after member", "in member"))
                    break
            batch.append((shown, data))
            size += len(data)
            if len(batch) >= chunk or size >= chunk_bytes:
                yield batch
                batch, size, chunk = [], 0, next(chunk_sizes)
    if links:
        for entry in _tar_link_entries(path, links, members):
            batch.append(entry)
            size += len(entry[1])
            if len(batch) >= chunk or size >= chunk_bytes:
                yield batch
                batch, size, chunk = [], 0, next(chunk_sizes)
    if damage:
        batch.append((path, damage[0]))
    if batch:
        yield batch


def _tar_link_entries(path: str, links: list[tuple[str, str]],
                      members: dict[str, tuple[str, str | None]]
                      ) -> Iterator[tuple[str, bytes | str]]:
    """Each CDR-named link member, read as the regular member it resolves to."""
    wanted: dict[str, list[str]] = {}
    for shown, normal in links:
        target, reason = resolve_member(normal, members)
        if target is None:
            yield shown, reason or LOOP
        else:
            wanted.setdefault(target, []).append(shown)
    if not wanted:
        return
    damage: list[str] = []
    with tarfile.open(path, "r:*") as tf:
        for member in _tar_members(tf, damage):
            normal = normal_name(member.name)
            if normal not in wanted or not member.isfile():
                continue
            if member.size > MAX_DOCUMENT_BYTES:
                data: bytes | str = f"file is over the {MAX_DOCUMENT_BYTES} byte limit"
            else:
                try:
                    handle = tf.extractfile(member)
                    data = _read_limited(handle) if handle is not None else NOT_REGULAR
                except _TAR_ERRORS as exc:
                    data = f"cannot read archive member: {exc}"
            for shown in wanted.pop(normal):
                yield shown, data  # one bytes object, however many names share it
            if not wanted:
                return
    for target, shown_paths in wanted.items():
        for shown in shown_paths:
            yield shown, f"link target {target!r} could not be read (archive damaged)"

