"""Live tables: raw call fields as they arrive, typed and folded into calls on demand.

The protocol hands raw wire fields (``{source name: text}``). :class:`Tables` queues
each event as it came (no typing, no DataFrame work while receiving); a snapshot types
the events that arrived since the previous one, once each
(:func:`recstats.cdr.record_from_fields` with the capture's zone), and appends them to
the typed columnar buffers of :mod:`recstats._typed_tables`, which fold them into calls (a
call's later fields win over its earlier ones, missing ones keep the earlier values; a
call whose fields name no site gets its server's name). That folding is the only one:
:class:`recstats.Capture` and :meth:`recstats.RecorderClient.ongoing_calls` both use
:class:`Tables`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd

from ._schema import TIME_FIELDS
from ._time import TIME_TEXT
from ._typed_tables import TypedTables
from .cdr import record_from_fields
from .errors import CDRParseError

__all__ = ["Tables", "bad_time", "call_id_of"]

_time_text = re.compile(TIME_TEXT)
_ZULU = re.compile(r"[zZ]$")


def call_id_of(fields: Mapping[str, str]) -> str:
    """The call id of raw fields (``id``, else ``ccdr_id``), as the CDR reader reads it."""
    return fields.get("id") or fields["ccdr_id"]


def bad_time(fields: Mapping[str, str]) -> str | None:
    """Why a time field of ``fields`` is not a time (``None`` when all are).

    Checked once per event when it arrives (C-speed ``datetime.fromisoformat``), so the
    vectorised conversion at snapshot time never has to drop a row.
    """
    for name in TIME_FIELDS:
        text = fields.get(name)
        if text is None:
            continue
        if _time_text.fullmatch(text) is None:
            return f"{name} {text!r} is not a time"
        try:
            datetime.fromisoformat(_ZULU.sub("+00:00", text))
        except ValueError:
            return f"{name} {text!r} is not a time"
    return None


class Tables:
    """The events and calls of a capture: raw events queued as they arrive, typed
    tables built when asked for. Thread-safe."""

    def __init__(self, tz: str = "UTC"):
        self.lock = threading.Lock()
        self.tz = tz
        self.counts: dict[str, int] = {}
        self._queued: list[tuple] = []  # raw events and flags not typed yet, in order
        self._sites: dict[tuple[str, str], str] = {}
        self._typed = TypedTables()
        self._typing = threading.Lock()  # one snapshot types the queue at a time

    def add(self, t: int, server: str, event: str, origin: str,
            fields: Mapping[str, str]) -> str:
        """Queue one event (raw fields, ``t`` in UTC microseconds); return its site:
        the call's as known so far, else the server."""
        key = (server, call_id_of(fields))
        with self.lock:
            site = fields.get("location") or self._sites.get(key) or server
            self._sites[key] = site
            self._queued.append((t, server, event, origin, fields))
            self.counts[server] = self.counts.get(server, 0) + 1
        return site

    def end_unknown(self, server: str, call_id: str, unknown: bool = True) -> None:
        """Flag (or clear) a call whose end could not be learnt."""
        with self.lock:
            self._queued.append((None, server, call_id, unknown))

    def _catch_up(self) -> None:
        """Type what arrived since the last snapshot, in arrival order."""
        with self._typing:
            with self.lock:
                queued, self._queued = self._queued, []
            typed, tz = self._typed, self.tz
            for item in queued:
                if item[0] is None:
                    typed.end_unknown(*item[1:])
                    continue
                t, server, event, origin, fields = item
                typed.add(t, server, event, origin, _record(fields, tz))

    def events_frame(self) -> pd.DataFrame:
        """The events table in receive order (ties: by server, then arrival)."""
        self._catch_up()
        return self._typed.events_frame()

    def calls_frame(self, with_seq: bool = False) -> pd.DataFrame:
        """The calls table by start time (unknown starts last; ties: by server, then
        first seen), with ``server`` and ``end_unknown`` last (``with_seq``: and the
        first-seen numbers, see :meth:`TypedTables.calls_frame`)."""
        self._catch_up()
        return self._typed.calls_frame(with_seq)

    def take_old(self, before: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Type what is queued, then take out the events received and the calls ended
        before ``before`` [UTC us] (see :meth:`TypedTables.take_old`)."""
        self._catch_up()
        events, calls, keys = self._typed.take_old(before)
        with self.lock:
            for key in keys:
                self._sites.pop(key, None)
        return events, calls


def _record(fields: Mapping[str, str], tz: str) -> dict[str, Any]:
    try:
        return record_from_fields(fields, tz=tz)
    except CDRParseError:
        # times passed bad_time() on arrival but not the zone (e.g. year 9999 west of
        # UTC): the call is kept, without them
        return record_from_fields({k: v for k, v in fields.items() if k not in TIME_FIELDS},
                                  tz=tz)
