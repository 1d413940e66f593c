"""The calls table: its schema and dtypes, and building it from many CDRs at once.

:mod:`recstats.cdr` reads one document into a record; this module turns records
(:func:`calls_frame`) or many documents' raw field strings (:func:`calls_from_fields`,
one vectorised pass, used by the archive reader) into the calls table (see the README),
with the same values either way. :func:`coerce_calls`
gives any frame the schema. ``recstats.cdr`` re-exports these names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.typing import NaTType

from ._extras import DEFAULT_MAX_COLUMNS, EXTRAS, fold_rare_fields
from ._schema import (
    ARCHIVE_COLUMNS,
    BOOLEAN_FIELDS,
    CALL_COLUMNS,
    CATEGORY_COLUMNS,
    ENUMS,
    RENAMES,
    SHADOWED,
    TIME_DTYPE,
    TIME_FIELDS,
)
from ._time import TIME_TEXT
from ._xml import MAX_FIELDS, too_many_fields
from .cdr import (
    COMPUTED_COLUMNS,
    END_OF_CALENDAR_US,
    MAX_STATED_SECONDS,
    choose_readings,
    decode_enum,
    later_reading,
    parse_bool,
)

__all__ = ["calls_frame", "calls_from_fields", "calls_from_raw", "coerce_calls",
           "empty_calls"]


def _ordered_columns(columns: Iterable[str]) -> list[str]:
    present = set(columns)
    fixed = list(CALL_COLUMNS)
    if "end_unknown" in present:  # DESIGN's order: right after end_time
        fixed.insert(fixed.index("end_time") + 1, "end_unknown")
    tail = [c for c in ARCHIVE_COLUMNS if c in present]
    extras = sorted(present - set(fixed) - set(ARCHIVE_COLUMNS))
    return fixed + tail + extras


def empty_calls() -> pd.DataFrame:
    """An empty calls table with the schema's columns and dtypes.

    >>> empty_calls().dtypes["start_time"]
    datetime64[us, UTC]
    """
    return coerce_calls(pd.DataFrame({c: [] for c in CALL_COLUMNS}))


# a label column without any value: object categories, whatever the input dtype, so it
# reads back from Parquet as the same dtype (an empty float/str dictionary does not)
_NO_CATEGORIES = pd.CategoricalDtype(pd.Index([], dtype=object))


def coerce_calls(frame: pd.DataFrame) -> pd.DataFrame:
    """Give a frame the calls-table schema: column order, dtypes, missing fixed columns.

    Times become ``datetime64[us, UTC]``, ``duration`` float64, labels ``category``,
    documented booleans nullable ``boolean``, everything else ``str``; ``attrs`` (the
    window, gaps, parse errors) are kept.

    Parameters
    ----------
    frame : DataFrame
        Any frame with calls-table columns (others are kept as text).

    Returns
    -------
    DataFrame
        A new frame with the schema; the input is not modified.

    Examples
    --------
    >>> calls = coerce_calls(pd.DataFrame({"call_id": ["a"], "site": ["NY"]}))
    >>> str(calls["site"].dtype), len(calls.columns) == len(CALL_COLUMNS)
    ('category', True)
    """
    out = {}
    n = len(frame)
    for column in _ordered_columns(frame.columns):
        values = frame[column] if column in frame.columns else pd.Series([None] * n,
                                                                          index=frame.index)
        if column in TIME_FIELDS:
            values = pd.to_datetime(values, utc=True).dt.as_unit("us")
        elif column == "duration":
            values = pd.to_numeric(values, errors="coerce").astype("float64")
        elif column in CATEGORY_COLUMNS:
            # categories from the values as text: none unused, even for a categorical input
            values = values.astype("str").astype("category") if values.notna().any() \
                else values.astype(_NO_CATEGORIES)
        elif column in BOOLEAN_FIELDS:
            values = values.astype("boolean")
        elif column == "end_unknown":  # missing (a table without the flag): known
            values = values.astype("boolean").fillna(False).astype(bool)
        else:
            values = values.astype("str")
        out[column] = values
    result = pd.DataFrame(out, index=frame.index)
    result.attrs = frame.attrs  # the window, gaps and parse errors stay with the calls
    return result


def calls_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Records (from :func:`read_cdr` / :func:`record_from_fields`) -> a calls table.

    Parameters
    ----------
    records : iterable of Mapping[str, Any]
        One record per call, keyed by calls-table column names.

    Returns
    -------
    DataFrame
        The calls table (:func:`coerce_calls`' schema), index 0..n-1.

    Examples
    --------
    >>> from recstats.cdr import read_cdr
    >>> calls_frame([read_cdr(b"<verbacdr><id>a</id></verbacdr>")]).call_id.tolist()
    ['a']
    """
    records = list(records)
    if not records:
        return empty_calls()
    return coerce_calls(pd.DataFrame.from_records(records)).reset_index(drop=True)


