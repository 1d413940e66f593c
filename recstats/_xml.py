"""Hardened XML helpers shared by the CDR reader, the archive reader and the protocol.

XML from the network or from disk is untrusted: :func:`safe_parser` never loads a DTD,
never expands an entity and never uses the network; :func:`parse_document` bounds the
size and refuses any document that declares a DTD. :func:`fields_of` flattens a call or
CDR element into raw ``{name: text}`` fields and :func:`call_element` builds one back.
No pandas here: the sans-IO protocol package builds on this module.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import Any, cast

from lxml import etree

from .errors import CDRParseError

#: Documents larger than this are refused (bytes), for files and network messages alike.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
#: A document with more fields is refused: real CDRs have a few dozen, and every
#: distinct field name is a column of the whole table (a 300 kB file with 20 000 made a
#: small batch take 11 s and 20 000 columns).
MAX_FIELDS = 1000


def too_many_fields(count: int) -> str:
    """The one-line reason for a document with ``count`` fields, over :data:`MAX_FIELDS`."""
    return f"{count} fields, over the {MAX_FIELDS} limit; refused"

_local = threading.local()


def safe_parser() -> etree.XMLParser:
    """This thread's hardened lxml parser: no DTD, no entity expansion, no network.

    lxml parsers must not be shared between threads, so each thread gets its own.
    ``huge_tree=False`` keeps libxml2's limits on depth and text size.

    >>> from lxml import etree
    >>> etree.fromstring(b"<v><id>a</id></v>", safe_parser()).findtext("id")
    'a'
    """
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False, load_dtd=False, no_network=True, dtd_validation=False,
            huge_tree=False, remove_comments=True, remove_pis=True,
        )
        _local.parser = parser
    return parser


_HUGE_HINT = re.compile(r",? *(?:try|use) XML_PARSE_HUGE(?: option)?")


def parse_document(data: bytes, path: str | None = None,
                   max_bytes: int = MAX_DOCUMENT_BYTES) -> etree._Element:
    """Parse one untrusted XML document and return its root element.

    Raises :class:`CDRParseError` for empty, oversized, malformed documents and for any
    document that declares a DTD (the only way to smuggle entities in).

    >>> parse_document(b"<verbacdr><id>a</id></verbacdr>").tag
    'verbacdr'
    """
    if len(data) > max_bytes:
        raise CDRParseError(f"document is {len(data)} bytes, over the {max_bytes} limit", path)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        raise CDRParseError("empty document", path)
    try:
        root: etree._Element = etree.fromstring(data, safe_parser())
    except etree.XMLSyntaxError as exc:
        # libxml2's limits (text over 10 MB, nesting over 256) suggest XML_PARSE_HUGE,
        # which recstats keeps off on purpose: say it is a limit, not how to lift it
        reason = _HUGE_HINT.sub(" (a safety limit)", str(exc))
        raise CDRParseError(f"malformed XML: {reason}", path) from None
    except ValueError as exc:  # e.g. NUL bytes, which lxml refuses before parsing
        raise CDRParseError(f"not an XML document: {exc}", path) from None
    # lxml-stubs 0.5 leave DocInfo.doctype out; lxml has it (a str, "" without a DTD)
    if root.getroottree().docinfo.doctype:  # type: ignore[attr-defined]
        raise CDRParseError("document declares a DTD; refused for safety", path)
    return root



def _attribute_items(element: etree._Element) -> list[tuple[str, str]]:
    # lxml-stubs type attribute names and values as str | bytes; lxml gives str
    return cast("list[tuple[str, str]]", element.items())


def _local_name(tag: Any) -> str | None:
    if not isinstance(tag, str):  # comments, processing instructions, entity refs
        return None
    return tag.rpartition("}")[2]


def fields_of(element: etree._Element) -> dict[str, str]:
    """The raw fields of one call/CDR element as ``{source name: text}``.

    Fields may be child elements or attributes of ``element``. Nested elements are
    flattened as ``parent.child`` (attributes of a nested element as ``parent.attr``);
    a repeated field keeps every value, joined with ``"; "``. Empty fields are left out.
    Only the element's own ``id``/``ccdr_id`` can become the call id, because nested
    ids arrive as ``parent.id``.

    Linear in the size of the element. Raises :class:`CDRParseError` past
    :data:`MAX_FIELDS` distinct fields or :data:`MAX_REPEATS` repeated values (a peer
    must not make one document cost more than its bytes).

    >>> from lxml import etree
    >>> fields_of(etree.fromstring('<c id="x"><location>NY</location><s><id>7</id></s></c>'))
    {'id': 'x', 'location': 'NY', 's.id': '7'}
    >>> fields_of(etree.fromstring('<c><id>x</id><tag>a</tag><tag>b</tag></c>'))["tag"]
    'a; b'
    """
    fields: dict[str, str] = {}
    repeats = _Repeats()
    if len(element.attrib):
        for name, value in _attribute_items(element):
            _put(fields, repeats, _local_name(name) or name, value)
    _collect(element, "", fields, repeats)
    if len(fields) > MAX_FIELDS:
        raise CDRParseError(too_many_fields(len(fields)))
    for name, values in repeats.items():  # joined once: repeated joins are quadratic
        fields[name] = "; ".join(values)
    return fields


#: A document with more repeated field values is refused (see :func:`fields_of`).
MAX_REPEATS = 1000


class _Repeats(dict):
    """Every value of each repeated field, and how many repeats there were."""

    __slots__ = ("count",)

    def __init__(self):
        super().__init__()
        self.count = 0


def _repeat(fields: dict[str, str], repeats: _Repeats, name: str, value: str) -> None:
    values = repeats.get(name)
    if values is None:
        values = repeats[name] = [fields[name]]
    values.append(value)
    repeats.count += 1
    if repeats.count > MAX_REPEATS:
        raise CDRParseError(f"more than {MAX_REPEATS} repeated field values; refused")


def _put(fields: dict[str, str], repeats: _Repeats, name: str,
         value: str | None) -> None:
    if value is None:
        return
    value = value.strip()
    if not value:
        return
    if name in fields:
        _repeat(fields, repeats, name, value)
    else:
        fields[name] = value


def _collect(element: etree._Element, prefix: str, fields: dict[str, str],
             repeats: _Repeats) -> None:
    # the hot loop of every parse (archive and live): one lxml property access per
    # need, and the common leaf without attributes handled inline
    for child in element:
        tag = child.tag
        if tag.__class__ is not str:  # comments, processing instructions, entity refs
            continue
        if tag[0] == "{":
            tag = tag.rpartition("}")[2]
        full = prefix + tag
        if len(child.attrib):
            for attr, value in _attribute_items(child):
                _put(fields, repeats, f"{full}.{_local_name(attr) or attr}", value)
        if len(child):
            _collect(child, f"{full}.", fields, repeats)
            continue
        text = child.text
        if text is not None:
            text = text.strip()
            if text:
                if full in fields:
                    _repeat(fields, repeats, full, text)
                else:
                    fields[full] = text


def cdr_xml(fields: Mapping[str, Any], root: str = "verbacdr",
            declaration: bool = True) -> bytes:
    """Serialise raw fields (source names -> text) as a CDR document, UTF-8.

    The inverse of :func:`fields_of` for flat and ``parent.child`` names; ``None``
    values are left out. Used by the simulator and the sample generator.

    >>> fields_of(parse_document(cdr_xml({"id": "a", "shared_item.title": "T"})))
    {'id': 'a', 'shared_item.title': 'T'}
    """
    element = call_element(fields, root)
    return etree.tostring(element, encoding="UTF-8", xml_declaration=declaration)


def call_element(fields: Mapping[str, Any], tag: str = "Call") -> etree._Element:
    """Build an element whose child elements carry ``fields`` (see :func:`cdr_xml`).

    >>> etree.tostring(call_element({"id": "a", "s.t": "x"}))
    b'<Call><id>a</id><s><t>x</t></s></Call>'
    """
    element = etree.Element(tag)
    parents: dict[str, etree._Element] = {}
    for name, value in fields.items():
        if value is None:
            continue
        parent = element
        head, _, leaf = name.rpartition(".")
        if head:
            if head not in parents:
                parents[head] = etree.SubElement(element, head)
            parent = parents[head]
        etree.SubElement(parent, leaf).text = str(value)
    return element

