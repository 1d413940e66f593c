"""The CDR field vocabulary and reading one CDR document into a flat record.

A recording server stores one CDR (call detail record) XML file beside every media
file, and its API describes calls with the same field names. This module knows those
names, the enum tables, the time format and the calls-table columns; it knows nothing of
where a document came from (file, archive member or network message).

Two paths share the vocabulary:

* per record (:func:`read_cdr`, :func:`record_from_fields`): one document -> one dict,
  used for single files and for every call carried by a protocol message;
* per batch (:func:`recstats.table.calls_from_fields`): many documents' raw field
  strings -> a calls table in one vectorised pass, used by the archive reader.

:func:`recstats.table.calls_frame` turns records into the same table; both paths give
equal frames. The table builders are re-exported here (``cdr.coerce_calls`` etc.).
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import stat
import threading
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from lxml import etree

from .errors import CDRParseError

# --------------------------------------------------------------------------- vocabulary

#: Enum tables from the vendor's CDR documentation (codes as strings, as they appear).
CAUSES: dict[str, str] = {
    "0": "Normal", "1": "Source disconnected", "2": "Destination disconnected",
    "3": "Hold", "4": "Transfer", "5": "Cancelled", "6": "Busy", "7": "Not found",
    "8": "Error", "13": "Conference", "14": "Call park", "15": "Join",
    "28": "Direct transfer", "60": "Line change", "80": "Timeout",
    "81": "Forced termination", "82": "Manual termination", "83": "Program termination",
    "84": "Video escalation", "500": "Undefined",
}
AUDIO_CODECS: dict[str, str] = {
    "1": "Non-standard", "2": "G.711 A-law 64k", "3": "G.711 A-law 56k",
    "4": "G.711 µ-law 64k", "5": "G.711 µ-law 56k", "6": "G.722 64k", "7": "G.722 56k",
    "8": "G.722 48k", "9": "G.723.1", "10": "G.728", "11": "G.729", "12": "G.729A",
    "13": "IS11172", "14": "IS13818", "15": "G.729B", "16": "G.729AB", "18": "GSM FR",
    "19": "GSM HR", "20": "GSM EFR", "25": "Wideband 256k", "32": "Data 64k",
    "33": "Data 56k", "80": "GSM", "81": "ActiveVoice", "82": "G.726 32k",
    "83": "G.726 24k", "84": "G.726 16k", "90": "iLBC 20ms", "91": "iLBC 30ms",
}
#: Only 0 = Internal is documented; 1 and 2 are recstats' choice (override per call).
DIRECTIONS: dict[str, str] = {"0": "Internal", "1": "Inbound", "2": "Outbound"}

MODALITIES = ("voice", "video", "screen", "share", "im", "file_share", "poll",
              "whiteboard", "sms")

#: Source field name -> calls-table column, for fields that are renamed.
RENAMES: dict[str, str] = {
    "id": "call_id", "ccdr_id": "call_id", "location": "site",
    "source_caller_id": "caller", "destination_caller_id": "callee",
    "source_name": "caller_name", "destination_name": "callee_name",
    "modality_id": "modality",
}
#: Raw code field -> (decoded column, table). The raw code stays under its own name.
ENUMS: dict[str, tuple[str, dict[str, str]]] = {
    "direction_id": ("direction", DIRECTIONS),
    "cause_id": ("cause", CAUSES),
    "audio_codec_id": ("audio_codec", AUDIO_CODECS),
}
TIME_FIELDS = ("start_time", "end_time")
BOOLEAN_FIELDS = ("ondemand", "conference", "manual", "do_not_delete", "secondary")
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})

#: The calls table's fixed columns, in order; every other field follows, sorted by name.
CALL_COLUMNS: tuple[str, ...] = (
    "call_id", "site", "start_time", "end_time", "duration", "caller", "callee",
    "caller_name", "callee_name", "direction", "direction_id", "modality", "cause",
    "cause_id", "audio_codec", "audio_codec_id",
)
#: Columns only the archive reader fills.
ARCHIVE_COLUMNS: tuple[str, ...] = ("media_path", "cdr_path")
CATEGORY_COLUMNS = ("site", "direction", "modality", "cause", "audio_codec")
TIME_DTYPE = "datetime64[us, UTC]"

#: Documents larger than this are refused (bytes), for files and network messages alike.
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
#: A document with more fields is refused: real CDRs have a few dozen, and every
#: distinct field name is a column of the whole table (a 300 kB file with 20 000 made a
#: small batch take 11 s and 20 000 columns).
MAX_FIELDS = 1000

# --------------------------------------------------------------------------- safe XML

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
        root = etree.fromstring(data, safe_parser())
    except etree.XMLSyntaxError as exc:
        # libxml2's limits (text over 10 MB, nesting over 256) suggest XML_PARSE_HUGE,
        # which recstats keeps off on purpose: say it is a limit, not how to lift it
        reason = _HUGE_HINT.sub(" (a safety limit)", str(exc))
        raise CDRParseError(f"malformed XML: {reason}", path) from None
    except ValueError as exc:  # e.g. NUL bytes, which lxml refuses before parsing
        raise CDRParseError(f"not an XML document: {exc}", path) from None
    if root.getroottree().docinfo.doctype:
        raise CDRParseError("document declares a DTD; refused for safety", path)
    return root


# --------------------------------------------------------------------------- fields


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

    >>> from lxml import etree
    >>> fields_of(etree.fromstring('<c id="x"><location>NY</location><s><id>7</id></s></c>'))
    {'id': 'x', 'location': 'NY', 's.id': '7'}
    """
    fields: dict[str, str] = {}
    if len(element.attrib):
        for name, value in element.items():
            _put(fields, _local_name(name) or name, value)
    _collect(element, "", fields)
    return fields


