"""Shared test fixtures. Keep this small: fixtures used by one file belong in that file."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The committed sample data: ``archive/`` (generated) and ``odd/`` (odd files)."""
    return ROOT / "data" / "samples"


@pytest.fixture
def small_archive(tmp_path):
    """A freshly generated archive of 60 calls at two sites over two days.

    Returns ``(root, truth)``: the folder and the calls table it must read back as.
    """
    from recstats.samples import generate_archive

    root = tmp_path / "archive"
    truth = generate_archive(root, calls=60, days=2, seed=11)
    return root, truth
