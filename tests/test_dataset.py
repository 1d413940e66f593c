"""Incremental Parquet datasets: rs.ingest, rs.read_calls, ``recstats parse --dataset``.

The reference is always ``rs.read_archive`` of the archive's current files: whatever
happened to the archive between runs, the dataset must read back as that table.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest

import recstats as rs
from recstats.cli import main

pytestmark = pytest.mark.timeout(120)

ODD = ("bad-time.xml", "empty.xml", "truncated.xml", "extra-fields.xml", "minimal.xml",
       "bom.xml")


def _cdr(call_id: str, site: str, start: str, end: str) -> str:
    return (f"<verbacdr><id>{call_id}</id><location>{site}</location>"
            f"<start_time>{start}</start_time><end_time>{end}</end_time></verbacdr>")


@pytest.fixture
def archive(small_archive, samples_dir):
    """60 generated calls at two sites over two days, plus odd files (3 of them bad)."""
    root, _ = small_archive
    (root / "odd").mkdir()
    for name in ODD:
        shutil.copy(samples_dir / "odd" / name, root / "odd" / name)
    return root


def _same(calls: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal tables (rows in call_id order), error lists and counts."""
    def by_id(frame):
        return frame.sort_values(["call_id", "cdr_path"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(by_id(calls), by_id(expected))
    assert calls.attrs["errors"] == expected.attrs["errors"]
    assert calls.attrs["files"] == expected.attrs["files"]
    assert calls.attrs["failed"] == expected.attrs["failed"]
    assert calls.attrs["parsed"] == len(calls)


def _data_files(dataset: Path) -> dict[str, int]:
    return {str(p.relative_to(dataset)): p.stat().st_mtime_ns
            for p in dataset.rglob("part-*.parquet")}


def test_first_run_reads_back_as_read_archive(archive, tmp_path):
    dataset = tmp_path / "ds"
    report = rs.ingest(archive, dataset, progress=False)
    expected = rs.read_archive(archive, progress=False)
    assert (report.files, report.new, report.parsed, report.failed) == (66, 66, 63, 3)
    assert report.errors == 3 and "66 CDR files" in str(report)
    calls = rs.read_calls(dataset)
    _same(calls, expected)
    # read_archive's own row order too, not only the same rows
    pd.testing.assert_frame_equal(calls, expected)
    # Hive layout: one folder per site, then per local start date (UTC here)
    parts = {tuple(p.parent.relative_to(dataset).parts)
             for p in dataset.rglob("part-*.parquet")}
    assert ("site=NY-RECORDER", "date=2026-11-02") in parts
    assert ("site=LDN-RECORDER", "date=2026-11-03") in parts
    manifest = pd.read_parquet(dataset / "_manifest.parquet")
    assert len(manifest) == 66
    assert set(manifest["outcome"]) == {"parsed", "error"}
    assert (manifest["outcome"] == "error").sum() == 3
    assert manifest.loc[manifest["outcome"] == "error", "part"].isna().all()
    assert manifest["size"].tolist() == [os.stat(p).st_size for p in manifest["path"]]


def test_unchanged_archive_parses_nothing_and_writes_nothing(archive, tmp_path):
    dataset = tmp_path / "ds"
    rs.ingest(archive, dataset, progress=False)
    before = _data_files(dataset)
    manifest = pd.read_parquet(dataset / "_manifest.parquet")
    report = rs.ingest(archive, dataset, progress=False)
    assert (report.unchanged, report.new, report.changed, report.removed,
            report.parsed) == (66, 0, 0, 0, 0)
    assert _data_files(dataset) == before
    pd.testing.assert_frame_equal(pd.read_parquet(dataset / "_manifest.parquet"), manifest)


def test_changes_are_parsed_again_and_mirrored(archive, tmp_path):
    dataset = tmp_path / "ds"
    rs.ingest(archive, dataset, progress=False)
    cdrs = sorted((archive / "NY-RECORDER").rglob("*.xml"))
    moved, deleted = cdrs[0], cdrs[1]
    # changed: another site and day (its old row must leave the old partition)
    moved.write_text(_cdr("moved", "PARIS", "2026-11-09 10:00:00", "2026-11-09 10:05:00"))
    deleted.unlink()
    (archive / "odd" / "minimal.xml").write_text("<verbacdr>")  # now broken
    (archive / "odd" / "bad-time.xml").write_text(  # now fine
        _cdr("fixed", "NY-RECORDER", "2026-11-02 08:00:00", "2026-11-02 08:01:00"))
    (archive / "odd" / "new.xml").write_text(
        _cdr("new", "LDN-RECORDER", "2026-11-03 12:00:00", "2026-11-03 12:30:00"))
    report = rs.ingest(archive, dataset, progress=False)
    assert (report.files, report.new, report.changed, report.removed) == (66, 1, 3, 1)
    assert (report.unchanged, report.parsed, report.failed) == (62, 3, 1)
    _same(rs.read_calls(dataset), rs.read_archive(archive, progress=False))
    assert (dataset / "site=PARIS" / "date=2026-11-09").is_dir()


def test_media_change_counts_as_a_change(archive, tmp_path):
    dataset = tmp_path / "ds"
    rs.ingest(archive, dataset, progress=False)
    media = next((archive / "NY-RECORDER").rglob("*.wav"))
    media.unlink()  # the CDR's media_path becomes NA
    report = rs.ingest(archive, dataset, progress=False)
    assert (report.changed, report.parsed) == (1, 1)
    _same(rs.read_calls(dataset), rs.read_archive(archive, progress=False))


def test_interrupted_run_leaves_the_dataset_readable(archive, tmp_path, monkeypatch):
    dataset = tmp_path / "ds"
    rs.ingest(archive, dataset, progress=False)
    expected = rs.read_calls(dataset)
    next((archive / "LDN-RECORDER").rglob("*.xml")).write_text(
        _cdr("edited", "LDN-RECORDER", "2026-11-02 10:00:00", "2026-11-02 10:01:00"))
    from recstats import _dataset

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_dataset, "_write_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        rs.ingest(archive, dataset, progress=False)
    monkeypatch.undo()
    # the new files are there but unnamed by the manifest: the old dataset is intact
    pd.testing.assert_frame_equal(rs.read_calls(dataset), expected)
    rs.ingest(archive, dataset, progress=False)
    _same(rs.read_calls(dataset), rs.read_archive(archive, progress=False))
    manifest = pd.read_parquet(dataset / "_manifest.parquet")
    assert set(_data_files(dataset)) == set(manifest["part"].dropna())  # leftovers gone


def test_partition_pruning_and_filters(archive, tmp_path):
    dataset = tmp_path / "ds"
    rs.ingest(archive, dataset, progress=False)
    everything = rs.read_calls(dataset)
    ny = rs.read_calls(dataset, sites=["NY-RECORDER"])
    pd.testing.assert_frame_equal(
        ny, everything[everything["site"] == "NY-RECORDER"].reset_index(drop=True),
        check_categorical=False)
    start, end = pd.Timestamp("2026-11-02 12:00", tz="UTC"), "2026-11-03 09:00"
    window = rs.read_calls(dataset, start=start, end=end)
    inside = (everything["start_time"] >= start) & \
        (everything["start_time"] < pd.Timestamp(end, tz="UTC"))
    assert 0 < inside.sum() < len(everything)
    assert window["call_id"].tolist() == everything.loc[inside, "call_id"].tolist()
    # pruned files are never opened: break every file of the other site / other days
    for part in dataset.glob("site=LDN-RECORDER/*/part-*.parquet"):
        part.write_bytes(b"not parquet")
    for part in dataset.glob("site=NY-RECORDER/date=2026-11-03/part-*.parquet"):
        part.write_bytes(b"not parquet")
    pruned = rs.read_calls(dataset, sites="NY-RECORDER", end="2026-11-03")
    assert pruned["call_id"].tolist() == ny.loc[
        ny["start_time"] < pd.Timestamp("2026-11-03", tz="UTC"), "call_id"].tolist()


def test_dates_are_local_to_the_sites_zone(tmp_path):
    archive = tmp_path / "a"
    archive.mkdir()
    # 23:30 in Budapest (UTC+1 in November) is 22:30 UTC: still 2 November locally
    (archive / "late.xml").write_text(
        _cdr("late", "BUD", "2026-11-02 23:30:00", "2026-11-02 23:40:00"))
    # 00:30 local on 3 November is 23:30 UTC on 2 November
    (archive / "early.xml").write_text(
        _cdr("early", "BUD", "2026-11-03 00:30:00", "2026-11-03 00:40:00"))
    dataset = tmp_path / "ds"
    rs.ingest(archive, dataset, tz="Europe/Budapest", progress=False)
    folders = {p.parent.name: pd.read_parquet(p)["call_id"].tolist()
               for p in dataset.rglob("part-*.parquet")}
    assert folders == {"date=2026-11-02": ["late"], "date=2026-11-03": ["early"]}
    calls = rs.read_calls(dataset, start="2026-11-02 23:00")  # 23:00 UTC
    assert calls["call_id"].tolist() == ["early"]
    _same(rs.read_calls(dataset), rs.read_archive(archive, tz="Europe/Budapest",
                                                  progress=False))
    with pytest.raises(ValueError, match="mirrors"):
        rs.ingest(archive, dataset, tz="UTC", progress=False)


def test_zip_archive_is_parsed_again_as_a_whole(archive, tmp_path):
    packed = tmp_path / "calls.zip"
    with zipfile.ZipFile(packed, "w") as zf:
        for path in sorted(archive.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(archive))
    dataset = tmp_path / "ds"
    assert rs.ingest(packed, dataset, progress=False).parsed == 63
    assert rs.ingest(packed, dataset, progress=False).parsed == 0
    with zipfile.ZipFile(packed, "a") as zf:
        zf.writestr("extra/one.xml", _cdr("one", "NY-RECORDER", "2026-11-02 09:00:00",
                                          "2026-11-02 09:01:00"))
    report = rs.ingest(packed, dataset, progress=False)
    assert (report.new, report.changed, report.parsed) == (1, 66, 64)
    _same(rs.read_calls(dataset), rs.read_archive(packed, progress=False))


def test_archive_without_calls(tmp_path, samples_dir):
    archive = tmp_path / "bad"
    archive.mkdir()
    shutil.copy(samples_dir / "odd" / "empty.xml", archive / "empty.xml")
    rs.ingest(archive, tmp_path / "ds", progress=False)
    _same(rs.read_calls(tmp_path / "ds"), rs.read_archive(archive, progress=False))


def test_read_calls_needs_a_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="recstats.ingest"):
        rs.read_calls(tmp_path)


def test_cli_dataset(archive, tmp_path, capsys):
    dataset = tmp_path / "ds"
    assert main(["parse", str(archive), "--dataset", str(dataset), "--no-progress"]) == 0
    assert "66 new" in capsys.readouterr().out
    code = main(["parse", str(archive), "--dataset", str(dataset), "--no-progress",
                 "--strict"])
    captured = capsys.readouterr()
    assert code == 1 and "66 unchanged" in captured.out
    assert "3 file(s) could not be parsed" in captured.err
    assert main(["parse", str(tmp_path), "--dataset", str(dataset), "--no-progress"]) == 2
    assert "mirrors" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one of -o and --dataset, not both
        main(["parse", str(archive), "--dataset", str(dataset), "-o", "x.parquet"])


def test_unchanged_folders_are_not_listed_again(archive, tmp_path, monkeypatch):
    from recstats import _dataset

    an_hour_ago = pd.Timestamp.now().value - 3600 * 10**9
    for folder in [archive, *(p for p in archive.rglob("*") if p.is_dir())]:
        os.utime(folder, ns=(an_hour_ago, an_hour_ago))
    dataset = tmp_path / "ds"
    rs.ingest(archive, dataset, progress=False)  # lists, records every folder's mtime

    class Listed(Exception):
        pass

    def listing(*args, **kwargs):
        raise Listed

    monkeypatch.setattr(_dataset, "archive_files", listing)
    assert rs.ingest(archive, dataset, progress=False).unchanged == 66
    # a file changed in place: its folder is unchanged, its own mtime and size show it
    edited = next((archive / "LDN-RECORDER").rglob("*.xml"))
    edited.write_text(_cdr("edited", "LDN-RECORDER", "2026-11-02 10:00:00",
                           "2026-11-02 10:01:00"))
    report = rs.ingest(archive, dataset, progress=False)
    assert (report.changed, report.parsed, report.new) == (1, 1, 0)
    # a new file changes its folder: the archive is listed again
    (archive / "odd" / "new.xml").write_text(
        _cdr("new", "NY-RECORDER", "2026-11-02 10:00:00", "2026-11-02 10:01:00"))
    with pytest.raises(Listed):
        rs.ingest(archive, dataset, progress=False)
    monkeypatch.undo()
    assert rs.ingest(archive, dataset, progress=False).new == 1
    _same(rs.read_calls(dataset), rs.read_archive(archive, progress=False))


def test_awkward_sites_and_missing_values_round_trip(tmp_path):
    archive = tmp_path / "a"
    archive.mkdir()
    (archive / "a.xml").write_text(  # no site: the null partition
        "<verbacdr><id>a</id><start_time>2026-11-02 10:00:00</start_time>"
        "<end_time>2026-11-02 10:05:00</end_time></verbacdr>")
    (archive / "b.xml").write_text(_cdr("b", "NY/1 é=%", "2026-11-02 10:00:00",
                                        "2026-11-02 10:05:00"))
    (archive / "c.xml").write_text(  # no start: the null date
        "<verbacdr><id>c</id><location>__HIVE_DEFAULT_PARTITION__x</location></verbacdr>")
    dataset = tmp_path / "ds"
    rs.ingest(archive, dataset, progress=False)
    assert sorted(p.name for p in dataset.iterdir()) == [
        "_manifest.parquet", "site=NY%2F1%20%C3%A9%3D%25", "site=__HIVE_DEFAULT_PARTITION__",
        "site=__HIVE_DEFAULT_PARTITION__x"]
    _same(rs.read_calls(dataset), rs.read_archive(archive, progress=False))
    assert rs.read_calls(dataset, sites="NY/1 é=%")["call_id"].tolist() == ["b"]
    assert rs.read_calls(dataset, start="2026-11-01")["call_id"].tolist() == ["a", "b"]