def _put(fields: dict[str, str], name: str, value: str | None) -> None:
    if value is None:
        return
    value = value.strip()
    if not value:
        return
    old = fields.get(name)
    fields[name] = value if old is None else f"{old}; {value}"


def _collect(element: etree._Element, prefix: str, fields: dict[str, str]) -> None:
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
            for attr, value in child.items():
                _put(fields, f"{full}.{_local_name(attr) or attr}", value)
        if len(child):
            _collect(child, f"{full}.", fields)
            continue
        text = child.text
        if text is not None:
            text = text.strip()
            if text:
                old = fields.get(full)
                fields[full] = text if old is None else f"{old}; {text}"


# --------------------------------------------------------------------------- values


def decode_enum(raw: str | None, table: Mapping[str, str]) -> str | None:
    """Decode a raw enum code with ``table``.

    Unknown numeric codes become ``"Unknown (N)"``; a non-numeric value is taken as an
    already-decoded name (newer servers write names such as ``PSTN In``).

    >>> decode_enum("6", CAUSES), decode_enum("99", CAUSES), decode_enum(None, CAUSES)
    ('Busy', 'Unknown (99)', None)
    """
    if raw is None:
        return None
    name = table.get(raw)
    if name is not None:
        return name
    stripped = raw.lstrip("+-")
    if stripped.isdigit():
        code = str(int(raw))
        return table.get(code, f"Unknown ({code})")
    return raw


def parse_bool(raw: str | None) -> bool | None:
    """``true``/``false``/``1``/``0``/``yes``/``no`` (any case) -> bool; else None.

    >>> parse_bool("TRUE"), parse_bool("0"), parse_bool("maybe")
    (True, False, None)
    """
    if raw is None:
        return None
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    return None


_UTC = _dt.UTC


def parse_time(raw: str | None, tz: str = "UTC") -> pd.Timestamp:
    """A CDR time (``YYYY-MM-DD hh:mm:ss[.SSS]``, site-local, no zone) -> UTC Timestamp.

    The text carries no zone: it is read as wall-clock time in ``tz`` and converted to
    UTC. Around daylight-saving changes two rules apply (the same as the batch reader):

    * an ambiguous time (the repeated hour when clocks go back) is read as its first
      occurrence, i.e. still in daylight time;
    * a non-existent time (the skipped hour when clocks go forward) is moved forward to
      the first instant that exists, the moment of the change.

    A time that carries its own offset (``...+01:00`` or ``Z``) is converted from it.
    Returns ``NaT`` for a missing value; raises ``ValueError`` for text that is not a time.

    >>> parse_time("2026-11-02 09:15:02.120", tz="Europe/Budapest")
    Timestamp('2026-11-02 08:15:02.120000+0000', tz='UTC')
    """
    if raw is None:
        return pd.NaT
    key = (raw, tz)
    stamp = _time_cache.get(key)
    if stamp is None:
        stamp = _parse_time(raw, tz)
        if len(_time_cache) >= _TIME_CACHE_SIZE:
            _time_cache.clear()
        _time_cache[key] = stamp
    return stamp


