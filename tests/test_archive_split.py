"""A large folder read with workers: its folders are listed by whichever process is free,
and the table, attrs and warnings are those of one process (the oracle: workers=1)."""

from __future__ import annotations

import os
import sys
import time
import warnings

import pandas as pd
import pytest

import recstats as rs
from recstats import _archive_find, _archive_pool, _archive_split, archive

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="symbolic links")


def _cdr(call_id: str) -> bytes:
    return (f"<verbacdr><id>{call_id}</id><location>NY</location>"
            f"<start_time>2026-11-02 09:{len(call_id) % 60:02d}:00</start_time>"
            "</verbacdr>").encode()


@pytest.fixture
def tree(tmp_path):
    """24 day folders of 5 CDRs each (media for most), and the odd entries a walk
    must treat alike in any process: links to files and folders inside, a folder only
    a link leads to, links outside, media without a CDR, a broken CDR."""
    root = tmp_path / "archive"
    for site in ("NY", "LDN"):
        for day in range(1, 13):
            folder = root / site / f"2026-11-{day:02d}"
            folder.mkdir(parents=True)
            for i in range(5):
                stem = f"{site}-{day}-{i}"
                (folder / f"{stem}.xml").write_bytes(_cdr(stem))
                if i != 4:
                    (folder / f"{stem}.wav").write_bytes(b"RIFF")
            (folder / f"orphan-{day}.mp3").write_bytes(b"ID3")
    (root / "NY" / "2026-11-03" / "broken.xml").write_bytes(b"<verbacdr><id>x</id>")
    hidden = root / ".snapshots" / "kept"
    hidden.mkdir(parents=True)
    (hidden / "snap.xml").write_bytes(_cdr("snap"))
    (hidden / "snap.wav").write_bytes(b"RIFF")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.xml").write_bytes(_cdr("secret"))
    (root / "LDN" / "2026-11-05" / "kept").symlink_to(hidden)       # only way in
    (root / "NY" / "again").symlink_to(root / "LDN" / "2026-11-02")  # read by its name
    (root / "NY" / "2026-11-07" / "second.xml").symlink_to("NY-7-0.xml")
    (root / "NY" / "2026-11-08" / "out.xml").symlink_to(outside / "secret.xml")
    (root / "LDN" / "away").symlink_to(outside)
    return root


@pytest.fixture
def split_always(monkeypatch):
    """The pool for any size, its worker up, small units."""
    monkeypatch.setattr(archive, "IN_PROCESS_BELOW", 0)
    monkeypatch.setattr(archive, "COLD_IN_PROCESS_BELOW", 0)
    monkeypatch.setattr(archive, "UNIT_FILES", 3)
    monkeypatch.setattr(_archive_pool, "SPILL_BYTES", 0)  # every worker table as a file
    assert _archive_pool.start(1, timeout=120)


