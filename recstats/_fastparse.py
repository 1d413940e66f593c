"""The archive reader's fast path: flat CDR documents to columns without a tree per file.

Most archived CDRs are flat: a root element whose children each hold one text value,
in UTF-8, with no attributes, namespaces, entities, comments, CDATA or DTD. For those,
building an lxml tree and a dict per file is most of the cost. This module and
:class:`recstats._archive_run.Chunk`, which drives it, instead:

1. strips the XML declaration if it is a plain UTF-8 one (:func:`flat_body`);
   anything else takes the reference path
   (:func:`recstats._archive_parse.document_fields`), which also gives every error
   its usual reason, as it does for every document the next steps find unusual;
2. checks a batch of documents with one syntax-only libxml2 pass (a parser with a
   target and no callbacks: no tree), the same hardened parser settings as
   :func:`recstats._xml.safe_parser`; a batch that fails is halved until its bad
   documents are in small batches, which are read file by file through the reference
   path, so one bad file never costs its neighbours their rows (nor much time);
3. finds tags and texts of the checked batch with NumPy on the concatenated bytes,
   and builds Arrow columns of field texts (one column per field name);
4. :class:`recstats._archive_run.Chunk` turns them into the calls table with
   :func:`recstats._table.calls_from_raw`, the vectorised builder the reference path
   uses after its dicts.

tests/test_archive_fast.py checks that both paths give identical tables and errors.
"""

from __future__ import annotations

import re
import threading

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from lxml import etree

from ._extras import EXTRAS
from ._xml import MAX_FIELDS

#: Larger documents take the reference path (bounds a batch's memory).
FAST_MAX_BYTES = 1024 * 1024
#: A syntax-checked batch holds at most this many documents / bytes.
BATCH_FILES = 1000
BATCH_BYTES = 4 * 1024 * 1024
#: A batch that fails is halved down to this size, then read file by file.
SMALLEST_BATCH = 16

_SPACE = rb"[ \t\r\n]"
# the declarations the fast path accepts (version 1.0, UTF-8 or no encoding): any other
# (another encoding could hide a DTD from byte checks) takes the reference path
_DECLARATION = re.compile(
    rb"<\?xml" + _SPACE + rb"+version" + _SPACE + rb"*=" + _SPACE + rb"*(['\"])1\.0\1"
    rb"(?:" + _SPACE + rb"+encoding" + _SPACE + rb"*=" + _SPACE + rb"*(['\"])"
    rb"[uU][tT][fF]-8\2)?"
    rb"(?:" + _SPACE + rb"+standalone" + _SPACE + rb"*=" + _SPACE + rb"*(['\"])(?:yes|no)\3)?"
    + _SPACE + rb"*\?>")


#: The declarations most CDR writers use, recognised without the regular expression.
_USUAL_DECLARATIONS = (b"<?xml version='1.0' encoding='UTF-8'?>",
                       b'<?xml version="1.0" encoding="UTF-8"?>',
                       b'<?xml version="1.0" encoding="utf-8"?>', b'<?xml version="1.0"?>')


#: The three most common, all 38 bytes long (checked inline, per file, by the caller).
USUAL = _USUAL_DECLARATIONS[:3]
USUAL_LENGTH = 38


#: Every byte but the ones that need XML's rewriting: "&" and control characters other
#: than tab and newline (a carriage return is rewritten too).
_NOT_ODD = bytes(b for b in range(256) if not (b == 38 or (b < 32 and b not in (9, 10))))


#: Distinct tag names in one batch above which its documents take the reference path
#: (the documented fields plus :data:`recstats._extras.DEFAULT_MAX_COLUMNS` fit easily).
MAX_FAST_NAMES = 512


def flat_body(data: bytes) -> memoryview | None:
    r"""The document without its XML declaration, if the fast path may take it.

    ``None`` (the reference path) for another or a malformed declaration (another
    encoding could hide a DTD from byte checks) and for anything that does not start
    with ``<``: a byte-order mark, text, binary data. What the bytes hold further on
    (DTD, comments, CDATA, entities, carriage returns, attributes, nesting) is found
    by :func:`scan` for a whole batch at once.

    >>> bytes(flat_body(b"<?xml version='1.0' encoding='UTF-8'?><v><id>a</id></v>"))
    b'<v><id>a</id></v>'
    >>> flat_body(b"\xef\xbb\xbf<v><id>a</id></v>") is None
    True
    """
    if data[:5] == b"<?xml":
        for usual in _USUAL_DECLARATIONS:
            if data.startswith(usual):
                return memoryview(data)[len(usual):]
        match = _DECLARATION.match(data)
        return None if match is None else memoryview(data)[match.end():]
    return memoryview(data) if data[:1] == b"<" else None


class _NoTree:
    """A parser target without callbacks: libxml2 checks syntax and builds nothing."""

    def close(self) -> None:
        return None


_local = threading.local()


def _syntax_parser() -> etree.XMLParser:
    parser = getattr(_local, "parser", None)
    if parser is None:  # lxml parsers must not be shared between threads
        parser = _local.parser = etree.XMLParser(
            target=_NoTree(),  # type: ignore[arg-type]  # lxml's stubs want all callbacks
            resolve_entities=False, load_dtd=False, no_network=True, dtd_validation=False,
            huge_tree=False)
    return parser


