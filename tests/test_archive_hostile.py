"""read_archive against a hostile corpus: nothing read outside what it was given, every
file counted (rows + errors = files seen), damaged archives keep what came before the
damage, and field names cannot blow up the table.

Expectations are written out by hand per case; memory is measured in subprocesses."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pandas as pd
import pytest

import recstats as rs
from recstats import _extras, _table, archive

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="symbolic links, FIFOs")

SECRET = "TOPSECRET-7731"
ROOT = Path(__file__).resolve().parent.parent


def _cdr(call_id: str, extra: str = "") -> bytes:
    return (f"<verbacdr><id>{call_id}</id><location>NY</location>"
            f"<start_time>2026-11-02 09:00:00</start_time>{extra}</verbacdr>").encode()


def _counts_add_up(calls: pd.DataFrame) -> None:
    attrs = calls.attrs
    assert attrs["files"] == attrs["parsed"] + attrs["failed"] == len(calls) + len(
        attrs["errors"])


def _no_secret(calls: pd.DataFrame) -> None:
    text = calls.astype(str).to_csv() + json.dumps(calls.attrs, default=str)
    assert SECRET not in text


def _errors(calls: pd.DataFrame) -> dict[str, str]:
    return {e["path"]: e["error"] for e in calls.attrs["errors"]}


@pytest.fixture
def outside(tmp_path):
    """A folder beside the archive holding a secret CDR, and a /usr-like tree of XML
    files with an <id> each."""
    secret = tmp_path / "outside"
    secret.mkdir()
    (secret / "secret.xml").write_bytes(_cdr(SECRET))
    usr = tmp_path / "usr"
    for i in range(12):
        (usr / "share" / f"pkg{i}").mkdir(parents=True)
        (usr / "share" / f"pkg{i}" / "meta.xml").write_bytes(_cdr(f"{SECRET}-usr{i}"))
    return secret, usr


# --------------------------------------------------------------------------- folders


def test_folder_symlinks_never_lead_outside(tmp_path, outside):
    secret, usr = outside
    root = tmp_path / "archive"
    (root / "day").mkdir(parents=True)
    (root / "day" / "in.xml").write_bytes(_cdr("in"))
    (root / "day" / "in.wav").write_bytes(b"RIFF")
    links = {
        "out.xml": secret / "secret.xml",              # a file outside
        "sneaky.xml": Path("../outside/secret.xml"),   # relative, climbing out
        "outdir": secret,                              # a folder outside
        "usr": usr,                                    # "one link to /usr"
        "second.xml": Path("day/in.xml"),              # a second name inside: read
        "again": root / "day",                         # a folder inside, once
        "top": root,                                   # a loop back to the top
        "loop1.xml": Path("loop2.xml"),                # a loop of links
        "loop2.xml": Path("loop1.xml"),
        "gone.xml": Path("nothing-here.xml"),          # dangling
    }
    for name, target in links.items():
        (root / name).symlink_to(target)
    (root / "via").symlink_to("again")  # a chain of links inside, read once
    (root / "chain").symlink_to("outdir")  # a chain whose end is outside
    os.mkfifo(root / "pipe.xml")

    calls = rs.read_archive(root, progress=False)
    _no_secret(calls)
    _counts_add_up(calls)
    # in.xml by its own name and by second.xml; the folder links add nothing new
    assert sorted(calls.cdr_path) == [f"{root}/day/in.xml", f"{root}/second.xml"]
    assert calls.set_index("cdr_path").media_path[f"{root}/day/in.xml"] == \
        f"{root}/day/in.wav"
    assert _errors(calls) == {
        f"{root}/out.xml": "points outside the archive",
        f"{root}/sneaky.xml": "points outside the archive",
        f"{root}/outdir": "points outside the archive",
        f"{root}/chain": "points outside the archive",
        f"{root}/usr": "points outside the archive",
        f"{root}/loop1.xml": "link loop",
        f"{root}/loop2.xml": "link loop",
        f"{root}/gone.xml": "broken link: No such file or directory",
        f"{root}/pipe.xml": "not a regular file",
    }
    assert calls.attrs["files"] == 2 + 9
    # archive_files lists the same CDR-named files, refused ones included
    listed = archive.archive_files(root)
    assert set(listed.cdr_path) == set(calls.cdr_path) | {
        p for p in _errors(calls) if p.endswith(".xml")}

    # opting in reads them: the 12 files under usr/, the secret three times (out.xml,
    # sneaky.xml, and the folder chain/ and outdir/ both lead to, read once by the
    # first name in sorted order)
    followed = rs.read_archive(root, progress=False, follow_links=True)
    _counts_add_up(followed)
    assert (followed.call_id == SECRET).sum() == 3
    assert f"{root}/chain/secret.xml" in set(followed.cdr_path)
    assert not followed.cdr_path.str.startswith(f"{root}/outdir/").any()
    assert followed.call_id.str.startswith(f"{SECRET}-usr").sum() == 12


def test_a_list_of_files_keeps_to_its_folders(tmp_path, outside):
    secret, _ = outside
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "a.xml").write_bytes(_cdr("a"))
    (folder / "out.xml").symlink_to(secret / "secret.xml")
    calls = rs.read_archive([folder], progress=False)
    _no_secret(calls)
    _counts_add_up(calls)
    assert calls.call_id.tolist() == ["a"]
    assert _errors(calls) == {f"{folder}/out.xml": "points outside the archive"}


# --------------------------------------------------------------------------- tar


def _add(tf: tarfile.TarFile, name: str, data: bytes | None = None, **kw) -> None:
    info = tarfile.TarInfo(name)
    for key, value in kw.items():
        setattr(info, key, value)
    if data is not None:
        info.size = len(data)
    tf.addfile(info, io.BytesIO(data) if data is not None else None)


def test_tar_link_and_device_members(tmp_path, outside):
    # a file on disk where a member's link would land if it were followed on disk
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd.xml").write_bytes(_cdr(SECRET))
    path = tmp_path / "backup.tar"
    with tarfile.open(path, "w") as tf:
        _add(tf, "./calls/a.xml", _cdr("a"))
        _add(tf, "calls/b.xml", type=tarfile.LNKTYPE, linkname="./calls/a.xml")  # hard
        _add(tf, "calls/c.xml", type=tarfile.SYMTYPE, linkname="a.xml")
        _add(tf, "calls/early.xml", type=tarfile.SYMTYPE, linkname="../late/z.xml")
        _add(tf, "calls/abs.xml", type=tarfile.SYMTYPE, linkname="/etc/passwd.xml")
        _add(tf, "calls/up.xml", type=tarfile.SYMTYPE, linkname="../../outside/secret.xml")
        _add(tf, "calls/f.xml", type=tarfile.SYMTYPE, linkname="g.xml")
        _add(tf, "calls/g.xml", type=tarfile.SYMTYPE, linkname="f.xml")
        _add(tf, "calls/dir.xml", type=tarfile.SYMTYPE, linkname="../late")
        _add(tf, "calls/none.xml", type=tarfile.LNKTYPE, linkname="calls/missing.xml")
        _add(tf, "calls/dev.xml", type=tarfile.CHRTYPE, devmajor=1, devminor=3)
        _add(tf, "calls/fifo.xml", type=tarfile.FIFOTYPE)
        _add(tf, "late", type=tarfile.DIRTYPE)
        _add(tf, "late/z.xml", _cdr("z"))
    cwd = os.getcwd()
    os.chdir(tmp_path)  # relative links resolved on disk would find etc/ and outside/
    try:
        calls = rs.read_archive(path, progress=False)
    finally:
        os.chdir(cwd)
    _no_secret(calls)
    _counts_add_up(calls)
    shown = f"{path}/calls"
    # the backup's second names are read as the member they name, and counted
    assert dict(zip(calls.cdr_path, calls.call_id)) == {
        f"{shown}/a.xml": "a", f"{shown}/b.xml": "a", f"{shown}/c.xml": "a",
        f"{shown}/early.xml": "z", f"{path}/late/z.xml": "z"}
    assert _errors(calls) == {
        f"{shown}/abs.xml": "points outside the archive",
        f"{shown}/up.xml": "points outside the archive",
        f"{shown}/f.xml": "link loop",
        f"{shown}/g.xml": "link loop",
        f"{shown}/dir.xml": "link target 'late' is not a regular file",
        f"{shown}/none.xml": "link target 'calls/missing.xml' is not in the archive",
        f"{shown}/dev.xml": "not a regular file",
        f"{shown}/fifo.xml": "not a regular file",
    }
    assert calls.attrs["files"] == 5 + 8 == len(archive.archive_files(path))
    assert calls.end_unknown.tolist() == [True] * 5  # a start, no end, no duration


def _tar_of(n: int, compress: str = "") -> tuple[bytes, list[int]]:
    """A tar of n CDRs (padded to 700 bytes, two blocks of data each) and each
    member's header offset."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compress}") as tf:
        for i in range(n):
            data = _cdr(f"c{i:03d}").ljust(700)
            _add(tf, f"d/c{i:03d}.xml", data)
    with tarfile.open(fileobj=io.BytesIO(buffer.getvalue()) if not compress else
                      io.BytesIO(_plain(buffer.getvalue())), mode="r:") as tf:
        offsets = [m.offset for m in tf.getmembers()]
    return buffer.getvalue(), offsets


