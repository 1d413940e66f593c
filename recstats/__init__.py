"""recstats: capture and analyse call-recording servers' traffic with pandas.

>>> import recstats as rs
>>> rs.read_cdr(b"<verbacdr><id>a</id><location>NY</location></verbacdr>")["site"]
'NY'

Every public name loads its module on first use (PEP 562), so ``import recstats`` and
``import recstats.protocol`` stay quick and do not load pandas. The ``df.rs`` accessor
is registered as soon as both recstats and pandas are imported, in either order.
"""

from __future__ import annotations

import importlib as _importlib
import importlib.util as _importlib_util
import sys as _sys

from .errors import (
    CDRParseError,
    ConnectFailed,
    ConnectionLost,
    DataQualityWarning,
    KeepaliveExpired,
    ProtocolError,
    RecstatsError,
    ResponseTimeout,
    ServerClosed,
    ServerError,
)

__version__ = "0.1.0"

# public name -> module that defines it; imported on first access
_LAZY = {
    "read_cdr": "cdr",
    "calls_frame": "_table", "coerce_calls": "_table",
    "read_archive": "archive", "archive_errors": "archive", "write_parquet": "archive",
    "archive_files": "archive",
    "RecorderClient": "client",
    "Capture": "capture",
    "concurrency": "stats", "busy_hour": "stats", "traffic_profile": "stats",
    "extension_stats": "stats", "is_extension": "stats", "erlang_b": "stats",
    "channels_for": "stats", "traffic_for": "stats", "capacity_table": "stats",
    "check_calls": "stats", "observation_window": "stats", "ongoing_mask": "stats",
    "plot_concurrency": "plot", "plot_traffic_heatmap": "plot",
    "plot_extensions": "plot", "plot_capacity": "plot",
    "LiveDashboard": "widgets",
    "RecorderSimulator": "sim",
    "write_report": "report", "compare_calls": "report",
    "ingest": "_dataset", "read_calls": "_dataset_read",
}
_SUBMODULES = ("archive", "capture", "cdr", "cli", "client", "dask", "errors", "plot",
               "protocol", "report", "sim", "stats", "widgets")

__all__ = [  # noqa: PLE0604 - the lazy names are strings too
    "CDRParseError", "ConnectFailed", "ConnectionLost", "DataQualityWarning",
    "KeepaliveExpired", "ProtocolError", "RecstatsError", "ResponseTimeout", "ServerClosed",
    "ServerError", *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(_importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return _importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'recstats' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*__all__, *_SUBMODULES, "__version__"})


class _AccessorWhenPandasLoads:
    """Registers ``df.rs`` right after pandas is imported, when that happens later.

    A meta-path finder that never finds anything itself: it only notices the first
    import of pandas, wraps that module's loader to register the accessor once pandas
    is complete, and removes itself.
    """

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "pandas":
            return None
        _sys.meta_path.remove(cls)
        spec = _importlib_util.find_spec("pandas")
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _importlib.import_module(f"{__name__}._accessor")

        # wraps this one loader instance, on purpose: mypy only allows class-level methods
        spec.loader.exec_module = exec_then_register  # type: ignore[method-assign]
        return spec


if "pandas" in _sys.modules:
    from . import _accessor  # noqa: F401  (registers df.rs)
else:
    _sys.meta_path.insert(0, _AccessorWhenPandasLoads)
