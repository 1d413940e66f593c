"""The framer's fast path: the usual documents of a read, framed with one regex and a
few ``find`` calls each, or known whole by the framer's owner (:class:`._framing.Framer`
scans anything else)."""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["SEPARATORS", "Recognise", "frame_plain"]

#: ``recognise(buf, pos)``: the span ``(start, end)`` of a document the framer's owner
#: knows by heart at ``pos`` (separators first) and what it made of it (None: framed,
#: but left to the general decode), or None when the document is not one of those.
Recognise = Callable[[bytearray, int], "tuple[int, int, object] | None"]

# the rest of a start tag after its name; attribute values may hold ">" but never "<"
# (possessive quantifiers: a failed match never backtracks into a quadratic search)
_TAG_REST = re.compile(rb"""[^<>"']*+(?:(?:"[^<"]*+"|'[^<']*+')[^<>"']*+)*+>""")
_END_REST = re.compile(rb"\s*>")
#: What may stand between documents (XML whitespace, NUL bytes, UTF-8 byte-order
#: marks): the framer drops it, and a ``recognise`` must skip it first.
SEPARATORS = rb"(?:[ \t\r\n\x00]|\xef\xbb\xbf)*+"
_FAST_HEAD = re.compile(
    SEPARATORS + rb"(?:(<\?xml[ \t\r\n][^<>?]*+(?:\?(?!>)[^<>?]*+)*+\?>)[ \t\r\n]*+)?"
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
                found: list[tuple[int, bytes, object]],
                recognise: Recognise | None = None) -> int:
    """Frame the usual documents of ``buf`` from ``pos`` on into ``found`` (with their
    stream offsets, ``buf[0]`` being at ``base``, and what ``recognise`` made of them)
    and return where it stopped.

    The usual document: one ``recognise`` knows (it reads the bytes once for both the
    framing and the decoding), or an optional declaration, then a root element that
    holds no comment, CDATA section, processing instruction or element of its own name,
    so its first end tag of that name ends it; and no larger than ``limit`` bytes.
    """
    match, find = _FAST_HEAD.match, buf.find
    while True:
        if recognise is not None:
            known = recognise(buf, pos)
            if known is not None and known[1] - known[0] <= limit:
                start, pos, value = known
                found.append((base + start, bytes(buf[start:pos]), value))
                continue
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
        found.append((base + start, bytes(buf[start:end]), None))
        pos = end
