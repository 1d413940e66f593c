"""Every CLI error is one line and an exit code, never a traceback; output files replace
only a regular file or a new path."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pandas as pd
import pytest

import recstats as rs
from recstats._output import OutputPathError, check_output, replacing, write_text
from recstats.archive import write_parquet
from recstats.cli import main


def one_error_line(capsys, command: str, *phrases: str) -> str:
    """The single stderr line of a failed command; it names the command and ``phrases``."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"recstats {command}: error:"), lines[0]
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def one_call():
    return rs.calls_frame([rs.read_cdr(b"<verbacdr><id>a</id>"
                                       b"<start_time>2026-11-02 09:00:00</start_time>"
                                       b"<end_time>2026-11-02 09:01:00</end_time>"
                                       b"</verbacdr>")])


# --------------------------------------------------------------------------- _output


def test_output_to_a_new_path_and_over_a_regular_file(tmp_path, one_call):
    target = tmp_path / "calls.parquet"
    assert write_parquet(one_call, target) == target
    assert pd.read_parquet(target)["call_id"].tolist() == ["a"]
    os.chmod(target, 0o640)
    write_parquet(one_call.assign(call_id="b"), target)
    assert pd.read_parquet(target)["call_id"].tolist() == ["b"]
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640   # the replaced file's mode kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calls.parquet"]  # no temp left


def test_output_follows_a_symlink_to_a_regular_file(tmp_path, one_call):
    real = tmp_path / "data" / "calls.parquet"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "latest.parquet"
    link.symlink_to(real)
    write_parquet(one_call, link)
    assert link.is_symlink() and os.readlink(link) == str(real)   # the link stays
    assert pd.read_parquet(real)["call_id"].tolist() == ["a"]      # its target replaced
    assert sorted(p.name for p in real.parent.iterdir()) == ["calls.parquet"]


