"""The bytes on the wire, reading side: cutting the incoming stream into whole XML
documents. :mod:`._messages` is the writing side; :mod:`recstats.protocol`
builds on both (and re-exports their names): it turns framed documents into typed
events.

Reading.
A recording server writes XML documents back to back on one TCP connection, with no
length prefix or terminator; whitespace, NUL bytes or a byte-order mark may stand
between them. :class:`Framer` finds where each document ends, whatever the read
boundaries, without parsing it: it only follows the markup that can hide a ``<``
(comments, CDATA sections, processing instructions) and counts start and end tags of
the root element's name. The documents it returns are then parsed by lxml, which is
what judges their well-formedness.

The scan jumps with compiled regular expressions and ``bytes.find`` (no Python loop
per byte), resumes where the previous read stopped (no rescanning of a large document
read in small pieces) and refuses any document that grows past a bound, so a peer can
neither stall it nor make it buffer without limit.
"""

from __future__ import annotations

import re
from typing import NoReturn

from .._xml import MAX_DOCUMENT_BYTES
from ..errors import ProtocolError
from ._plain import SEPARATORS, Recognise, frame_plain

__all__ = ["Framer"]

_SEPARATORS = re.compile(SEPARATORS)
_BOM = b"\xef\xbb\xbf"
_NAME_CHARS = re.compile(rb"[^\s/>!?<\"'=]*+")
_DECLARATION = re.compile(rb"<\?xml[\s?]")
_TAG_STOP = re.compile(rb"""[<>"']""")
_SPACE = re.compile(rb"[ \t\r\n]*")

# scanner states: between documents / in a comment, CDATA or PI / in a start tag /
# in the root element / in an end tag of the root's name
_PROLOG, _SKIP, _NAME, _TAG, _BODY, _ENDTAG = range(6)
# what each "<!"/"<?" construct ends with
_COMMENT, _CDATA, _PI = b"-->", b"]]>", b"?>"
_STOP = -1  # what a scanner step returns when it waits for more bytes

def _match_end(pattern: re.Pattern[bytes], buf: bytearray, pos: int) -> int:
    """Where a run of ``pattern`` starting at ``pos`` ends (it may be empty)."""
    match = pattern.match(buf, pos)
    assert match is not None, "the pattern matches the empty string"
    return match.end()


_body_patterns: dict[bytes, re.Pattern[bytes]] = {}


def _body_pattern(root: bytes) -> re.Pattern[bytes]:
    """The markup that matters inside a document whose root element is named ``root``."""
    pattern = _body_patterns.get(root)
    if pattern is None:
        if len(_body_patterns) > 64:  # roots are nearly always "VerbaApi": keep it small
            _body_patterns.clear()
        name = re.escape(root)
        pattern = _body_patterns[root] = re.compile(
            rb"<(?:(!--)|(!\[CDATA\[)|(\?)|(!)|(/)?" + name + rb"(?=[\s/>]))")
    return pattern


