"""Live capture of one or many recording servers into pandas tables.

:class:`Capture` keeps one connection per server (a thread each), drives a
:class:`recstats.protocol.ClientConnection` over its own transport (the client's
:class:`recstats.client.SocketTransport` seam), reconnects with exponential backoff
and, on every (re)connect, resynchronises from the server's ongoing-calls list: calls
it did not know become ongoing; calls it knew as ongoing that are no longer listed
ended while it was away, and their end is fetched with ``GetCallDetail``
(``end_unknown`` marks the few whose detail could not be had, until a real end
arrives).

Each received document is decoded once, on the one path of
:class:`recstats._capture_server.ServerState`, which also journals it; a replay feeds
journaled documents through that same path. Events accumulate as raw field strings
in columns and the typed tables are built only when asked for.
"""

from __future__ import annotations

import html
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import pandas as pd
import pyarrow as pa

from ._capture_gaps import observed_span, server_clock
from ._capture_replay import replay
from ._capture_server import ServerState
from ._capture_session import Session
from ._capture_status import gaps_frame, sessions_frame, status_frame, status_line, with_attrs
from ._live import Tables
from ._spill import Spill, parse_keep
from ._time import check_tz
from .client import SocketTransport, parse_address
from .errors import ConnectFailed, RecstatsError

__all__ = ["TYPING_INTERVAL", "Capture", "status_line"]

#: Seconds between two bulk typings of the events that arrived (see ``Capture``'s Notes)
TYPING_INTERVAL = 0.5