def test_output_refuses_a_fifo_and_leaves_it_a_fifo(tmp_path, one_call):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OutputPathError, match="FIFO"):
        write_parquet(one_call, fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    link = tmp_path / "to-pipe"   # a link to a FIFO is a FIFO for the writer
    link.symlink_to(fifo)
    with pytest.raises(OutputPathError, match="FIFO"):
        write_text(link, "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe", "to-pipe"]


@pytest.mark.parametrize("path,message", [
    ("", "empty"), ("   ", "empty"), ("/dev/null", "device"), (".", "folder"),
    ("no-such-folder/", "names a folder"),
])
def test_output_refuses_devices_folders_and_empty_paths(path, message, one_call):
    with pytest.raises(OutputPathError, match=message):
        check_output(path)
    with pytest.raises(OutputPathError, match=message):
        write_parquet(one_call, path)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "report.html"
    target.write_text("old")
    with pytest.raises(RuntimeError), replacing(target) as temp:
        temp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


# --------------------------------------------------------------------------- parse -o


@pytest.mark.parametrize("kind", ["fifo", "device", "folder", "empty"])
def test_parse_refuses_outputs_it_must_not_replace(kind, samples_dir, tmp_path, capsys):
    paths = {"fifo": tmp_path / "pipe", "device": "/dev/null", "folder": tmp_path,
             "empty": ""}
    if kind == "fifo":
        os.mkfifo(paths["fifo"])
    assert main(["parse", str(samples_dir / "archive"), "-o", str(paths[kind]),
                 "--no-progress"]) == 2
    one_error_line(capsys, "parse", "cannot write" if kind != "empty" else "empty")
    if kind == "fifo":
        assert stat.S_ISFIFO(os.lstat(paths["fifo"]).st_mode)
    assert os.path.exists("/dev/null") and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_parse_through_a_symlink_replaces_its_target(samples_dir, tmp_path, capsys):
    real = tmp_path / "real.parquet"
    real.write_bytes(b"not yet parquet")
    link = tmp_path / "link.parquet"
    link.symlink_to(real)
    assert main(["parse", str(samples_dir / "archive"), "-o", str(link),
                 "--no-progress"]) == 0
    assert link.is_symlink() and len(pd.read_parquet(real)) == 400


def test_parse_of_a_folder_without_cdrs_exits_1_and_writes_nothing(tmp_path, capsys):
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    (empty / "notes.txt").write_text("no CDR files")
    out = tmp_path / "calls.parquet"
    assert main(["parse", str(empty), "-o", str(out), "--no-progress"]) == 1
    one_error_line(capsys, "parse", "no CDR file", "nothing written")
    assert not out.exists()


# --------------------------------------------------------------------------- other commands


@pytest.mark.parametrize("port", ["99999", "0", "65536"])
def test_capture_port_out_of_range_is_a_usage_error(port, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:   # argparse: usage line + one error line
        main(["capture", f"127.0.0.1:{port}", "-o", str(tmp_path / "e.parquet")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"recstats capture: error: argument HOST:PORT: server '127.0.0.1:{port}': port "
        f"{int(port)} is not in 1..65535")


def test_capture_refuses_a_fifo_before_capturing(tmp_path, capsys):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert main(["capture", "127.0.0.1:9", "-o", str(fifo), "--duration", "1"]) == 2
    one_error_line(capsys, "capture", "FIFO")


@pytest.mark.parametrize("keep", ["0", "soon"])
def test_capture_keep_must_be_a_positive_duration(keep, tmp_path, capsys):
    out = tmp_path / "e.parquet"
    assert main(["capture", "127.0.0.1:9", "-o", str(out), "--keep", keep]) == 2
    one_error_line(capsys, "capture", "keep must be")
    assert not out.exists()


@pytest.mark.parametrize("argv", [
    ["report", "{archive}", "--tz", "Mars/Base"],
    ["parse", "{archive}", "-o", "{tmp}/x.parquet", "--tz", "Europe/Budapset"],
])
def test_every_tz_is_checked_before_any_work(argv, samples_dir, tmp_path, capsys):
    argv = [a.format(archive=samples_dir / "archive", tmp=tmp_path) for a in argv]
    assert main([*argv, "--out", str(tmp_path / "r")] if argv[0] == "report" else argv) == 2
    one_error_line(capsys, argv[0], "--tz", "unknown time zone")
    assert list(tmp_path.iterdir()) == []


def test_report_of_a_file_that_is_not_parquet(tmp_path, capsys):
    csv = tmp_path / "calls.csv"
    csv.write_text("call_id,start_time\na,2026-11-02\n")
    assert main(["report", str(csv), "--out", str(tmp_path / "r")]) == 2
    one_error_line(capsys, "report", "calls.csv", ".parquet file")
    fake = tmp_path / "calls.parquet"
    fake.write_text("call_id,start_time\n")
    assert main(["report", str(fake), "--out", str(tmp_path / "r")]) == 2
    one_error_line(capsys, "report", "not a readable Parquet file")
    assert not (tmp_path / "r").exists()


def test_report_refuses_a_fifo_where_it_writes(samples_dir, tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    os.mkfifo(out / "index.html")
    assert main(["report", str(samples_dir / "archive"), "--out", str(out)]) == 2
    one_error_line(capsys, "report", "FIFO")
    assert main(["report", str(samples_dir / "archive"), "--out", ""]) == 2
    one_error_line(capsys, "report", "empty")


def test_simulate_with_an_unwritable_archive_says_so_and_exits_1(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("a file, not a folder")
    # a folder under a regular file can never be created, even by root
    assert main(["simulate", "--port", "0", "--archive", str(blocker / "cdrs")]) == 1
    one_error_line(capsys, "simulate", "cannot write CDR files", "Not a directory")
    assert capsys.readouterr().out == ""   # no simulator was started
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(["simulate", "--port", "0", "--archive", str(locked)]) == 1
        one_error_line(capsys, "simulate", "Permission denied")


def test_an_unexpected_exception_is_one_line_exit_1(monkeypatch, tmp_path, capsys):
    from recstats.cli import _report

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(_report, "load_calls", broken)
    monkeypatch.delenv("RECSTATS_TRACEBACK", raising=False)
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r")]) == 1
    one_error_line(capsys, "report", "internal error: KeyError", "RECSTATS_TRACEBACK")


@pytest.mark.timeout(120)
def test_no_traceback_reaches_stderr_in_a_real_process(tmp_path):
    csv = tmp_path / "calls.csv"
    csv.write_text("call_id\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("RECSTATS_TRACEBACK", None)
    runs = {
        ("report", str(csv), "--out", str(tmp_path / "r")): 2,
        ("capture", "127.0.0.1:70000", "-o", str(tmp_path / "e.parquet")): 2,
        ("parse", str(tmp_path), "-o", "/dev/null"): 2,
    }
    for argv, code in runs.items():
        done = subprocess.run([sys.executable, "-m", "recstats.cli", *argv],
                              check=False, capture_output=True, text=True, timeout=60,
                              env=env)
        assert done.returncode == code, (argv, done.stderr)
        assert "Traceback" not in done.stderr and done.stdout == ""
        assert done.stderr.strip().splitlines()[-1].startswith(f"recstats {argv[0]}: error:")


@pytest.mark.timeout(60)
def test_simulate_says_when_cdr_files_could_not_be_written(tmp_path, monkeypatch, capsys):
    import time

    from recstats.cli import _simulate, build_parser
    from recstats.sim import _simulator

    def disk_full(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_simulator.os, "replace", disk_full)
    args = build_parser().parse_args(["simulate", "--port", "0", "--speed", "600",
                                      "--seed", "1", "--archive", str(tmp_path)])

    def wait(simulators):  # until the first ended call failed to be archived
        deadline = time.monotonic() + 30
        while not simulators[0].stats["archive_errors"] and time.monotonic() < deadline:
            time.sleep(0.02)
        raise KeyboardInterrupt

    assert _simulate.run(args, wait=wait) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("recstats simulate: error: ") and "could not be written" in err[-1]
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
