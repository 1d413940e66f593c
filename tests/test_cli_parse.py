"""``recstats parse``: exit codes, output and the one-screen summary."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

import recstats as rs
from recstats.cli import main


def _lines_with(text: str, label: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip().startswith(label)]


def _number(text: str, label: str) -> int:
    (line,) = _lines_with(text, label)
    return int(line.strip().removeprefix(label).split()[0])


def test_parse_odd_files_summary_and_output(samples_dir, tmp_path, capsys):
    out = tmp_path / "calls.parquet"
    code = main(["parse", str(samples_dir / "odd"), "-o", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0
    assert captured.err == ""
    text = captured.out
    assert len(text.splitlines()) <= 24  # one screen
    assert _number(text, "CDR files") == 18
    assert _number(text, "parsed") == 10
    assert _number(text, "failed") == 8
    assert _number(text, "calls") == 10
    assert _number(text, "sites") == 2
    assert _number(text, "CDRs without media") == 9  # only odd-im has its transcript
    assert _number(text, "media without CDR") == 1
    assert "orphan.wav" in text
    assert "... and 3 more" in text  # the first five reasons, then a count
    assert "empty.xml: empty document" in text
    assert "2026-11-02 09:00:00 .. 2026-11-02 09:01:30 UTC" in text
    written = pd.read_parquet(out)
    assert len(written) == 10 and len(rs.archive_errors(written)) == 8


def test_parse_workers_and_tz(small_archive, tmp_path, capsys):
    root, truth = small_archive
    out = tmp_path / "calls.parquet"
    assert main(["parse", str(root), "-o", str(out), "--workers", "2", "--tz",
                 "Europe/Budapest", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert _number(text, "calls") == 60 and _number(text, "failed") == 0
    written = pd.read_parquet(out)
    # read as Budapest wall-clock (CET, UTC+1 in November): an hour earlier in UTC
    shift = (truth.set_index("call_id").start_time
             - written.set_index("call_id").start_time).dt.total_seconds()
    assert set(shift) == {3600.0}


def test_strict_exits_1_but_still_writes(samples_dir, tmp_path, capsys):
    out = tmp_path / "calls.parquet"
    assert main(["parse", str(samples_dir / "odd"), "-o", str(out), "--strict",
                 "--no-progress"]) == 1
    assert "8 file(s) could not be parsed" in capsys.readouterr().err
    assert out.exists()
    assert main(["parse", str(samples_dir / "archive"), "-o", str(out), "--strict",
                 "--no-progress"]) == 0


@pytest.mark.parametrize("make_args,message", [
    (lambda d, t: [str(t / "missing"), "-o", str(t / "x.parquet")], "no such file"),
    (lambda d, t: [str(d / "odd"), "-o", str(t / "nowhere" / "x.parquet")],
     "does not exist"),
    (lambda d, t: [str(d / "odd"), "-o", str(t)], "is a folder"),
    (lambda d, t: [str(d / "odd"), "-o", str(t / "x.parquet"), "--workers", "0"],
     "--workers"),
    (lambda d, t: [str(d / "odd"), "-o", str(t / "x.parquet"), "--tz", "Mars/Base"],
     "time zone"),
    (lambda d, t: [str(d / "README.md"), "-o", str(t / "x.parquet")], "not a folder"),
])
def test_usage_errors_exit_2_with_one_line(samples_dir, tmp_path, capsys, make_args,
                                           message):
    assert main(["parse", *make_args(samples_dir, tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith("recstats parse: error:") and message in captured.err
    assert not (tmp_path / "x.parquet").exists()


def test_unreadable_folders_are_one_line_each(tmp_path, capsys, monkeypatch):
    archive = tmp_path / "archive"
    (archive / "locked").mkdir(parents=True)
    (archive / "a.xml").write_bytes(b"<v><id>a</id></v>")
    real = os.scandir

    def scandir(path="."):  # as if chmod 000, which root ignores
        if os.path.basename(os.fspath(path)) == "locked":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    out = str(tmp_path / "x.parquet")
    assert main(["parse", str(archive), "-o", out, "--no-progress"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("recstats parse: warning: cannot read folder")
    assert main(["parse", str(archive / "locked"), "-o", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Permission denied" in err[0]


def test_output_cannot_overwrite_the_archive(small_archive, tmp_path, capsys):
    # `-o` naming the input zip replaced the user's archive with the Parquet file
    root, _ = small_archive
    zipped = tmp_path / "calls.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        for path in root.rglob("*.xml"):
            zf.write(path, path.relative_to(root).as_posix())
    before = zipped.read_bytes()
    assert main(["parse", str(zipped), "-o", str(zipped)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is the archive itself" in err[0]
    assert zipped.read_bytes() == before


def test_unwritable_output_folder(samples_dir, tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert main(["parse", str(samples_dir / "odd"), "-o", str(locked / "x.parquet")]) == 2
    assert "not writable" in capsys.readouterr().err


def test_console_script_entry_point(samples_dir, tmp_path):
    script = Path(sys.executable).with_name("recstats")
    out = tmp_path / "calls.parquet"
    done = subprocess.run([str(script), "parse", str(samples_dir / "archive"), "-o",
                           str(out)], check=False, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert _number(done.stdout, "calls") == 400
    assert done.stderr == ""  # stderr is a pipe: no progress bar
    assert len(pd.read_parquet(out)) == 400
