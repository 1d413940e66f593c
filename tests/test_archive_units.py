"""Units shared by the processes of a read: what each process hands back is finished
(a worker's table comes as a file or as bytes, and no file is left behind), a stopped
read leaves nothing behind for the next, and the walk's shortcuts equal the general
rules they replace."""

from __future__ import annotations

import os
import stat
import time
import warnings
from concurrent.futures import Future

import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

import recstats as rs
from recstats import _archive_handover, _archive_list, _archive_pool, _archive_run, _table, archive
from recstats._archive_handover import (
    drop_handed_over,
    hand_over,
    remove_spill,
    spill_folder,
    taken_over,
)
from recstats.sim.samples import odd_cases


@pytest.fixture
def pool_always(monkeypatch):
    """Workers for any size, and many small units and chunks."""
    monkeypatch.setattr(archive, "IN_PROCESS_BELOW", 0)
    monkeypatch.setattr(archive, "COLD_IN_PROCESS_BELOW", 0)
    monkeypatch.setattr(archive, "MAX_CHUNK", 16)
    monkeypatch.setattr(archive, "UNIT_FILES", 4)
    monkeypatch.setattr(_archive_pool, "SPILL_BYTES", 0)  # every worker table as a file


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


def test_a_stopped_read_leaves_the_pool_clean(small_archive, pool_always, spill_left):
    root, _ = small_archive
    one = _odd_archive_read_by_one_process(root)
    for _ in range(3):  # each stops with units of its own left in the shared queue
        with pytest.raises(rs.CDRParseError):
            rs.read_archive(root, workers=2, progress=False, on_error="raise")
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no worker failed
            _same(rs.read_archive(root, workers=2, progress=False), one)
    assert _archive_pool.POOL_CPU_SECONDS[0] > 0  # the worker did take units
    assert spill_left() == []  # the stopped reads' tables too


def test_the_table_comes_finished(small_archive, pool_always, monkeypatch, spill_left):
    # chunks arrive with media and end_unknown, from any process: the table has the
    # schema coerce_calls gives, and equals the truth
    root, truth = small_archive
    assert _archive_pool.start(1, timeout=120)
    handed: list[type] = []
    real = _archive_handover.taken_over
    monkeypatch.setattr(_archive_handover, "taken_over",
                        lambda data: handed.append(type(data)) or real(data))
    for workers in (1, 2):
        calls = rs.read_archive(root, workers=workers, progress=False)
        pd.testing.assert_frame_equal(calls, truth)
        pd.testing.assert_frame_equal(_table.coerce_calls(calls), calls)
        assert calls["media_path"].notna().all()
    assert str in handed  # the worker's tables came as files
    assert spill_left() == []


def test_a_worker_table_lost_before_it_is_mapped_is_parsed_again(
        small_archive, pool_always, monkeypatch, lose_first_worker_table):
    root, _ = small_archive
    files = sorted(str(p) for p in root.rglob("*.xml"))  # a list: units, no split
    one = rs.read_archive(files, workers=1, progress=False)
    assert _archive_pool.start(1, timeout=120)
    real_add = _archive_run.Parser.add

    def slow_add(self, task, media):  # this process only: the worker takes units
        time.sleep(0.01)
        real_add(self, task, media)

    monkeypatch.setattr(_archive_run.Parser, "add", slow_add)
    lost = lose_first_worker_table()
    with pytest.warns(RuntimeWarning, match="worker processes failed"):
        calls = rs.read_archive(files, workers=2, progress=False)
    assert lost
    _same(calls, one)


def _table_of_calls() -> pa.Table:
    return pa.table({"call_id": ["a", "b", None], "duration": [1.5, None, 3.0],
                     "end_unknown": [False, True, False]})


def test_a_workers_table_comes_as_a_file_or_as_bytes(tmp_path):
    table = _table_of_calls()
    path = hand_over(table, str(tmp_path), spill_bytes=0)
    assert isinstance(path, str) and os.path.dirname(path) == str(tmp_path)
    assert taken_over(path).equals(table)
    assert os.listdir(tmp_path) == []  # removed once mapped
    small = hand_over(table, str(tmp_path), spill_bytes=table.nbytes + 1)
    assert isinstance(small, bytes) and taken_over(small).equals(table)
    assert taken_over(hand_over(table, None, spill_bytes=0)).equals(table)  # no folder


def test_a_table_that_cannot_be_written_comes_as_bytes(tmp_path, monkeypatch):
    table = _table_of_calls()
    data = hand_over(table, str(tmp_path / "removed"), spill_bytes=0)
    assert isinstance(data, bytes) and taken_over(data).equals(table)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pa.ipc, "new_file", full)  # the file exists, its writing fails
    data = hand_over(table, str(tmp_path), spill_bytes=0)
    assert isinstance(data, bytes) and taken_over(data).equals(table)
    assert os.listdir(tmp_path) == []  # the half-made file is gone


def test_tables_never_taken_over_are_removed(tmp_path):
    path = hand_over(_table_of_calls(), str(tmp_path), spill_bytes=0)
    done: Future = Future()
    done.set_result(([(path, [], 3), (b"bytes", [], 1)], [1, 2], 0.0))
    drop_handed_over(done)
    assert os.listdir(tmp_path) == []
    drop_handed_over(done)  # again: nothing to remove, nothing raised
    failed: Future = Future()
    failed.set_exception(RuntimeError("worker died"))
    drop_handed_over(failed)


def test_worker_tables_go_to_a_private_folder_removed_with_the_pool(monkeypatch):
    folder = spill_folder()
    assert folder is not None
    try:
        assert os.path.isdir(folder) and stat.S_IMODE(os.stat(folder).st_mode) == 0o700
        assert os.listdir(folder) == []
    finally:
        remove_spill(folder)
    assert not os.path.exists(folder)
    remove_spill(folder)  # gone already: nothing raised
    monkeypatch.setattr(os, "name", "nt")  # a mapped file cannot be removed there
    assert spill_folder() is None


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


def test_settled_media_leave_the_same_media_without_cdr():
    def listing_of(settle: bool) -> _archive_list.Listing:
        listing = _archive_list.Listing()
        listing.add_cdrs(["a/1.xml", "a/2.xml"])
        listing.add_media_names("a/", ["1.wav", "3.wav", "README.md"])
        if settle:  # folder a/ is listed and its units made
            listing.settle_media()
            assert listing.media == {} and listing.cdr_keys == set()
        listing.add_cdrs(["b/3.xml"])  # a folder listed later pairs as before
        listing.add_media_names("b/", ["3.mp3", "4.wav"])
        return listing

    settled = listing_of(True)
    assert settled.media == {"b/3": "b/3.mp3", "b/4": "b/4.wav"}
    assert settled.media_without_cdr() == listing_of(False).media_without_cdr() == [
        "a/3.wav", "b/4.wav"]


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
