"""An embedded recording server: speaks PROTOCOL.md over TCP, plays a traffic model.

:class:`RecorderSimulator` is the default "server" of demos, notebooks and tests. One
background thread runs a ``selectors`` loop that accepts any number of clients, answers
their requests (through :class:`recstats.protocol.ServerConnection` and its builders),
sends keep-alives, and plays the calls of :func:`recstats.sim.traffic.call_stream` in
simulated time: every start and end becomes a notification to each subscribed client
whose filter matches, and, with ``archive``, each ended call leaves a CDR file and a
small media stand-in on disk.

Simulated time runs ``speed`` times faster than real time from ``start_time``; the
timestamps in notifications and files are simulated times. For deterministic tests the
clock can be frozen (:meth:`~RecorderSimulator.pause`) or fully manual
(``manual_clock=True`` plus :meth:`~RecorderSimulator.advance`). Keep-alives always run
on real seconds, as a real server's do.
"""

from __future__ import annotations

import heapq
import html
import io
import itertools
import os
import time
import wave
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from .. import protocol
from .._table import calls_from_fields, empty_calls
from .._time import as_utc
from .._xml import cdr_xml
from ._server import MAX_WAIT, ClientState, LoopServer, matches
from .traffic import PlannedCall, call_stream

__all__ = ["RecorderSimulator"]

_TURN_EVENTS = 200  # starts/ends played per loop turn, so sockets are served meanwhile
#: shortest sleep [s] before the next start or end: a fast simulator plays what fell due
#: meanwhile in one turn (one write per client) instead of waking for every event
_TURN_SECONDS = 0.01