# A call's start time reaches parse_time twice on the live path (start and end
# notifications) and building a Timestamp dominates record_from_fields: remember recent
# results (Timestamps are immutable, so sharing them is safe; bounded, cleared when full).
_TIME_CACHE_SIZE = 16384
_time_cache: dict[tuple[str, Any], pd.Timestamp] = {}


#: The time texts both paths read: an ISO 8601 date, optionally a time of 2-digit
#: parts and a UTC offset. pandas alone also reads "2026", "2026-1-1", "09:0:00", and
#: datetime.fromisoformat alone week dates and "09:00:00,5"; both refuse those.
_TIME_TEXT = (r"(?:\d{4}-\d\d-\d\d|\d{8})"
              r"(?:[T ](?:\d\d(?::\d\d(?::\d\d(?:\.\d+)?)?)?|\d{4}(?:\d\d(?:\.\d+)?)?)"
              r"(?:[zZ]|[+-]\d\d:?\d\d)?)?")
_time_text = re.compile(_TIME_TEXT)


def _parse_time(raw: str, tz: str) -> pd.Timestamp:
    text = raw.strip()
    if not _time_text.fullmatch(text):
        raise ValueError(f"{raw!r} is not an ISO 8601 time")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    moment = _dt.datetime.fromisoformat(text)
    if moment.tzinfo is not None:
        return pd.Timestamp(moment.astimezone(_UTC)).as_unit("us")
    if tz in ("UTC", "utc", None):
        return pd.Timestamp(moment.replace(tzinfo=_UTC)).as_unit("us")
    zone = _zone(tz)
    if zone is not None:
        # a wall time that exists once (both folds agree) is simply local - offset: the
        # instant pandas gives, ~5x faster; DST changes take the pandas path below
        offset = moment.replace(tzinfo=zone).utcoffset()
        if offset == moment.replace(tzinfo=zone, fold=1).utcoffset():
            try:
                return pd.Timestamp((moment - offset).replace(tzinfo=_UTC)).as_unit("us")
            except OverflowError:
                pass
    local = pd.Timestamp(moment).tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    return local.tz_convert("UTC").as_unit("us")


def check_tz(tz: Any) -> str:
    """A site time zone argument, checked: ``"UTC"`` or an IANA zone name.

    A :class:`zoneinfo.ZoneInfo` gives its name; ``None`` means UTC. Raises a one-line
    ``ValueError`` for anything else, so a typo fails at once, not at the first time.

    >>> check_tz("Europe/Budapest"), check_tz(None)
    ('Europe/Budapest', 'UTC')
    """
    if tz is None or tz in ("UTC", "utc"):
        return "UTC"
    if isinstance(tz, ZoneInfo) and tz.key:
        tz = tz.key
    if isinstance(tz, str) and _zone(tz) is not None:
        return tz
    raise ValueError(f"unknown time zone {tz!r}; use an IANA name such as "
                     "'Europe/Budapest'")


_zones: dict[Any, Any] = {}


def _zone(tz: Any) -> ZoneInfo | None:
    """``ZoneInfo(tz)`` for a zone name (memoised), None for anything else."""
    zone = _zones.get(tz, False) if isinstance(tz, str) else None
    if zone is False:
        try:
            zone = ZoneInfo(tz)
        except (ValueError, KeyError, OSError):  # unknown or malformed: pandas decides
            zone = None
        if len(_zones) < 64:
            _zones[tz] = zone
    return zone


def as_utc(moment: Any) -> pd.Timestamp:
    """``moment`` (Timestamp, datetime or text) as a UTC Timestamp; naive means UTC.

    >>> as_utc("2026-11-02 09:15"), as_utc(pd.Timestamp("2026-11-02 10:15", tz="CET"))
    (Timestamp('2026-11-02 09:15:00+0000', tz='UTC'), Timestamp('2026-11-02 09:15:00+0000', tz='UTC'))
    """
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def format_time(moment: pd.Timestamp | _dt.datetime, tz: str = "UTC") -> str:
    """A moment -> CDR time text (``YYYY-MM-DD hh:mm:ss.SSS``) as wall-clock time in ``tz``.

    The inverse of :func:`parse_time` (to the millisecond) for times that exist once.

    >>> format_time(pd.Timestamp("2026-11-02 08:15:02.120", tz="UTC"), "Europe/Budapest")
    '2026-11-02 09:15:02.120'
    """
    local = as_utc(moment).tz_convert(tz)
    return local.strftime("%Y-%m-%d %H:%M:%S.") + f"{local.microsecond // 1000:03d}"


