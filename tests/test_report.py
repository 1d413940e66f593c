"""The HTML report writer, the live-vs-archive comparison and ``recstats report``."""

from __future__ import annotations

import html
import re
import time

import pandas as pd
import pytest

from recstats._table import calls_frame, calls_from_fields
from recstats.cli import main
from recstats.report import choose_freq, compare_calls, report_notes, write_report
from recstats.sim.traffic import generate_calls

T0 = pd.Timestamp("2026-11-02 09:00", tz="UTC")


def _call(call_id, start_min, end_min, site="NY", caller="1000", callee="1001"):
    return {"call_id": call_id, "site": site, "caller": caller, "callee": callee,
            "start_time": T0 + pd.Timedelta(minutes=start_min),
            "end_time": pd.NaT if end_min is None else T0 + pd.Timedelta(minutes=end_min)}


@pytest.fixture(scope="module")
def calls():
    rows = (generate_calls("2026-11-02 08:00", 4 * 3600, rate=0.05, location="NY", rng=3)
            + generate_calls("2026-11-02 08:00", 4 * 3600, rate=0.03, location="LDN", rng=4))
    frame, rejected = calls_from_fields(rows)
    assert not rejected
    return frame


# --------------------------------------------------------------------------- comparison


def test_compare_counts_matches_missing_mismatches_and_unseen():
    live = calls_frame([_call("a", 0, 5), _call("b", 1, 6), _call("c", 2, None),
                        _call("d", 3, 7), _call("e", 4, 8, callee="2000")])
    archive = calls_frame([_call("a", 0, 5), _call("b", 1, 6.5), _call("e", 4, 8),
                           _call("x", 2, 6),      # ended inside the live span, never seen
                           _call("y", 0, 30),     # ended after the capture: not checked
                           _call("c", 2, 12)])    # ongoing when the capture stopped
    result = compare_calls(live, archive)
    assert result.live_calls == 5
    assert result.live_ended == 4                      # a, b, d, e
    assert result.matched == 1                         # only a is identical
    assert result.missing["call_id"].tolist() == ["d"]
    assert sorted(zip(result.mismatches["call_id"], result.mismatches["column"])) == \
        [("b", "end_time"), ("e", "callee")]
    assert result.archive_only["call_id"].tolist() == ["x"]
    assert result.differences == 3
    assert result.summary()["in progress at the end (no CDR yet)"] == 1      # c
    assert not result.ok
    assert "Differences" in result._repr_html_()


def test_compare_identical_tables_is_ok_and_does_not_mutate(calls):
    before = calls.copy()
    result = compare_calls(calls, calls)
    assert result.ok and result.differences == 0
    assert result.matched == result.live_ended == len(calls)
    pd.testing.assert_frame_equal(calls, before)


def test_choose_freq_keeps_bins_under_the_limit():
    calls = calls_frame([_call("a", 0, 600)])          # ten hours
    assert choose_freq(calls) == "15min"               # 40 bins; 5min would be 120
    assert choose_freq(calls, max_bins=10) == "1h"
    assert choose_freq(calls_frame([_call("a", 0, 20)])) == "1min"


# --------------------------------------------------------------------------- report


