"""The tables that describe a :class:`recstats.Capture` rather than its calls: the
status (one row per server), the gaps, and the window and gaps a calls table carries in
its ``attrs``."""

from __future__ import annotations

import pandas as pd

from ._capture_gaps import gap_figures, gap_rows, observed_span, server_clock
from ._spill import Spill

__all__ = ["gaps_frame", "sessions_frame", "status_frame", "status_line", "with_attrs"]

_OUT_COLUMNS = ("spilled_events", "spilled_calls", "dropped_events", "dropped_calls")


def _iso(us: int) -> str:
    """UTC microseconds -> ISO-8601 with a Z."""
    return pd.Timestamp(us, unit="us", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def status_line(status: pd.DataFrame) -> str:
    """One line from a capture's :attr:`Capture.status`: events, calls in progress per
    site, servers connected (the ``recstats capture`` command and the dashboard show it).

    >>> status_line(pd.DataFrame({"site": ["NY", None], "connected": [True, False],
    ...                           "events": [7, 0], "ongoing": [2, 0]}))
    'events 7 | NY: 2 ongoing | 1/2 servers connected'
    """
    sites: dict[str, int] = {}
    for site, ongoing in zip(status["site"], status["ongoing"], strict=True):
        if isinstance(site, str):
            sites[site] = sites.get(site, 0) + int(ongoing)
    per_site = ", ".join(f"{site}: {n} ongoing" for site, n in sorted(sites.items()))
    parts = [f"events {int(status['events'].sum()):,}"]
    if per_site:
        parts.append(per_site)
    parts.append(f"{int(status['connected'].sum())}/{len(status)} servers connected")
    if "gap_seconds" in status and status["gap_seconds"].sum() > 0:
        parts.append(f"gaps {status['gap_seconds'].sum():.1f} s, "
                     f"~{status['missed_calls'].sum():.0f} calls possibly missed")
    if "state" in status and (status["state"] == "error").any():
        parts.append(f"{int((status['state'] == 'error').sum())} failed")
    return " | ".join(parts)




def with_attrs(calls: pd.DataFrame, servers, running: bool) -> pd.DataFrame:
    """``calls`` with ``attrs["window"]`` and ``attrs["gaps"]`` (ISO-8601 UTC texts)."""
    span = observed_span(servers, running)
    if span is not None:
        clock = server_clock(servers)
        calls.attrs["window"] = [_iso(clock(span[0])), _iso(clock(span[1]))]
        calls.attrs["gaps"] = [
            {"server": name, "site": site, "start": _iso(start), "end": _iso(end)}
            for name, site, start, end in gap_rows(servers, span, clock)]
    return calls


def gaps_frame(servers, running: bool) -> pd.DataFrame:
    """The gaps table (see :attr:`recstats.Capture.gaps`)."""
    span = observed_span(servers, running)
    rows = [] if span is None else gap_rows(servers, span, server_clock(servers))
    frame = pd.DataFrame(rows, columns=["server", "site", "start", "end"])
    for column in ("start", "end"):
        frame[column] = pd.to_datetime(frame[column].astype("int64"), unit="us", utc=True)
    return frame.astype({"server": "str", "site": "str"})


def status_frame(servers, running: bool, spill: Spill | None) -> pd.DataFrame:
    """The status table (see :attr:`recstats.Capture.status`)."""
    span = observed_span(servers, running)
    rows = []
    for server in servers:
        row = server.status()
        gap, missed = (0.0, 0.0) if span is None else gap_figures(server, span)
        counts = [0, 0, 0, 0] if spill is None else spill.count(server.name)
        last_error = row.pop("last_error")
        row.update(gap_seconds=gap, missed_calls=missed,
                   **dict(zip(_OUT_COLUMNS, counts, strict=True)), last_error=last_error)
        rows.append(row)
    frame = pd.DataFrame(rows)
    for column in ("since", "last_keepalive"):
        frame[column] = pd.to_datetime(frame[column], utc=True).dt.as_unit("us")
    return frame.astype({"server": "str", "site": "str", "state": "str",
                         "connected": "bool",
                         "reconnects": "int64", "events": "int64", "ongoing": "int64",
                         "unknown_messages": "int64", "gap_seconds": "float64",
                         "missed_calls": "float64", **dict.fromkeys(_OUT_COLUMNS, "int64"),
                         "last_error": "str"})


def sessions_frame(servers) -> pd.DataFrame:
    """The sessions table (see :attr:`recstats.Capture.sessions`)."""
    rows = [(s.name, s.site or s.name, connect, disconnect, resynced)
            for s in servers
            for (connect, disconnect), resynced in zip(s.sessions, s.resynced, strict=True)]
    frame = pd.DataFrame(rows, columns=["server", "site", "connected", "disconnected",
                                        "resynced"])
    for column in ("connected", "disconnected", "resynced"):
        frame[column] = pd.to_datetime(frame[column].astype("Int64"), unit="us", utc=True)
    return frame.astype({"server": "str", "site": "str"})