def joined(bodies: list[bytes] | list[memoryview]) -> bytes:
    """The documents as one: ``<_>`` + bodies + ``</_>``."""
    return b"".join([b"<_>", *bodies, b"</_>"])


def well_formed(data: bytes) -> bool:
    """Whether ``data`` is well-formed XML, by one libxml2 pass that builds no tree.

    >>> well_formed(joined([b"<v><id>a</id></v>", b"<v/>"]))
    True
    >>> well_formed(joined([b"<v><id>a</v>"]))
    False
    """
    try:
        etree.fromstring(data, _syntax_parser())
    except Exception:  # noqa: BLE001 - any failure: the reference path says why
        return False
    return True


def _spans(buffer: pa.Buffer, starts: np.ndarray, stops: np.ndarray) -> pa.Array:
    """Byte ranges of ``buffer`` as elements ``0, 2, 4...`` of a binary array (no copy).

    The ranges are increasing and disjoint: the odd elements are the gaps between them.
    """
    offsets = np.empty(2 * len(starts), dtype=np.int64)
    offsets[0::2] = starts
    offsets[1::2] = stops
    return pa.Array.from_buffers(pa.large_binary(), max(0, len(offsets) - 1),
                                 [None, pa.py_buffer(offsets), buffer])


def _trim(every: pa.Array, starts: np.ndarray, stops: np.ndarray, which: np.ndarray
          ) -> None:
    """Move ``starts``/``stops`` of the ranges ``which`` past tabs, newlines, spaces."""
    texts = every.take(pa.array(2 * which))
    full = pc.binary_length(texts).to_numpy(zero_copy_only=False)
    lead = full - pc.binary_length(pc.ascii_ltrim(texts.cast(pa.large_string()),
                                                  characters=" \t\n")).to_numpy(
        zero_copy_only=False)
    trail = full - pc.binary_length(pc.ascii_rtrim(texts.cast(pa.large_string()),
                                                   characters=" \t\n")).to_numpy(
        zero_copy_only=False)
    starts[which] += lead
    stops[which] = np.maximum(stops[which] - trail, starts[which])