#: A time as CDRs usually write it: date, time to the second or microsecond, no zone.
_PLAIN_TIME = r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d{1,6})?$"


def _plain_times(raw: pd.Series) -> pd.Series | None:
    """``raw`` as naive times (``datetime64[us]``) when every text is a plain one (see
    :data:`_PLAIN_TIME`), else None.

    Arrow's ISO 8601 cast reads these several times faster than the general path of
    :func:`_times_to_utc`, with the same values; it refuses the whole column for one
    impossible time (February 30th, 24:00, a 60th second), which then takes the
    general path and is marked bad there.
    """
    try:
        texts = pa.array(raw, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)) \
            or texts.null_count == len(texts) \
            or not pc.all(pc.match_substring_regex(texts, _PLAIN_TIME)).as_py():
        return None
    try:
        times = texts.cast(pa.timestamp("us"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return pd.Series(times.to_numpy(zero_copy_only=False), index=raw.index)


def _times_to_utc(raw: pd.Series, tz: str
                  ) -> tuple[pd.Series, pd.Series, dict[int, pd.Timestamp]]:
    """Vectorised :func:`parse_time`: returns (UTC times, mask of unparseable texts,
    {position: second reading} for the times that happen twice, see
    :func:`recstats.cdr.later_reading`)."""
    naive = _plain_times(raw)
    has_zone = None
    text = raw
    if naive is None:
        text = raw.astype("str").str.strip()
        text = text.where(text.str.fullmatch(TIME_TEXT, na=False))  # else NaN, so bad
        has_zone = text.str.contains(r"(?:[zZ]|[+-]\d\d:?\d\d)$", regex=True, na=False)
        naive = pd.to_datetime(text.where(~has_zone), format="ISO8601", errors="coerce")
    twice: Iterable[int] = ()
    if tz in ("UTC", "utc", None):
        times = naive.dt.tz_localize("UTC")
    else:
        try:
            times = naive.dt.tz_localize(tz, ambiguous=np.ones(len(naive), dtype=bool),
                                         nonexistent="shift_forward").dt.tz_convert("UTC")
            probe = naive.dt.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
            twice = np.flatnonzero((probe.isna() & naive.notna()).to_numpy())
        except (NotImplementedError, OverflowError):
            # a time at the end of the range (year 9999 west of UTC): pandas refuses the
            # whole column, so localise one by one and let the failing ones be NaT (bad)
            times = pd.Series([_localize_or_nat(v, tz) for v in naive], index=naive.index,
                              dtype=TIME_DTYPE)
            twice = np.flatnonzero(naive.notna().to_numpy())
    times = times.dt.as_unit("us")
    later = {}
    for pos in twice:  # few: the repeated hour of one night a year
        first = times.iat[pos]
        assert isinstance(first, (pd.Timestamp, NaTType)), "an element of a time column"
        second = later_reading(str(text.iat[pos]), tz, first)
        if second is not None:
            later[int(pos)] = second
    if has_zone is not None and has_zone.any():
        zoned = pd.to_datetime(text[has_zone].str.replace(r"[zZ]$", "+00:00", regex=True),
                               format="ISO8601", utc=True, errors="coerce")
        times = times.copy()
        times[has_zone] = zoned.dt.as_unit("us")
    bad = raw.notna() & times.isna()
    return times, bad, later


def _localize_or_nat(moment: pd.Timestamp | NaTType, tz: str) -> pd.Timestamp | NaTType:
    if isinstance(moment, NaTType):
        return pd.NaT
    try:
        return moment.tz_localize(tz, ambiguous=True,
                                  nonexistent="shift_forward").tz_convert("UTC")
    except (NotImplementedError, OverflowError, ValueError):
        return pd.NaT


def _elapsed_seconds(start: pd.Series, end: pd.Series) -> pd.Series:
    """end - start in seconds, as integer microseconds / 1e6: correctly rounded, so it
    equals the per-record path (pandas' total_seconds multiplies by 1e-6 and gives
    31.951999999999998 for 31.952 s)."""
    start_us = start.to_numpy(dtype="datetime64[us]").view("int64")
    end_us = end.to_numpy(dtype="datetime64[us]").view("int64")
    seconds = (end_us - start_us) / 1e6
    missing = start.isna().to_numpy() | end.isna().to_numpy()
    return pd.Series(np.where(missing, np.nan, seconds), index=start.index)


def calls_from_fields(rows: list[Mapping[str, str]], tz: str = "UTC",
                      directions: Mapping[str, str] | None = None, *,
                      finished: bool = False, max_columns: int = DEFAULT_MAX_COLUMNS
                      ) -> tuple[pd.DataFrame, dict[int, str]]:
    """Many documents' raw fields (:func:`fields_of`) -> a calls table, vectorised.

    Values equal :func:`recstats.cdr.record_from_fields`'s (and its end rules: an end
    from ``duration``, the repeated autumn hour) as long as the documents hold at most
    ``max_columns`` distinct undocumented field names.

    Parameters
    ----------
    rows : list of Mapping[str, str]
        One field dict per document.
    tz : str, default "UTC"
        The sites' time zone (CDR times are its wall-clock time).
    directions : Mapping[str, str], optional
        Overrides the ``direction_id`` table.
    finished : bool, default False
        The rows are finished calls (CDR files): the table gains the boolean column
        ``end_unknown`` after ``end_time``, True where neither ``end_time`` nor a usable
        ``duration`` gives the end.
    max_columns : int, default :data:`DEFAULT_MAX_COLUMNS`
        Distinct undocumented field names kept as columns of their own: the first by
        name. The other fields of a row go into one ``extras`` column, JSON text of
        ``{name: value}`` sorted by name (a field named ``extras`` always does). Work is
        linear in the number of fields, whatever their names.

    Returns
    -------
    calls : DataFrame
        The calls table of the valid documents, in input order; its index is their
        position in ``rows``.
    rejected : dict[int, str]
        Position in ``rows`` -> reason, for each document that is not a valid CDR (no
        id, a time that is not a time).

    Examples
    --------
    >>> calls, rejected = calls_from_fields([{"id": "a", "location": "NY"},
    ...                                      {"start_time": "2026-11-02 09:00:00"}])
    >>> calls["site"].tolist(), rejected
    (['NY'], {1: 'not a CDR: no id or ccdr_id field'})
    >>> calls, _ = calls_from_fields([{"id": "a", "x1": "1", "x2": "2"}], max_columns=1)
    >>> calls["x1"].tolist(), calls["extras"].tolist()
    (['1'], ['{"x2": "2"}'])
    """
    if max_columns < 0:
        raise ValueError(f"max_columns must be 0 or more, not {max_columns!r}")
    if not rows:
        return empty_calls(), {}
    wide = {pos: too_many_fields(len(row)) for pos, row in enumerate(rows) if len(row) > MAX_FIELDS}
    if wide:  # their fields never become columns: an empty row, rejected for no id
        rows = [{} if pos in wide else row for pos, row in enumerate(rows)]
    rows, extras = fold_rare_fields(rows, max_columns)
    raw = pd.DataFrame.from_records(rows)
    if len(raw) < len(rows):  # all empty ({} from <cdr/>): from_records gives no rows
        raw = pd.DataFrame(index=range(len(rows)))
    return calls_from_raw(raw, tz=tz, directions=directions, wide=wide, finished=finished,
                          extras=extras)


def calls_from_raw(raw: pd.DataFrame, tz: str = "UTC",
                   directions: Mapping[str, str] | None = None,
                   wide: Mapping[int, str] | None = None, *, coerce: bool = True,
                   finished: bool = False, extras: list[str | None] | None = None
                   ) -> tuple[pd.DataFrame, dict[int, str]]:
    """:func:`calls_from_fields` from a frame of raw field texts.

    ``raw`` has one row per document (index ``0..n-1``) and one ``str`` column per
    field name, NaN where a document lacks the field; ``wide`` maps positions already
    refused to their reason. Builders that extract fields into columns directly (the
    archive reader's fast path) skip the per-document dicts this way. ``coerce=False``
    leaves the columns as built, for a caller that gives the gathered table the schema
    once (:func:`coerce_calls`). ``finished`` is :func:`calls_from_fields`' and
    ``extras`` the rows' folded fields as JSON text (see :func:`calls_from_fields`).

    >>> raw = pd.DataFrame({"id": ["a", None]}, dtype="str")
    >>> calls_from_raw(raw)[1]
    {1: 'not a CDR: no id or ccdr_id field'}
    """
    wide = wide or {}
    rejected: dict[int, str] = {}
    n = len(raw)

    def column(name: str) -> pd.Series:
        return raw[name] if name in raw.columns else pd.Series([None] * n, dtype="object")

    call_id = column("id").fillna(column("ccdr_id")) if "ccdr_id" in raw.columns \
        else column("id")
    for pos in np.flatnonzero(call_id.isna().to_numpy()).tolist():
        rejected[pos] = "not a CDR: no id or ccdr_id field"
    rejected.update(wide)  # the reason record_from_fields gives
    out: dict[str, pd.Series] = {"call_id": call_id}
    later: dict[str, dict[int, pd.Timestamp]] = {}
    for name in TIME_FIELDS:
        if name in raw.columns:
            times, bad, later[name] = _times_to_utc(raw[name], tz)
            for pos in np.flatnonzero(bad.to_numpy()).tolist():
                rejected.setdefault(pos, f"{name} {raw[name].iat[pos]!r} is not a time")
            out[name] = times
        else:
            out[name] = pd.Series(pd.NaT, index=raw.index, dtype=TIME_DTYPE)
            later[name] = {}
    stated = pd.to_numeric(column("duration"), errors="coerce").astype("float64")
    out["start_time"], out["end_time"] = _resolve_ends(out["start_time"], out["end_time"],
                                                       stated, later)
    elapsed = _elapsed_seconds(out["start_time"], out["end_time"])
    out["duration"] = elapsed.where(elapsed.notna(), stated)
    if finished:
        out["end_unknown"] = out["end_time"].isna()
    for name in raw.columns:
        if name in ("id", "duration") or name in TIME_FIELDS or name in COMPUTED_COLUMNS:
            continue
        if name == EXTRAS and extras is not None:
            continue
        if name == "ccdr_id":
            # only documents with both ids keep ccdr_id, as in record_from_fields
            if "id" in raw.columns and (raw["ccdr_id"].notna() & raw["id"].notna()).any():
                out["ccdr_id"] = raw["ccdr_id"].where(raw["id"].notna())
            continue
        if name in BOOLEAN_FIELDS:
            flags = {text: parse_bool(text) for text in raw[name].dropna().unique()}
            out[name] = raw[name].map(flags)
        elif name not in SHADOWED:
            out[RENAMES.get(name, name)] = raw[name]
    for name in SHADOWED.intersection(raw.columns):  # as in record_from_fields
        out[name] = raw[name] if name not in out else out[name].where(out[name].notna(),
                                                                          raw[name])
    for raw_name, (target, known) in ENUMS.items():
        table: Mapping[str, str] = known
        if raw_name == "direction_id" and directions is not None:
            table = directions
        codes = out.get(raw_name)
        if codes is not None:
            # decode each distinct code once: a batch holds few distinct codes
            names = {code: decode_enum(code, table) for code in codes.dropna().unique()}
            decoded = codes.map(names)
            out[target] = decoded if target not in out else decoded.where(codes.notna(),
                                                                          out[target])
    if extras is not None:
        out[EXTRAS] = pd.Series(extras, index=raw.index, dtype="object")
    frame = pd.DataFrame(out, index=raw.index)
    if rejected:
        frame = frame.drop(index=sorted(rejected))
        # fields only rejected documents had are not columns of the result
        kept = raw.drop(index=sorted(rejected))
        present = kept.notna()
        if "ccdr_id" in kept.columns:  # a column only where a document has both ids
            present["ccdr_id"] &= present["id"] if "id" in kept.columns else False
        only_rejected = {c if c == "ccdr_id" else RENAMES.get(c, c)
                         for c in kept.columns if not present[c].any()}
        only_rejected.discard("end_unknown")
        if EXTRAS in frame.columns and frame[EXTRAS].isna().all():
            only_rejected.add(EXTRAS)
        frame = frame.drop(columns=[c for c in only_rejected
                                    if c in frame.columns and c not in CALL_COLUMNS])
    return (coerce_calls(frame) if coerce else frame), rejected


def _resolve_ends(start: pd.Series, end: pd.Series, stated: pd.Series,
                  later: Mapping[str, Mapping[int, pd.Timestamp]]
                  ) -> tuple[pd.Series, pd.Series]:
    """The end rules of :func:`recstats.cdr.record_from_fields`, vectorised: readings
    across a repeated hour (:func:`recstats.cdr.choose_readings`, for those few rows),
    then ``end = start + duration`` where the end is missing
    (:func:`recstats.cdr.end_from_duration`)."""
    later_start, later_end = later["start_time"], later["end_time"]
    seconds = stated.to_numpy()
    if later_start or later_end:
        start, end = start.copy(), end.copy()
        for pos in sorted(set(later_start) | set(later_end)):
            first_start, first_end = start.iat[pos], end.iat[pos]
            if first_start is pd.NaT or first_end is pd.NaT:
                continue
            starts = (first_start, *((later_start[pos],) if pos in later_start else ()))
            ends = (first_end, *((later_end[pos],) if pos in later_end else ()))
            start.iat[pos], end.iat[pos] = choose_readings(starts, ends, float(seconds[pos]))
    with np.errstate(invalid="ignore"):
        usable = (end.isna() & start.notna()).to_numpy() & (seconds >= 0) \
            & (seconds <= MAX_STATED_SECONDS)
    if not usable.any():
        return start, end
    start_us = start.to_numpy(dtype="datetime64[us]").view("int64")
    end_us = np.zeros(len(start_us), dtype=np.int64)
    # np.round and Python's round both round half to even: the per-record path's value
    end_us[usable] = start_us[usable] + np.round(seconds[usable] * 1e6).astype(np.int64)
    usable &= end_us < END_OF_CALENDAR_US
    end_values = end.to_numpy(dtype="datetime64[us]")
    end_values[usable] = end_us[usable].astype("datetime64[us]")
    return start, pd.Series(end_values, index=end.index).dt.tz_localize("UTC")
