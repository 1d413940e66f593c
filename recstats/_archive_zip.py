"""Zip archives, read in memory and never extracted: member types (links, devices) and
a zip whose directory at its end is damaged or missing (a cut download), read front to
back from the header before each member. Private to :mod:`recstats.archive`.
"""

from __future__ import annotations

import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator

from ._archive_find import NOT_REGULAR, damaged, member_ok, normal_name, resolve_member
from ._xml import MAX_DOCUMENT_BYTES

__all__ = ["looks_like_zip", "zip_listing", "zip_scan"]


_ZIP_TYPES = {stat.S_IFLNK: "sym", stat.S_IFREG: "file", 0: "file"}


def _zip_kind(info: zipfile.ZipInfo) -> str:
    if info.create_system != 3:  # only Unix zips carry a file type
        return "file"
    return _ZIP_TYPES.get(stat.S_IFMT(info.external_attr >> 16), "special")


def zip_listing(zf: zipfile.ZipFile) -> tuple[list[str], list[tuple[str, str | None, str | None]]]:
    """A zip's regular member names (sorted) and its other members named like files:
    ``(name, target member or None, reason or None)`` for links and devices."""
    regular: list[str] = []
    odd: list[tuple[str, str | None, str | None]] = []
    infos = [i for i in zf.infolist() if not i.is_dir() and member_ok(i.filename)]
    kinds = {info.filename: _zip_kind(info) for info in infos}
    if all(kind == "file" for kind in kinds.values()):
        return sorted(kinds), odd
    members: dict[str, tuple[str, str | None]] = {}
    for info in infos:
        kind = kinds[info.filename]
        link = None
        if kind == "sym":  # a zip stores a link's target as its data
            try:
                with zf.open(info) as handle:
                    link = handle.read(4096).decode("utf-8", "surrogateescape")
            except (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError,
                    EOFError, zlib.error):
                kind = "special"
        members[normal_name(info.filename)] = (kind, link)
    by_normal = {normal_name(info.filename): info.filename for info in infos}
    for info in infos:
        kind = kinds[info.filename]
        if kind == "file":
            regular.append(info.filename)
        elif kind == "special":
            odd.append((info.filename, None, NOT_REGULAR))
        else:
            target, reason = resolve_member(normal_name(info.filename), members)
            odd.append((info.filename, by_normal.get(target) if target else None, reason))
    return sorted(regular), sorted(odd)


_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_LOCAL_MAGIC = b"PK\x03\x04"
_CENTRAL_MAGICS = (b"PK\x01\x02", b"PK\x05\x06", b"PK\x06\x06")
_DESCRIPTOR_MAGIC = b"PK\x07\x08"
_READ = 64 * 1024


def looks_like_zip(path: str) -> bool:
    """Whether a file starts with a zip member (whatever became of its end)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == _LOCAL_MAGIC
    except OSError:
        return False


def zip_scan(path: str, wanted: Callable[[str], bool]
             ) -> Iterator[tuple[str, bytes | str | None]]:
    """The members of a zip whose directory at its end is damaged or missing (a cut
    download), read front to back from the header before each member.

    Yields ``(name, data)`` for the members ``wanted(name)`` accepts (``data`` the
    bytes, or the reason they cannot be read), ``(name, None)`` for the others, and at
    damage ``("", reason)`` once, then stops: every member before the damage is read.
    """
    with open(path, "rb") as handle:
        last = None
        while True:
            start = handle.tell()
            header = handle.read(_LOCAL_HEADER.size)
            if header[:4] in _CENTRAL_MAGICS:
                # the members all came through: only the directory after them is bad
                yield "", "archive damaged in its central directory (the members are read)"
                return
            if len(header) < _LOCAL_HEADER.size or header[:4] != _LOCAL_MAGIC:
                yield "", damaged(last, "no member header where one should start"
                                   if header else "cut short")
                return
            (_, _, flags, method, _, _, crc, csize, usize, name_len,
             extra_len) = _LOCAL_HEADER.unpack(header)
            raw_name = handle.read(name_len)
            handle.seek(extra_len, os.SEEK_CUR)
            name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", "replace")
            want = wanted(name)
            streamed = bool(flags & 0x08) and csize == 0
            if streamed and method != 8:
                yield "", damaged(last, f"member {name!r} has no size")
                return
            if csize == 0xFFFFFFFF or usize == 0xFFFFFFFF:
                yield "", damaged(last, f"member {name!r} is a zip64 member")
                return
            if streamed:
                data, end = _inflate_stream(handle, start)
                if end is None:
                    yield "", damaged(name, "cut inside its data").replace(
                        "after member", "in member")
                    return
                handle.seek(end)
                tail = handle.read(4)
                handle.seek(end + (16 if tail == _DESCRIPTOR_MAGIC else 12))
            else:
                data = None
                if want and not flags & 0x01 and usize <= MAX_DOCUMENT_BYTES:
                    body = handle.read(csize)
                    if len(body) < csize:
                        yield "", damaged(name, "cut inside its data").replace(
                            "after member", "in member")
                        return
                    data = _inflate(body, method, crc)
                else:
                    handle.seek(csize, os.SEEK_CUR)
                if flags & 0x08:  # sizes in the header and a descriptor after the data
                    tail = handle.read(4)
                    handle.seek(12 if tail == _DESCRIPTOR_MAGIC else 8, os.SEEK_CUR)
            if want:
                if flags & 0x01:
                    data = "encrypted archive member"
                elif usize > MAX_DOCUMENT_BYTES and not streamed:
                    data = f"file is over the {MAX_DOCUMENT_BYTES} byte limit"
                yield name, data
            else:
                yield name, None
            last = name


def _inflate(body: bytes, method: int, crc: int) -> bytes | str:
    if method == 0:
        data = body
    elif method == 8:
        try:
            inflater = zlib.decompressobj(-15)
            data = inflater.decompress(body, MAX_DOCUMENT_BYTES + 1)
        except zlib.error as exc:
            return f"cannot read archive member: {exc}"
    else:
        return f"cannot read archive member: compression method {method} in a damaged zip"
    if len(data) > MAX_DOCUMENT_BYTES:
        return f"file is over the {MAX_DOCUMENT_BYTES} byte limit"
    if zlib.crc32(data) != crc:
        return "cannot read archive member: bad CRC"
    return data


def _inflate_stream(handle, start: int) -> tuple[bytes | str, int | None]:
    """Inflate a member of unknown size: (data or reason, file offset after it)."""
    inflater = zlib.decompressobj(-15)
    out: list[bytes] = []
    size = 0
    begin = handle.tell()
    fed = 0
    while not inflater.eof:
        chunk = handle.read(_READ)
        if not chunk:
            return "cut short", None
        fed += len(chunk)
        try:
            piece = inflater.decompress(chunk)
        except zlib.error as exc:
            return f"cannot read archive member: {exc}", None
        size += len(piece)
        if size <= MAX_DOCUMENT_BYTES:  # past the limit: inflate on only to find its end
            out.append(piece)
    end = begin + fed - len(inflater.unused_data)
    if size > MAX_DOCUMENT_BYTES:
        return f"file is over the {MAX_DOCUMENT_BYTES} byte limit", end
    return b"".join(out), end
