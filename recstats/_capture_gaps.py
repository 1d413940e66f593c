"""What a :class:`recstats.Capture` observed: the span from its first connection, the
servers' clocks (learnt from the times their notifications carry) and the periods each
server was not observed, with an estimate of the calls missed in them. Plain functions
of :class:`recstats._capture_server.ServerState` objects, live or replayed."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._capture_server import ServerState

__all__ = ["ClockMap", "gap_figures", "gap_rows", "observed_span", "server_clock"]


def observed_span(servers, running: bool) -> tuple[int, int] | None:
    """First connection to the last journaled time (or now while running), in our
    clock [UTC us]; None before any connection. A replay gives the live values."""
    servers = list(servers)
    starts = [s.sessions[0][0] for s in servers if s.sessions]
    if not starts:
        return None
    end = time.time_ns() // 1000 if running else max(s.seen_t for s in servers)
    return min(starts), max(end, min(starts))


#: Shortest span of our clock [us] over which a server clock's rate is estimated;
#: over less, it is taken to run at our rate.
_RATE_SPAN_US = 1_000_000
#: Spread pairs (one per second) the rate is fitted on; with fewer, on all pairs.
_SPREAD_AT_LEAST = 30


@dataclass(frozen=True)
class ClockMap:
    """``server = server_ref + rate * (ours - our_ref)``, all in UTC microseconds.

    A real recorder's clock may be set off ours; a simulator's runs ``speed`` times
    faster. Fitted on (our receive time, the server's time) pairs. The rate is the
    least-squares slope of pairs spread over the capture's history (``spread``: one per
    second of ours, once there are :data:`_SPREAD_AT_LEAST`), not of its first and
    latest pairs alone: when the capture falls behind, its latest pairs are late by the
    same delay, and a line through two clusters would take that delay for the clock's
    rate and hide it. The offset comes from the pair read soonest after it was sent, of
    all of them (a notification is never read before the server's time it carries, and
    a capture that falls behind reads the later ones late: a mean offset would take
    that delay for the server's clock).

    >>> ClockMap.fit([(0, 100), (2_000_000, 120_000_100)]).at(1_000_000)
    60000100
    """

    our_ref: float
    server_ref: float
    rate: float

    @classmethod
    def fit(cls, pairs: list[tuple[int, int]],
            spread: list[tuple[int, int]] | None = None) -> ClockMap:
        rate = 1.0
        for sample in (spread, pairs):  # the spread ones when there are enough
            if not sample or sample is spread and len(sample) < _SPREAD_AT_LEAST:
                continue
            x = [float(a) for a, _ in sample]
            if max(x) - min(x) >= _RATE_SPAN_US:
                slope = statistics.linear_regression(x, [float(b) for _, b in sample]).slope
                rate = slope if slope > 0 else 1.0
                break
        every = [*pairs, *(spread or ())]
        our_mean = statistics.fmean(a for a, _ in every)
        return cls(our_mean, max(b - rate * (a - our_mean) for a, b in every), rate)

    def at(self, ours: int) -> int:
        return round(self.server_ref + self.rate * (ours - self.our_ref))

    def behind(self, ours: int, theirs: int) -> int:
        """How late [our us] a notification stamped ``theirs`` was read at ``ours``."""
        return max(0, round((self.at(ours) - theirs) / self.rate))


def server_clock(servers) -> Callable[[int], int]:
    """Our clock -> the servers' [us]: the median of what each one's map says (the
    identity before any notification)."""
    maps = [m for m in (s.clock() for s in servers) if m is not None]
    if not maps:
        return lambda ours: ours
    return lambda ours: round(statistics.median(m.at(ours) for m in maps))


def gap_rows(servers, span: tuple[int, int], clock: Callable[[int], int]) -> list[tuple]:
    """``(server, site, start, end)`` of every period inside ``span`` a server was not
    observed (see :meth:`ServerState.observed`), in the servers' clock (``clock`` maps
    ours to theirs, in us)."""
    begin, finish = span
    rows = []
    for server in servers:
        cursor = begin
        for connect, disconnect in server.observed():
            if connect > cursor:
                rows.append((server, cursor, connect))
            cursor = finish if disconnect is None else max(cursor, disconnect)
        if cursor < finish:
            rows.append((server, cursor, finish))
    return [(s.name, s.site or s.name, clock(a), clock(b)) for s, a, b in rows]


def gap_figures(server: ServerState, span: tuple[int, int]) -> tuple[float, float]:
    """``(time not observed [s], calls possibly missed)`` of one server inside ``span``
    [UTC us] (see :meth:`ServerState.observed`).

    The calls possibly missed are those that started in a gap and ended before the
    reconnection (short calls: no notification, not in the ongoing list). For each gap:
    its length x the server's observed start rate (calls notified as they started /
    time observed), less the calls the ongoing list after it named that were not
    known (they started in the gap and were not missed), never below 0. A gap before
    the server's first connection subtracts nothing (its list also names calls older
    than the window), nor does one still open.
    """
    begin, finish = span
    observed = 0
    gaps: list[tuple[int, int, int]] = []  # (start, end, calls found after it)
    cursor = begin
    for i, (connect, disconnect) in enumerate(server.observed()):
        end = finish if disconnect is None else min(disconnect, finish)
        observed += max(0, end - max(connect, begin))
        if connect > cursor:
            gaps.append((cursor, connect, server.found[i] if i else 0))
        cursor = max(cursor, end)
    if cursor < finish:
        gaps.append((cursor, finish, 0))
    rate = server.notified_starts / (observed / 1e6) if observed else 0.0
    gap_time = sum(b - a for a, b, _ in gaps) / 1e6
    missed = sum(max(0.0, (b - a) / 1e6 * rate - found) for a, b, found in gaps)
    return gap_time, missed