def _plain(gz: bytes) -> bytes:
    import gzip
    return gzip.decompress(gz)


@pytest.mark.parametrize("where", ["header", "data", "end marker"])
def test_cut_tar_keeps_what_came_before(tmp_path, where):
    data, offsets = _tar_of(20)
    # member k's header starts at offsets[k]: 512 bytes of header, then 2 blocks of data
    k = 13
    cuts = {"header": offsets[k] + 100,       # inside member 13's header: 13 before it
            "data": offsets[k] + 512 + 300,   # inside member 13's data: 13 before it
            "end marker": offsets[-1] + 512 + 1024}  # all 20, no end blocks
    cut = cuts[where]
    path = tmp_path / "cut.tar"
    path.write_bytes(data[:cut])
    calls = rs.read_archive(path, progress=False)
    _counts_add_up(calls)
    expected = 20 if where == "end marker" else k
    assert calls.call_id.tolist() == [f"c{i:03d}" for i in range(expected)]
    (error,) = calls.attrs["errors"]  # one error entry for the damage
    assert error["path"] == str(path)
    assert error["error"].startswith("archive damaged ")
    if where == "data":  # the cut member is named
        assert error["error"].startswith("archive damaged in member 'd/c013.xml'")
    else:
        assert error["error"].startswith(f"archive damaged after member 'd/c{expected - 1:03d}.xml'")