def _parse_float(raw: str | None) -> float:
    if raw is None or "_" in raw or not raw.isascii():  # float() reads "1_000" and "١٢",
        return float("nan")                            # pd.to_numeric (batch) does not
    try:
        return float(raw)
    except ValueError:
        return float("nan")


# --------------------------------------------------------------------------- records


def record_from_fields(fields: Mapping[str, str], tz: str = "UTC",
                       directions: Mapping[str, str] | None = None,
                       source: str | None = None) -> dict[str, Any]:
    """Raw fields (:func:`fields_of`) -> a record keyed by calls-table column names.

    Every column of :data:`CALL_COLUMNS` is present (``None``/``NaT``/``nan`` when the
    document lacks it); every other field is kept under its own name, as text, except
    the documented booleans, which become ``True``/``False``. A field named like a
    column that a documented field fills (``site``, ``call_id``, ``caller``, ...) only
    fills it when that field is absent. ``directions`` overrides the ``direction_id``
    table. ``source`` names the document in error messages.

    Raises :class:`CDRParseError` when the call has no id or a time is not a time.

    >>> rec = record_from_fields({"id": "a", "cause_id": "6", "ondemand": "1"})
    >>> rec["call_id"], rec["cause"], rec["cause_id"], rec["ondemand"], rec["start_time"]
    ('a', 'Busy', '6', True, NaT)
    """
    if len(fields) > MAX_FIELDS:
        raise CDRParseError(_too_many(fields), source)
    call_id = fields.get("id") or fields.get("ccdr_id")
    if not call_id:
        raise CDRParseError("not a CDR: no id or ccdr_id field", source)
    record: dict[str, Any] = _RECORD_TEMPLATE.copy()
    record["call_id"] = call_id
    how_of = _FIELD_HOW  # one lookup per field: the live path decodes every call with this
    shadows: list[tuple[str, str]] = []
    for name, value in fields.items():
        how = how_of.get(name)
        if how is None:
            record[name] = value
        elif how.__class__ is str:
            record[how] = value
        elif how == _TIME:
            try:
                record[name] = parse_time(value, tz)
            except (ValueError, OverflowError, NotImplementedError):
                # NotImplementedError: pandas cannot localise e.g. year 9999 in a zone
                # whose UTC time falls in year 10000; untrusted text must not crash
                raise CDRParseError(f"{name} {value!r} is not a time", source) from None
        elif how == _ID:
            if name == "ccdr_id" and "id" in fields:
                record["ccdr_id"] = value  # both present: keep the second one too
        elif how == _BOOL:
            record[name] = parse_bool(value)
        elif how == _SHADOW:
            shadows.append((name, value))
        else:
            record["duration"] = _parse_float(value)
    for name, value in shadows:  # e.g. <site>: only where <location> gave no value
        if record[name] is None:
            record[name] = value
    for raw_name, (column, table) in ENUMS.items():
        raw = record[raw_name]
        if raw is not None:  # else a same-named field stays, as in the batch path
            if raw_name == "direction_id" and directions is not None:
                table = directions
            name = table.get(raw)
            record[column] = name if name is not None else decode_enum(raw, table)
    start, end = record["start_time"], record["end_time"]
    if start is None:
        record["start_time"] = start = pd.NaT
    if end is None:
        record["end_time"] = end = pd.NaT
    if start is not pd.NaT and end is not pd.NaT:
        # == (end - start).total_seconds() (an int true division is exact-rounded)
        # without building a Timedelta; .value is in ns, out of range before 1677
        try:
            record["duration"] = (end.value - start.value) / 1_000_000_000
        except OverflowError:
            record["duration"] = (end - start).total_seconds()
    elif record["duration"] is None:
        record["duration"] = float("nan")
    return record


def _too_many(fields: Mapping[str, str]) -> str:
    return f"{len(fields)} fields, over the {MAX_FIELDS} limit; refused"


