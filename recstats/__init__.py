"""recstats: capture and analyse call-recording servers' traffic with pandas.

>>> import recstats as rs
>>> rs.read_cdr(b"<verbacdr><id>a</id><location>NY</location></verbacdr>")["site"]
'NY'

Heavy parts (plotting, widgets, the simulator) load on first use, so ``import
recstats`` stays quick.
"""

from __future__ import annotations

import importlib

from . import accessor as _accessor  # noqa: F401  (registers df.calls)
from .cdr import calls_frame, read_cdr
from .errors import CDRParseError, ConnectionLost, ProtocolError, RecstatsError, ServerError

__version__ = "0.1.0"

# public name -> module that defines it; imported on first access (PEP 562)
_LAZY = {
    "read_archive": "archive", "archive_errors": "archive", "write_parquet": "archive",
    "archive_files": "archive",
    "RecorderClient": "client",
    "Capture": "capture",
    "concurrency": "stats", "busy_hour": "stats", "traffic_profile": "stats",
    "extension_stats": "stats", "is_extension": "stats", "erlang_b": "stats",
    "channels_for": "stats", "traffic_for": "stats", "capacity_table": "stats",
    "plot_concurrency": "plot", "plot_traffic_heatmap": "plot",
    "plot_extensions": "plot", "plot_capacity": "plot",
    "LiveDashboard": "widgets",
    "RecorderSimulator": "simulator",
    "write_report": "report", "compare_calls": "report",
}
_SUBMODULES = {"accessor", "archive", "busyhour", "capture", "cdr", "cli", "client", "erlang",
               "framing", "messages", "plot", "protocol", "report", "samples", "simulator",
               "stats", "table", "traffic", "widgets"}

__all__ = [  # noqa: PLE0604 - the lazy names are strings too
    "CDRParseError", "ConnectionLost", "ProtocolError", "RecstatsError", "ServerError",
    "calls_frame", "read_cdr", *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'recstats' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