class Framer:
    """Cuts a byte stream into whole XML documents, whatever the read boundaries.

    Feed it bytes as they arrive; it returns the documents completed so far, each
    from its XML declaration (or its root start tag when it has none) to the end of its
    root element. Separators between documents (whitespace, NUL bytes, byte-order marks)
    are dropped, and so are comments and processing instructions in front of a
    document's declaration (or of its root element when it has no declaration).

    ``recognise`` lets the owner read the documents it knows by heart in the same pass
    that frames them (see :data:`._plain.Recognise`); :meth:`feed_documents` returns
    what it made of each.

    ``offset`` is the number of stream bytes fully dealt with (returned or dropped);
    ``pending`` the number buffered for the document in progress, so
    ``offset + pending`` is everything fed so far.

    Raises :class:`recstats.ProtocolError` (with the stream offset) for bytes that
    cannot start a document, a DTD (refused for safety), an end tag outside any
    document, and a document larger than ``max_document_bytes`` -- as soon as the
    buffered part of it exceeds the bound. When documents were completed before the
    error in the same call, that call returns them and sets :attr:`error` instead; the
    next call raises. After an error the framer is unusable (the stream has lost its
    framing).

    >>> framer = Framer()
    >>> framer.feed(b'<a x="1>2"><b/></a>\\n<?xml version="1.0"?><c/><a>')
    [b'<a x="1>2"><b/></a>', b'<?xml version="1.0"?><c/>']
    >>> framer.feed(b"</a>"), framer.offset, framer.pending
    ([b'<a></a>'], 52, 0)
    """

    __slots__ = (
        "_after",
        "_base",
        "_buf",
        "_depth",
        "_error",
        "_keep",
        "_nested",
        "_pattern",
        "_pos",
        "_quote",
        "_recognise",
        "_root",
        "_start",
        "_state",
        "_tag_at",
        "_term",
        "max_document_bytes",
    )

    def __init__(self, max_document_bytes: int = MAX_DOCUMENT_BYTES,
                 recognise: Recognise | None = None):
        if max_document_bytes <= 0:
            raise ValueError("max_document_bytes must be positive")
        self.max_document_bytes = int(max_document_bytes)
        self._recognise = recognise
        self._buf = bytearray()
        self._base = 0          # stream offset of _buf[0]
        self._pos = 0           # scan position in _buf: every state resumes from it
        self._start: int | None = None  # start of the document in progress, in _buf
        self._keep: int | None = None   # start of an unfinished construct between documents
        self._state = _PROLOG
        self._root = b""
        self._depth = 0
        self._pattern: re.Pattern[bytes] | None = None  # set with _root
        self._term = b""        # terminator awaited in the _SKIP state...
        self._after = _PROLOG   # ...and the state that follows it
        self._tag_at = 0        # "<" of the tag being scanned (_TAG, _ENDTAG)
        self._nested = False    # _TAG: a nested element named like the root, not the root
        self._quote = b""       # _TAG: the quote of an unfinished attribute value
        self._error: ProtocolError | None = None

    def _cut(self) -> int:
        """Position in ``_buf`` before which every byte is dealt with."""
        if self._start is not None:
            return self._start
        return self._keep if self._keep is not None else self._pos

    @property
    def offset(self) -> int:
        """Stream bytes fully consumed: returned as documents or dropped as separators."""
        return self._base + self._cut()

    @property
    def pending(self) -> int:
        """Bytes buffered for the document in progress (not yet complete)."""
        return len(self._buf) - self._cut()

    def unfinished(self) -> bytes:
        """The buffered bytes of the document in progress (``pending`` of them).

        >>> framer = Framer()
        >>> framer.feed(b"<r/><s><t"), framer.unfinished()
        ([b'<r/>'], b'<s><t')
        """
        return bytes(self._buf[self._cut():])

    def feed(self, data: bytes) -> list[bytes]:
        """Add ``data`` (any length, ``b""`` included) and return the completed documents.

        >>> Framer().feed(b"<r/>\\x00<r/>")
        [b'<r/>', b'<r/>']
        """
        return [doc for _, doc in self.feed_with_offsets(data)]

    def feed_with_offsets(self, data: bytes) -> list[tuple[int, bytes]]:
        """Like :meth:`feed`, each document paired with its stream offset.

        >>> Framer().feed_with_offsets(b"  <r/> <s/>")
        [(2, b'<r/>'), (7, b'<s/>')]
        """
        return [(offset, doc) for offset, doc, _ in self.feed_documents(data)]

    def feed_documents(self, data: bytes) -> list[tuple[int, bytes, object]]:
        """Like :meth:`feed_with_offsets`, each document with what ``recognise`` made
        of it (None for the documents it did not know).

        >>> Framer().feed_documents(b"<r/>")
        [(0, b'<r/>', None)]
        """
        if self._error is not None:
            raise ProtocolError(f"the stream already failed: {self._error.reason}",
                                self._error.offset)
        buf = self._buf
        buf += data
        found: list[tuple[int, bytes, object]] = []
        try:
            self._scan(buf, found)
            self._drop_done(buf)
            if self.pending > self.max_document_bytes:
                self._too_big(self.offset)
        except ProtocolError as exc:
            self._error = exc
            if not found:
                raise
        return found

    @property
    def error(self) -> ProtocolError | None:
        """The failure that ended the stream, or ``None`` while it is sound.

        A failure after documents were completed in the same :meth:`feed` call does
        not hide them: they are returned and ``error`` is set; the next call raises.

        >>> framer = Framer()
        >>> framer.feed(b"<r/>garbage"), framer.error.offset
        ([b'<r/>'], 4)
        """
        return self._error

    def _drop_done(self, buf: bytearray) -> None:
        """Forget the bytes dealt with; bytearray deletes from the front cheaply."""
        cut = self._cut()
        if cut:
            del buf[:cut]
            self._base += cut
            self._pos -= cut
            self._tag_at -= cut
            if self._start is not None:
                self._start -= cut
            if self._keep is not None:
                self._keep -= cut

    # ------------------------------------------------------------------ scanning

    def _too_big(self, offset: int) -> NoReturn:
        self._fail(f"document larger than the {self.max_document_bytes}-byte limit; "
                   "raise max_document_bytes if the server really sends such messages",
                   offset)

    def _fail(self, message: str, offset: int) -> NoReturn:
        raise ProtocolError(message, offset)

    def _emit(self, buf: bytearray, end: int, found: list) -> None:
        start = self._start
        assert start is not None, "a document is emitted only once started"
        if end - start > self.max_document_bytes:
            self._too_big(self._base + start)
        value = None
        if self._recognise is not None:  # one the fast path missed: cut by a read
            known = self._recognise(buf, start)
            if known is not None and known[0] == start and known[1] == end:
                value = known[2]
        found.append((self._base + start, bytes(buf[start:end]), value))
        self._start = None
        self._state = _PROLOG

    def _scan(self, buf: bytearray, found: list[tuple[int, bytes, object]]) -> None:
        """The general scanner: a state machine that resumes where the last read
        stopped, so a large document read in small pieces is scanned once.

        Each state has its step method; a step returns the position to go on from,
        or ``_STOP`` after saving where to resume when the bytes run out."""
        steps = (self._in_prolog, self._in_skip, self._in_name, self._in_tag,
                 self._in_body, self._in_end_tag)
        pos = self._pos
        while pos != _STOP:
            pos = steps[self._state](buf, pos, found)

    def _stop(self, pos: int) -> int:
        self._pos = pos
        return _STOP

    def _in_prolog(self, buf: bytearray, pos: int, found: list) -> int:
        """Between documents: separators, comments and PIs, a declaration, a root."""
        self._keep = None
        if self._start is None:
            pos = frame_plain(buf, pos, self._base, self.max_document_bytes, found,
                              self._recognise)
        pos = _match_end(_SEPARATORS, buf, pos)
        if pos >= len(buf):
            return self._stop(pos)
        if buf[pos] != 0x3C:  # "<"
            tail = bytes(buf[pos:pos + 3])
            if len(tail) < 3 and _BOM.startswith(tail):
                return self._wait(pos)  # a byte-order mark cut by the read boundary
            self._fail(f"unexpected bytes {tail!r} where a document should start",
                       self._base + pos)
        head = bytes(buf[pos:pos + 6])
        if len(head) < 2:
            return self._wait(pos)
        nxt = head[1]
        if nxt == 0x3F:  # "<?": the declaration or a processing instruction
            if len(head) < 6 and b"<?xml ".startswith(head):
                return self._wait(pos)
            if _DECLARATION.match(head):
                self._start = pos  # the document starts at its declaration
            elif self._start is None:
                self._keep = pos
            self._skip(_PI, _PROLOG)
            return pos + 2
        if nxt == 0x21:  # "<!"
            if head.startswith(b"<!--"):
                if self._start is None:
                    self._keep = pos
                self._skip(_COMMENT, _PROLOG)
                return pos + 4
            if len(head) < 4 and b"<!--".startswith(head):
                return self._wait(pos)
            self._fail("DTD or markup declaration before the root element; "
                       "refused for safety", self._base + pos)
        if nxt == 0x2F:  # "</"
            self._fail("end tag outside any document", self._base + pos)
        if self._start is None:  # the root's start tag
            self._start = pos
        self._tag_at, self._state = pos, _NAME
        return pos + 1

    def _in_skip(self, buf: bytearray, pos: int, found: list) -> int:
        """In a comment, CDATA section or processing instruction: find its end."""
        end = buf.find(self._term, pos)
        if end == -1:
            return self._stop(max(pos, len(buf) - len(self._term) + 1))
        self._state = self._after
        return end + len(self._term)

    def _in_name(self, buf: bytearray, pos: int, found: list) -> int:
        """The root's name, which may go on in the next read."""
        pos = _match_end(_NAME_CHARS, buf, pos)
        if pos >= len(buf):
            return self._stop(pos)
        if pos == self._tag_at + 1:
            self._fail("malformed start tag", self._base + self._tag_at)
        self._root = bytes(buf[self._tag_at + 1:pos])
        self._state = _TAG
        self._nested, self._quote = False, b""
        return pos

    def _in_tag(self, buf: bytearray, pos: int, found: list) -> int:
        """In a start tag: attribute values may hold ">" but never "<"."""
        size = len(buf)
        quote = self._quote
        while True:
            if quote:
                close = buf.find(quote, pos)
                if buf.find(b"<", pos, size if close == -1 else close) != -1:
                    self._fail("malformed start tag", self._base + self._tag_at)
                if close == -1:
                    self._quote = quote
                    return self._stop(size)
                pos, quote = close + 1, b""
                continue
            stop = _TAG_STOP.search(buf, pos)
            if stop is None:
                self._quote = b""
                return self._stop(size)
            char = buf[stop.start()]
            pos = stop.end()
            if char == 0x3E:  # ">"
                break
            if char == 0x3C:  # "<"
                self._fail("malformed start tag", self._base + self._tag_at)
            quote = bytes((char,))
        closed = buf[pos - 2] == 0x2F  # "/>"
        if self._nested:
            self._depth += not closed
            self._state = _BODY
        elif closed:  # a self-closing root is the whole document
            self._emit(buf, pos, found)
        else:
            self._pattern = _body_pattern(self._root)
            self._depth = 1
            self._state = _BODY
        return pos

    def _in_body(self, buf: bytearray, pos: int, found: list) -> int:
        """Inside the root: jump to the next markup that matters."""
        assert self._pattern is not None, "set when the root's start tag closed"
        match = self._pattern.search(buf, pos)
        if match is None:
            # a hit needs at most len(root) + 3 bytes ("</" name lookahead) or
            # 9 ("<![CDATA["): the tail shorter than that is searched again
            return self._stop(max(pos, len(buf) - len(self._root) - 10))
        at = match.start()
        if match.group(1):
            self._skip(_COMMENT, _BODY)
            return at + 4
        if match.group(2):
            self._skip(_CDATA, _BODY)
            return at + 9
        if match.group(3):
            self._skip(_PI, _BODY)
            return at + 2
        if match.group(4):
            # "<!" that is not (yet) a comment or CDATA: wait if it may become one
            head = bytes(buf[at:at + 9])
            if b"<!--".startswith(head) or b"<![CDATA[".startswith(head):
                return self._stop(at)
            self._fail("markup declaration (<!...) inside a document; DTDs are "
                       "refused", self._base + at)
        if match.group(5):  # an end tag of the root's name
            self._tag_at, self._state = at, _ENDTAG
        else:  # a nested element with the root's name
            self._tag_at, self._state = at, _TAG
            self._nested, self._quote = True, b""
        return match.end()

    def _in_end_tag(self, buf: bytearray, pos: int, found: list) -> int:
        """After "</" and the root's name: the ">" that may close the document."""
        pos = _match_end(_SPACE, buf, pos)
        if pos >= len(buf):
            return self._stop(pos)
        if buf[pos] != 0x3E:
            self._fail("malformed end tag", self._base + self._tag_at)
        self._depth -= 1
        if self._depth == 0:
            self._emit(buf, pos + 1, found)
        else:
            self._state = _BODY
        return pos + 1

    def _skip(self, term: bytes, after: int) -> None:
        self._term, self._after, self._state = term, after, _SKIP

    def _wait(self, pos: int) -> int:
        """Wait for more bytes to decide what starts at ``pos`` (kept until then)."""
        if self._start is None:
            self._keep = pos
        return self._stop(pos)
