"""The package surface: what ``import recstats`` shows and what it loads."""

from __future__ import annotations

import subprocess
import sys

import recstats as rs


def test_dir_shows_the_public_api_only():
    names = dir(rs)
    assert not [n for n in names if n.startswith("_") and n != "__version__"]
    assert "importlib" not in names and "annotations" not in names
    for public in ("read_archive", "Capture", "RecorderClient", "busy_hour", "protocol",
                   "sim", "ConnectFailed", "coerce_calls"):
        assert public in names
    for name in names:  # everything dir() shows is reachable
        assert getattr(rs, name) is not None


def test_import_recstats_loads_neither_pandas_nor_lxml():
    code = "import sys, recstats\nprint('pandas' in sys.modules, 'lxml' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.split() == ["False", "False"]
