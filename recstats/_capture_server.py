"""What a :class:`recstats.Capture` knows about one server, and the one path every
received document takes, live or replayed.

Live, the capture's session reads bytes from its transport and hands them to
:meth:`ServerState.receive`; replay hands it each journaled document. Either way the
bytes go through this server's :class:`recstats.protocol.ClientConnection` (each
document decoded once; its ``on_document`` hook journals it) and every event through
:meth:`ServerState.handle`. The capture's own decisions (connect, each request sent,
disconnect) are journaled as marks and applied by :meth:`ServerState.apply` in both
cases, so the replayed tables equal the live ones by construction.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from . import protocol
from ._capture_gaps import ClockMap
from ._live import Tables, bad_time, call_id_of
from ._time import parse_time, to_micros

__all__ = ["JOURNAL_FORMAT", "ServerState"]

JOURNAL_FORMAT = "recstats-journal/1"
#: Notifications whose times are kept as the first samples of a server's clock.
_FIRST_SAMPLES = 32
#: The latest notifications of a session whose delay tells how far behind it ended.
_LAST_SAMPLES = 3
#: Seconds of our clock with a sample of a server's clock each (its rate is fitted on
#: them: ten minutes of history).
_SPREAD_SAMPLES = 600


def _now_us() -> int:
    return time.time_ns() // 1000


def _stamp(us: int | None) -> Any:  # a Timestamp, or NaT
    return pd.NaT if us is None else pd.Timestamp(us, unit="us", tz="UTC")


class ServerState:
    """One server's calls, connection state, status and journal."""

    def __init__(self, name: str, tables: Tables, tz: str = "UTC",
                 on_event: Callable[[str, dict], None] | None = None):
        self.name = name
        self.tables = tables
        self.tz = tz
        self.on_event = on_event
        self.conn: protocol.ClientConnection | None = None
        self.ongoing: dict[str, None] = {}  # ordered set: resync asks in a stable order
        #: ended calls -> receive time of the end [UTC us], in that order; those before
        #: ``forget_before`` are forgotten (their rows left memory)
        self.ended: dict[str, int] = {}
        self.forget_before: int | None = None
        self.lost: set[str] = set()  # ended while away, end unknown (until it arrives)
        self.vanished: list[str] = []
        self.details: dict[str, str] = {}  # detail request id -> call id
        self.journal: TextIO | None = None
        self.last_t = 0
        self.seen_t = 0  # the latest receive or decision time journaled [UTC us]
        self._t = 0  # receive time of the bytes being decoded
        self.connected = False
        self.state = "idle"
        self.since: int | None = None
        self.last_keepalive: int | None = None
        self.connects = 0
        self.unknown = 0
        self.last_error: str | None = None
        self.site: str | None = None
        #: (connect, disconnect) receive times [UTC us]; disconnect None while connected
        self.sessions: list[list[int | None]] = []
        #: per session: receive time of its ongoing list [UTC us], None until it came (a
        #: call in progress across a session without it could not be seen)
        self.resynced: list[int | None] = []
        #: per session: calls its ongoing list named that were not known before
        self.found: list[int] = []
        self.notified_starts = 0  # calls whose start was notified (seen as it happened)
        #: (receive time [UTC us], the server's time text) of the first and the recent
        #: notifications: far apart, they show how fast the server's clock runs
        self.first_clock_samples: list[tuple[int, str]] = []
        self.clock_samples: deque[tuple[int, str]] = deque(maxlen=64)
        #: the first notification of each second of ours, for the clock's rate
        self.spread_samples: deque[tuple[int, str]] = deque(maxlen=_SPREAD_SAMPLES)
        self._second = -1
        self._server_times: dict[str, int | None] = {}  # parsed sample texts
        #: the current session's latest samples (how far behind the capture was
        #: reading when the connection went: what was on its way was lost with it)
        self.recent: deque[tuple[int, str]] = deque(maxlen=_LAST_SAMPLES)
        #: per session: where its observation ended [UTC us], None while connected
        #: (see :meth:`observed`; set once, at the disconnection)
        self.observed_ends: list[int | None] = []

    # journal ------------------------------------------------------------------------

    def open_journal(self, folder: str | os.PathLike) -> None:
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        safe = "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in self.name)
        self.journal = open(path / f"{safe}.jsonl", "a", encoding="ascii")  # noqa: SIM115
        self._write({"format": JOURNAL_FORMAT, "server": self.name, "tz": self.tz})

    def _write(self, entry: dict) -> None:
        if self.journal is not None:
            try:
                # flushed per line: a dying process loses nothing it had received
                self.journal.write(json.dumps(entry, separators=(",", ":")) + "\n")
                self.journal.flush()
            except OSError as exc:  # e.g. a full disk: keep capturing, say so
                self.last_error = f"journal write failed: {exc}"

    def close_journal(self) -> None:
        if self.journal is not None:
            self.journal.close()
            self.journal = None

    def _journal_document(self, raw: bytes) -> None:
        self.seen_t = max(self.seen_t, self._t)
        if self.journal is not None:
            self._write({"t": self._t, "doc": base64.b64encode(raw).decode("ascii")})

    def time(self) -> int:
        """Now in UTC microseconds, never before the previous call's value."""
        t = max(_now_us(), self.last_t)
        self.last_t = t
        return t

    # the capture's decisions (journaled live, read back in a replay) --------------------

    def mark(self, what: str, **fields) -> Any:
        """Journal and apply one decision; returns what :meth:`apply` returns."""
        t = self.time()
        self.seen_t = t
        self._write({"t": t, "mark": what, **fields})
        return self.apply(t, what, fields)

    def apply(self, t: int, what: str, fields: Mapping[str, Any]) -> bytes | None:
        """Apply a decision; a ``request`` returns the bytes to send."""
        if what == "connect":
            self.conn = protocol.ClientConnection(on_document=self._journal_document)
            self.details.clear()
            self.connects += 1
            self.connected, self.since, self.state = True, t, "connected"
            self.sessions.append([t, None])
            self.resynced.append(None)
            self.found.append(0)
            self.observed_ends.append(None)
            self.recent.clear()
        elif what == "request" and self.conn is not None:
            return self._request(fields)
        elif what == "lost":  # journals of earlier versions decided this as a mark
            self._lose(fields["call_id"])
        elif what == "disconnect":
            self.connected, self.since = False, t
            if self.sessions and self.sessions[-1][1] is None:
                self.sessions[-1][1] = t
                connect = self.sessions[-1][0]
                assert connect is not None  # set when the session opened
                # stop() ends the window there: what was on its way is past it
                self.observed_ends[-1] = t if fields.get("stopped") else \
                    self._observed_end(connect, t)
            self.last_error = fields.get("reason") or self.last_error
            self.conn = None
        return None

    def _request(self, fields: Mapping[str, Any]) -> bytes:
        assert self.conn is not None  # requests are applied between connect and disconnect
        kind, extensions = fields.get("type"), fields.get("extensions") or ()
        event: protocol.SubscribeRequest | protocol.OngoingCallsRequest \
            | protocol.CallDetailRequest
        if kind == "subscribe":
            event = protocol.SubscribeRequest(None, tuple(extensions), fields.get("keepalive"))
        elif kind == "ongoing":
            event = protocol.OngoingCallsRequest(None, tuple(extensions))
        else:
            event = protocol.CallDetailRequest(None, fields["call_id"])
        request_id = self.conn.next_request_id
        data = self.conn.send(event)
        if kind == "detail":
            self.details[request_id] = fields["call_id"]
        return data

    # received bytes -> events -> tables --------------------------------------------------

    def receive(self, t: int, data: bytes, now: float) -> list:
        """Decode bytes received at ``t`` (UTC us; ``now`` monotonic s) and apply them."""
        if self.conn is None:  # a journal that starts without its connect mark
            self.conn = protocol.ClientConnection(on_document=self._journal_document)
        self._t = t
        events = self.conn.receive_data(data, now)
        for event in events:
            self.handle(t, event)
        return events

    def handle(self, t: int, event) -> None:
        if isinstance(event, protocol.CallStarted):
            self.start(t, event.fields, "notification")
        elif isinstance(event, protocol.CallEnded):
            self.end(t, event.fields, "notification")
        elif isinstance(event, protocol.OngoingCalls):
            if self.resynced and self.resynced[-1] is None:
                self.resynced[-1] = t
            listed = set()
            for fields in event.calls:
                if self.start(t, fields, "resync"):
                    listed.add(call_id_of(fields))
            self.vanished = [c for c in self.ongoing if c not in listed]
        elif isinstance(event, protocol.CallDetail):
            call_id = self.details.pop(event.request_id or "", None)
            if call_id is not None and call_id_of(event.fields) != call_id:
                self._unknown(f"the detail of call {call_id} named another call")
                self._lose(call_id)
            elif self.end(t, event.fields, "detail") and not event.fields.get("end_time"):
                # a detail without an end time (the CDR is not final): the end stays unknown
                self._lose(call_id_of(event.fields))
        elif isinstance(event, (protocol.KeepAlive, protocol.SubscribeAccepted)):
            self.last_keepalive = t
        elif isinstance(event, protocol.ErrorResponse):
            self.last_error = f"server answered code {event.code}: {event.description} " \
                              f"({event.detail})"
            if event.request_id in self.details:
                self._lose(self.details.pop(event.request_id))
        elif isinstance(event, protocol.UnknownMessage):
            self._unknown(f"message not understood: {event.reason}")
            if event.request_id in self.details:
                self._lose(self.details.pop(event.request_id))
        elif isinstance(event, protocol.ProtocolFailure):
            self.last_error = f"protocol error: {event.error}"

    def _unknown(self, reason: str) -> None:
        self.unknown += 1
        self.last_error = reason

    def start(self, t: int, fields: Mapping[str, str], origin: str) -> bool:
        """A call seen in progress; False when its fields cannot be read."""
        reason = bad_time(fields)
        if reason is not None:
            self._unknown(f"call not understood: {reason}")
            return False
        call_id = call_id_of(fields)
        if call_id in self.ongoing or call_id in self.ended or call_id in self.lost:
            return True  # seen already (e.g. both notified and listed around a resync)
        self.ongoing[call_id] = None
        if origin == "notification":
            self.notified_starts += 1
            if fields.get("start_time"):
                self._clock_sample(t, fields["start_time"])
        elif origin == "resync" and self.found:
            self.found[-1] += 1
        self._emit(t, "start", origin, fields)
        return True

    def end(self, t: int, fields: Mapping[str, str], origin: str) -> bool:
        """A call ended; False when it had already, or its fields cannot be read.

        A real end wins over an unknown one: a call marked lost takes it."""
        reason = bad_time(fields)
        if reason is not None:
            self._unknown(f"call not understood: {reason}")
            return False
        call_id = call_id_of(fields)
        if call_id in self.ended:
            return False
        self.ongoing.pop(call_id, None)
        self.ended[call_id] = t
        self._forget_old()
        if call_id in self.lost:
            self.lost.discard(call_id)
            self.tables.end_unknown(self.name, call_id, False)
        if origin == "notification" and fields.get("end_time"):
            self._clock_sample(t, fields["end_time"])
        self._emit(t, "end", origin, fields)
        return True

    def _forget_old(self) -> None:
        """Forget the ended calls whose rows left memory (the oldest first: ends are
        recorded in receive order). Only this server's thread touches ``ended``."""
        before, ended = self.forget_before, self.ended
        if before is None:
            return
        while ended:
            oldest = next(iter(ended))
            if ended[oldest] >= before:
                break
            del ended[oldest]

    def _lose(self, call_id: str) -> None:
        """A call that ended while the capture was away, its end unknown (so far)."""
        if call_id not in self.ongoing and call_id not in self.ended:
            return
        self.ongoing.pop(call_id, None)
        self.ended.pop(call_id, None)
        self.lost.add(call_id)
        self.tables.end_unknown(self.name, call_id)

    def _emit(self, t: int, event: str, origin: str, fields: Mapping[str, str]) -> None:
        self.site = self.tables.add(t, self.name, event, origin, fields)
        if self.on_event is not None:
            values = {**fields, "received_at": t, "server": self.name, "event": event,
                      "origin": origin, "site": self.site, "call_id": call_id_of(fields)}
            try:
                self.on_event(self.name, values)
            except Exception as exc:  # noqa: BLE001 - a dashboard's bug must not stop the capture
                self.last_error = f"on_event callback failed: {exc!r}"

    def _clock_sample(self, t: int, text: str) -> None:
        self.recent.append((t, text))
        second = t // 1_000_000
        if second != self._second:
            self._second = second
            self.spread_samples.append((t, text))
        if len(self.first_clock_samples) < _FIRST_SAMPLES:
            self.first_clock_samples.append((t, text))
        else:
            self.clock_samples.append((t, text))

    def clock(self) -> ClockMap | None:
        """Our clock -> the server's, learnt from the times its notifications carry
        (a start's or end's time is the server's now); None before any."""
        # texts parsed by an earlier call are not parsed again: this runs at every
        # disconnection, and parsing is the cost
        # one copy of each: the reader thread adds samples while a status is taken
        clock_samples = (*self.first_clock_samples, *self.clock_samples)
        spread_samples = tuple(self.spread_samples)
        parsed: dict[str, int | None] = {}
        for _, text in (*clock_samples, *spread_samples):
            if text not in parsed:  # a text is often in two of them
                parsed[text] = self._cached_us(text)
        self._server_times = parsed  # only the current samples' texts stay

        def times(samples) -> list[tuple[int, int]]:
            return [(t, us) for t, text in samples if (us := parsed[text]) is not None]

        pairs = times(clock_samples)
        return ClockMap.fit(pairs, times(spread_samples)) if pairs else None

    def _cached_us(self, text: str) -> int | None:
        """:meth:`_server_us`, parsed by :meth:`clock` already if it is a sample."""
        known = self._server_times
        return known[text] if text in known else self._server_us(text)

    def _server_us(self, text: str) -> int | None:
        try:
            stamp = parse_time(text, self.tz)
        except (ValueError, OverflowError, NotImplementedError):
            return None
        return None if stamp is pd.NaT else to_micros(stamp)

    def observed(self) -> list[tuple[int, int | None]]:
        """``(connect, end)`` per session [our UTC us], ``end`` ``None`` while connected.

        A capture that falls behind loses, when the connection goes, what the server had
        sent and it had not read: that time was not observed. So ``end`` is the
        disconnection less how late the session's last notifications were read: the
        least of their delays (a call notified late carries an older time and must not
        widen the gap). Not for the session :meth:`recstats.Capture.stop` ended: the
        window ends there. Worked out once, at the disconnection, with the server's
        clock as known then (a replay gives the same); the status asks for it every half
        second."""
        spans = []
        for (connect, _), end in zip(self.sessions, self.observed_ends, strict=True):
            assert connect is not None  # set when the session opened
            spans.append((connect, end))
        return spans

    def _observed_end(self, connect: int, disconnect: int) -> int:
        clock = self.clock() if self.recent else None
        if clock is None:
            return disconnect
        try:
            late = min((clock.behind(t, theirs) for t, text in self.recent
                        if (theirs := self._cached_us(text)) is not None), default=0)
        except (ArithmeticError, ValueError):  # a server clock too odd to measure by
            return disconnect
        return max(connect, disconnect - late)

    def status(self) -> dict[str, Any]:
        return {"server": self.name, "site": self.site, "state": self.state,
                "connected": self.connected, "since": _stamp(self.since),
                "last_keepalive": _stamp(self.last_keepalive),
                "reconnects": max(self.connects - 1, 0),
                "events": self.tables.counts.get(self.name, 0),
                "ongoing": len(self.ongoing), "unknown_messages": self.unknown,
                "last_error": self.last_error}
