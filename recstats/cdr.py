"""The CDR field vocabulary and reading one CDR document into a flat record.

A recording server stores one CDR (call detail record) XML file beside every media
file, and its API describes calls with the same field names. This module knows those
names, the enum tables, the time format and the calls-table columns; it knows nothing of
where a document came from (file, archive member or network message).

Two paths share the vocabulary:

* per record (:func:`read_cdr`, :func:`record_from_fields`): one document -> one dict,
  used for single files and for every call carried by a protocol message;
* per batch (:func:`recstats._table.calls_from_fields`): many documents' raw field
  strings -> a calls table in one vectorised pass, used by the archive reader.

:func:`recstats._table.calls_frame` turns records into the same table; both paths give
equal frames.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
import stat
from collections.abc import Mapping, Sequence
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from lxml import etree
from pandas.api.typing import NaTType

from ._schema import (
    BOOLEAN_FIELDS,
    CALL_COLUMNS,
    ENUMS,
    FALSE_TEXTS,
    RENAMES,
    SHADOWED,
    TIME_FIELDS,
    TRUE_TEXTS,
)
from ._time import check_tz, parse_time
from ._xml import MAX_DOCUMENT_BYTES, MAX_FIELDS, fields_of, parse_document, too_many_fields
from .errors import CDRParseError

__all__ = ["decode_enum", "parse_bool", "read_cdr", "record_from_fields"]

#: Columns recstats computes: a CDR field of that name is ignored (it would pass for
#: the computed value).
COMPUTED_COLUMNS = ("end_unknown",)


def decode_enum(raw: str | None, table: Mapping[str, str]) -> str | None:
    """Decode a raw enum code with ``table``.

    Unknown numeric codes become ``"Unknown (N)"``; a non-numeric value is taken as an
    already-decoded name (newer servers write names such as ``PSTN In``).

    >>> from recstats._schema import CAUSES
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
    if low in TRUE_TEXTS:
        return True
    if low in FALSE_TEXTS:
        return False
    return None


def _parse_float(raw: str | None) -> float:
    if raw is None or "_" in raw or not raw.isascii():  # float() reads "1_000" and "١٢",
        return float("nan")                            # pd.to_numeric (batch) does not
    try:
        return float(raw)
    except ValueError:
        return float("nan")


# --------------------------------------------------------------------------- call ends
# The end rules, shared by the per-record path below and recstats._table's vectorised
# path (which calls these for the few rows they concern), so both give the same values.

_OWN_OFFSET = re.compile(r"(?:[zZ]|[+-]\d\d:?\d\d)$")
#: 10000-01-01 00:00 UTC in microseconds: an end derived from a duration must fall
#: before it (the calendar the time texts can write).
END_OF_CALENDAR_US = 253_402_300_800_000_000
#: A stated duration longer than this [s] (about 31 700 years) gives no end.
MAX_STATED_SECONDS = 1e12


def later_reading(raw: str, tz: str, first: pd.Timestamp | NaTType
                  ) -> pd.Timestamp | None:
    """The second UTC reading of a wall-clock time that happens twice, else None.

    ``first`` is the reading :func:`recstats._time.parse_time` gave (the first
    occurrence, still in daylight time). A time with its own offset, in UTC, or in a
    zone where it happens once has no second reading.

    >>> first = pd.Timestamp("2026-10-25 00:05", tz="UTC")
    >>> later_reading("2026-10-25 02:05:00", "Europe/Budapest", first)
    Timestamp('2026-10-25 01:05:00+0000', tz='UTC')
    >>> later_reading("2026-10-25 04:05:00", "Europe/Budapest", first) is None
    True
    """
    if tz in ("UTC", "utc") or isinstance(first, NaTType):
        return None
    text = raw.strip()
    if _OWN_OFFSET.search(text):
        return None
    try:
        moment = _dt.datetime.fromisoformat(text)
        zone = ZoneInfo(tz)
        if moment.replace(tzinfo=zone).utcoffset() == \
                moment.replace(tzinfo=zone, fold=1).utcoffset():
            return None  # the usual case: one reading
        second = pd.Timestamp(moment).tz_localize(tz, ambiguous=False,
                                                  nonexistent="shift_forward")
        second = second.tz_convert("UTC").as_unit("us")
    except (ValueError, OverflowError, NotImplementedError, KeyError):
        return None
    return None if second == first else second


