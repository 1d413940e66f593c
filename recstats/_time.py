"""Time handling, once: CDR wall-clock text -> UTC, zone checks, UTC conversion and
the microsecond integers the columnar code works in.

CDR times carry no zone (it is a site setting): :func:`parse_time` reads them as
wall-clock time in a zone and returns UTC. Every timestamp recstats returns is
tz-aware UTC (``datetime64[us, UTC]`` in tables).
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
from pandas.api.typing import NaTType

_UTC = _dt.UTC


def parse_time(raw: str | None, tz: str = "UTC") -> pd.Timestamp | NaTType:
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
TIME_TEXT = (r"(?:\d{4}-\d\d-\d\d|\d{8})"
              r"(?:[T ](?:\d\d(?::\d\d(?::\d\d(?:\.\d+)?)?)?|\d{4}(?:\d\d(?:\.\d+)?)?)"
              r"(?:[zZ]|[+-]\d\d:?\d\d)?)?")
_time_text = re.compile(TIME_TEXT)


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
        if offset is not None and offset == moment.replace(tzinfo=zone, fold=1).utcoffset():
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


def to_micros(moment: Any) -> int:
    """A moment (Timestamp, datetime, text; naive means UTC) -> microseconds since the
    Unix epoch, the integer the columnar buffers and the journal store.

    >>> to_micros("1970-01-01 00:00:01.5")
    1500000
    """
    return int(as_utc(moment).as_unit("us").asm8.view("int64"))