class Capture:
    """Capture call events from one or many recording servers into pandas tables.

    One connection (and one thread) per server; a server that is down never holds up
    the others. Each document received is decoded once; the tables are built when
    asked for.

    Parameters
    ----------
    servers : sequence of (str, int) or str
        ``(host, port)`` pairs or ``"host:port"`` strings.
    extensions : sequence of str, optional
        Restrict every subscription to calls of these numbers.
    journal : str or os.PathLike, optional
        A folder that receives every document received, with its receive time, one
        ``<host>_<port>.jsonl`` file per server (see :meth:`replay`).
    reconnect : bool, default True
        Retry a lost or refused connection after ``backoff`` [s], doubling up to
        ``max_backoff`` [s], with jitter; ``False`` gives up after the first session.
    tz : str, default "UTC"
        The sites' time zone for call times (an unknown zone is a ``ValueError`` at
        once).
    keepalive : float, optional
        Keep-alive interval to ask the servers for [s]; ``None``: theirs.
    timeout : float, default 10.0
        Connect and answer timeout [s].
    backoff, max_backoff : float, default 0.5, 30.0
        First and longest wait between connection attempts [s].
    ssl_context : ssl.SSLContext, optional
        Wraps every connection in TLS; a certificate it does not trust is a failed
        connect.
    on_event : callable, optional
        ``on_event(server, values)``, called from the server's thread with each event
        as a dict: its raw fields plus ``received_at`` (UTC microseconds), ``server``,
        ``event``, ``origin``, ``site`` and ``call_id`` (keep it quick).
    silence_timeout : float, optional
        End a session after that many seconds without any byte [s] (for servers with
        keep-alive off).
    keep : float or str, optional
        Memory horizon [s] or a duration such as ``"1h"`` (see below); ``None``: keep
        everything.
    spill : bool, str or os.PathLike, default True
        Where rows older than ``keep`` go (see below).
    transport_factory : callable, optional
        Makes each connection's transport (the seam tests replace).

    Notes
    -----
    Events arrive as raw fields; a housekeeping thread types them in bulk every
    :data:`TYPING_INTERVAL` seconds. The raw backlog is bounded: past
    :data:`recstats._live.BACKLOG` events, a thread that receives one more types the
    oldest part first (and reads nothing meanwhile: its server's sending slows down,
    nothing is dropped; if the connection goes while the capture is behind, what was
    on its way goes with it, and :attr:`gaps` counts that time as not observed).

    A long run: ``keep`` bounds the memory.
    Events received more than ``keep`` ago and calls that ended more than ``keep`` ago
    leave memory (checked every ``keep``/4, at least 0.5 s and at most 60 s apart);
    calls in progress, and calls whose end is unknown, always stay. Where they go is
    ``spill``: ``True`` (the default) writes them to Parquet parts in a new ``spill-*``
    folder inside the journal folder (or, without a journal, in a temporary folder
    removed with the capture); a folder name writes them to a new ``spill-*`` folder
    inside it (:attr:`spill_folder` names it); ``False`` drops them. :attr:`events`
    and :attr:`calls` read the parts back on every access (equal to the tables a
    capture that kept everything would show); :attr:`ongoing` reads memory only. The
    status counts what left memory; :meth:`move_old` moves it at once. A call named
    again after it left memory (a server that re-announces an old call) comes back as
    a second row.

    Snapshots, safe to read while the capture runs:

    * :attr:`events` -- one row per event received: ``received_at`` (UTC), ``site``,
      ``server``, ``event`` (``start``/``end``), ``origin`` (``notification``;
      ``resync`` for a call found in the ongoing list after a (re)connect; ``detail``
      for an end fetched with ``GetCallDetail``), ``call_id`` and the call fields;
    * :attr:`calls` -- the calls table (one row per call, the end's fields winning
      over the start's; ``site`` is the CDR ``location``, else ``host:port``), plus
      ``server`` and ``end_unknown`` (a call that ended while the capture was away
      and whose detail could not be fetched);
    * :attr:`ongoing` -- the calls in progress (no end time, end not unknown);
    * :attr:`status` -- one row per server: state (``connecting``, ``connected``,
      ``retrying``, ``stopped``, or ``error`` when its thread died), connection,
      keep-alive, reconnects, events, gap time and calls possibly missed in the gaps,
      rows spilled or dropped, last error (:func:`status_line` sums it up);
    * :attr:`gaps` and :attr:`sessions` -- when each server was not / was connected.

    >>> with Capture(["127.0.0.1:10300"]) as capture:      # doctest: +SKIP
    ...     time.sleep(60)
    >>> capture.calls.groupby("site", observed=True).size()  # doctest: +SKIP
    """

    def __init__(self, servers, *, extensions=None,
                 journal: str | os.PathLike | None = None, reconnect: bool = True,
                 tz: str = "UTC", keepalive: float | None = None, timeout: float = 10.0, backoff: float = 0.5, max_backoff: float = 30.0,
                 ssl_context=None, on_event: Callable[[str, dict], None] | None = None,
                 silence_timeout: float | None = None, keep=None,
                 spill: bool | str | os.PathLike = True,
                 transport_factory: Callable[..., Any] | None = None):
        if isinstance(servers, (str, tuple)) and not (
                isinstance(servers, tuple) and servers and isinstance(servers[0], tuple)):
            servers = [servers]
        try:
            self.servers = [parse_address(s) for s in servers]
        except TypeError:  # e.g. a bare port number
            raise ValueError(f"servers must be (host, port) pairs or 'host:port' strings, "
                             f"not {servers!r}") from None
        if not self.servers:
            raise ValueError("Capture needs at least one server")
        names = [f"{h}:{p}" for h, p in self.servers]
        if len(set(names)) != len(names):
            raise ValueError(f"a server is listed twice: {names}")
        if not backoff > 0 or max_backoff < backoff:
            raise ValueError("backoff must be > 0 and max_backoff >= backoff")
        if silence_timeout is not None and not silence_timeout > 0:
            raise ValueError(f"silence_timeout must be > 0 seconds, not {silence_timeout}")
        if isinstance(extensions, (str, int)):  # one number: not its characters
            extensions = [extensions]
        self.extensions = None if extensions is None else [str(e) for e in extensions]
        self.journal = None if journal is None else Path(journal)
        self.reconnect = reconnect
        self.tz = check_tz(tz)
        self.keepalive = keepalive
        self.timeout = timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.ssl_context = ssl_context
        self.silence_timeout = silence_timeout
        self._transport_factory = transport_factory or SocketTransport
        self._tables = Tables(self.tz)
        self._servers = {name: ServerState(name, self._tables, self.tz, on_event)
                         for name in names}
        self.keep = parse_keep(keep)
        self._spill: Spill | None = None
        if self.keep is None and spill is not True:
            raise ValueError("spill says where rows older than keep go: give keep too")
        if self.keep is not None:
            if spill is True or spill is False:
                self._spill = Spill(self.journal, drop=not spill)
            else:
                self._spill = Spill(spill)
        self._transports: dict[str, Any] = {}
        self._threads: list[threading.Thread] = []
        self._housekeeper: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        up = sum(s.connected for s in self._servers.values())
        return (f"<Capture {state}: {up}/{len(self._servers)} servers connected, "
                f"{sum(self._tables.counts.values())} events>")

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(repr(self))}</p>" + self.status.to_html(index=False)

    # ------------------------------------------------------------------ lifecycle

    @property
    def running(self) -> bool:
        """True while any server thread is alive."""
        return any(thread.is_alive() for thread in self._threads)

    def start(self) -> Self:
        """Connect to every server in the background; returns ``self`` (as
        :meth:`recstats.sim.RecorderSimulator.start` does)."""
        if self._threads:
            if self._stopping.is_set():
                raise RuntimeError("a stopped Capture cannot be restarted; make a new one")
            return self
        for (host, port), server in zip(self.servers, self._servers.values(), strict=True):
            thread = threading.Thread(target=self._run, args=(host, port, server),
                                      name=f"Capture-{server.name}", daemon=True)
            self._threads.append(thread)
        for thread in self._threads:
            thread.start()
        self._housekeeper = threading.Thread(target=self._housekeep, daemon=True,
                                             name="Capture-housekeeping")
        self._housekeeper.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Close every connection and wait (up to ``timeout`` s) for the threads.

        Idempotent (and a no-op before :meth:`start`); the tables stay readable.
        """
        if not self._threads:
            return
        self._stopping.set()
        with self._lock:
            transports = list(self._transports.values())
        for transport in transports:
            transport.close()  # wakes a thread blocked in a read at once
        deadline = time.monotonic() + timeout
        for thread in [*self._threads, *filter(None, [self._housekeeper])]:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        if not self.running:
            for server in self._servers.values():
                server.close_journal()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ one server

    def _delay(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random."""
        ceiling = min(self.max_backoff, self.backoff * 2 ** min(attempt, 30))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _run(self, host: str, port: int, server: ServerState) -> None:
        """A server's thread: sessions until stopped. Whatever kills it shows as
        ``error`` in the status; the other servers go on."""
        try:
            if self.journal is not None:
                server.open_journal(self.journal)
            attempt = 0
            while not self._stopping.is_set():
                server.state = "connecting"
                synced = self._session(host, port, server)
                if not self.reconnect:
                    break
                attempt = 0 if synced else attempt + 1
                server.state = "retrying"
                self._stopping.wait(self._delay(attempt))
            server.state = "stopped"
        except BaseException as exc:  # noqa: BLE001 - shown in status, never silent
            server.state = "error"
            server.connected = False
            server.last_error = f"capture thread failed: {type(exc).__name__}: {exc}"
        finally:
            if self._stopping.is_set():  # stop() may have timed out waiting for this thread
                server.close_journal()

    def _session(self, host: str, port: int, server: ServerState) -> bool:
        """One connection, from connect to loss; True once it had resynchronised."""
        transport = None
        synced = False
        try:
            try:
                transport = self._transport_factory(host, port, timeout=self.timeout,
                                                    ssl_context=self.ssl_context)
            except OSError as exc:
                raise ConnectFailed(f"could not connect to {host}:{port}: {exc}") from exc
            with self._lock:
                if self._stopping.is_set():
                    return False
                self._transports[server.name] = transport
            server.mark("connect")
            synced = Session(self, transport, server).run()
        except (RecstatsError, OSError) as exc:
            if not self._stopping.is_set():  # stop()'s own close is not an error
                server.last_error = str(exc) or type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - a bug must not end the capture silently
            server.last_error = f"internal error: {exc!r}"
        finally:
            if transport is not None:
                with self._lock:
                    self._transports.pop(server.name, None)
                transport.close()
                if server.connected:
                    stopped = self._stopping.is_set()
                    server.mark("disconnect", reason=None if stopped else server.last_error,
                                **({"stopped": True} if stopped else {}))
        return synced

    # ------------------------------------------------------------------ memory

    @property
    def spill_folder(self) -> Path | None:
        """The folder of the Parquet parts of rows older than ``keep`` (``None``
        without ``keep`` or when they are dropped)."""
        return None if self._spill is None else self._spill.folder

    def _housekeep(self) -> None:
        """Type what arrived every :data:`TYPING_INTERVAL` (the untyped backlog stays
        small, and a snapshot finds little left to do) and, with ``keep``, move old
        rows out of memory every ``keep``/4 (0.5 s to 60 s)."""
        interval = None if self.keep is None else min(max(self.keep / 4, 0.5), 60.0)
        due = time.monotonic() + (interval or 0.0)
        while not self._stopping.wait(TYPING_INTERVAL):
            try:
                if interval is not None and time.monotonic() >= due:
                    due = time.monotonic() + interval
                    self.move_old()  # types the queue first
                else:
                    self._tables.catch_up()
            except Exception as exc:  # noqa: BLE001 - said in every server's status
                for server in self._servers.values():
                    server.last_error = f"housekeeping failed: {exc!r}"

    def move_old(self, now: pd.Timestamp | None = None) -> None:
        """Move the events received and the calls ended more than ``keep`` before
        ``now`` (default: now) out of memory, as the capture does by itself
        periodically (a no-op without ``keep``)."""
        spill = self._spill
        if spill is None or self.keep is None:
            return
        at = time.time_ns() // 1000 if now is None else pd.Timestamp(now).value // 1000
        before = at - round(self.keep * 1e6)
        with spill.moving:
            events, calls = self._tables.take_old(before)
            try:
                spill.put(events, calls)
            except Exception as exc:  # noqa: BLE001 - counted as dropped and said
                for name in {*events["server"].astype(str), *calls["server"].astype(str)}:
                    self._servers[name].last_error = f"could not spill old rows, " \
                                                     f"dropped: {exc!r}"
        for server in self._servers.values():
            server.forget_before = before
        # Arrow's allocator keeps the pages the moved rows freed for its own reuse; a
        # long capture would see its memory climb with every move otherwise
        pa.default_memory_pool().release_unused()

    # ------------------------------------------------------------------ snapshots

    @property
    def events(self) -> pd.DataFrame:
        """The events table (a snapshot; see the class docstring for its columns)."""
        if self._spill is None:
            return self._tables.events_frame()
        with self._spill.moving:
            return self._spill.read("events", self._tables.events_frame())

    @property
    def calls(self) -> pd.DataFrame:
        """The calls table (a snapshot): one row per call, ongoing ones with NaT end.

        ``attrs["window"]`` is :attr:`window` and ``attrs["gaps"]`` the rows of
        :attr:`gaps` as plain dicts, times as ISO-8601 UTC strings (plain data, so
        pandas can merge and copy the frame)."""
        if self._spill is None:
            calls = self._tables.calls_frame()
        else:
            with self._spill.moving:
                calls = self._spill.read("calls", self._tables.calls_frame(with_seq=True))
        return self._with_attrs(calls)

    def _with_attrs(self, calls: pd.DataFrame) -> pd.DataFrame:
        return with_attrs(calls, self._servers.values(), self.running)

    @property
    def window(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """The period observed: from the first connection to :meth:`stop` (or now), in
        the servers' clock (ours mapped through the offset and rate their notifications'
        times show: a recorder's clock may be set off ours, a simulator's runs ``speed``
        times faster); ``None`` before any connection."""
        span = observed_span(self._servers.values(), self.running)
        if span is None:
            return None
        clock = server_clock(self._servers.values())
        return (pd.Timestamp(clock(span[0]), unit="us", tz="UTC"),
                pd.Timestamp(clock(span[1]), unit="us", tz="UTC"))

    @property
    def gaps(self) -> pd.DataFrame:
        """Every period a server was not observed inside :attr:`window`, in the
        servers' clock: ``server``, ``site``, ``start``, ``end``. Not observed: not
        connected, and before that, when a connection went while the capture read
        behind, the time its last notification was late (what the server had sent
        and the capture had not read was lost with the connection)."""
        return gaps_frame(self._servers.values(), self.running)

    @property
    def sessions(self) -> pd.DataFrame:
        """One row per connection: ``server``, ``site``, ``connected``,
        ``disconnected`` (``NaT`` while connected) and ``resynced`` (when its ongoing
        list came; ``NaT`` for a session that ended before: a call in progress across
        it, started and ended in the gaps around it, could not be seen), in our clock
        (UTC)."""
        return sessions_frame(self._servers.values())

    @property
    def ongoing(self) -> pd.DataFrame:
        """The calls in progress: no end time and an end that is not unknown."""
        calls = self._with_attrs(self._tables.calls_frame())  # they never leave memory
        keep = calls["end_time"].isna().to_numpy() & ~calls["end_unknown"].to_numpy()
        return calls[keep].reset_index(drop=True)

    @property
    def status(self) -> pd.DataFrame:
        """One row per server: server, site (the last one its calls named), state,
        connected, since (last connect or disconnect), last_keepalive, reconnects,
        events, ongoing (calls in progress), unknown_messages, ``gap_seconds`` (time
        not observed inside :attr:`window` [s], see :attr:`gaps`), ``missed_calls``
        (an estimate of the calls that started and ended inside those gaps; see
        below), the rows of :attr:`events` and :attr:`calls` that left memory
        (``spilled_events``, ``spilled_calls``, ``dropped_events``, ``dropped_calls``;
        see ``keep``), last_error.

        ``missed_calls``: for each gap, its length x the server's observed start rate
        (calls notified as they started / time observed), less the calls the ongoing
        list after the gap named that were not known (they started in the gap and were
        not missed), never below 0; a gap before the server's first connection, or one
        still open, subtracts nothing.
        """
        return status_frame(self._servers.values(), self.running, self._spill)

    # ------------------------------------------------------------------ replay

    @classmethod
    def replay(cls, path: str | os.PathLike, *, tz: str | None = None) -> Capture:
        """Rebuild a capture's tables from its journal (a folder or one ``.jsonl`` file).

        Each document goes through the very decode path the live capture used, so
        ``Capture.replay(folder).events`` equals the live capture's ``events`` (and
        likewise ``calls``). ``tz`` overrides the zone recorded in the journal. Lines
        that cannot be read (e.g. the last one, cut by a crash) are skipped and
        counted in the status' ``last_error``. Returns a stopped :class:`Capture`.

        >>> Capture.replay("journal/").calls          # doctest: +SKIP
        """
        return replay(cls, path, tz=tz)
