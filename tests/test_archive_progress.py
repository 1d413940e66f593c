"""read_archive's progress bar moves as files are parsed, in every process, not once per
chunk; it ends at the files read, whatever the path (one process, a list of files with
workers, a folder listed by all the processes)."""

from __future__ import annotations

import sys
import warnings

import pytest

import recstats as rs
from recstats import _archive_pool, archive
from recstats._archive_run import Parser


def _cdr(call_id: str) -> bytes:
    return (f"<verbacdr><id>{call_id}</id><location>NY</location>"
            "<start_time>2026-11-02 09:00:00</start_time></verbacdr>").encode()


@pytest.fixture
def days(tmp_path):
    """12 day folders of 6 CDRs each: 72 files, no error."""
    root = tmp_path / "archive"
    for day in range(1, 13):
        folder = root / f"2026-11-{day:02d}"
        folder.mkdir(parents=True)
        for i in range(6):
            (folder / f"{day}-{i}.xml").write_bytes(_cdr(f"{day}-{i}"))
    return root


class Bar:
    """Records what read_archive tells its bar."""

    def __init__(self, total):
        self.total, self.updates = total, []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        self.updates.append(n)

    def reset(self, total=None):
        self.total, self.updates = total, []


@pytest.fixture
def bars(monkeypatch):
    """The bars of the reads that follow, and the progress marks among their results."""
    made: list[Bar] = []
    marks: list[list[int]] = []
    monkeypatch.setattr(archive, "_progress_bar", lambda total, progress: made.append(
        Bar(total)) or made[-1])
    real = archive._gather

    def gather(results, listing, bar, on_error):
        seen: list[int] = []
        marks.append(seen)

        def recorded():
            for result in results:
                if result[0] is None:
                    seen.append(result[2])
                yield result

        return real(recorded(), listing, bar, on_error)

    monkeypatch.setattr(archive, "_gather", gather)
    return made, marks


@pytest.fixture
def small_units(monkeypatch):
    """Units of 4 files, one chunk for the whole read (as for any read under 32 000
    files): without marks, the bar would move once, at the end."""
    monkeypatch.setattr(archive, "UNIT_FILES", 4)
    monkeypatch.setattr(archive, "IN_PROCESS_BELOW", 0)
    monkeypatch.setattr(archive, "COLD_IN_PROCESS_BELOW", 0)
    monkeypatch.setattr(_archive_pool, "SPILL_BYTES", 0)


def test_one_process_moves_the_bar_with_each_unit(days, bars, small_units):
    made, marks = bars
    calls = rs.read_archive(days, workers=1)
    bar, = made
    assert calls.attrs["files"] == 72
    assert sum(bar.updates) == 72
    # one update per unit of 4 files (one process's units run across folders)
    assert bar.updates == [4] * 18
    assert sum(marks[0]) == 72


@pytest.mark.skipif(sys.platform == "win32", reason="worker processes start slowly")
@pytest.mark.parametrize("source", ["folder", "list"])
def test_workers_count_their_files_as_they_parse(days, bars, small_units, source):
    assert _archive_pool.start(1, timeout=120)
    made, marks = bars
    path = days if source == "folder" else sorted(str(p) for p in days.rglob("*.xml"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no worker failed: nothing parsed twice
        calls = rs.read_archive(path, workers=2)
    bar, = made
    assert calls.attrs["files"] == 72
    assert sum(bar.updates) == 72
    # every file marked once, by the process that parsed it: the worker's files too
    # (the worker's table arrives at the end, so without its marks they would not add
    # up), and the bar moved before the end
    assert sum(marks[0]) == 72
    assert len(bar.updates) > 2
    assert _archive_pool.POOL_CPU_SECONDS[0] > 0  # the worker took part


def test_the_bar_never_passes_the_total(days, bars, small_units, monkeypatch):
    # files parsed twice (as after a failed worker) are marked twice: the bar stops at
    # the total once it is known, and the table holds each file once
    real_add = Parser.add

    def add_twice(self, task, media):
        real_add(self, task, media)
        self.parsed += len(task[2])

    monkeypatch.setattr(Parser, "add", add_twice)
    made, _ = bars
    calls = rs.read_archive(sorted(str(p) for p in days.rglob("*.xml")), workers=1)
    bar, = made
    assert bar.total == 72 == len(calls)
    assert sum(bar.updates) == 72
