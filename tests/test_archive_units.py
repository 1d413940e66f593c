"""Units shared by the processes of a read: what each process hands back is finished,
a stopped read leaves nothing behind for the next, and the walk's shortcuts equal the
general rules they replace."""

from __future__ import annotations

import os
import warnings

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import recstats as rs
from recstats import _archive_list, _archive_pool, _archive_run, _table, archive
from recstats.sim.samples import odd_cases


@pytest.fixture
def pool_always(monkeypatch):
    """Workers for any size, and many small units and chunks."""
    monkeypatch.setattr(archive, "IN_PROCESS_BELOW", 0)
    monkeypatch.setattr(archive, "COLD_IN_PROCESS_BELOW", 0)
    monkeypatch.setattr(archive, "MAX_CHUNK", 16)
    monkeypatch.setattr(archive, "UNIT_FILES", 4)


def _same(calls: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(calls, expected)
    assert calls.attrs == expected.attrs


def _odd_archive_read_by_one_process(root) -> pd.DataFrame:
    """Add the odd and hostile files to ``root``, read it with ``workers=1`` (the
    expected table) and have the pool's worker started for the read under test."""
    for name, data in odd_cases().items():
        (root / name).write_bytes(data)
    one = rs.read_archive(root, workers=1, progress=False)
    assert _archive_pool.start(1, timeout=120)
    return one


def test_a_stopped_read_leaves_the_pool_clean(small_archive, pool_always):
    root, _ = small_archive
    one = _odd_archive_read_by_one_process(root)
    for _ in range(3):  # each stops with units of its own left in the shared queue
        with pytest.raises(rs.CDRParseError):
            rs.read_archive(root, workers=2, progress=False, on_error="raise")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no worker failed
            _same(rs.read_archive(root, workers=2, progress=False), one)
    assert _archive_pool.POOL_CPU_SECONDS[0] > 0  # the worker did take units


def test_the_table_comes_finished(small_archive, pool_always):
    # chunks arrive with media and end_unknown, from any process: the table has the
    # schema coerce_calls gives, and equals the truth
    root, truth = small_archive
    assert _archive_pool.start(1, timeout=120)
    for workers in (1, 2):
        calls = rs.read_archive(root, workers=workers, progress=False)
        pd.testing.assert_frame_equal(calls, truth)
        pd.testing.assert_frame_equal(_table.coerce_calls(calls), calls)
        assert calls["media_path"].notna().all()


def test_units_pair_media_by_stem():
    media = {"d/a": "d/a.wav", "d/b": "d/b.txt"}
    tasks = [("files", None, ["d/a.xml", "d/c.xml"]), ("zip", "z.zip", ["b.xml"]),
             ("blobs", "t.tar", [("d/b.xml", b"<v/>"), ("t.tar", "archive damaged")])]
    got = [m for _, m in _archive_run.units(tasks, media)]
    assert got == [["d/a.wav", None], [None], ["d/b.txt", None]]
    assert _archive_run.item_paths(tasks[1]) == ["z.zip/b.xml"]


def test_merged_units_keep_kind_source_and_size():
    units = [(("files", None, ["a.xml", "b.xml"]), ["a.wav", None]),
             (("files", None, ["c.xml"]), [None]),
             (("blobs", "t", [("t/d.xml", b"")]), [None])]
    merged = list(archive._merged(iter(units), 2))
    assert merged == [(("files", None, ["a.xml", "b.xml"]), ["a.wav", None]),
                      (("files", None, ["c.xml"]), [None]),
                      (("blobs", "t", [("t/d.xml", b"")]), [None])]
    assert list(archive._merged(iter(units[:2]), 5)) == [
        (("files", None, ["a.xml", "b.xml", "c.xml"]), ["a.wav", None, None])]


_NAME = st.text(alphabet="ab.x", min_size=1, max_size=6).filter(lambda s: s[0] != ".")


@given(names=st.lists(_NAME, max_size=8))
def test_folder_media_names_equal_add_media(names):
    # the walk's shortcut for a folder's media equals os.path.splitext's stems
    one_by_one, together = _archive_list.Listing(), _archive_list.Listing()
    prefix = "top" + os.sep + "day.1" + os.sep
    for name in names:
        one_by_one.add_media(prefix + name)
    together.add_media_names(prefix, names)
    assert together.media == one_by_one.media


def test_reads_in_two_threads_share_the_pool_safely(small_archive, pool_always):
    # one read at a time uses the pool's queue; the other parses in its own thread
    from concurrent.futures import ThreadPoolExecutor

    root, _ = small_archive
    one = _odd_archive_read_by_one_process(root)
    with ThreadPoolExecutor(2) as threads:
        results = list(threads.map(
            lambda _: rs.read_archive(root, workers=2, progress=False), range(4)))
    for calls in results:
        _same(calls, one)