def choose_readings(starts: Sequence[pd.Timestamp], ends: Sequence[pd.Timestamp],
                    stated: float | None) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Pick the start and end readings of a call across a repeated (autumn) hour.

    ``starts`` and ``ends`` are the candidate UTC readings, first occurrence first
    (one candidate when the time happens once). With a stated duration [s] the pair
    whose end - start is closest to it wins; without one the start keeps its first
    reading and the end takes the first reading not before it. Ties keep the earlier
    candidates.

    Europe/Budapest, 2026-10-25: 02:55 -> 02:05 with ``duration`` 600 s. 02:55 is
    00:55 or 01:55 UTC, 02:05 is 00:05 or 01:05 UTC; 00:55 -> 01:05 is 600 s:

    >>> t = lambda hm: pd.Timestamp(f"2026-10-25 {hm}", tz="UTC")
    >>> choose_readings([t("00:55"), t("01:55")], [t("00:05"), t("01:05")], 600.0)
    (Timestamp('2026-10-25 00:55:00+0000', tz='UTC'), Timestamp('2026-10-25 01:05:00+0000', tz='UTC'))
    """
    if stated is not None and math.isfinite(stated):
        best, best_error = (starts[0], ends[0]), math.inf
        for start in starts:
            for end in ends:
                error = abs(_micros(end) - _micros(start) - stated * 1e6)
                if error < best_error:
                    best, best_error = (start, end), error
        return best
    start = starts[0]
    for end in ends:
        if end >= start:
            return start, end
    return start, ends[0]


def _micros(moment: pd.Timestamp) -> int:
    return int(moment.as_unit("us").asm8.view("int64"))


def end_from_duration(start: pd.Timestamp | NaTType, stated: float | None
                      ) -> pd.Timestamp | NaTType:
    """``start + stated`` seconds, to the microsecond, or NaT when that is no end.

    NaT when the start is unknown, the duration missing, negative, not finite, over
    :data:`MAX_STATED_SECONDS`, or the end would fall after year 9999.

    >>> end_from_duration(pd.Timestamp("2026-11-02 09:00", tz="UTC"), 90.5)
    Timestamp('2026-11-02 09:01:30.500000+0000', tz='UTC')
    >>> end_from_duration(pd.Timestamp("2026-11-02 09:00", tz="UTC"), -1.0)
    NaT
    """
    if isinstance(start, NaTType) or stated is None or not 0 <= stated <= MAX_STATED_SECONDS:
        return pd.NaT  # also NaN: every comparison with it is False
    end_us = _micros(start) + round(stated * 1e6)
    if end_us >= END_OF_CALENDAR_US:
        return pd.NaT
    return pd.Timestamp(np.datetime64(end_us, "us")).tz_localize("UTC")


# --------------------------------------------------------------------------- records


def record_from_fields(fields: Mapping[str, str], *, tz: str = "UTC",
                       directions: Mapping[str, str] | None = None,
                       source: str | None = None, finished: bool = False
                       ) -> dict[str, Any]:
    """Raw fields (:func:`fields_of`) -> a record keyed by calls-table column names.

    Every column of :data:`CALL_COLUMNS` is present (``None``/``NaT``/``nan`` when the
    document lacks it); every other field is kept under its own name, as text, except
    the documented booleans, which become ``True``/``False``. A field named like a
    column that a documented field fills (``site``, ``call_id``, ``caller``, ...) only
    fills it when that field is absent; a field named ``end_unknown`` is ignored.

    The end of the call (the rules :func:`recstats._table.calls_from_fields` shares):

    * no ``end_time`` but a start and a ``duration``: ``end_time = start_time +
      duration`` (see :func:`end_from_duration`);
    * a start or end in the hour that happens twice when clocks go back: the readings
      are chosen with the ``duration`` field, or, without one, so that the end is not
      before the start (see :func:`choose_readings`);
    * ``duration`` is then ``end_time - start_time``, or the stated one when a time is
      missing.

    Parameters
    ----------
    fields : Mapping[str, str]
        Field name -> text, as :func:`recstats._xml.fields_of` gives them.
    tz : str, default "UTC"
        The site's time zone: the times are its wall-clock time.
    directions : Mapping[str, str], optional
        Overrides the ``direction_id`` table.
    source : str, optional
        Names the document in error messages.
    finished : bool, default False
        The fields describe a finished call (a CDR file, not a live call's
        notification): the record gains ``end_unknown``, True when the end is not
        known (no ``end_time`` and no usable ``duration``).

    Returns
    -------
    dict
        The record; times are UTC Timestamps, ``duration`` in [s].

    Raises
    ------
    CDRParseError
        When the call has no id or a time is not a time.

    Examples
    --------
    >>> rec = record_from_fields({"id": "a", "cause_id": "6", "ondemand": "1"})
    >>> rec["call_id"], rec["cause"], rec["cause_id"], rec["ondemand"], rec["start_time"]
    ('a', 'Busy', '6', True, NaT)
    >>> rec = record_from_fields({"id": "b", "start_time": "2026-11-02 09:00:00",
    ...                           "duration": "90"}, finished=True)
    >>> rec["end_time"], rec["end_unknown"]
    (Timestamp('2026-11-02 09:01:30+0000', tz='UTC'), False)
    """
    if len(fields) > MAX_FIELDS:
        raise CDRParseError(too_many_fields(len(fields)), source)
    call_id = fields.get("id") or fields.get("ccdr_id")
    if not call_id:
        raise CDRParseError("not a CDR: no id or ccdr_id field", source)
    record: dict[str, Any] = _RECORD_TEMPLATE.copy()
    record["call_id"] = call_id
    how_of = _FIELD_HOW  # one lookup per field: the live path decodes every call with this
    shadows: list[tuple[str, str]] = []
    texts: dict[str, str] = {}  # the time fields' own texts
    for name, value in fields.items():
        how = how_of.get(name)
        if how is None:
            record[name] = value
        elif how.__class__ is str:
            record[how] = value
        elif how == _TIME:
            texts[name] = value
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
        elif how == _COMPUTED:
            pass
        else:
            record["duration"] = _parse_float(value)
    for name, value in shadows:  # e.g. <site>: only where <location> gave no value
        if record[name] is None:
            record[name] = value
    for raw_name, (column, known) in ENUMS.items():
        raw = record[raw_name]
        if raw is not None:  # else a same-named field stays, as in the batch path
            table: Mapping[str, str] = known
            if raw_name == "direction_id" and directions is not None:
                table = directions
            decoded = table.get(raw)
            record[column] = decoded if decoded is not None else decode_enum(raw, table)
    start, end = record["start_time"], record["end_time"]
    if start is None:
        record["start_time"] = start = pd.NaT
    if end is None:
        record["end_time"] = end = pd.NaT
    stated = record["duration"]
    if start is not pd.NaT and end is not pd.NaT and tz not in ("UTC", "utc"):
        later_start = later_reading(texts["start_time"], tz, start)
        later_end = later_reading(texts["end_time"], tz, end)
        if later_start is not None or later_end is not None:
            starts = (start,) if later_start is None else (start, later_start)
            ends = (end,) if later_end is None else (end, later_end)
            start, end = choose_readings(starts, ends, stated)
            record["start_time"], record["end_time"] = start, end
    elif end is pd.NaT and start is not pd.NaT:
        record["end_time"] = end = end_from_duration(start, stated)
    if finished:
        record["end_unknown"] = end is pd.NaT
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


# how record_from_fields treats a field: a str is the column it is renamed to
_ID, _TIME, _BOOL, _DURATION, _SHADOW, _COMPUTED = 0, 1, 2, 3, 4, 5
_FIELD_HOW: dict[str, Any] = {
    **dict.fromkeys(SHADOWED, _SHADOW), **dict.fromkeys(COMPUTED_COLUMNS, _COMPUTED),
    **RENAMES, "id": _ID, "ccdr_id": _ID, "duration": _DURATION,
    **dict.fromkeys(TIME_FIELDS, _TIME), **dict.fromkeys(BOOLEAN_FIELDS, _BOOL),
}
_RECORD_TEMPLATE = dict.fromkeys(CALL_COLUMNS)


def _open_nonblocking(path: str, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_NONBLOCK", 0))


def read_cdr(source: str | os.PathLike | bytes | etree._Element, *, tz: str = "UTC",
             directions: Mapping[str, str] | None = None,
             finished: bool = False) -> dict[str, Any]:
    """Read one CDR document into a flat record keyed by calls-table column names.

    Any root element name is accepted; fields may be child elements or attributes; the
    call id may be ``id`` or ``ccdr_id``; a UTF-8 byte-order mark is skipped. Renamed
    fields: ``location`` -> ``site``, ``source_caller_id`` -> ``caller``,
    ``destination_caller_id`` -> ``callee``, ``source_name``/``destination_name`` ->
    ``caller_name``/``callee_name``, ``modality_id`` -> ``modality``. ``direction_id``,
    ``cause_id`` and ``audio_codec_id`` are decoded into ``direction``, ``cause`` and
    ``audio_codec`` (raw codes kept). Nested elements are flattened as ``parent.child``.

    Times are site-local wall-clock time in ``tz``, returned as UTC timestamps (see
    :func:`recstats._time.parse_time` for daylight-saving rules). The end of the call:

    * a document without ``end_time`` but with a start and a ``duration`` ends at
      ``start_time + duration``;
    * a start or end in the hour that happens twice when clocks go back is read with
      the ``duration`` field: of the possible readings, the pair whose difference is
      closest to it; without a duration the end takes the first reading that is not
      before the start (Europe/Budapest, 2026-10-25 02:55 -> 02:05 with 600 s is
      00:55 -> 01:05 UTC, 10 minutes);
    * ``duration`` is then end - start [s], or the document's own ``duration`` when a
      time is missing.

    The XML parser never loads a DTD, never expands entities and never uses the network;
    a document declaring a DTD is refused.

    Parameters
    ----------
    source : str, os.PathLike, bytes or lxml element
        A file path, the document's bytes, or an already parsed element (or tree). XML
        text as a ``str`` is a ``TypeError`` (encode it).
    tz : str, default "UTC"
        The site's time zone (an IANA name): CDR times carry none.
    directions : Mapping[str, str], optional
        Overrides the ``direction_id`` table.
    finished : bool, default False
        The record gains ``end_unknown``: True when neither ``end_time`` nor a usable
        ``duration`` (a number of seconds >= 0) gives the end. A CDR file describes a
        finished call; the live path's records (a call still running) have no such key.

    Returns
    -------
    dict
        Every calls-table column (``None``/``NaT``/``nan`` when absent) and every other
        field under its own name.

    Raises
    ------
    CDRParseError
        For a document that cannot be read (unreadable, not XML, a DTD, no id, a time
        that is not a time, over the size or field limits).
    ValueError
        For an unknown ``tz``.

    Examples
    --------
    >>> rec = read_cdr(b'''<verbacdr><id>c1</id><location>NY</location>
    ...   <source_caller_id>1000</source_caller_id><cause_id>6</cause_id>
    ...   <start_time>2026-11-02 09:15:00</start_time>
    ...   <end_time>2026-11-02 09:16:30.500</end_time></verbacdr>''')
    >>> rec["call_id"], rec["site"], rec["caller"], rec["cause"], rec["duration"]
    ('c1', 'NY', '1000', 'Busy', 90.5)
    >>> rec = read_cdr(b'''<verbacdr><id>c2</id>
    ...   <start_time>2026-10-25 02:55:00</start_time><end_time>2026-10-25 02:05:00</end_time>
    ...   <duration>600</duration></verbacdr>''', tz="Europe/Budapest", finished=True)
    >>> str(rec["start_time"]), str(rec["end_time"]), rec["duration"], rec["end_unknown"]
    ('2026-10-25 00:55:00+00:00', '2026-10-25 01:05:00+00:00', 600.0, False)
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
    return record_from_fields(fields_of(root), tz=tz, directions=directions, source=path,
                              finished=finished)