def scan(bodies: list[bytes] | list[memoryview], data: bytes | None = None
         ) -> tuple[np.ndarray, dict[str, pa.Array]]:
    """Fields of well-formed flat documents, found by NumPy on their concatenation.

    ``data`` is :func:`joined` of ``bodies`` and must be :func:`well_formed`. Returns
    ``(flat, fields)``: ``flat[i]`` says whether document ``i`` is flat (one root
    element; children without attributes, namespace prefixes, children of their own or
    repeated names; no text beside the root), and ``fields`` maps each field name to a
    string array with one value per flat document (null where it has no text for it).
    Values are stripped as ``str.strip()`` does.

    >>> flat, fields = scan([b"<v><id> a </id><x/></v>", b'<v a="1"/>'])
    >>> flat.tolist(), {k: v.to_pylist() for k, v in fields.items()}
    ([True, False], {'id': ['a']})
    """
    data = joined(bodies) if data is None else data
    buffer = pa.py_buffer(data)
    raw = np.frombuffer(data, dtype=np.uint8)
    n = len(bodies)
    sizes = np.fromiter(map(len, bodies), dtype=np.int64, count=n)
    doc_starts = np.cumsum(sizes) - sizes + 3
    bad = np.zeros(n, dtype=bool)
    # every "<" opens a tag ("<" in text is an entity) and the first ">" after it ends
    # it (">" only hides in attributes); a comment, CDATA section or PI holding "<" or
    # ">" misleads this, but makes its document unusual, and if it shifts the depth of
    # the documents after it, the check below gives the whole batch up
    opens = np.flatnonzero(raw == 60)
    closes = np.flatnonzero(raw == 62)
    if not (len(closes) == len(opens) and (closes > opens).all()
            and (closes[:-1] < opens[1:]).all()):
        closes = closes[np.searchsorted(closes, opens)]
    ends = closes
    is_end_tag = raw[opens + 1] == 47
    is_empty = (raw[ends - 1] == 47) & ~is_end_tag
    step = 1 - 2 * is_end_tag.astype(np.int64) - is_empty
    after = np.cumsum(step) - 1            # depth inside <_> after each tag
    before = after - step
    first = np.searchsorted(opens, doc_starts)
    tags_per_doc = np.diff(np.append(first, len(opens) - 1))
    doc = np.concatenate([[0], np.repeat(np.arange(n), tags_per_doc), [n - 1]])
    # a document must start at depth 0 (else one is unbalanced and the next makes up)
    if (before[first[tags_per_doc > 0]] != 0).any():
        return bad & False, {}
    # bytes that need XML's rewriting (entities and character references, carriage
    # returns), which libxml2 refused had they been invalid; and tags that are not
    # elements (comment, CDATA, DTD, processing instruction: "<!" or "<?")
    if data.translate(None, _NOT_ODD):  # one C pass; usually there is none
        odd = np.flatnonzero((raw == 38) | ((raw < 32) & (raw != 10) & (raw != 9)))
        bad[(np.searchsorted(doc_starts, odd, side="right") - 1).clip(0, n - 1)] = True
    second = raw[opens + 1]
    bad[doc[(second == 33) | (second == 63)]] = True
    starting = ~is_end_tag
    bad[doc[starting & (before >= 2)]] = True                    # nesting
    bad |= np.bincount(doc[starting & (before == 0)], minlength=n) != 1  # one root
    # start tags as text, encoded once: a batch has few distinct ones, and one with
    # whitespace (attributes) or ":" (a namespace prefix) makes its documents unusual,
    # as does a field named like the extras column (the reference path folds it there)
    started = np.flatnonzero(starting)[1:]       # not <_>
    tags = _spans(buffer, opens[started] + 1, ends[started] - is_empty[started])
    # a view, not a cast: libxml2 checked the UTF-8, and "<" and ">" never split a
    # character, so every slice between them is valid text (a cast checks it again)
    tags = tags.take(pa.array(np.arange(0, len(tags), 2))).view(pa.large_string())
    encoded = pc.dictionary_encode(tags)
    tag_ids = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    dictionary = encoded.dictionary.to_pylist()
    if len(dictionary) > MAX_FAST_NAMES:
        # a flood of distinct names: the reference path folds them into extras, where
        # one column per name would make the batch quadratic
        return np.zeros(n, dtype=bool), {}
    unusual = np.array([name == EXTRAS or any(c in name for c in " \t\n:")
                        for name in dictionary] + [False])
    bad[doc[started[unusual[tag_ids]]]] = True
    # text beside the root element (between documents it is either's)
    outside = np.flatnonzero(after[:-1] == 0)
    gaps = _spans(buffer, ends[outside] + 1, opens[outside + 1])
    gaps = gaps.take(pa.array(np.arange(0, len(gaps), 2))).view(pa.large_string())
    junk = outside[pc.binary_length(pc.ascii_trim(gaps, characters=" \t\n")).to_numpy(
        zero_copy_only=False) > 0]
    bad[doc[junk]] = True
    bad[doc[junk + 1]] = True
    # fields: elements opened at depth 1; their text runs to the next tag
    in_field = starting[started] & ~is_empty[started] & (before[started] == 1)
    field = started[in_field]
    name_ids = tag_ids[in_field]
    field_doc = doc[field]
    bad |= np.bincount(field_doc, minlength=n) > MAX_FIELDS
    width = max(1, len(dictionary))
    keys = np.sort(field_doc * width + name_ids)
    bad[keys[1:][keys[1:] == keys[:-1]] // width] = True         # a repeated name
    starts, stops = ends[field] + 1, opens[field + 1]
    every = _spans(buffer, starts, stops)
    filled = stops > starts
    first_byte, last_byte = raw[starts], raw[stops - 1]
    spaced = np.flatnonzero(filled & ((first_byte <= 32) | (last_byte <= 32)))
    if len(spaced):
        _trim(every, starts, stops, spaced)
        filled = stops > starts
        every = _spans(buffer, starts, stops)
        first_byte, last_byte = raw[starts], raw[stops - 1]
    # a value that starts or ends with a non-ASCII character may end in Unicode
    # whitespace, which str.strip() removes: the reference path takes those documents
    for i in np.flatnonzero(filled & ((first_byte >= 0x80) | (last_byte >= 0x80))):
        value = data[starts[i]:stops[i]].decode("utf-8")
        if value.strip() != value:
            bad[field_doc[i]] = True
    flat = ~bad
    return flat, _columns(every, flat, field_doc, name_ids, dictionary, filled)


def _columns(every: pa.Array, flat: np.ndarray, field_doc: np.ndarray,
             name_ids: np.ndarray, dictionary: list[str], filled: np.ndarray
             ) -> dict[str, pa.Array]:
    """One string array per field name, one value per flat document."""
    n_rows = int(flat.sum())
    row_of = np.cumsum(flat) - 1
    chosen = np.flatnonzero(flat[field_doc] & filled)
    ids, rows = name_ids[chosen], row_of[field_doc[chosen]]
    # by name, then row: rows already increase, so a stable sort by name does it (a
    # radix sort: names fit in int16, there are at most MAX_FAST_NAMES)
    order = np.argsort(ids.astype(np.int16), kind="stable")
    chosen, ids, rows = chosen[order], ids[order], rows[order]
    values = every.take(pa.array(2 * chosen)).view(pa.large_string())  # see scan
    counts = np.bincount(ids, minlength=len(dictionary))
    columns = {}
    offset = 0
    for name_id, count in enumerate(counts.tolist()):
        if count == n_rows:
            columns[dictionary[name_id]] = values.slice(offset, count)
        elif count:
            take = np.full(n_rows, -1, dtype=np.int64)
            take[rows[offset:offset + count]] = np.arange(offset, offset + count)
            columns[dictionary[name_id]] = values.take(pa.array(take, mask=take < 0))
        offset += count
    return columns