def test_report_folder_is_complete_and_self_contained(calls, tmp_path):
    events = pd.DataFrame({"received_at": [T0], "site": ["NY"], "event": ["start"],
                           "call_id": ["a"]})
    errors = pd.DataFrame({"path": ["bad/<one>.xml"], "error": ["malformed XML & more"]})
    index = write_report(calls, tmp_path / "rep", events=events, errors=errors,
                         title="Test <report>", tz="Europe/Budapest")
    assert index == tmp_path / "rep" / "index.html"
    assert report_notes(index) == []                   # every chart and table was made
    text = index.read_text(encoding="utf-8")
    images = re.findall(r'<img src="([^"]+)"', text)
    assert set(images) >= {"concurrency.png", "traffic_heatmap.png", "extensions.png",
                           "capacity.png"}
    for name in images:                                # relative, present, really PNG
        assert "/" not in name
        assert (tmp_path / "rep" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for section in ("summary", "quality", "concurrency", "traffic", "extensions", "capacity",
                    "errors"):
        assert f'id="{section}"' in text
    assert "Test &lt;report&gt;" in text and "<report>" not in text
    assert "bad/&lt;one&gt;.xml" in text and "malformed XML &amp; more" in text
    assert "Europe/Budapest" in text
    back = pd.read_parquet(tmp_path / "rep" / "calls.parquet")
    pd.testing.assert_frame_equal(back, calls.reset_index(drop=True), check_categorical=False)
    assert len(pd.read_parquet(tmp_path / "rep" / "events.parquet")) == 1


def test_report_summary_states_the_hand_computed_peak(tmp_path):
    # a 09:00-09:10, b 09:05-09:20, c 09:06-09:07: three at once from 09:06 to 09:07
    calls = calls_frame([_call("a", 0, 10), _call("b", 5, 20, site="LDN"), _call("c", 6, 7)])
    text = write_report(calls, tmp_path).read_text(encoding="utf-8")
    summary = text.split('id="summary"', 1)[1].split("</section>", 1)[0]
    assert "3 at 2026-11-02 09:06:00" in summary
    assert "LDN, NY" in summary
    assert not (tmp_path / "events.parquet").exists()
    assert 'id="comparison"' not in text and 'id="errors"' not in text


def test_report_summary_says_durations_cover_only_ended_calls(tmp_path):
    # a 09:00-09:10 (600 s) ended, b from 09:05 still running: 600 s over 1 ended call
    calls = calls_frame([{**_call("a", 0, 10), "duration": 600.0}, _call("b", 5, None)])
    text = write_report(calls, tmp_path).read_text(encoding="utf-8")
    assert "<dt>ongoing (no end time)</dt><dd>1</dd>" in text
    assert "<dt>mean holding time (ended calls)</dt><dd>600.0 s</dd>" in text
    assert "<dt>total talk time (ended calls)</dt><dd>0.17 h</dd>" in text
    done = write_report(calls.iloc[:1], tmp_path / "done").read_text(encoding="utf-8")
    assert "<dt>mean holding time</dt><dd>600.0 s</dd>" in done


def test_report_escapes_hostile_labels(tmp_path):
    evil = "<script>alert(1)</script>"
    calls = calls_frame([_call("x", 0, 5, site=evil, caller=evil), _call("y", 1, 3)])
    text = write_report(calls, tmp_path).read_text(encoding="utf-8")
    assert evil not in text
    assert html.escape(evil) in text


def test_report_takes_errors_as_attrs_list(tmp_path):
    calls = calls_frame([_call("a", 0, 5)])
    errors = [{"path": "x.xml", "error": "empty document"}]
    text = write_report(calls, tmp_path, errors=errors).read_text(encoding="utf-8")
    assert "Files that could not be parsed (1)" in text and "empty document" in text


def test_report_includes_the_comparison(calls, tmp_path):
    result = compare_calls(calls, calls)
    text = write_report(calls, tmp_path, comparison=result).read_text(encoding="utf-8")
    assert 'id="comparison"' in text and "every ended live call matches" in text


# --------------------------------------------------------------------------- command


def test_report_command_from_parquet(calls, tmp_path, capsys):
    source = tmp_path / "calls.parquet"
    calls.to_parquet(source)
    assert main(["report", str(source), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "index.html").exists()
    assert f"{len(calls):,} calls" in capsys.readouterr().out


def test_report_command_user_errors_exit_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope.parquet"), "--out", str(tmp_path)]) == 2
    assert "no such file" in capsys.readouterr().err
    other = tmp_path / "other.parquet"
    pd.DataFrame({"x": [1]}).to_parquet(other)
    assert main(["report", str(other), "--out", str(tmp_path / "o")]) == 2
    assert "not a calls table" in capsys.readouterr().err


def test_report_of_an_empty_table_is_written_without_failures(tmp_path):
    from recstats._table import empty_calls

    index = write_report(empty_calls(), tmp_path)
    assert report_notes(index) == []
    assert "no traffic to size channels for" in index.read_text(encoding="utf-8")


def test_report_command_parses_an_archive_and_lists_its_errors(samples_dir, tmp_path, capsys):
    import recstats as rs

    expected = rs.read_archive(samples_dir / "odd", progress=False)
    n_errors = len(rs.archive_errors(expected))
    assert main(["report", str(samples_dir / "odd"), "--out", str(tmp_path / "r")]) == 0
    assert f"{len(expected):,} calls, {n_errors:,} files with errors" in capsys.readouterr().out
    text = (tmp_path / "r" / "index.html").read_text(encoding="utf-8")
    assert f"Files that could not be parsed ({n_errors:,})" in text
    assert len(pd.read_parquet(tmp_path / "r" / "calls.parquet")) == len(expected)


def test_report_command_keeps_the_parse_errors_of_a_parquet_calls_table(
        samples_dir, tmp_path, capsys):
    import recstats as rs

    parsed = rs.read_archive(samples_dir / "odd", progress=False)
    n_errors = len(parsed.attrs["errors"])
    assert n_errors > 0
    source = rs.write_parquet(parsed, tmp_path / "calls.parquet")
    assert main(["report", str(source), "--out", str(tmp_path / "r")]) == 0
    text = (tmp_path / "r" / "index.html").read_text(encoding="utf-8")
    assert f"Files that could not be parsed ({n_errors:,})" in text


def test_report_command_folds_a_captured_events_table_into_calls(tmp_path, capsys):
    # `recstats capture -o` writes the events table (a start and an end row per call):
    # reported as it is, every ended call was counted twice
    from recstats.capture import Capture
    from recstats.cli._report import load_calls
    from recstats.sim import RecorderSimulator

    with RecorderSimulator(location="NY", rate=5, mean_holding=3, speed=4, seed=5) as sim, \
            Capture([sim.address]) as capture:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
                capture.calls["end_time"].notna().sum() < 5 or len(capture.ongoing) < 1):
            time.sleep(0.05)
    events, live = capture.events, capture.calls
    assert (events["event"] == "end").any() and live["end_time"].isna().any()
    source = tmp_path / "events.parquet"
    events.to_parquet(source)
    folded, _ = load_calls(source)
    expected = live.drop(columns=["end_unknown"]).astype({"server": "str"})
    pd.testing.assert_frame_equal(folded, expected[folded.columns.tolist()])
    assert main(["report", str(source), "--out", str(tmp_path / "r")]) == 0
    assert f"{live['call_id'].nunique():,} calls" in capsys.readouterr().out
    assert len(pd.read_parquet(tmp_path / "r" / "calls.parquet")) == len(live)


# --------------------------------------------------------------------------- sections


def _section(text, anchor):
    return text.split(f'id="{anchor}"', 1)[1].split("</section>", 1)[0]


def _headings(block):
    return [html.unescape(h) for h in re.findall(r"<th>([^<]*)</th>", block)]


def test_report_takes_parse_errors_from_the_tables_attrs(tmp_path):
    calls = calls_frame([_call("a", 0, 5)])
    calls.attrs["errors"] = [{"path": "x.xml", "error": "empty document"}]
    source = tmp_path / "calls.parquet"
    calls.to_parquet(source)  # attrs are plain data: they survive the Parquet file
    back = pd.read_parquet(source)
    text = write_report(back, tmp_path / "r").read_text(encoding="utf-8")
    assert "Files that could not be parsed (1)" in _section(text, "errors")
    assert "empty document" in text
    assert pd.read_parquet(tmp_path / "r" / "calls.parquet").attrs["errors"] == \
        calls.attrs["errors"]


def test_data_quality_section_lists_what_check_calls_finds(tmp_path):
    from recstats import stats

    # b ends before it starts; a appears twice
    calls = calls_frame([_call("a", 0, 10), _call("b", 20, 15), _call("a", 0, 10),
                         _call("c", 30, 40)])
    problems = stats.check_calls(calls)
    assert {"end before start", "duplicate call id"} <= set(problems["problem"])
    block = _section(write_report(calls, tmp_path).read_text(encoding="utf-8"), "quality")
    assert f"{problems['call_id'].nunique()} of 4 calls have problems" in block
    for problem, n in problems["problem"].value_counts().items():
        assert f"{n} {problem}" in html.unescape(block)
    clean = calls_frame([_call("a", 0, 10)])
    block = _section(write_report(clean, tmp_path / "c").read_text(encoding="utf-8"),
                     "quality")
    assert "No problems found: all 1 calls are used." in block


def test_capacity_section_states_window_days_method_and_coverage(tmp_path):
    # 2026-11-02 is a Monday: a 09:00-09:30 and b 09:10-09:40 that day, c on Saturday
    sat = pd.Timedelta(days=5)
    calls = calls_frame([_call("a", 0, 30), _call("b", 10, 40),
                         {**_call("c", 0, 60), "start_time": T0 + sat,
                          "end_time": T0 + sat + pd.Timedelta("1h")}])
    window = ("2026-11-02 00:00", "2026-11-09 00:00")
    text = write_report(calls, tmp_path, window=window, days="weekdays",
                        method="bouncing").read_text(encoding="utf-8")
    block = html.unescape(_section(text, "capacity"))
    # by hand: Monday 09:00-10:00 carries 30 + 30 call-minutes = 1 erlang, its busiest
    # hour; the other four weekdays of the window carry nothing and Saturday is left
    # out, so the mean of the five daily maxima is (1 + 0 + 0 + 0 + 0) / 5 = 0.20
    assert "Busy hour 09:00–10:00 UTC: 0.20 erlangs, by the bouncing method" in block
    assert "over weekdays in the window 2026-11-02 00:00 UTC → 2026-11-09 00:00 UTC " \
           "(7 days)" in block
    assert "100% of that hour was observed" in block
    summary = html.unescape(_section(text, "summary"))
    assert "2026-11-02 00:00 UTC → 2026-11-09 00:00 UTC (7 days; as given)" in summary


def test_data_quality_section_lists_the_periods_a_site_was_not_observed(tmp_path):
    calls = calls_frame([_call("a", 0, 10), _call("b", 5, 50, site="LDN")])
    calls.attrs["window"] = ["2026-11-02T09:00:00+00:00", "2026-11-02T10:00:00+00:00"]
    calls.attrs["gaps"] = [{"server": "10.0.0.2:10300", "site": "LDN",
                            "start": "2026-11-02T09:10:00+00:00",
                            "end": "2026-11-02T09:40:00+00:00"}]
    block = html.unescape(_section(write_report(calls, tmp_path, tz="Europe/Budapest")
                                   .read_text(encoding="utf-8"), "quality"))
    assert "Periods in which a site was not observed (1)" in block
    # 09:10-09:40 UTC is 10:10-10:40 in Budapest: 30 minutes
    assert re.search(r"<td>10\.0\.0\.2:10300</td><td>LDN</td><td>2026-11-02 10:10:00</td>"
                     r"<td>2026-11-02 10:40:00</td><td>30\.00</td>", block)
    assert "length [min]" in _headings(block)


def test_partly_observed_busy_hour_is_said_in_words(tmp_path):
    # ten calls over a 30-minute window: 10 erlangs, half of the hour observed
    calls = calls_frame([_call(f"k{i}", 0, 30) for i in range(10)])
    calls.attrs["window"] = ["2026-11-02T09:00:00+00:00", "2026-11-02T09:30:00+00:00"]
    text = write_report(calls, tmp_path).read_text(encoding="utf-8")
    block = html.unescape(_section(text, "capacity"))
    assert "10.00 erlangs" in block
    assert "50% of that hour was observed" in block
    assert "Only 50% of the busy hour was observed" in block
    assert "(30 minutes; as recorded with the table)" in html.unescape(
        _section(text, "summary"))


def test_tables_have_units_and_numbers_rounded_alike(calls, tmp_path):
    text = write_report(calls, tmp_path).read_text(encoding="utf-8")
    capacity = _headings(_section(text, "capacity"))
    assert {"busy-hour traffic [erlang]", "observed peak [calls]", "coverage [%]",
            "channels for 1% blocking", "busiest day's busy hour [erlang]"} <= set(capacity)
    concurrency = _headings(_section(text, "concurrency"))
    assert "LDN peak [calls]" in concurrency and "NY mean [erlang]" in concurrency
    extensions = _headings(_section(text, "extensions"))
    assert "traffic [erlang]" in extensions and "mean duration [s]" in extensions
    # every non-integer quantity with two decimals, counts as integers, fractions as %
    cells = re.findall(r"<td>([^<]*)</td>", text)
    decimals = {len(c.split(".")[1]) for c in cells if re.fullmatch(r"-?[\d,]+\.\d+", c)}
    assert decimals == {2}
    assert all(re.fullmatch(r"\d+%", c) for c in cells if c.endswith("%"))
    # every table sits in a box that scrolls instead of widening the page
    assert text.count("<table>") == text.count('<div class="table"><table>')
    assert ".table{max-width:100%;overflow-x:auto}" in text


def test_extensions_of_several_sites_are_kept_apart(tmp_path):
    # 1073 at LDN (2 calls) and 1073 at NY (1 call) are two rows, not one of 3 calls
    calls = calls_frame([_call("a", 0, 5, site="LDN", caller="1073", callee="+44123"),
                         _call("b", 6, 9, site="LDN", caller="1073", callee="+44124"),
                         _call("c", 0, 5, site="NY", caller="1073", callee="+1555")])
    block = _section(write_report(calls, tmp_path).read_text(encoding="utf-8"),
                     "extensions")
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td>", block)
    assert ("LDN", "1073", "2") in rows and ("NY", "1073", "1") in rows


def test_report_leaves_no_pyplot_figure_open(calls, tmp_path):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    write_report(calls, tmp_path)
    assert plt.get_fignums() == before
