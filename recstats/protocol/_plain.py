"""The framer's fast path: the usual documents of a read, framed with one regex and a
few ``find`` calls each (:class:`._framing.Framer` scans anything else)."""

from __future__ import annotations

import re

__all__ = ["frame_plain"]

# the rest of a start tag after its name; attribute values may hold ">" but never "<"
# (possessive quantifiers: a failed match never backtracks into a quadratic search)
_TAG_REST = re.compile(rb"""[^<>"']*+(?:(?:"[^<"]*+"|'[^<']*+')[^<>"']*+)*+>""")
_END_REST = re.compile(rb"\s*>")
_FAST_HEAD = re.compile(
    rb"(?:[ \t\r\n\x00]|\xef\xbb\xbf)*+(?:(<\?xml[ \t\r\n][^<>?]*+(?:\?(?!>)[^<>?]*+)*+\?>)[ \t\r\n]*+)?"
    rb"<([^\s/>!?<\"'=]++)" + _TAG_REST.pattern)

_tags: dict[bytes, tuple[bytes, bytes]] = {}  # root name -> (its end tag, its start tag)


def _marked(buf: bytearray, char: bytes, start: int, stop: int) -> bool:
    """Whether ``"<" + char`` occurs in ``buf[start:stop]``: a search for the rare
    ``char`` alone runs at memchr speed, much faster than one for ``"<!"``."""
    at = buf.find(char, start, stop)
    while at != -1:
        if buf[at - 1] == 0x3C:
            return True
        at = buf.find(char, at + 1, stop)
    return False


def frame_plain(buf: bytearray, pos: int, base: int, limit: int,
                found: list[tuple[int, bytes]]) -> int:
    """Frame the usual documents of ``buf`` from ``pos`` on into ``found`` (with their
    stream offsets, ``buf[0]`` being at ``base``) and return where it stopped.

    The usual document: an optional declaration, then a root element that holds no
    comment, CDATA section, processing instruction or element of its own name, so
    its first end tag of that name ends it, and no larger than ``limit`` bytes.
    """
    match, find = _FAST_HEAD.match, buf.find
    while True:
        head = match(buf, pos)
        if head is None:
            return pos
        start = head.start(1)
        if start == -1:
            start = head.start(2) - 1
        body = head.end()
        if buf[body - 2] == 0x2F:  # a self-closing root
            end = body
        else:
            root = bytes(head.group(2))
            tags = _tags.get(root)
            if tags is None:
                if len(_tags) > 64:
                    _tags.clear()
                tags = _tags[root] = (b"</" + root, b"<" + root)
            close, opener = tags
            at = find(close, body)
            if at == -1 or _marked(buf, b"!", body, at) or _marked(buf, b"?", body, at) \
                    or find(opener, body, at) != -1:
                return pos
            rest = _END_REST.match(buf, at + len(close))
            if rest is None:
                return pos
            end = rest.end()
        if end - start > limit:
            return pos
        found.append((base + start, bytes(buf[start:end])))
        pos = end
