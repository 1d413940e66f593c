"""Shared test fixtures. Keep this small: fixtures used by one file belong in that file."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The committed sample data: ``archive/`` (generated) and ``odd/`` (odd files)."""
    return ROOT / "data" / "samples"


@pytest.fixture
def four_calls():
    """Four hand-checkable calls on 2026-11-02 (UTC), the analytics tests' table.

    NY: a 09:00-09:20, b 09:10-09:30; LA: c 09:05-10:05, d 09:50-10:00.
    In progress: 09:00 1, 09:05 2, 09:10 3, 09:20 2, 09:30 1, 09:50 2, 10:00 1, 10:05 0
    -> peak 3 at 09:10; hour 09-10 carries 20+20+55+10 = 105 call-minutes = 1.75 E,
    hour 10-11 5 call-minutes. Extensions 100, 101, 102, 200; two E.164 numbers.
    """
    import pandas as pd

    from recstats._table import coerce_calls

    return coerce_calls(pd.DataFrame([
        ("a", "NY", "2026-11-02 09:00", "2026-11-02 09:20", "100", "200"),
        ("b", "NY", "2026-11-02 09:10", "2026-11-02 09:30", "101", "100"),
        ("c", "LA", "2026-11-02 09:05", "2026-11-02 10:05", "+3612345", "102"),
        ("d", "LA", "2026-11-02 09:50", "2026-11-02 10:00", "100", "+3699999"),
    ], columns=["call_id", "site", "start_time", "end_time", "caller", "callee"]))


@pytest.fixture
def small_archive(tmp_path):
    """A freshly generated archive of 60 calls at two sites over two days.

    Returns ``(root, truth)``: the folder and the calls table it must read back as.
    """
    from recstats.sim.samples import generate_archive

    root = tmp_path / "archive"
    truth = generate_archive(root, calls=60, days=2, seed=11)
    return root, truth


@pytest.fixture
def spill_left():
    """A function: the files left in the worker pool's folder for the tables workers
    hand back, once the workers of a stopped read had time to end (10 s at most)."""
    from recstats import _archive_pool

    def left() -> list[str]:
        folder = _archive_pool._state["spill"]
        deadline = time.monotonic() + 10
        while os.listdir(folder) and time.monotonic() < deadline:
            time.sleep(0.05)
        return os.listdir(folder)

    return left


@pytest.fixture
def lose_first_worker_table(monkeypatch):
    """A function: from its call on, the file of the first worker table handed over as
    a file is removed just before this process maps it. Returns the paths removed."""
    from recstats import _archive_handover

    def arm() -> list[str]:
        real = _archive_handover.taken_over
        lost: list[str] = []

        def lose_first(data):
            if isinstance(data, str) and not lost:
                os.unlink(data)
                lost.append(data)
            return real(data)

        monkeypatch.setattr(_archive_handover, "taken_over", lose_first)
        return lost

    return arm
