"""recstats.archive and recstats.sim.samples: archives of CDR files -> the calls table."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import warnings
import zipfile
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import recstats as rs
from recstats import _archive_parse as archive_parse
from recstats import _schema, _table, _xml, archive
from recstats.sim.samples import generate_archive, odd_cases


def _relative(frame: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """Paths made relative to ``prefix`` (so different containers compare equal)."""
    out = frame.copy()
    for column in ("cdr_path", "media_path"):
        out[column] = out[column].str.removeprefix(prefix).str.replace(os.sep, "/")
    return out


def _counts_add_up(calls: pd.DataFrame) -> None:
    attrs = calls.attrs
    assert attrs["files"] == attrs["parsed"] + attrs["failed"]
    assert attrs["parsed"] == len(calls)
    assert attrs["failed"] == len(attrs["errors"])


# --------------------------------------------------------------------------- generator


def test_generated_layout_is_protocol_layout(small_archive):
    root, truth = small_archive
    assert len(truth) == 60
    xml = sorted(root.rglob("*.xml"))
    media = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix != ".xml")
    assert len(xml) == len(media) == 60
    for path in xml:
        site, year, month, day, name = path.relative_to(root).parts
        assert site in ("NY-RECORDER", "LDN-RECORDER")
        text = path.read_text(encoding="utf-8")
        call_id = re.search(r"<id>([^<]+)</id>", text).group(1)
        start = re.search(r"<start_time>([^<]+)</start_time>", text).group(1)
        assert name == f"{call_id}.xml"
        assert start.startswith(f"{year}-{month}-{day} ")
        assert f"<location>{site}</location>" in text
        is_im = "<modality_id>im</modality_id>" in text
        beside = path.with_suffix(".txt" if is_im else ".wav")
        assert beside.is_file() and 0 < beside.stat().st_size < 64


def test_generator_is_deterministic_and_exact(tmp_path):
    a = generate_archive(tmp_path / "a", calls=25, days=3, seed=5)
    b = generate_archive(tmp_path / "b", calls=25, days=3, seed=5)
    assert len(a) == 25
    pd.testing.assert_frame_equal(_relative(a, str(tmp_path / "a")),
                                  _relative(b, str(tmp_path / "b")))
    assert a.start_time.min() >= pd.Timestamp("2026-11-02", tz="UTC")
    assert a.start_time.max() < pd.Timestamp("2026-11-05", tz="UTC")


def test_read_archive_equals_ground_truth(small_archive):
    root, truth = small_archive
    calls = rs.read_archive(root, progress=False)
    pd.testing.assert_frame_equal(calls, truth)
    assert calls.attrs["errors"] == [] and calls.attrs["media_without_cdr"] == []
    assert calls.media_path.notna().all()
    _counts_add_up(calls)
    # ordered by start time, then call id; index 0..n-1
    assert calls.start_time.is_monotonic_increasing
    assert list(calls.index) == list(range(len(calls)))


def test_non_utc_site_across_dst(tmp_path):
    # New York falls back on 2026-11-01: files are written in local wall-clock time
    truth = generate_archive(tmp_path / "ny", calls=40, days=3, start="2026-10-31",
                             tz="America/New_York", seed=3)
    calls = rs.read_archive(tmp_path / "ny", tz="America/New_York", progress=False)
    pd.testing.assert_frame_equal(calls, truth)
    naive = rs.read_archive(tmp_path / "ny", progress=False)  # wrongly read as UTC
    shift = (calls.start_time - naive.start_time).dt.total_seconds() / 3600
    assert set(shift) <= {4.0, 5.0}  # EDT then EST


def test_committed_samples(samples_dir):
    calls = rs.read_archive(samples_dir / "archive", progress=False)
    assert len(calls) >= 300
    assert calls.attrs["errors"] == [] and calls.attrs["media_without_cdr"] == []
    assert set(calls.site) == {"NY-RECORDER", "LDN-RECORDER"}
    assert calls.start_time.dt.date.nunique() == 5
    assert calls.media_path.notna().all()
    size = sum(p.stat().st_size for p in samples_dir.rglob("*") if p.is_file())
    assert size < 2 * 1024 * 1024


# --------------------------------------------------------------------------- containers


def _zip(root: Path, target: Path, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(target, "w") as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(root).as_posix())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return target


def test_folder_zip_tar_and_list_agree(small_archive, tmp_path):
    root, truth = small_archive
    expected = _relative(truth, str(root) + os.sep)
    zipped = _zip(root, tmp_path / "calls.zip",
                  {"__MACOSX/NY/._x.xml": b"\x00\x05\x16\x07 resource fork"})
    tarred = tmp_path / "calls.tar.gz"
    with tarfile.open(tarred, "w:gz") as tf:
        tf.add(root, arcname=".")
    files = sorted(str(p) for p in root.rglob("*") if p.is_file())
    only_xml = [f for f in files if f.endswith(".xml")]
    for source, prefix in [(zipped, f"{zipped}/"), (tarred, f"{tarred}/"),
                           (files, str(root) + os.sep), (only_xml, str(root) + os.sep)]:
        calls = rs.read_archive(source, progress=False)
        assert calls.attrs["errors"] == [], source
        _counts_add_up(calls)
        pd.testing.assert_frame_equal(_relative(calls, prefix), expected)
    assert rs.read_archive(zipped, progress=False).cdr_path.iloc[0].startswith(
        f"{zipped}/")


def test_workers_give_the_same_result(small_archive, tmp_path, monkeypatch):
    root, _ = small_archive
    for name, data in odd_cases().items():  # errors and odd columns in several chunks
        (root / name).write_bytes(data)
    one = rs.read_archive(root, workers=1, progress=False)
    two = rs.read_archive(root, workers=2, progress=False)
    pd.testing.assert_frame_equal(one, two)
    assert one.attrs == two.attrs
    monkeypatch.setattr(archive, "MAX_CHUNK", 7)  # many in-process chunks
    pd.testing.assert_frame_equal(rs.read_archive(root, workers=1, progress=False), one)
    zipped = _zip(root, tmp_path / "all.zip")
    via_zip = rs.read_archive(zipped, workers=2, progress=False)
    pd.testing.assert_frame_equal(_relative(via_zip, f"{zipped}/"),
                                  _relative(one, str(root) + os.sep))
    tarred = tmp_path / "all.tar.gz"  # a tar's chunks are bytes read by the parent
    with tarfile.open(tarred, "w:gz") as tf:
        tf.add(root, arcname=".")
    via_tar = rs.read_archive(tarred, workers=2, progress=False)
    pd.testing.assert_frame_equal(_relative(via_tar, f"{tarred}/"),
                                  _relative(one, str(root) + os.sep))
    assert len(via_tar.attrs["errors"]) == len(one.attrs["errors"])


# --------------------------------------------------------------------------- odd files


def _readme_table(readme: Path) -> dict[str, str]:
    rows = {}
    for line in readme.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0] not in ("file", "---") and "." in cells[0]:
            rows[cells[0]] = cells[2]
    return rows


def test_odd_files_give_what_the_readme_says(samples_dir):
    odd = samples_dir / "odd"
    table = _readme_table(samples_dir / "README.md")
    assert set(table) == {p.name for p in odd.iterdir()}
    calls = rs.read_archive(odd, progress=False)
    errors = {Path(e["path"]).name: e["error"] for e in calls.attrs["errors"]}
    rows = {Path(p).name: row for p, (_, row) in zip(calls.cdr_path, calls.iterrows())}
    for name, expected in table.items():
        if expected.startswith("error:"):
            options = expected.removeprefix("error:").strip().split(" or ")
            assert name in errors, name
            assert any(o.lower() in errors[name].lower() for o in options), (name, errors)
        elif expected == "media without CDR":
            assert [Path(p).name for p in calls.attrs["media_without_cdr"]] == [name]
        elif expected.startswith("media of "):
            assert Path(rows[expected.removeprefix("media of ")]["media_path"]).name == name
        else:
            row = rows[name]
            for pair in expected.split("; "):
                column, value = pair.split("=", 1)
                if column == "media":
                    got = row["media_path"]
                    got = "<NA>" if pd.isna(got) else Path(got).name
                else:
                    got = row[column]
                    got = "<NA>" if pd.isna(got) else str(got)
                assert got == value, (name, column, got, value)
    _counts_add_up(calls)
    assert (calls.attrs["files"], calls.attrs["parsed"]) == (len(table) - 2, len(rows))
    assert (len(rows), len(errors)) == (10, 8)
    assert calls.start_time.isna().iloc[-1]  # missing start times sort last


def test_committed_odd_files_are_the_generated_ones(samples_dir):
    for name, data in odd_cases().items():
        assert (samples_dir / "odd" / name).read_bytes() == data, name


# --------------------------------------------------------------------------- hostile


def _everything(calls: pd.DataFrame) -> str:
    return calls.to_json(orient="records", date_format="iso") + json.dumps(calls.attrs)


def test_hostile_xml_never_leaks_or_expands(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-7f3a9c")
    uri = secret.as_uri()
    docs = {
        "xxe.xml": f'<!DOCTYPE v [<!ENTITY s SYSTEM "{uri}">]><v><id>x1</id>'
                   f"<source_name>&s;</source_name></v>",
        "param.xml": f'<!DOCTYPE v [<!ENTITY % p SYSTEM "{uri}"> %p;]><v><id>x2</id></v>',
        "dtd.xml": f'<!DOCTYPE v SYSTEM "{uri}"><v><id>x3</id></v>',
        "bomb.xml": '<!DOCTYPE v [<!ENTITY a "TOP-SECRET-7f3a9c">'
                    + "".join(f'<!ENTITY {c} "{("&" + p + ";") * 10}">'
                              for p, c in zip("abcdefgh", "bcdefghi"))
                    + ']><v><id>&i;</id></v>',
        "undeclared.xml": "<v><id>x5</id><source_name>&s;</source_name></v>",
        "xinclude.xml": '<v xmlns:xi="http://www.w3.org/2001/XInclude"><id>x6</id>'
                        f'<xi:include href="{uri}" parse="text"/></v>',
    }
    for name, text in docs.items():
        (tmp_path / name).write_text(text)
    calls = rs.read_archive(sorted(str(tmp_path / n) for n in docs), progress=False)
    assert "TOP-SECRET-7f3a9c" not in _everything(calls)
    failed = {Path(e["path"]).name for e in calls.attrs["errors"]}
    assert failed == {"xxe.xml", "param.xml", "dtd.xml", "bomb.xml", "undeclared.xml"}
    assert calls.call_id.tolist() == ["x6"]  # XInclude is not processed: a plain element
    with pytest.raises(rs.CDRParseError):
        rs.read_cdr(docs["xxe.xml"].encode())


def test_oversized_file_is_an_error_row(tmp_path):
    big = tmp_path / "big.xml"
    with open(big, "wb") as handle:  # sparse: cheap to make, 16 MiB + 1 byte long
        handle.write(b"<v><id>big</id>")
        handle.truncate(_xml.MAX_DOCUMENT_BYTES + 1)
    (tmp_path / "ok.xml").write_bytes(b"<v><id>ok</id></v>")
    calls = rs.read_archive(tmp_path, progress=False)
    assert calls.call_id.tolist() == ["ok"]
    assert "byte limit" in calls.attrs["errors"][0]["error"]


# --------------------------------------------------------------------------- errors


def test_on_error_raise_stops_at_the_first(tmp_path):
    (tmp_path / "a.xml").write_bytes(b"<v><id>a</id></v>")
    (tmp_path / "b.xml").write_bytes(b"")
    (tmp_path / "c.xml").write_bytes(b"<v>")
    for workers in (1, 2):
        with pytest.raises(rs.CDRParseError) as info:
            rs.read_archive(tmp_path, on_error="raise", workers=workers, progress=False)
        assert info.value.path == str(tmp_path / "b.xml")
        assert "empty" in info.value.reason


def test_archive_errors_frame(samples_dir):
    calls = rs.read_archive(samples_dir / "odd", progress=False)
    errors = rs.archive_errors(calls)
    assert list(errors.columns) == ["path", "error"]
    assert len(errors) == 8 and errors.path.str.endswith(".xml").all()
    empty = rs.archive_errors(pd.DataFrame())
    assert list(empty.columns) == ["path", "error"] and len(empty) == 0


def test_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError):
        rs.read_archive(tmp_path / "missing")
    with pytest.raises(ValueError, match="on_error"):
        rs.read_archive(tmp_path, on_error="ignore")
    with pytest.raises(ValueError, match="workers"):
        rs.read_archive(tmp_path, workers=0)
    for bad in ("2", 1.5, True):
        with pytest.raises(ValueError, match=f"not {bad!r}"):
            rs.read_archive(tmp_path, workers=bad)
    # numpy integers are integers (they were refused: "must be a positive integer, not 1")
    assert rs.read_archive(tmp_path, workers=np.int64(1)).attrs["files"] == 0
    with pytest.raises(ValueError, match="time zone"):
        rs.read_archive(tmp_path, tz="Mars/Olympus")
    # a ZoneInfo is taken by its name (it used to be refused as an unknown zone)
    assert rs.read_archive(tmp_path, tz=ZoneInfo("Asia/Tokyo")).attrs["tz"] == "Asia/Tokyo"
    (tmp_path / "notes.md").write_text("hi")
    with pytest.raises(ValueError, match="not a folder"):
        rs.read_archive(tmp_path / "notes.md")


def test_empty_folder_and_unreadable_listed_file(tmp_path):
    calls = rs.read_archive(tmp_path, progress=False)
    assert len(calls) == 0 and calls.attrs["files"] == 0
    # DESIGN's order: end_unknown right after end_time
    fixed = list(_schema.CALL_COLUMNS)
    fixed.insert(fixed.index("end_time") + 1, "end_unknown")
    assert list(calls.columns[:len(fixed)]) == fixed
    assert calls["end_unknown"].dtype == bool
    listed = rs.read_archive([tmp_path / "gone.xml"], progress=False)
    assert listed.attrs["errors"][0]["error"].startswith("cannot read file")
    _counts_add_up(listed)
    # any iterable of paths; a generator's paths used to be missing from attrs["source"]
    generated = rs.read_archive((p for p in [tmp_path / "gone.xml"]), progress=False)
    assert generated.attrs == listed.attrs


def _lock_folders_named(monkeypatch, name):
    # as if chmod 000 (which root ignores): listing a folder called `name` fails
    real = os.scandir

    def scandir(path="."):
        if os.path.basename(os.fspath(path)) == name:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_unreadable_folders_are_reported_not_skipped(tmp_path, monkeypatch):
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "a.xml").write_bytes(b"<v><id>a</id></v>")
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "b.xml").write_bytes(b"<v><id>b</id></v>")
    _lock_folders_named(monkeypatch, "locked")
    # os.walk used to skip it silently: one row, no error, nothing said
    with pytest.warns(RuntimeWarning, match=r"cannot read folder .*locked \(Permission"):
        calls = rs.read_archive(tmp_path, progress=False)
    assert calls.call_id.tolist() == ["a"]
    with pytest.raises(PermissionError):  # the archive itself: no table at all
        rs.read_archive(tmp_path / "locked", progress=False)


def test_field_less_documents_are_error_rows(tmp_path):
    # a chunk whose documents all had no field (<cdr/>) gave no row and no error:
    # pandas' from_records([{}]) has no rows
    (tmp_path / "a.xml").write_bytes(b"<cdr/>")
    (tmp_path / "b.xml").write_bytes(b"<cdr>  </cdr>")
    for source in (tmp_path, [tmp_path / "a.xml"]):
        calls = rs.read_archive(source, progress=False)
        assert len(calls) == 0
        assert {e["error"] for e in calls.attrs["errors"]} == {
            "not a CDR: no id or ccdr_id field"}
        _counts_add_up(calls)


@pytest.mark.skipif(sys.platform in ("darwin", "win32"), reason="needs bytes file names")
def test_file_names_that_are_not_utf8(tmp_path):
    # Latin-1 names (old archives) are surrogates in Python: Arrow refused them and the
    # whole batch failed with UnicodeEncodeError; now they are shown with \xNN escapes
    root = os.fsencode(tmp_path)
    with open(root + b"/caf\xe9.xml", "wb") as handle:
        handle.write(b"<v><id>c</id></v>")
    with open(root + b"/caf\xe9.wav", "wb") as handle:
        handle.write(b"w")
    with open(root + b"/bad\xff.xml", "wb") as handle:
        handle.write(b"<v>")
    with open(root + b"/lone\xfe.wav", "wb") as handle:
        handle.write(b"w")
    for workers in (1, 2):
        calls = rs.read_archive(tmp_path, progress=False, workers=workers)
        assert calls["cdr_path"].tolist() == [f"{tmp_path}/caf\\xe9.xml"]
        assert calls["media_path"].tolist() == [f"{tmp_path}/caf\\xe9.wav"]
        assert [e["path"] for e in calls.attrs["errors"]] == [f"{tmp_path}/bad\\xff.xml"]
        assert calls.attrs["media_without_cdr"] == [f"{tmp_path}/lone\\xfe.wav"]
    back = pd.read_parquet(rs.write_parquet(calls, tmp_path / "calls.parquet"))
    assert back.attrs == calls.attrs


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links")
def test_links_to_folders_are_followed_once(tmp_path):
    store = tmp_path / "disk2" / "NY"
    store.mkdir(parents=True)
    (store / "a.xml").write_bytes(b"<v><id>a</id></v>")
    archive_dir = tmp_path / "archive"
    archive_dir.mkdir()
    (archive_dir / "b.xml").write_bytes(b"<v><id>b</id></v>")
    (archive_dir / "NY").symlink_to(store)  # skipped without a word before
    (archive_dir / "NY-again").symlink_to(store)  # the same folder twice: read once
    (store / "loop").symlink_to(archive_dir)  # a cycle back up: must end
    (archive_dir / "inside").symlink_to(archive_dir / "sub")
    (archive_dir / "sub").mkdir()
    (archive_dir / "sub" / "c.xml").write_bytes(b"<v><id>c</id></v>")
    # the links lead out of the archive: refused, and said so
    calls = rs.read_archive(archive_dir, progress=False)
    assert sorted(calls.call_id) == ["b", "c"]  # sub/ read once, by its own name
    assert calls.set_index("call_id").cdr_path["c"] == f"{archive_dir}/sub/c.xml"
    assert calls.attrs["errors"] == [
        {"path": f"{archive_dir}/NY", "error": "points outside the archive"},
        {"path": f"{archive_dir}/NY-again", "error": "points outside the archive"}]
    _counts_add_up(calls)
    calls = rs.read_archive(archive_dir, progress=False, follow_links=True)
    assert sorted(calls.call_id) == ["a", "b", "c"]
    assert calls.set_index("call_id").cdr_path["a"] == f"{archive_dir}/NY/a.xml"
    assert calls.attrs["errors"] == []
    _counts_add_up(calls)


def test_folders_in_a_list_stand_for_their_files(small_archive):
    root, truth = small_archive
    sites = sorted(p for p in root.iterdir() if p.is_dir())
    # a folder in a list was taken for a media file: no rows and no error
    calls = rs.read_archive(sites, progress=False)
    pd.testing.assert_frame_equal(calls, truth)
    # the rglob("*") idiom lists folders and their files: each file still counts once
    everything = rs.read_archive(sorted(root.rglob("*")), progress=False)
    pd.testing.assert_frame_equal(everything, truth)
    assert everything.attrs["files"] == len(truth)
    first = str(truth.cdr_path.iloc[0])
    assert rs.read_archive([first, first], progress=False).attrs["files"] == 1


def test_folder_of_archives_says_so(small_archive, tmp_path):
    root, _ = small_archive
    folder = tmp_path / "zips"
    folder.mkdir()
    _zip(root, folder / "site-a.zip")
    # used to be an empty table without a word
    with pytest.warns(RuntimeWarning, match=r"1 archive file\(s\) such as .*site-a.zip"):
        calls = rs.read_archive(folder, progress=False)
    assert len(calls) == 0
    (folder / "x.xml").write_bytes(b"<v><id>x</id></v>")  # CDRs found: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(rs.read_archive(folder, progress=False)) == 1


def test_media_pairing_rules(tmp_path):
    (tmp_path / "a.xml").write_bytes(b"<v><id>a</id></v>")
    (tmp_path / "a.wav").write_bytes(b"w")
    (tmp_path / "a.mp4").write_bytes(b"m")  # two media: the first by name
    (tmp_path / "b.XML").write_bytes(b"<v><id>b</id></v>")  # upper-case extension
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.wav").write_bytes(b"w")  # other folder: not b's media
    (tmp_path / ".hidden.xml").write_bytes(b"junk")  # hidden: skipped
    (tmp_path / "README.md").write_bytes(b"# notes")  # not a recording: never an orphan
    (tmp_path / "README.xml").write_bytes(b"<v><id>r</id></v>")  # ...unless it has a CDR
    calls = rs.read_archive(tmp_path, progress=False)
    media = dict(zip(calls.call_id, calls.media_path))
    assert media["a"] == str(tmp_path / "a.mp4")
    assert pd.isna(media["b"])
    assert media["r"] == str(tmp_path / "README.md")
    assert calls.attrs["media_without_cdr"] == [str(tmp_path / "sub" / "b.wav")]
    assert calls.attrs["files"] == 3


def test_directions_override_and_progress_quiet(small_archive, capfd):
    root, truth = small_archive
    calls = rs.read_archive(root, directions={"1": "In", "2": "Out", "0": "Int"})
    assert set(calls.direction.dropna()) <= {"In", "Out", "Int"}
    assert (calls.direction_id == truth.direction_id).all()
    assert capfd.readouterr().err == ""  # stderr is not a terminal: no bar


# --------------------------------------------------------------------------- pandas ops


def test_pandas_operations_keep_working(samples_dir, tmp_path):
    calls = rs.read_archive(samples_dir / "odd", progress=False)
    assert calls.attrs["errors"]
    merged = calls.merge(calls[["call_id", "caller"]], on="call_id", suffixes=("", "_2"))
    assert len(merged) == len(calls)
    assert calls.astype({"duration": "float32", "site": "str"}).duration.dtype == "float32"
    both = pd.concat([calls, calls], ignore_index=True)
    assert len(both) == 2 * len(calls)
    assert calls.groupby("site", observed=True).size().sum() == len(calls)
    assert len(calls[calls.site == "NY-RECORDER"].copy()) == 8
    calls.to_pickle(tmp_path / "calls.pkl")
    pd.testing.assert_frame_equal(pd.read_pickle(tmp_path / "calls.pkl"), calls)
    out = tmp_path / "plain.parquet"
    calls.to_parquet(out)
    back = pd.read_parquet(out)
    assert back.attrs == calls.attrs and len(back) == len(calls)


def test_write_parquet_round_trip(samples_dir, tmp_path):
    for source in ("archive", "odd"):
        calls = rs.read_archive(samples_dir / source, progress=False)
        target = rs.write_parquet(calls, tmp_path / f"{source}.parquet")
        back = pd.read_parquet(target)
        pd.testing.assert_frame_equal(back, calls)
        assert back.attrs == calls.attrs
    (tmp_path / "nothing").mkdir()
    empty = rs.read_archive(tmp_path / "nothing", progress=False)
    back = pd.read_parquet(rs.write_parquet(empty, tmp_path / "empty.parquet"))
    pd.testing.assert_frame_equal(back, empty)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_write_parquet_error_names_the_target(tmp_path):
    # the error named the hidden temporary file (.calls.parquet.<random>)
    target = tmp_path / "missing" / "calls.parquet"
    with pytest.raises(ValueError, match=re.escape(f"cannot write {target}: folder ")):
        rs.write_parquet(_table.empty_calls(), target)


def test_write_parquet_file_mode_follows_umask(tmp_path):
    # the file was written through mkstemp and renamed: mode 0600 whatever the umask
    old = os.umask(0o022)
    try:
        target = rs.write_parquet(_table.empty_calls(), tmp_path / "calls.parquet")
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644


def test_fifo_is_refused_not_waited_for(tmp_path):
    os.mkfifo(tmp_path / "pipe.xml")
    (tmp_path / "ok.xml").write_bytes(b"<v><id>ok</id></v>")
    calls = rs.read_archive(tmp_path, progress=False)
    assert calls.call_id.tolist() == ["ok"]
    assert calls.attrs["errors"] == [{"path": str(tmp_path / "pipe.xml"),
                                      "error": "not a regular file"}]


def test_default_workers_switch_to_processes_past_the_threshold(small_archive, tmp_path,
                                                                monkeypatch):
    root, truth = small_archive
    tarred = tmp_path / "calls.tgz"
    with tarfile.open(tarred, "w:gz") as tf:
        tf.add(root, arcname="top")
    used = []
    real_pool, real_folders = archive._run_pool, archive._run_folders
    monkeypatch.setattr(archive, "_run_pool",
                        lambda *a: used.append(("units", a[1])) or real_pool(*a))
    monkeypatch.setattr(archive, "_run_folders",
                        lambda *a: used.append(("folders", a[2])) or real_folders(*a))
    monkeypatch.setattr(archive.os, "cpu_count", lambda: 2)
    assert len(rs.read_archive(root, progress=False)) == 60 and used == []  # small
    monkeypatch.setattr(archive, "IN_PROCESS_BELOW", 10)
    monkeypatch.setattr(archive, "COLD_IN_PROCESS_BELOW", 10)
    pd.testing.assert_frame_equal(rs.read_archive(root, progress=False), truth)
    from_tar = rs.read_archive(tarred, progress=False)
    # the folder's walk goes on in all the processes; the tar's units come from here
    assert used == [("folders", 2), ("units", 2)]
    pd.testing.assert_frame_equal(_relative(from_tar, f"{tarred}/top/"),
                                  _relative(truth, str(root) + os.sep))


# --------------------------------------------------------------------------- fast path

_TEXTS = st.sampled_from(["1000", " padded ", "", "a=b", "x &amp; y", "Győr", "<![CDATA[c]]>",
                          "&#233;", "   ", "&undefined;", "two\nlines"])
_NAMES = st.sampled_from(["id", "location", "start_time", "tag", "v:id"])


@st.composite
def _raw_documents(draw):
    children = []
    for _ in range(draw(st.integers(0, 5))):
        name, text = draw(_NAMES), draw(_TEXTS)
        kind = draw(st.integers(0, 9))
        if kind == 0:
            children.append(f"<{name}><sub>{text}</sub></{name}>")
        elif kind == 1:
            children.append(f'<{name} a="1">{text}</{name}>')
        elif kind == 2:
            children.append(f"<!-- c -->{text}")
        else:
            children.append(f"<{name}>{text}</{name}>")
    root = draw(st.sampled_from(["verbacdr", 'verbacdr id="r"', 'v xmlns="urn:x"']))
    body = f"<{root}>{''.join(children)}</{root.split()[0]}>"
    prefix = draw(st.sampled_from([
        "", '<?xml version="1.0" encoding="UTF-8"?>\n', "<?xml version='1.0'?>",
        '<?xml version="1.0" encoding="ISO-8859-1"?>', "\ufeff",
        '<!DOCTYPE verbacdr [<!ENTITY e "x">]>', "junk"]))
    suffix = draw(st.sampled_from(["", "\n", "<!-- end -->", "<extra/>", "tail"]))
    data = (prefix + body + suffix).encode("utf-8")
    cut = draw(st.integers(0, 3))
    return data[:-cut] if cut and len(data) > cut else data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_raw_documents())
def test_fast_fields_equal_general_path(data):
    try:
        expected = _xml.fields_of(_xml.parse_document(data, "p.xml"))
    except rs.CDRParseError as exc:
        with pytest.raises(rs.CDRParseError) as info:
            archive_parse._fields(data, "p.xml")
        assert info.value.reason == exc.reason
        return
    assert archive_parse._fields(data, "p.xml") == expected


def test_fast_path_cannot_be_tricked_into_a_dtd():
    utf7 = ('<?xml version="1.0" encoding="UTF-7"?>'
            "+ADw-!DOCTYPE v +AFs-+ADw-!ENTITY e +ACI-x+ACI-+AD4-+AF0-+AD4-"
            "<v><id>a</id></v>").encode("ascii")
    utf16 = '<!DOCTYPE v [<!ENTITY e "x">]><v><id>a</id></v>'.encode("utf-16-le")
    for data in (utf7, utf16):
        with pytest.raises(rs.CDRParseError):
            archive_parse._fields(data, "p.xml")


def test_unguarded_script_still_finishes_in_process(samples_dir, tmp_path):
    # worker processes used to re-import __main__, which an unguarded script breaks;
    # now they do not import it: the script runs once, with no traceback
    script = tmp_path / "unguarded.py"
    script.write_text("import recstats as rs\n"
                      "rs.archive.IN_PROCESS_BELOW = rs.archive.COLD_IN_PROCESS_BELOW = 0\n"
                      f"df = rs.read_archive({str(samples_dir / 'odd')!r}, workers=2)\n"
                      "print('rows', len(df), 'errors', len(df.attrs['errors']))\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["rows 10 errors 8"]
    assert "Traceback" not in done.stderr


def test_corrupt_container_is_one_clear_error(small_archive, tmp_path):
    root, _ = small_archive
    tarred = tmp_path / "calls.tar.gz"
    with tarfile.open(tarred, "w:gz") as tf:
        tf.add(root, arcname=".")
    data = tarred.read_bytes()
    tarred.write_bytes(data[: len(data) // 2])  # cut in half: the members before it
    calls = rs.read_archive(tarred, progress=False)
    errors = calls.attrs["errors"]
    assert 0 < len(calls) < 60 and len(errors) == 1
    assert errors[0]["path"] == str(tarred) and "archive damaged" in errors[0]["error"]
    _counts_add_up(calls)
    # damaged in its first bytes, or empty: it was "not a folder, .zip, .tar[.gz] or .xml"
    tarred.write_bytes(data[:10] + bytes(b ^ 0xFF for b in data[10:200]) + data[200:])
    (tmp_path / "empty.zip").write_bytes(b"")
    for damaged in (tarred, tmp_path / "empty.zip"):
        with pytest.raises(ValueError, match="not a valid zip or tar file .damaged"):
            rs.read_archive(damaged, progress=False)


def test_archive_files_lists_without_parsing(samples_dir):
    files = archive.archive_files(samples_dir / "odd")
    assert list(files.columns) == ["cdr_path", "media_path"]
    assert len(files) == 18 and files.cdr_path.str.endswith(".xml").all()
    paired = files.dropna()
    assert [Path(p).name for p in paired.media_path] == ["im-session.txt"]
    assert Path(paired.cdr_path.iloc[0]).name == "im-session.xml"