def _same(calls: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(calls, expected)
    assert calls.attrs == expected.attrs


def _slow_parent(monkeypatch, seconds: float) -> list[str]:
    """Slow this process's folder listing (not the worker's): the worker lists most."""
    listed: list[str] = []
    real = _archive_find.FolderWalk.list_folder

    def slow(self, folder, ancestors, listing):
        listed.append(folder)
        time.sleep(seconds)
        return real(self, folder, ancestors, listing)

    monkeypatch.setattr(_archive_find.FolderWalk, "list_folder", slow)
    return listed


def test_workers_list_folders_and_the_table_is_one_processs(tree, split_always,
                                                            monkeypatch):
    one = rs.read_archive(tree, workers=1, progress=False)
    # by hand: 24 x 5 CDRs, the snapshot (via its link), the second name; the broken
    # CDR and the link outside are errors; "again" and "away" add nothing
    assert len(one) == 24 * 5 + 2
    assert {e["path"] for e in one.attrs["errors"]} == {
        str(tree / "NY" / "2026-11-03" / "broken.xml"),
        str(tree / "NY" / "2026-11-08" / "out.xml"), str(tree / "LDN" / "away")}
    assert str(tree / "LDN" / "2026-11-05" / "kept" / "snap.xml") in set(one.cdr_path)
    assert len(one.attrs["media_without_cdr"]) == 24
    assert one.media_path.notna().sum() == 24 * 4 + 1  # and snap.wav; second.xml has none
    mine = _slow_parent(monkeypatch, 0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no worker failed
        two = rs.read_archive(tree, workers=2, progress=False)
    _same(two, one)
    # the parent's walk stops at the first folder with CDRs (IN_PROCESS_BELOW is 0):
    # the other folders went to the queue, and the worker listed some of them; each
    # folder once: the top, 2 sites, 24 days, and kept/ by its link
    assert _archive_pool.POOL_FOLDERS[0] > 0
    assert len(mine) + _archive_pool.POOL_FOLDERS[0] == 1 + 2 + 24 + 1


def test_a_worker_dying_mid_read_reads_all_again_in_one_process(tree, split_always,
                                                                 monkeypatch):
    one = rs.read_archive(tree, workers=1, progress=False)
    real = _archive_find.FolderWalk.list_folder
    killed = []

    def kill_the_worker_once(self, folder, ancestors, listing):
        counts = _archive_pool._state["counts"]
        if not killed and counts is not None and counts[0]:  # a split run is on
            for process in _archive_pool._state["pool"]._processes.values():
                process.kill()
                process.join(timeout=30)
                killed.append(process.pid)
        return real(self, folder, ancestors, listing)

    monkeypatch.setattr(_archive_find.FolderWalk, "list_folder", kill_the_worker_once)
    discovered = []
    real_discover = archive._discover
    monkeypatch.setattr(archive, "_discover",
                        lambda *a: discovered.append(a) or real_discover(*a))
    with pytest.warns(RuntimeWarning, match="worker processes failed") as caught:
        calls = rs.read_archive(tree, workers=2, progress=False)
    assert killed and len(discovered) == 2  # the folder was read again
    assert len([w for w in caught if "worker" in str(w.message)]) == 1
    _same(calls, one)
    monkeypatch.setattr(_archive_find.FolderWalk, "list_folder", real)
    assert _archive_pool.start(1, timeout=120)  # a new pool
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _same(rs.read_archive(tree, workers=2, progress=False), one)


def test_a_worker_table_lost_before_it_is_mapped_reads_all_again(
        tree, split_always, monkeypatch, lose_first_worker_table):
    one = rs.read_archive(tree, workers=1, progress=False)
    _slow_parent(monkeypatch, 0.02)  # the worker lists and parses some folders
    lost = lose_first_worker_table()
    with pytest.warns(RuntimeWarning, match="worker processes failed") as caught:
        calls = rs.read_archive(tree, workers=2, progress=False)
    assert lost
    assert len([w for w in caught if "worker" in str(w.message)]) == 1
    _same(calls, one)


def test_a_stopped_split_read_leaves_the_next_one_whole(tree, split_always, spill_left):
    one = rs.read_archive(tree, workers=1, progress=False)
    for _ in range(3):
        with pytest.raises(rs.CDRParseError):
            rs.read_archive(tree, workers=2, progress=False, on_error="raise")
        _same(rs.read_archive(tree, workers=2, progress=False), one)
    assert spill_left() == []  # no table of a stopped read is left behind


def test_a_workers_listing_hands_back_what_its_chunks_do_not_hold(tree, monkeypatch):
    # what a worker does with a folder item, in this process: its subfolders and all
    # but the last unit go back to the queue; refused files, unreadable folders, links
    # and media without CDR come back at the end
    folder = tree / "NY" / "2026-11-08"
    share = _archive_split.Share(_archive_find.FolderWalk(str(tree)), "UTC", None, 32000, 2)
    put: list[tuple] = []
    share.serve(("folder", str(folder), ()), put.extend)
    assert [kind for kind, *_ in put] == ["unit", "unit"]  # 5 CDRs: units of 2, 2, 1
    units = [item[1] for item in put]
    assert [len(task[2]) for task, _ in units] == [2, 2]
    assert units[0][1] == [str(folder / "NY-8-0.wav"), str(folder / "NY-8-1.wav")]
    share.serve(("folder", str(tree / "NY"), ()), put.extend)
    assert ("folder", str(tree / "NY" / "2026-11-01")) in [item[:2] for item in put]
    real = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path=".": (_ for _ in ()).throw(
        PermissionError(13, "Permission denied", os.fspath(path)))
        if os.fspath(path).endswith("locked") else real(path))
    share.serve(("folder", str(tree / "locked"), ()), put.extend)
    (table, errors, seen), = share.finish()
    assert seen == 1 + 1 and table.num_rows == 1  # the last unit, and out.xml
    assert errors == [(str(folder / "out.xml"), "points outside the archive")]
    back = share.handback()
    assert back["linked"] == [str(tree / "NY" / "again")]
    assert back["unreadable"] == [(str(tree / "locked"), "Permission denied")]
    assert back["unpaired"] == [str(folder / "orphan-8.mp3")]
    assert back["cdrs"] == 5 and back["folders"] == 3
