"""Rebuilding a :class:`recstats.Capture`'s tables from its journal: every journaled
document goes through the very decode path the live capture used."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from ._capture_server import JOURNAL_FORMAT

__all__ = ["replay"]


def replay(cls, path: str | os.PathLike, *, tz: str | None = None):
    """A stopped ``cls`` (a :class:`recstats.Capture`) with the tables of the journal at
    ``path`` (see :meth:`recstats.Capture.replay`)."""
    path = Path(path)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"no journal (*.jsonl) in {path}")
    entries: dict[str, list] = {}
    zones: dict[str, str] = {}
    bad: dict[str, int] = {}
    for file in files:
        name = None
        with open(file, encoding="ascii", errors="replace") as handle:
            for line in handle:
                try:
                    entry = json.loads(line)
                    if entry.get("format") == JOURNAL_FORMAT:
                        name = str(entry["server"])
                        zones.setdefault(name, str(entry.get("tz") or "UTC"))
                        entries.setdefault(name, [])
                        continue
                    entry["t"] = int(entry["t"])
                    if "doc" in entry:
                        entry["doc"] = base64.b64decode(entry["doc"], validate=True)
                except (ValueError, KeyError, TypeError):
                    bad[str(name)] = bad.get(str(name), 0) + 1
                    continue
                if name is not None:
                    entries[name].append(entry)
    if not entries:
        raise ValueError(f"{path} is not a recstats journal (no header line naming a "
                         "server); pass the folder given as Capture(journal=...)")
    capture = cls(list(entries), tz=tz or next(iter(zones.values()), "UTC"))
    for name, items in entries.items():
        server = capture._servers[name]
        server.tz = tz or zones[name]
        for entry in items:
            server.seen_t = max(server.seen_t, entry["t"])
            if "doc" in entry:  # the very path live documents took
                server.receive(entry["t"], entry["doc"], entry["t"] / 1e6)
            elif "mark" in entry:
                server.apply(entry["t"], str(entry["mark"]), entry)
        # a journal cut by a crash ends without the disconnect: the replay is stopped
        server.connected, server.state = False, "stopped"
        if bad.get(name):
            server.last_error = f"{bad[name]} journal line(s) could not be read"
    return capture

