"""``recstats demo``: two simulated sites captured live, checked against their archive."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import recstats as rs
from recstats.cli import main
from recstats.cli._demo import offered_erlangs

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(120)
def test_demo_writes_a_complete_report_with_zero_differences(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--seconds", "4", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "live vs archive: OK" in printed
    assert f"report: {(out / 'index.html').resolve()}" in printed

    cdr_files = sorted((out / "archive").rglob("*.xml"))
    media = {p.stem for p in (out / "archive").rglob("*") if p.suffix in (".wav", ".txt")}
    assert cdr_files and {p.stem for p in cdr_files} == media
    sites = {p.relative_to(out / "archive").parts[0] for p in cdr_files}
    assert len(sites) == 2                                  # two simulated sites

    calls = pd.read_parquet(out / "calls.parquet")
    events = pd.read_parquet(out / "events.parquet")
    assert set(events["event"]) == {"start", "end"}
    ended_live = set(events.loc[events["event"] == "end", "call_id"])
    running = set(events["call_id"]) - ended_live
    assert running, "calls in progress at the end: the report must keep them"
    # the archive's calls, plus the calls still in progress (no CDR yet: no end time)
    with_cdr = {p.stem for p in cdr_files}
    assert sorted(calls["call_id"]) == sorted(with_cdr | running)
    assert set(calls.loc[calls["end_time"].isna(), "call_id"]) == running - with_cdr
    assert set(calls["site"].astype(str)) == sites
    assert ended_live <= with_cdr                              # every live end has a CDR

    text = (out / "index.html").read_text(encoding="utf-8")
    assert "every ended live call matches its CDR" in text
    for name in re.findall(r'<img src="([^"]+)"', text):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert 'id="notes"' not in text                        # no chart or table failed
    matched = re.search(r"<td>matched</td><td>(\d+)</td>", text)
    assert matched and int(matched.group(1)) == len(ended_live)

    # the simulators start in steady state, on a clock hour: at the window's start each
    # site already has about rate x mean holding calls in progress, a Poisson count:
    # NEW-YORK 0.5 x 180 = 90 erlangs (4 sd = 4 x sqrt(90) = 38), LONDON 0.35 x 180 = 63
    # (4 sd = 32)
    start, end = (pd.Timestamp(t) for t in calls.attrs["window"])
    assert start == start.floor("h") and end - start > pd.Timedelta(minutes=3)
    running_at_start = calls[(calls["start_time"] < start)
                             & ~(calls["end_time"] <= start)]
    per_site = running_at_start["site"].astype(str).value_counts()
    assert offered_erlangs() == {"NEW-YORK": 90.0, "LONDON": 63.0}
    for site, erlangs in offered_erlangs().items():
        assert abs(per_site[site] - erlangs) <= 4 * erlangs ** 0.5, (site, per_site[site])
    # the capture heard of every one of them before the simulated clocks ran
    assert set(running_at_start["call_id"]) <= set(events["call_id"])


def test_demo_refuses_a_folder_that_is_not_a_previous_report(tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("keep me")
    assert main(["demo", "--out", str(tmp_path), "--seconds", "1"]) == 2
    assert "not a previous report" in capsys.readouterr().err
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_with_ongoing_adds_only_calls_still_running_without_a_cdr():
    from recstats._table import calls_frame
    from recstats.cli._demo import with_ongoing

    t = pd.Timestamp("2026-11-02 09:00", tz="UTC")
    archive = calls_frame([{"call_id": "a", "site": "NY", "start_time": t,
                            "end_time": t + pd.Timedelta("2min")}])
    live = calls_frame([{"call_id": c, "site": "NY", "start_time": t + pd.Timedelta(s, "s")}
                        for c, s in (("a", 0), ("b", 30), ("lost", 40), ("c", 20))])
    live = live.assign(server="h:1", end_unknown=live["call_id"] == "lost")
    kept = live.copy()
    both = with_ongoing(archive, live)
    pd.testing.assert_frame_equal(live, kept)                  # the caller's frame as it was
    # a: its CDR (ended after the capture stopped); lost: not running; b, c: running
    assert both["call_id"].tolist() == ["a", "c", "b"]
    assert both["end_time"].isna().tolist() == [False, True, True]
    assert "server" not in both.columns and "end_unknown" not in both.columns
    assert str(both["site"].dtype) == "category"


# --------------------------------------------------------------------------- README


def readme_blocks() -> dict[str, str]:
    """The README's ```python blocks, keyed by the ``## `` heading above each."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks, heading = {}, ""
    for part in re.split(r"^(```python\n.*?^```)$", text, flags=re.MULTILINE | re.DOTALL):
        if part.startswith("```python\n"):
            blocks[heading] = part.removeprefix("```python\n").removesuffix("```")
        else:
            headings = re.findall(r"^## (.+)$", part, flags=re.MULTILINE)
            heading = headings[-1] if headings else heading
    return blocks


def test_readme_has_the_two_quickstarts_and_the_dask_lines():
    assert set(readme_blocks()) == {"Quickstart: an archive of CDR files",
                                    "Quickstart: live servers",
                                    "When the archive outgrows one machine"}


@pytest.mark.timeout(180)
def test_readme_dask_lines_run_and_equal_the_local_table(tmp_path):
    import warnings

    import dask

    block = readme_blocks()["When the archive outgrows one machine"]
    block = block.replace('"archive/"', repr(str(ROOT / "data" / "samples" / "archive")))
    block = block.replace('"calls-ds"', repr(str(tmp_path / "calls-ds")))
    namespace: dict = {"rs": rs}
    with dask.config.set(scheduler="synchronous"), warnings.catch_warnings():
        warnings.simplefilter("ignore", rs.DataQualityWarning)
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our README
        table = namespace["rs"].dask.capacity_table(namespace["calls"], tz="Europe/Budapest")
        local = rs.capacity_table(rs.read_calls(tmp_path / "calls-ds"), tz="Europe/Budapest")
    pd.testing.assert_frame_equal(table, local)


def test_readme_archive_quickstart_runs_as_written(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.chdir(ROOT)  # the README's paths are relative to the repository
    namespace: dict = {}
    exec(compile(readme_blocks()["Quickstart: an archive of CDR files"], "README.md",  # noqa: S102 - our README
                 "exec"), namespace)
    plt.close("all")
    calls = namespace["calls"]
    # the generated sample archive only (400 calls, every file parsed), not the odd/
    # fixtures next to it
    assert len(calls) == 400 and calls.attrs["errors"] == []
    assert not calls["cdr_path"].str.contains("/odd/").any()


@pytest.mark.timeout(120)
def test_readme_live_quickstart_runs_as_written(tmp_path):
    script = tmp_path / "live.py"
    script.write_text(readme_blocks()["Quickstart: live servers"], encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path]),
           "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(script)], cwd=ROOT, env=env, check=False,
                          capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    out = done.stdout
    assert "NY" in out   # the status table names the site
    # five events of extension 1000 from the synchronous client, one line each
    events = [line for line in out.splitlines() if re.match(r"^(start|end) \S+ ", line)]
    assert len(events) == 5, out[-2000:]