def test_truncated_tar_gz_keeps_what_came_before(tmp_path):
    data, _ = _tar_of(200, "gz")
    path = tmp_path / "cut.tar.gz"
    path.write_bytes(data[: len(data) * 6 // 10])
    calls = rs.read_archive(path, progress=False)
    _counts_add_up(calls)
    # the members before the cut are all there, in order, and one error for the rest
    n = len(calls)
    assert 0 < n < 200
    assert sorted(calls.call_id) == [f"c{i:03d}" for i in range(n)]
    (error,) = calls.attrs["errors"]
    assert error["path"] == str(path) and "archive damaged" in error["error"]
    # the whole file reads fully, without any error
    path.write_bytes(data)
    whole = rs.read_archive(path, progress=False)
    assert len(whole) == 200 and whole.attrs["errors"] == []


# --------------------------------------------------------------------------- zip


def _zip_member(name: str, *, mode: int | None = None) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(2026, 11, 2, 9, 0, 0))
    if mode is not None:
        info.create_system = 3
        info.external_attr = mode << 16
    return info


def test_zip_names_and_links_stay_inside(tmp_path, outside):
    # files on disk where ../ and absolute names would land if they were extracted
    (tmp_path / "evil.xml").write_bytes(_cdr(SECRET))
    path = tmp_path / "box" / "calls.zip"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(_zip_member("a.xml"), _cdr("a"))
        zf.writestr(_zip_member("../evil.xml"), _cdr("dotdot"))
        zf.writestr(_zip_member("/abs/evil.xml"), _cdr("absolute"))
        zf.writestr(_zip_member("link.xml", mode=stat.S_IFLNK | 0o777), "a.xml")
        zf.writestr(_zip_member("out.xml", mode=stat.S_IFLNK | 0o777), "../../evil.xml")
        zf.writestr(_zip_member("fifo.xml", mode=stat.S_IFIFO | 0o644), "")
    calls = rs.read_archive(path, progress=False)
    _no_secret(calls)
    _counts_add_up(calls)
    # odd names are read from the archive, as what they hold
    assert dict(zip(calls.cdr_path, calls.call_id)) == {
        f"{path}/a.xml": "a", f"{path}/../evil.xml": "dotdot",
        f"{path}//abs/evil.xml": "absolute", f"{path}/link.xml": "a"}
    assert _errors(calls) == {f"{path}/out.xml": "points outside the archive",
                              f"{path}/fifo.xml": "not a regular file"}


def test_corrupt_zip_member_is_one_error_entry(tmp_path):
    path = tmp_path / "calls.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("a", "b", "c"):
            zf.writestr(f"{name}.xml", _cdr(name, "<pad>" + "x" * 500 + "</pad>"))
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("b.xml")
    start = info.header_offset + 30 + len("b.xml")  # the local header is 30 bytes + name
    data[start + 5: start + 25] = bytes(20)  # damage b's compressed data
    path.write_bytes(bytes(data))
    calls = rs.read_archive(path, progress=False)
    _counts_add_up(calls)
    assert calls.call_id.tolist() == ["a", "c"]
    assert list(_errors(calls)) == [f"{path}/b.xml"]


# --------------------------------------------------------------------------- columns


def _many_names(folder: Path, files: int, names: int, shared: int = 3) -> None:
    """``files`` CDRs, each with ``shared`` common extra fields and ``names`` of its
    own (distinct across the archive)."""
    folder.mkdir(parents=True)
    for i in range(files):
        own = "".join(f"<f{i:05d}_{j:03d}>{j}</f{i:05d}_{j:03d}>" for j in range(names))
        common = "".join(f"<common{j}>v{j}</common{j}>" for j in range(shared))
        (folder / f"c{i:05d}.xml").write_bytes(_cdr(f"c{i:05d}", common + own))


def test_distinct_names_past_max_columns_go_to_extras(tmp_path):
    _many_names(tmp_path / "a", files=30, names=20)
    calls = rs.read_archive(tmp_path / "a", progress=False, max_columns=10)
    _counts_add_up(calls)
    extra = [c for c in calls.columns if c.startswith(("common", "f0"))]
    # the first 10 undocumented names by name: common0..2 and f00000_000..006
    assert extra == ["common0", "common1", "common2"] + [f"f00000_{j:03d}" for j in range(7)]
    # nothing lost: every field of every file is in its column or in extras
    for i, row in calls.iterrows():
        fields = {c: row[c] for c in extra if pd.notna(row[c])}
        fields.update(json.loads(row["extras"]))
        n = int(row["call_id"][1:])
        assert fields == {**{f"common{j}": f"v{j}" for j in range(3)},
                          **{f"f{n:05d}_{j:03d}": str(j) for j in range(20)}}
    # the same table from any chunking (each chunk folds on its own, then together)
    chunked = _chunked_read(tmp_path / "a", chunk=7, max_columns=10)
    pd.testing.assert_frame_equal(chunked, calls)
    # a field named extras never takes the extras column's place
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.xml").write_bytes(_cdr("x", "<extras>mine</extras><k>1</k>"))
    one = rs.read_archive(tmp_path / "b", progress=False)
    assert one["k"].tolist() == ["1"] and one["extras"].tolist() == ['{"extras": "mine"}']


def _chunked_read(folder, chunk, **kw):
    saved = archive.MAX_CHUNK
    archive.MAX_CHUNK = chunk
    try:
        return rs.read_archive(folder, progress=False, workers=1, **kw)
    finally:
        archive.MAX_CHUNK = saved


def test_limit_columns_equals_one_pass_whatever_the_split():
    # brute force: the chunks' tables, limited together, equal one pass over all rows
    rows = [{"id": f"c{i}", **{f"x{(i * 7 + j) % 23:02d}": f"{i}.{j}" for j in range(4)}}
            for i in range(12)]
    whole, _ = _table.calls_from_fields(rows, max_columns=5)
    for max_columns in (0, 5, 30):  # 30: more than any chunk kept: fields come back out
        expected, _ = _table.calls_from_fields(rows, max_columns=max_columns)
        for split in ([12], [5, 7], [1, 4, 4, 3]):
            tables, start = [], 0
            for size in split:
                part, _ = _table.calls_from_fields(rows[start:start + size], max_columns=5)
                tables.append(pa_table(part))
                start += size
            import pyarrow as pa
            limited = pa.concat_tables(_extras.limit_columns(tables, max_columns),
                                       promote_options="permissive").to_pandas()
            got = _table.coerce_calls(limited)
            pd.testing.assert_frame_equal(got, expected.reset_index(drop=True))
    assert "extras" in whole.columns


def pa_table(frame):
    import pyarrow as pa
    return pa.Table.from_pandas(frame.astype({c: "str" for c in frame.columns
                                              if str(frame[c].dtype) == "category"}),
                                preserve_index=False)


def test_work_per_file_does_not_grow_with_the_archive(tmp_path, monkeypatch):
    # operation count: the cells of every frame built from the documents' fields. The
    # union of 50 distinct names per file made it files x 50 x files (quadratic).
    built = []
    real = pd.DataFrame.from_records

    def counting(data, *args, **kw):
        frame = real(data, *args, **kw)
        built.append(frame.size)
        return frame

    monkeypatch.setattr(pd.DataFrame, "from_records", counting)
    per_file = {}
    for files in (40, 160):
        _many_names(tmp_path / str(files), files=files, names=50)
        built.clear()
        calls = rs.read_archive(tmp_path / str(files), progress=False, workers=1,
                                max_columns=20)
        assert len(calls) == files
        per_file[files] = sum(built) / files
        assert len(calls.columns) <= len(_table.empty_calls().columns) + 20 + 4
    # a chunk keeps at most DEFAULT_MAX_COLUMNS undocumented names (the whole table
    # max_columns): cells per file bounded whatever the archive's size; the union was
    # 2 003 columns per file for 40 files and 8 003 for 160
    assert per_file[160] <= per_file[40] * 1.05
    assert per_file[40] <= _extras.DEFAULT_MAX_COLUMNS + 3 + 3


_PEAK = textwrap.dedent("""
    import resource, sys
    import recstats as rs
    calls = rs.read_archive(sys.argv[1], progress=False, workers=1)
    assert calls.attrs["files"] == len(calls) + len(calls.attrs["errors"]), calls.attrs
    print(len(calls), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def _peak_kib(path: Path) -> tuple[int, int]:
    done = subprocess.run([sys.executable, "-c", _PEAK, str(path)], capture_output=True,
                          text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    rows, peak = done.stdout.split()
    return int(rows), int(peak)


def test_peak_memory_of_hostile_archives_stays_bounded(tmp_path):
    # 300 files with 400 distinct names each (120 000 names in all: 65 s and 1.4 GB for
    # 200 such files before), and a tar where 400 hard links name one 1 MiB CDR
    _many_names(tmp_path / "names", files=300, names=400)
    tarred = tmp_path / "links.tar"
    big = _cdr("big", " " * (1 << 20))
    with tarfile.open(tarred, "w") as tf:
        _add(tf, "big.xml", big)
        for i in range(400):
            _add(tf, f"copy{i:03d}.xml", type=tarfile.LNKTYPE, linkname="big.xml")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "one.xml").write_bytes(_cdr("one"))
    _, baseline = _peak_kib(tmp_path / "plain")  # imports and one file
    rows, names_peak = _peak_kib(tmp_path / "names")
    assert rows == 300
    rows, links_peak = _peak_kib(tarred)
    assert rows == 401
    # ru_maxrss is in KiB on Linux: within 150 MiB of the baseline each (measured here:
    # baseline ~140 MiB; names +~40 MiB, links about +0)
    print("peak KiB: baseline", baseline, "names", names_peak, "links", links_peak)
    assert names_peak - baseline < 150 * 1024, (baseline, names_peak)
    assert links_peak - baseline < 150 * 1024, (baseline, links_peak)


@pytest.mark.parametrize("streamed", [False, True])
def test_cut_zip_keeps_what_came_before(tmp_path, streamed):
    # a zip's directory is at its end: a cut download lost it, not the members before
    path = tmp_path / "cut.zip"
    target = io.BytesIO()
    # written to a pipe-like stream, zipfile puts sizes after the data (streamed)
    sink = _Unseekable(target) if streamed else target
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("d/c000.wav", b"RIFF")
        for i in range(20):
            zf.writestr(f"d/c{i:03d}.xml", _cdr(f"c{i:03d}", "<pad>" + "x" * 300 + "</pad>"))
    data = target.getvalue()
    assert bool(int.from_bytes(data[6:8], "little") & 0x08) == streamed  # sizes after
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        offset = zf.getinfo("d/c013.xml").header_offset
    for cut, expected, where in ((offset + 10, 13, "after member 'd/c012.xml'"),
                                 (offset + 60, 13, "in member 'd/c013.xml'"),
                                 (len(data) - 30, 20, "in its central directory")):
        path.write_bytes(data[:cut])
        calls = rs.read_archive(path, progress=False)
        _counts_add_up(calls)
        assert calls.call_id.tolist() == [f"c{i:03d}" for i in range(expected)]
        (error,) = calls.attrs["errors"]
        assert error["path"] == str(path) and where in error["error"], error
        assert calls.media_path.iloc[0] == f"{path}/d/c000.wav"
    # a zip that is not even a zip's beginning is one clear error
    path.write_bytes(b"PK\x05\x06" + bytes(10))
    with pytest.raises(ValueError, match="not a valid zip or tar file"):
        rs.read_archive(path, progress=False)


class _Unseekable(io.RawIOBase):
    def __init__(self, target):
        self.target = target

    def writable(self):
        return True

    def write(self, data):
        return self.target.write(data)