# how record_from_fields treats a field: a str is the column it is renamed to
_ID, _TIME, _BOOL, _DURATION, _SHADOW = 0, 1, 2, 3, 4
#: Extra fields named like a column a documented field fills (``site``, ``call_id``, ...):
#: they fill that column only when the documented field is absent, whatever the order.
SHADOWED = frozenset(RENAMES.values())
_FIELD_HOW: dict[str, Any] = {
    **dict.fromkeys(SHADOWED, _SHADOW),
    **RENAMES, "id": _ID, "ccdr_id": _ID, "duration": _DURATION,
    **dict.fromkeys(TIME_FIELDS, _TIME), **dict.fromkeys(BOOLEAN_FIELDS, _BOOL),
}
_RECORD_TEMPLATE = dict.fromkeys(CALL_COLUMNS)


def _open_nonblocking(path: str, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def read_cdr(source: str | os.PathLike | bytes | etree._Element, tz: str = "UTC",
             directions: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read one CDR document into a flat record keyed by calls-table column names.

    ``source`` is a file path, the document's bytes, or an already parsed element (or
    tree); XML text as a ``str`` is a ``TypeError`` (encode it). Any root element name
    is accepted; fields may be child elements or attributes; the call id may be ``id``
    or ``ccdr_id``; a UTF-8 byte-order mark is skipped. Renamed fields:
    ``location`` -> ``site``, ``source_caller_id`` -> ``caller``,
    ``destination_caller_id`` -> ``callee``, ``source_name``/``destination_name`` ->
    ``caller_name``/``callee_name``, ``modality_id`` -> ``modality``. ``direction_id``,
    ``cause_id`` and ``audio_codec_id`` are decoded into ``direction``, ``cause`` and
    ``audio_codec`` (raw codes kept). Times are site-local wall-clock time in ``tz``,
    returned as UTC timestamps (see :func:`parse_time` for daylight-saving rules);
    ``duration`` is end - start in seconds, or the file's own ``duration`` when a time
    is missing. Nested elements are flattened as ``parent.child``.

    The XML parser never loads a DTD, never expands entities and never uses the network;
    a document declaring a DTD is refused. Raises :class:`recstats.CDRParseError` for a
    document that cannot be read, ``ValueError`` for an unknown ``tz``.

    >>> rec = read_cdr(b'''<verbacdr><id>c1</id><location>NY</location>
    ...   <source_caller_id>1000</source_caller_id><cause_id>6</cause_id>
    ...   <start_time>2026-11-02 09:15:00</start_time>
    ...   <end_time>2026-11-02 09:16:30.500</end_time></verbacdr>''')
    >>> rec["call_id"], rec["site"], rec["caller"], rec["cause"], rec["duration"]
    ('c1', 'NY', '1000', 'Busy', 90.5)
    """
    tz = check_tz(tz)
    path = None
    if isinstance(source, etree._ElementTree):
        source = source.getroot()
    if isinstance(source, etree._Element):
        root = source
    else:
        if isinstance(source, (bytes, bytearray, memoryview)):
            data = bytes(source)
        elif isinstance(source, str) and source.lstrip().startswith("<"):
            # else "cannot read file" naming the whole document as the path
            raise TypeError("read_cdr got XML text as a str: pass bytes (text.encode()) "
                            "or a file path")
        else:
            path = os.fspath(source)
            try:
                with open(path, "rb", opener=_open_nonblocking) as handle:
                    if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                        # a FIFO would block until a writer comes, a device never ends
                        raise CDRParseError("not a regular file", path)
                    data = handle.read(MAX_DOCUMENT_BYTES + 1)
            except OSError as exc:
                raise CDRParseError(f"cannot read file: {exc.strerror or exc}", path) from None
            if len(data) > MAX_DOCUMENT_BYTES:  # only the first limit + 1 bytes were read
                raise CDRParseError(f"file is over the {MAX_DOCUMENT_BYTES} byte limit", path)
        root = parse_document(data, path)
    return record_from_fields(fields_of(root), tz=tz, directions=directions, source=path)


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
            parent = parents.get(head)
            if parent is None:
                parent = parents[head] = etree.SubElement(element, head)
        etree.SubElement(parent, leaf).text = str(value)
    return element


# The table builders live in recstats.table (which imports this module); they are
# re-exported here on first use, so ``cdr.coerce_calls`` keeps working without an
# import cycle.
_TABLE_NAMES = frozenset({"calls_frame", "calls_from_fields", "coerce_calls", "empty_calls"})


def __getattr__(name: str):
    if name in _TABLE_NAMES:
        from . import table

        return getattr(table, name)
    raise AttributeError(f"module 'recstats.cdr' has no attribute {name!r}")