def _wav_stand_in() -> bytes:
    """A valid, empty 8 kHz 16-bit mono WAV file: media players and pairing see a file."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"")
    return buffer.getvalue()


_WAV = _wav_stand_in()


def _write_atomic(path: Path, data: bytes) -> None:
    # a hidden temp name that does not end in .xml/.wav: archive scanners skip it
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)  # a full disk leaves no half-written leftovers
        raise


class RecorderSimulator(LoopServer):
    """A simulated recording server on a loopback (or any) TCP port.

    Parameters
    ----------
    host : str, default "127.0.0.1"
        Address to listen on (loopback unless told otherwise).
    port : int, default 0
        Port to listen on; 0 picks a free one (:attr:`port`, :attr:`address`).
    location : str, default "SITE-A"
        The site name written as ``location`` in every call.
    rate : float, default 2.0
        Calls per simulated second [1/s].
    mean_holding : float, default 180
        Mean of the lognormal holding times [s] (see :mod:`recstats.sim.traffic`).
    extensions : iterable, default range(1000, 1100)
        The site's extension numbers; calls run between them and outside numbers.
    speed : float, default 1.0
        Simulated seconds per real second.
    seed : int, optional
        Makes the calls reproducible (their delivery timing aside).
    archive : str or os.PathLike, optional
        A folder receiving ``<location>/<YYYY>/<MM>/<DD>/<id>.xml`` beside ``<id>.wav``
        (``.txt`` for IM) for each ended call, written atomically.
    keepalive : float, optional, default 10
        Keep-alive interval [s] for clients that do not ask for one (0/None: none).
    tz : str, default "UTC"
        The site's zone for the wall-clock times it writes.
    start_time : timestamp, optional
        The simulated moment the clock starts at (default: now).
    manual_clock : bool, default False
        Simulated time stands still until :meth:`advance` moves it.
    profile : callable, optional
        Passed to the traffic model (e.g. office hours).
    history : int, optional
        How many ended calls stay in memory (default: all).
    steady_state : bool, default True
        Start loaded, as a real recorder a client connects to is: about
        ``rate x mean_holding`` calls [erlang] are already in progress at
        ``start_time``, started in the past as a stationary system's are
        (:func:`recstats.sim.traffic.in_progress_at`); they are in :attr:`ongoing` and
        :attr:`truth` and end with ``CallEnded`` notifications and CDR files like any
        call. ``False`` starts with no call at all.
    paused : bool, default False
        Start with the clock frozen at ``start_time`` until :meth:`resume` (clients
        can connect and learn the ongoing calls before any of them ends).

    Use it as a context manager, or call :meth:`start` and :meth:`stop`::

        >>> with RecorderSimulator(rate=5, speed=60, seed=1) as sim:   # doctest: +SKIP
        ...     client = rs.RecorderClient(*sim.address)
        ...     client.subscribe()

    :attr:`truth` is the calls table of every call made so far (ongoing ones with
    ``NaT`` end_time); :meth:`stop` leaves ongoing calls ongoing. Fault switches for
    tests: :meth:`drop_connections`, :meth:`stall_keepalives`, :meth:`send_raw`.
    :attr:`stats` counts connections, notifications, keep-alives and errors.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, location: str = "SITE-A",
                 rate: float = 2.0, mean_holding: float = 180, extensions: Iterable =
                 range(1000, 1100), speed: float = 1.0, seed: int | None = None,
                 archive: str | os.PathLike | None = None, keepalive: float | None = 10,
                 tz: str = "UTC", start_time=None, *, manual_clock: bool = False,
                 profile: Callable | None = None, history: int | None = None,
                 steady_state: bool = True, paused: bool = False):
        if not speed > 0:
            raise ValueError(f"speed must be > 0 simulated seconds per second, got {speed}")
        if keepalive is not None and keepalive < 0:
            raise ValueError(f"keepalive must be >= 0 seconds, got {keepalive}")
        self.location = location
        self.rate = float(rate)
        self.mean_holding = float(mean_holding)
        self.extensions = tuple(str(e) for e in extensions)
        self.speed = float(speed)
        self.seed = seed
        self.archive = None if archive is None else Path(archive)
        self.keepalive = float(keepalive) if keepalive else None
        self.tz = tz
        self.manual_clock = manual_clock
        self.history = history
        self.start_time = as_utc(pd.Timestamp.now("UTC").floor("ms") if start_time is None
                                     else start_time).as_unit("us")
        # validates rate/mean_holding/extensions now rather than in the loop thread
        self._stream = call_stream(self.start_time, rate=self.rate,
                                   mean_holding=self.mean_holding,
                                   extensions=self.extensions, location=location,
                                   rng=seed, profile=profile, tz=tz,
                                   steady_state=steady_state)
        self._next: PlannedCall | None = next(self._stream, None)
        self._ongoing: dict[str, PlannedCall] = {}
        self._ended: dict[str, PlannedCall] = {}
        self._ends: list[tuple[float, int, str]] = []
        self._tiebreak = itertools.count()
        self._offset = 0.0          # simulated seconds since start_time at _base_mono
        self._played = 0.0          # simulated seconds whose starts and ends are played
        self._base_mono: float | None = None
        self._paused = manual_clock or paused
        self._stall_until = 0.0
        super().__init__(host, port, location)
        self.stats.update({"notifications": 0, "keepalives": 0, "requests": 0,
                           "errors_sent": 0, "calls_started": 0, "calls_ended": 0,
                           "archive_errors": 0})
        # the calls already running when the server comes up (none notified: no client
        # is connected yet); they end, and are archived, as simulated time passes
        while (call := self._next) is not None and call.offset < 0:
            self._next = next(self._stream, None)
            self._start(call)

    # ------------------------------------------------------------------ lifecycle

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (f"<RecorderSimulator {self.location} {self.host}:{self.port} {state}, "
                f"{len(self._ongoing)} ongoing, {len(self._clients)} clients>")

    def _repr_html_(self) -> str:
        state = "running" if self.running else "stopped"
        rows = {"site": self.location, "address": f"{self.host}:{self.port}",
                "state": state, "simulated now": str(self.now.floor("s")),
                "speed": f"{self.speed:g}x", "rate": f"{self.rate:g} calls/s",
                "ongoing calls": len(self._ongoing), "clients": len(self._clients),
                "calls started": self.stats["calls_started"],
                "calls ended": self.stats["calls_ended"],
                "archive": str(self.archive) if self.archive else "none"}
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                       f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
                       for k, v in rows.items())
        return f"<table><caption>RecorderSimulator</caption>{body}</table>"

    # ------------------------------------------------------------------ clock

    def _sim_offset(self, now: float | None = None) -> float:
        if self._paused or self._base_mono is None:
            return self._offset
        now = time.monotonic() if now is None else now
        return self._offset + (now - self._base_mono) * self.speed

    @property
    def now(self) -> pd.Timestamp:
        """The current simulated moment (UTC)."""
        return self.start_time + pd.Timedelta(seconds=self._sim_offset())

    def pause(self) -> None:
        """Freeze simulated time (no call starts or ends) until :meth:`resume`."""
        self._call(self._pause)

    def _pause(self) -> None:
        until = self._sim_offset()
        # at extreme speeds the loop may lag: freeze where it got to rather than replay
        # an unbounded backlog here
        self._advance(until, limit=10 * _TURN_EVENTS)
        self._offset = self._played
        self._paused = True

    def resume(self) -> None:
        """Let simulated time run again after :meth:`pause` (not in manual-clock mode)."""
        if self.manual_clock:
            raise RuntimeError("a manual-clock simulator moves only with advance()")
        self._call(self._resume)

    def _resume(self) -> None:
        self._base_mono = time.monotonic()
        self._paused = False

    def advance(self, seconds: float) -> None:
        """Move a paused or manual clock ``seconds`` of simulated time forward.

        Every call starting or ending meanwhile is played (notified, archived) before
        this returns; the notifications are on their way to the clients.

        >>> sim = RecorderSimulator(seed=1, manual_clock=True, keepalive=None).start()
        >>> sim.advance(600)  # ten simulated minutes, in no real time
        >>> sim.now - sim.start_time
        Timedelta('0 days 00:10:00')
        >>> truth = sim.truth
        >>> bool(truth.end_time.isna().any()), bool((truth.start_time <= sim.now).all())
        (True, True)
        >>> sim.stop()
        """
        if not self._paused:
            raise RuntimeError("advance() needs a paused or manual-clock simulator")
        if seconds < 0:
            raise ValueError("simulated time only moves forward")

        def move():
            self._offset += seconds
            self._advance(self._offset)
        self._call(move)

    # ------------------------------------------------------------------ truth

    @property
    def truth(self) -> pd.DataFrame:
        """Calls table of every call started so far; ongoing ones have ``NaT`` end_time.

        With ``history=N`` only the N most recent ended calls are kept (the archive,
        if any, still has them all)."""
        rows = self._call(lambda: [c.fields for c in self._ended.values()]
                          + [c.start_fields for c in self._ongoing.values()])
        if not rows:
            return empty_calls()
        calls, _ = calls_from_fields(rows, tz=self.tz)
        return calls.sort_values(["start_time", "call_id"], kind="stable") \
            .reset_index(drop=True)

    @property
    def ongoing(self) -> list[dict[str, str]]:
        """Raw fields of the calls in progress now, in start order."""
        return self._call(lambda: [dict(c.start_fields) for c in self._ongoing.values()])

    def cdr_path(self, call_id: str) -> Path | None:
        """Where the CDR file of an ended call is (``None`` without an archive, or for a
        call no longer kept under ``history``)."""
        call = self._ended.get(call_id)
        if call is None or self.archive is None:
            return None
        return self._folder(call) / f"{call_id}.xml"

    def _folder(self, call: PlannedCall) -> Path:
        day = call.start_fields["start_time"][:10]  # the site's local date
        year, month, dom = day.split("-")
        assert self.archive is not None, "a call has a folder only in an archive"
        return self.archive / self.location / year / month / dom

    # ------------------------------------------------------------------ fault switches

    def stall_keepalives(self, seconds: float) -> None:
        """Send no keep-alive for the next ``seconds`` real seconds (then resume).

        >>> sim.stall_keepalives(30)  # a client must give up after 1.5 x its interval  # doctest: +SKIP

        :meth:`drop_connections` and :meth:`send_raw` are the other fault switches.
        """
        def stall():
            self._stall_until = time.monotonic() + seconds
        self._call(stall)

    # ------------------------------------------------------------------ the loop's hooks

    def _on_start(self) -> None:
        self._base_mono = time.monotonic()

    def _tick(self, now: float) -> bool:
        behind = False
        if not self._paused and not self._backlogged(now):
            behind = not self._advance(self._sim_offset(now), _TURN_EVENTS)
        self._send_keepalives(now)
        return behind

    def _wait_time(self, now: float) -> float:
        wait = MAX_WAIT
        if not self._paused:
            upcoming = self._next_offset()
            if upcoming is not None:
                wait = min(wait, max((upcoming - self._sim_offset(now)) / self.speed,
                                     _TURN_SECONDS))
        for client in self._clients.values():
            if client.next_keepalive is not None:
                wait = min(wait, max(client.next_keepalive, self._stall_until) - now)
        return max(wait, 0.0)

    # ------------------------------------------------------------------ requests

    def _handle(self, client: ClientState, request) -> None:
        self.stats["requests"] += 1
        if isinstance(request, protocol.ConnectionClosed):
            self._drop(client)
        elif isinstance(request, protocol.SubscribeRequest):
            if request.keepalive is None:
                interval = self.keepalive
            else:
                interval = float(request.keepalive) or None
            client.subscribed = True
            client.extensions = frozenset(request.extensions) or None
            client.keepalive = interval
            client.next_keepalive = None if interval is None else time.monotonic() + interval
            self._queue(client, protocol.subscribe_response(request.request_id, interval))
        elif isinstance(request, protocol.OngoingCallsRequest):
            wanted = frozenset(request.extensions) or None
            calls = [c.start_fields for c in self._ongoing.values()
                     if matches(wanted, c.start_fields)]
            self._queue(client, protocol.ongoing_calls_response(request.request_id, calls))
        elif isinstance(request, protocol.CallDetailRequest):
            document = None if request.call_id is None else self._document(request.call_id)
            if document is None:
                self._error(client, request.request_id, "GetCallDetail",
                            f"no call with id {request.call_id!r} on {self.location}")
            else:
                self._queue(client, protocol.call_detail_response(request.request_id,
                                                                  document))
        else:  # UnknownRequest, or anything newer the protocol module reports
            kind = getattr(request, "request_type", type(request).__name__)
            self._error(client, getattr(request, "request_id", None), kind,
                        getattr(request, "reason", "") or f"unsupported request type {kind!r}")

    def _error(self, client: ClientState, request_id, request_type, detail: str) -> None:
        self.stats["errors_sent"] += 1
        self._queue(client, protocol.error_response(
            request_id, request_type, code=2, description="Processing Error", detail=detail))

    def _document(self, call_id: str) -> bytes | None:
        call = self._ended.get(call_id)
        if call is not None:
            return cdr_xml(call.fields)  # byte for byte the archived CDR file
        call = self._ongoing.get(call_id)
        if call is not None:
            return cdr_xml(call.start_fields)
        return None

    # ------------------------------------------------------------------ keep-alives

    def _send_keepalives(self, now: float) -> None:
        if now < self._stall_until:
            return
        for client in list(self._clients.values()):
            due = client.next_keepalive
            if due is None or now < due:
                continue
            assert client.keepalive is not None, "set with next_keepalive"
            self.stats["keepalives"] += 1
            client.next_keepalive = now + client.keepalive
            self._queue(client, protocol.keepalive_message(client.keepalive))

    # ------------------------------------------------------------------ traffic

    def _next_offset(self) -> float | None:
        candidates = []
        if self._next is not None:
            candidates.append(self._next.offset)
        if self._ends:
            candidates.append(self._ends[0][0])
        return min(candidates) if candidates else None

    def _advance(self, until: float, limit: int | None = None) -> bool:
        """Play every start and end up to simulated offset ``until``, in time order.

        With ``limit``, stop after that many; returns False when some were left over.
        """
        played = 0
        while True:
            if limit is not None and played >= limit:
                return False
            played += 1
            # how far simulated time is played: up to the event about to be played
            upcoming = self._next_offset()
            self._played = until if upcoming is None else min(until, upcoming)
            end_at = self._ends[0][0] if self._ends else None
            next_call = self._next
            start_at = next_call.offset if next_call is not None else None
            # half-open [start, end): at equal times the end goes first
            if end_at is not None and end_at <= until and (start_at is None
                                                          or end_at <= start_at):
                _, _, call_id = heapq.heappop(self._ends)
                self._end(self._ongoing.pop(call_id))
            elif next_call is not None and next_call.offset <= until:
                self._next = next(self._stream, None)
                self._start(next_call)
            else:
                self._played = until
                return True

    def _start(self, call: PlannedCall) -> None:
        self._ongoing[call.call_id] = call
        heapq.heappush(self._ends, (call.offset + call.holding, next(self._tiebreak),
                                    call.call_id))
        self.stats["calls_started"] += 1
        self._notify("start", call.start_fields)

    def _end(self, call: PlannedCall) -> None:
        fields = call.fields
        if self.archive is not None:
            self._write(call, fields)
        self._ended[call.call_id] = call
        if self.history is not None:
            while len(self._ended) > self.history:
                del self._ended[next(iter(self._ended))]
        self.stats["calls_ended"] += 1
        self._notify("end", fields)

    def _notify(self, kind: str, fields: dict[str, str]) -> None:
        message = None
        for client in list(self._clients.values()):
            if client.wants(fields):
                if message is None:
                    message = protocol.call_notification(kind, fields)
                self.stats["notifications"] += 1
                self._queue(client, message)

    def _write(self, call: PlannedCall, fields: dict[str, str]) -> None:
        folder = self._folder(call)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            media = fields.get("media_file") or f"{call.call_id}.wav"
            if media.endswith(".txt"):
                body = (f"[{fields['start_time']}] {fields.get('source_caller_id', '')}: "
                        "(instant message session; text not simulated)\n").encode()
            else:
                body = _WAV
            # media first: whoever finds the CDR also finds its media
            _write_atomic(folder / media, body)
            _write_atomic(folder / f"{call.call_id}.xml", cdr_xml(fields))
        except OSError:
            self.stats["archive_errors"] += 1

