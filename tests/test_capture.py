"""recstats.capture: live capture of simulated servers checked against their truth."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recstats import _columns, _table, cdr, protocol
from recstats._capture_gaps import ClockMap
from recstats._capture_server import ServerState
from recstats._live import Tables
from recstats.capture import Capture, status_line
from recstats.sim import RecorderSimulator

pytestmark = pytest.mark.timeout(60)

# fast traffic: ~20 calls per real second per site, ~16 calls in progress
TRAFFIC = {"rate": 5.0, "mean_holding": 3.0, "speed": 4.0}
COMPARED = ["call_id", "site", "start_time", "end_time", "duration", "caller", "callee",
            "caller_name", "callee_name", "direction", "direction_id", "modality",
            "cause", "cause_id", "audio_codec", "audio_codec_id"]


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def hold_reconnects(capture: Capture) -> threading.Event:
    """Keep ``capture`` away after a lost connection until the returned event is set.

    Tests that play a gap on the server while the capture is away must finish it before
    the capture comes back; a backoff timer would make that a race on a loaded machine.
    """
    gate = threading.Event()

    def delay(attempt: int) -> float:
        gate.wait(60)
        return 0.0

    capture._delay = delay
    return gate


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Categories as text, so tables with different category sets compare by value."""
    out = frame.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.CategoricalDtype):
            out[column] = out[column].astype("str")
    return out.sort_values("call_id").reset_index(drop=True)


class Site:
    """A simulator plus what a capture of it must contain."""

    def __init__(self, location: str, seed: int, **kwargs):
        self.sim = RecorderSimulator(location=location, seed=seed, **{**TRAFFIC, **kwargs})
        self.location = location
        self.expected: set[str] = set()
        self.seen: set[str] = set()   # every call id the truth held at the last freeze
        self.invisible: set[str] = set()  # started and ended while no one listened

    def freeze(self) -> pd.DataFrame:
        """Pause the clock; calls made since the last freeze become expected."""
        self.sim.pause()
        truth = self.sim.truth
        self.expected |= set(truth.call_id) - self.seen - self.invisible
        self.seen = set(truth.call_id)
        return truth

    def start_watching(self) -> None:
        """Before a capture connects (clock paused): only ongoing calls are expected."""
        wait_for(lambda: len(self.sim.ongoing) > 5, what="calls in progress")
        truth = self.freeze()
        ongoing = truth[truth.end_time.isna()]
        assert len(ongoing) > 3, "the resync path needs calls in progress"
        self.expected = set(ongoing.call_id)

    def check(self, calls: pd.DataFrame) -> None:
        """The capture's calls of this site equal the simulator's truth, exactly once."""
        truth = self.sim.truth
        mine = calls[calls.site == self.location]
        assert not mine.call_id.duplicated().any()
        assert set(mine.call_id) == self.expected
        got = plain(mine)[COMPARED]
        want = plain(truth[truth.call_id.isin(self.expected)])[COMPARED]
        pd.testing.assert_frame_equal(got, want)


def settle(capture: Capture, sites: list[Site]) -> pd.DataFrame:
    """Wait until the capture has every expected call with its final state."""
    def done():
        calls = capture.calls
        for site in sites:
            truth = site.sim.truth
            ended = set(truth.call_id[truth.end_time.notna()]) & site.expected
            mine = calls[calls.site == site.location]
            if set(mine.call_id) != site.expected:
                return False
            if set(mine.call_id[mine.end_time.notna()]) != ended:
                return False
        return True
    wait_for(done, what="the capture to catch up with the simulators")
    return capture.calls


@pytest.fixture
def two_sites():
    sites = [Site("SITE-A", 1), Site("SITE-B", 2, rate=3.0)]
    for site in sites:
        site.sim.start()
    yield sites
    for site in sites:
        site.sim.stop()


def test_two_sites_match_truth_including_calls_found_by_resync(two_sites, tmp_path):
    for site in two_sites:
        site.start_watching()
    capture = Capture([s.sim.address for s in two_sites], journal=tmp_path / "j")
    with capture:
        wait_for(lambda: capture.status.connected.all(), what="both connected")
        settle(capture, two_sites)  # the ongoing calls arrive through the resync
        for site in two_sites:
            site.sim.resume()
        time.sleep(1.5)
        for site in two_sites:
            site.freeze()
        calls = settle(capture, two_sites)
        events = capture.events
        status = capture.status
    for site in two_sites:
        site.check(calls)
    # calls in progress at the start came from the resync, later ones from notifications
    starts = events[events.event == "start"]
    resynced = set(starts.call_id[starts.origin == "resync"])
    assert resynced and resynced.isdisjoint(starts.call_id[starts.origin == "notification"])
    assert not starts.duplicated(["server", "call_id"]).any()
    ends = events[events.event == "end"]
    assert not ends.duplicated(["server", "call_id"]).any()
    assert set(ends.call_id) == set(calls.call_id[calls.end_time.notna()])
    # status counts agree with the events table
    counts = events.groupby("server", observed=True).size()
    assert dict(zip(status.server, status.events, strict=True)) == counts.to_dict()
    assert (status.reconnects == 0).all() and status.connected.all()
    assert not capture.status.connected.any()  # stopped
    assert events.received_at.is_monotonic_increasing
    assert str(events.received_at.dtype) == "datetime64[us, UTC]"
    # the calls table has the calls-table schema, plus server and end_unknown
    core = calls.drop(columns=["server", "end_unknown"])
    pd.testing.assert_frame_equal(_table.coerce_calls(core), core)
    assert not calls.end_unknown.any()
    ongoing = capture.ongoing
    assert set(ongoing.call_id) == set(calls.call_id[calls.end_time.isna()])
    # replaying the journal rebuilds the same tables
    replayed = Capture.replay(tmp_path / "j")
    pd.testing.assert_frame_equal(replayed.events, events)
    pd.testing.assert_frame_equal(replayed.calls, calls)
    again = replayed.status
    assert dict(zip(again.server, again.events, strict=True)) == counts.to_dict()


def test_drop_connections_reconnects_and_resyncs(tmp_path):
    site = Site("SITE-D", 3)
    with site.sim:
        site.start_watching()
        with Capture([site.sim.address], journal=tmp_path) as capture:
            away = hold_reconnects(capture)  # away until advance() has played the gap
            wait_for(lambda: capture.status.connected.all(), what="connected")
            settle(capture, [site])
            site.sim.resume()
            time.sleep(0.5)
            before = site.freeze()
            settle(capture, [site])
            # while the capture is away: some calls end, some start (and some of those end)
            assert site.sim.drop_connections() == 1
            site.sim.advance(2.0)
            after = site.sim.truth
            was_ongoing = set(before.call_id[before.end_time.isna()])
            ended_away = was_ongoing & set(after.call_id[after.end_time.notna()])
            born_away = after[~after.call_id.isin(before.call_id)]
            site.invisible = set(born_away.call_id[born_away.end_time.notna()])
            assert ended_away, "the test needs calls that end while the capture is away"
            site.freeze()
            away.set()
            calls = settle(capture, [site])
            status = capture.status
        events = capture.events
    site.check(calls)
    assert status.reconnects.tolist() == [1]
    assert status.events.tolist() == [len(events)]
    ends = events[events.event == "end"]
    # calls that ended while away got their end (right time, checked above) via detail
    assert set(ends.call_id[ends.origin == "detail"]) == ended_away
    starts = events[events.event == "start"]
    assert set(born_away.call_id) - site.invisible <= set(
        starts.call_id[starts.origin == "resync"])
    assert not starts.duplicated("call_id").any() and not ends.duplicated("call_id").any()
    replayed = Capture.replay(tmp_path)
    pd.testing.assert_frame_equal(replayed.events, events)
    pd.testing.assert_frame_equal(replayed.calls, calls)
    assert replayed.status.reconnects.tolist() == [1]


def test_end_unknown_when_call_detail_fails(tmp_path):
    # history=0: the server forgets ended calls, so their detail is an error answer
    sim = RecorderSimulator(location="SITE-F", seed=4, history=0, **TRAFFIC)
    with sim, Capture([sim.address], journal=tmp_path) as capture:
        away = hold_reconnects(capture)
        wait_for(lambda: len(capture.ongoing) > 3, what="ongoing calls")
        sim.pause()
        wait_for(lambda: set(capture.ongoing.call_id) == {c["id"] for c in sim.ongoing},
                 what="capture in step")
        known = set(capture.ongoing.call_id)
        sim.drop_connections()
        sim.advance(3.0)
        gone = known - {c["id"] for c in sim.ongoing}
        assert gone
        away.set()
        wait_for(lambda: capture.status.reconnects.iloc[0] == 1
                 and gone <= set(capture.calls.call_id[capture.calls.end_unknown]),
                 what="the lost calls to be flagged")
        calls = capture.calls
    lost = calls[calls.end_unknown]
    assert set(lost.call_id) == gone
    assert lost.end_time.isna().all() and lost.start_time.notna().all()
    assert gone.isdisjoint(capture.ongoing.call_id)
    pd.testing.assert_frame_equal(Capture.replay(tmp_path).calls, calls)


def test_server_down_at_start_is_captured_once_it_comes_up():
    port = free_port()
    with RecorderSimulator(location="UP", seed=5, **TRAFFIC) as up:
        capture = Capture([up.address, ("127.0.0.1", port)], backoff=0.05, max_backoff=0.2)
        with capture:
            wait_for(lambda: capture.status.events.iloc[0] > 5, what="events from UP")
            # the down server's thread reports its first failed attempt on its own time
            wait_for(lambda: "could not connect" in str(capture.status.last_error.iloc[1]),
                     what="the down server's first failure")
            assert capture.status.connected.tolist() == [True, False]
            with RecorderSimulator(port=port, location="LATE", seed=6, **TRAFFIC):
                wait_for(lambda: capture.status.connected.all(), what="LATE connected")
                wait_for(lambda: (capture.calls.site == "LATE").sum() > 3, what="LATE calls")
            wait_for(lambda: not capture.status.connected.iloc[1], what="LATE gone")
        assert capture.status.events.iloc[0] > 5  # UP went on meanwhile
    calls = capture.calls
    assert set(calls.site) == {"UP", "LATE"}
    assert set(calls.server[calls.site == "LATE"]) == {f"127.0.0.1:{port}"}


def test_malformed_bytes_end_the_session_not_the_capture():
    with RecorderSimulator(location="BAD", seed=7, **TRAFFIC) as sim, \
            Capture([sim.address], backoff=0.05) as capture:
        wait_for(lambda: capture.status.events.iloc[0] > 0, what="events")
        sim.send_raw(b"<VerbaApi><Notification></Oops></VerbaApi>")
        wait_for(lambda: capture.status.reconnects.iloc[0] >= 1, what="reconnect")
        count = capture.status.events.iloc[0]
        wait_for(lambda: capture.status.events.iloc[0] > count, what="events after")
        assert not capture.calls.duplicated("call_id").any()


def test_silent_server_is_dropped_after_missed_keepalives_and_reconnected():
    with RecorderSimulator(location="K", seed=13, **TRAFFIC) as sim, \
            Capture([sim.address], keepalive=0.2, backoff=0.05) as capture:
        wait_for(lambda: capture.status.last_keepalive.notna().all(), what="keep-alive")
        sim.stall_keepalives(1.0)
        wait_for(lambda: capture.status.reconnects.iloc[0] >= 1, what="reconnect")
        assert "keep-alive" in capture.status.last_error.iloc[0]
        wait_for(lambda: capture.status.connected.iloc[0], what="connected again")
    assert not capture.calls.duplicated("call_id").any()


def test_extensions_restrict_the_capture():
    wanted = {"1000", "1001", "1002"}
    with RecorderSimulator(location="E", seed=14, extensions=range(1000, 1006),
                           **TRAFFIC) as sim, \
            Capture([sim.address], extensions=sorted(wanted)) as capture:
        wait_for(lambda: len(capture.calls) >= 10, what="calls")
        calls = capture.calls
        truth = sim.truth
    involved = calls.caller.isin(wanted) | calls.callee.isin(wanted)
    assert involved.all()
    assert set(calls.call_id) <= set(truth.call_id)
    assert not (truth.caller.isin(wanted) | truth.callee.isin(wanted)).all()


def test_stop_is_idempotent_and_joins_threads():
    dead = free_port()
    with RecorderSimulator(location="S", seed=8, **TRAFFIC) as sim:
        capture = Capture([sim.address, f"127.0.0.1:{dead}"], backoff=5, max_backoff=10)
        capture.stop()  # before start: nothing to do
        capture.start()
        wait_for(lambda: capture.status.connected.iloc[0], what="connected")
        wait_for(lambda: isinstance(capture.status.last_error.iloc[1], str),
                 what="the dead server's first failure")
        capture.stop()
        assert not capture.running  # both threads ended within stop()'s timeout
        capture.stop()
        assert not capture.running and not capture.status.connected.any()
        errors = capture.status.last_error
        assert errors.isna().iloc[0]  # a clean stop is no error ("closed by the client")
        assert "could not connect" in errors.iloc[1]
        with pytest.raises(RuntimeError):
            capture.start()


def test_server_arguments_are_validated():
    assert Capture("h:1").servers == [("h", 1)]
    assert Capture(("h", 2)).servers == [("h", 2)]
    assert Capture([("h", 2), "g:3"]).servers == [("h", 2), ("g", 3)]
    # one extension given alone is that extension, not its digits
    assert Capture("h:1", extensions="1001").extensions == ["1001"]
    assert Capture("h:1", extensions=1001).extensions == ["1001"]
    assert Capture("h:1", extensions=range(1000, 1002)).extensions == ["1000", "1001"]
    for bad in (["nohost"], ["h:0"], [("h", "x")], [], ["h:1", ("h", 1)], 10300, None):
        with pytest.raises(ValueError):
            Capture(bad)


# --------------------------------------------------------------------------- live tables


@pytest.mark.parametrize("chunk", [65536, 7])
def test_tables_fold_like_a_brute_force_reference(chunk, monkeypatch):
    monkeypatch.setattr(_columns, "CHUNK", chunk)  # 7: many Arrow chunks, columns added late
    rng = np.random.default_rng(11)
    tables = Tables()
    merged: dict[tuple[str, str], dict] = {}
    servers = ["h:1", "h:2"]
    sent = []
    t = 1_000_000
    for i in range(300):
        server = servers[rng.integers(2)]
        call_id = f"c{rng.integers(120)}"
        fields = {"id": call_id,
                  "start_time": f"2026-11-02 09:{rng.integers(60):02d}:00.{i % 1000:03d}"}
        if rng.random() < 0.5:
            fields["end_time"] = "2026-11-02 10:00:00"
            fields["cause_id"] = str(rng.choice(["0", "6", "99"]))
        if rng.random() < 0.7:
            fields["location"] = f"L{server[-1]}"
        if rng.random() < 0.3:
            fields["ondemand"] = str(rng.choice(["true", "0"]))
        if rng.random() < 0.2:
            fields[f"extra_{rng.integers(3)}"] = f"x{i}"
        record = cdr.record_from_fields(fields)
        t += int(rng.integers(0, 3))
        sent.append({"t": t, "server": server, "call_id": call_id, "ondemand":
                     record.get("ondemand"), "extra_0": record.get("extra_0"),
                     "cause": record.get("cause")})
        tables.add(t, server, "end" if "end_time" in fields else "start", "notification",
                   fields)
        if i % 50 == 0:
            tables.events_frame()  # snapshots between events change nothing
        # the reference: raw fields merged by hand, later non-empty values winning
        merged.setdefault((server, call_id), {}).update(fields)
    records = []
    for (server, _), fields in merged.items():
        record = cdr.record_from_fields(fields)
        record["site"] = record["site"] or server
        record["server"] = server
        records.append(record)
    got = tables.calls_frame()
    assert len(got) == len(merged)
    want = _table.calls_frame(records)
    got_cmp = plain(got).sort_values(["call_id", "server"]).reset_index(drop=True)
    want_cmp = plain(want).sort_values(["call_id", "server"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got_cmp[want_cmp.columns], want_cmp)
    events = tables.events_frame()
    assert len(events) == len(sent) == 300
    assert events.received_at.is_monotonic_increasing
    # the events table holds what was sent, by receive time, then server, then arrival
    want_events = pd.DataFrame(sent).sort_values(["t", "server"], kind="stable") \
        .reset_index(drop=True)
    assert (events.received_at.astype("int64") == want_events.t).all()
    assert events.call_id.tolist() == want_events.call_id.tolist()
    assert events.server.astype("str").tolist() == want_events.server.tolist()
    for name in ("ondemand", "extra_0", "cause"):
        got_values = events[name].astype("object").where(events[name].notna(), None)
        assert got_values.tolist() == [None if pd.isna(v) else v
                                       for v in want_events[name]], name


def test_label_columns_without_values_have_the_calls_table_dtype():
    # an empty capture, and a column no event filled (IM only: no audio codec)
    empty = Capture(["127.0.0.1:1"]).calls.drop(columns=["server", "end_unknown"])
    pd.testing.assert_frame_equal(_table.coerce_calls(empty), empty)
    tables = Tables()
    tables.add(1, "h:1", "start", "notification",
               {"id": "a", "location": "NY", "start_time": "1970-01-01 00:00:00"})
    calls = tables.calls_frame().drop(columns=["server", "end_unknown"])
    assert calls["audio_codec"].isna().all()
    pd.testing.assert_frame_equal(_table.coerce_calls(calls), calls)


def test_event_site_falls_back_to_call_then_server():
    tables = Tables()
    tables.add(1, "h:1", "start", "notification", {"id": "a", "location": "NY"})
    tables.add(2, "h:1", "end", "notification", {"id": "a", "end_time": "2026-01-01 00:00:01"})
    tables.add(3, "h:1", "start", "notification", {"id": "b"})
    events = tables.events_frame()
    assert events.site.astype("str").tolist() == ["NY", "NY", "h:1"]
    calls = tables.calls_frame()
    assert calls.set_index("call_id").site.astype("str").to_dict() == {"a": "NY", "b": "h:1"}


def test_times_are_read_with_the_capture_zone_at_snapshot():
    tables = Tables(tz="Europe/Budapest")
    tables.add(1, "h:1", "start", "notification",
               {"id": "a", "start_time": "2026-07-01 12:00:00"})
    # Budapest is UTC+2 in July
    assert tables.calls_frame().start_time.tolist() == [
        pd.Timestamp("2026-07-01 10:00", tz="UTC")]


def test_replay_skips_a_cut_last_line(tmp_path):
    with RecorderSimulator(location="J", seed=9, **TRAFFIC) as sim, \
            Capture([sim.address], journal=tmp_path) as capture:
        wait_for(lambda: capture.status.events.iloc[0] > 3, what="events")
    events = capture.events
    (journal,) = tmp_path.glob("*.jsonl")
    header = json.loads(journal.read_text().splitlines()[0])
    assert header["server"] == f"127.0.0.1:{sim.port}"
    with open(journal, "a") as handle:
        handle.write('{"t": 12, "doc": "PFZlcmJh')  # a write cut by a crash
    replayed = Capture.replay(journal)
    pd.testing.assert_frame_equal(replayed.events, events)
    assert "1 journal line" in replayed.status.last_error.iloc[0]
    # a crash leaves no disconnect mark: the replayed capture is still not connected
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(line for line in lines if '"disconnect"' not in line))
    assert not Capture.replay(journal).status.connected.any()


@pytest.mark.parametrize("text", ["", "a,b\n1,2\n", '{"t": 1, "doc": ""}\n'])
def test_replay_of_a_file_that_is_not_a_journal_says_so(tmp_path, text):
    # it used to fail with "Capture needs at least one server"
    path = tmp_path / "x.jsonl"
    path.write_text(text)
    with pytest.raises(ValueError, match="is not a recstats journal"):
        Capture.replay(path)


# --------------------------------------------------------------------------- command


def test_capture_command_writes_parquet(tmp_path, capsys):
    from recstats.cli import main

    dead = free_port()
    out = tmp_path / "events.parquet"
    with RecorderSimulator(location="CLI", seed=10, **TRAFFIC) as sim:
        code = main(["capture", f"127.0.0.1:{sim.port}", f"127.0.0.1:{dead}",
                     "--duration", "1.5", "-o", str(out), "--journal", str(tmp_path / "j")])
    assert code == 0
    err = capsys.readouterr().err
    assert f"127.0.0.1:{dead}" in err and "could not connect" in err
    events = pd.read_parquet(out)
    assert len(events) > 5 and set(events.site) == {"CLI"}
    assert {"received_at", "server", "event", "call_id"} <= set(events.columns)
    pd.testing.assert_frame_equal(events, Capture.replay(tmp_path / "j").events,
                                  check_categorical=False)


def test_capture_command_fails_when_no_server_was_ever_reached(tmp_path, capsys):
    from recstats.cli import main

    dead = free_port()
    out = tmp_path / "events.parquet"
    code = main(["capture", f"127.0.0.1:{dead}", "--duration", "0.5", "-o", str(out)])
    assert code == 1
    assert "no server could be reached" in capsys.readouterr().err
    assert len(pd.read_parquet(out)) == 0  # the (empty) table is still written


def test_capture_command_writes_parquet_on_ctrl_c(tmp_path):
    out = tmp_path / "events.parquet"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with RecorderSimulator(location="INT", seed=12, **TRAFFIC) as sim:
        proc = subprocess.Popen(
            [sys.executable, "-m", "recstats.cli", "capture", f"127.0.0.1:{sim.port}",
             "-o", str(out)], stderr=subprocess.PIPE, text=True, env=env)
        try:
            assert "capturing" in proc.stderr.readline()
            assert "events" in proc.stderr.readline()  # a status line: the capture runs
            time.sleep(0.5)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, err
    assert len(pd.read_parquet(out)) > 0


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_during_a_capture_command_sets_an_event_then_interrupts():
    from recstats.cli._capture import _ctrl_c_sets

    interrupted = threading.Event()
    before = signal.getsignal(signal.SIGINT)
    with _ctrl_c_sets(interrupted):
        os.kill(os.getpid(), signal.SIGINT)  # the first: no KeyboardInterrupt, an event
        assert interrupted.wait(5)
        with pytest.raises(KeyboardInterrupt):  # the second: at once
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
    assert signal.getsignal(signal.SIGINT) is before


# --------------------------------------------------------------------------- gaps


_JOURNAL_BASE = 1_800_000_000_000_000  # an arbitrary moment [UTC us]


def _journal_line(t_seconds: float, **entry) -> str:
    if "doc" in entry:
        entry["doc"] = base64.b64encode(entry["doc"]).decode("ascii")
    return json.dumps({"t": _JOURNAL_BASE + round(t_seconds * 1e6), **entry}) + "\n"


def _session(t: float, ongoing: list[str], notes: list[tuple[float, str, str]],
             site: str) -> list[str]:
    """A journaled session: connect at ``t``, subscribe and resync (the list names
    ``ongoing``), then ``(t, start|end, call id)`` notifications."""
    ids = protocol.ClientConnection()
    subscribe = ids.next_request_id
    ids.send(protocol.SubscribeRequest(None, (), None))
    ongoing_id = ids.next_request_id

    def fields(call_id):
        return {"id": call_id, "location": site, "start_time": "2026-11-02T09:00:00Z"}

    lines = [_journal_line(t, mark="connect"),
             _journal_line(t, mark="request", type="subscribe", extensions=None,
                           keepalive=None),
             _journal_line(t + 0.1, doc=protocol.subscribe_response(subscribe, None)),
             _journal_line(t + 0.1, mark="request", type="ongoing", extensions=None),
             _journal_line(t + 0.2, doc=protocol.ongoing_calls_response(
                 ongoing_id, [fields(c) for c in ongoing]))]
    for note in notes:
        # (t, kind, call id[, the server's time when it was sent, default t])
        at, kind, call_id = note[:3]
        now = _server_time(note[3] if len(note) > 3 else at)
        times = {"end_time": now} if kind == "end" else {"start_time": now}
        lines.append(_journal_line(at, doc=protocol.call_notification(
            kind, {**fields(call_id), **times})))
    return lines


def _server_time(t_seconds: float) -> str:
    """The server's clock text at ``t_seconds`` of :func:`_journal_line`'s clock."""
    return (pd.Timestamp(_JOURNAL_BASE, unit="us", tz="UTC")
            + pd.Timedelta(seconds=t_seconds)).isoformat()


def test_status_gap_time_and_calls_possibly_missed_by_hand(tmp_path):
    header = {"format": "recstats-journal/1", "tz": "UTC"}
    # S1: connected 0-10 s and 14-20 s; the window (both servers) is 0-26 s
    s1 = [json.dumps({**header, "server": "S1:1"}) + "\n",
          *_session(0, ["a"], [(1, "start", "b"), (2, "start", "c"), (3, "end", "c"),
                               (4, "start", "d"), (5, "start", "e"), (6, "end", "d"),
                               (7, "end", "e")], "S1"),
          _journal_line(10, mark="disconnect"),
          # the list after the gap names a and b (known) and f (new: started in the gap)
          *_session(14, ["a", "b", "f"], [(15, "start", "h")], "S1"),
          _journal_line(20, mark="disconnect")]
    # S2: connected 2-26 s; its first list names 5 calls
    s2 = [json.dumps({**header, "server": "S2:2"}) + "\n",
          *_session(2, ["p", "q", "r", "s", "t"],
                    [(5, "start", "u"), (9, "start", "v"), (20, "start", "w")], "S2"),
          _journal_line(26, mark="disconnect")]
    (tmp_path / "s1.jsonl").write_text("".join(s1))
    (tmp_path / "s2.jsonl").write_text("".join(s2))
    status = Capture.replay(tmp_path).status.set_index("server")
    # S1: 5 starts notified (b c d e h) in 10 + 6 = 16 s connected: 5/16 calls/s.
    # gap 10-14 s: 4 x 5/16 = 1.25 expected starts, less f found in the list: 0.25;
    # gap 20-26 s (still open at the window's end): 6 x 5/16 = 1.875, nothing found
    assert status.loc["S1:1", "gap_seconds"] == pytest.approx(4 + 6)
    assert status.loc["S1:1", "missed_calls"] == pytest.approx(0.25 + 1.875)
    # S2: 3 starts in 24 s: 1/8 calls/s; gap 0-2 s before its first connection: 2 x 1/8,
    # its first list's 5 calls not subtracted (they may be older than the window)
    assert status.loc["S2:2", "gap_seconds"] == pytest.approx(2)
    assert status.loc["S2:2", "missed_calls"] == pytest.approx(0.25)
    assert "gaps 12.0 s, ~2 calls possibly missed" in status_line(status.reset_index())


def test_time_read_behind_before_a_disconnection_is_a_gap_by_hand(tmp_path):
    # the capture read its last three notifications 2 s late (the last stamped 7.9 s,
    # read at 9.9 s) and lost the connection at 10 s: what the server sent after 7.9 s
    # (its clock runs with ours) was lost with it, so the gap starts at 8 s, not 10 s.
    # At the disconnection the notes span under a second (the clock runs at our rate);
    # at the end, the note read 2 s late at 19.2 s makes the delays uncorrelated with
    # the time, so the fitted rate is exactly 1 again
    header = {"format": "recstats-journal/1", "tz": "UTC", "server": "S1:1"}
    lines = [json.dumps(header) + "\n",
             *_session(0, ["a"], [(9, "start", "b"), (9.3, "start", "c", 7.3),
                                  (9.6, "start", "d", 7.6), (9.9, "end", "c", 7.9)], "S1"),
             _journal_line(10, mark="disconnect"),
             *_session(14, ["a", "b", "f"], [(15, "start", "h"), (19.2, "end", "h", 17.2)],
                       "S1"),
             _journal_line(20, mark="disconnect")]
    (tmp_path / "s1.jsonl").write_text("".join(lines))
    capture = Capture.replay(tmp_path)
    assert list(capture.window) == [pd.Timestamp(_server_time(0)),
                                    pd.Timestamp(_server_time(20))]
    gaps = capture.gaps
    assert len(gaps) == 1
    assert gaps.loc[0, "start"] == pd.Timestamp(_server_time(8))
    assert gaps.loc[0, "end"] == pd.Timestamp(_server_time(14))
    status = capture.status.set_index("server")
    # observed 0-8 s and 14-20 s: 4 starts notified (b c d h) in 14 s; the gap of 6 s
    # expects 6 x 4/14 starts, less f that the list after it named
    assert status.loc["S1:1", "gap_seconds"] == pytest.approx(6)
    assert status.loc["S1:1", "missed_calls"] == pytest.approx(6 * 4 / 14 - 1)


def test_a_capture_behind_for_its_last_seconds_shows_it_in_the_gap(tmp_path):
    # on time for a minute (a note every 0.1 s, read as sent: the server's clock runs
    # with ours), then 2 s behind for the last 10 s before the cut at 70 s: the last
    # notes (far more than the 64 latest kept) are all 2 s late. Fitting the clock on
    # the first and the latest notes only would take that delay for a slower clock
    # (a line through the two clusters) and start the gap at about 70 s; the rate
    # fitted on one note per second of the whole minute shows the delay. A step of 2 s
    # in the last 10 of 70 one-per-second samples tilts their least-squares line a
    # little (by hand: the fitted delay is 1.6-2.0 s), so the gap starts at 68-68.4 s.
    header = {"format": "recstats-journal/1", "tz": "UTC", "server": "S1:1"}
    on_time = [(round(0.5 + i / 10, 1), "start", f"a{i}") for i in range(596)]
    late = [(round(60 + i / 10, 1), "start", f"b{i}", round(58 + i / 10, 1))
            for i in range(100)]
    lines = [json.dumps(header) + "\n", *_session(0, [], on_time + late, "S1"),
             _journal_line(70, mark="disconnect"),
             *_session(75, [], [(76, "start", "c")], "S1"),
             _journal_line(80, mark="disconnect")]
    (tmp_path / "s1.jsonl").write_text("".join(lines))
    gaps = Capture.replay(tmp_path).gaps
    assert len(gaps) == 1
    # the tilt also moves the clock's reading at the reconnection a little
    assert abs(gaps.loc[0, "end"] - pd.Timestamp(_server_time(75))) < pd.Timedelta("0.1s")
    start = gaps.loc[0, "start"]
    assert pd.Timestamp(_server_time(68)) <= start <= pd.Timestamp(_server_time(68.4)), start


def test_status_reads_no_server_time_however_many_sessions(tmp_path, monkeypatch):
    # the status is asked for every half second (dashboards, the CLI): each session's
    # observed end is worked out once, at its disconnection, not on every call
    header = {"format": "recstats-journal/1", "tz": "UTC", "server": "S1:1"}
    lines = [json.dumps(header) + "\n"]
    for k in range(20):
        lines += [*_session(10 * k, [], [(10 * k + 1, "start", f"c{k}")], "S1"),
                  _journal_line(10 * k + 5, mark="disconnect")]
    (tmp_path / "s1.jsonl").write_text("".join(lines))
    capture = Capture.replay(tmp_path)
    parsed = []
    real = ServerState._server_us
    monkeypatch.setattr(ServerState, "_server_us",
                        lambda self, text: parsed.append(text) or real(self, text))
    status = capture.status.set_index("server")
    assert status.loc["S1:1", "gap_seconds"] == pytest.approx(19 * 5)
    assert parsed == []


@pytest.mark.parametrize(("stopped", "gaps"), [(False, [(8, 14), (18, 20)]),
                                               (True, [(8, 14)])])
def test_the_session_stop_ends_is_observed_to_its_end(tmp_path, stopped, gaps):
    # both sessions read their last three notes 2 s late: the cut at 10 s leaves a gap
    # from 8 s, and so does the end at 20 s, unless stop() ended the session (the
    # window ends there). The notes on time average the same time as the late ones
    # (14.6 s), so the fitted rate is exactly 1
    header = {"format": "recstats-journal/1", "tz": "UTC", "server": "S1:1"}

    def notes(on_time, late):
        return [*((t, "start", f"on{t}") for t in on_time),
                *((t, "start", f"late{t}", t - 2) for t in late)]

    lines = [json.dumps(header) + "\n",
             *_session(0, [], notes([9], [9.3, 9.6, 9.9]), "S1"),
             _journal_line(10, mark="disconnect"),
             *_session(14, [], notes([15.6, 19.2], [19.3, 19.6, 19.9]), "S1"),
             _journal_line(20, mark="disconnect", **({"stopped": True} if stopped else {}))]
    (tmp_path / "s1.jsonl").write_text("".join(lines))
    found = [(g.start, g.end) for g in Capture.replay(tmp_path).gaps.itertuples()]
    assert found == [(pd.Timestamp(_server_time(a)), pd.Timestamp(_server_time(b)))
                     for a, b in gaps]


def test_a_server_clock_too_odd_to_measure_by_leaves_the_disconnection(monkeypatch):
    # a fitted rate so small that a delay overflows: the session ends where it ended
    server = ServerState("S1:1", Tables())
    monkeypatch.setattr(ServerState, "clock", lambda self: ClockMap(0.0, 0.0, 5e-324))
    server.apply(1_000, "connect", {})
    server._clock_sample(2_000, "2026-11-02T09:00:00Z")
    server.apply(3_000, "disconnect", {})
    assert server.observed() == [(1_000, 3_000)]


def test_a_sample_arriving_while_the_clock_is_fitted_waits_for_the_next_fit(monkeypatch):
    # the reader thread adds samples while a status (another thread) fits the clock:
    # the fit uses the samples it started with, and never meets a text it did not parse
    server = ServerState("S1:1", Tables())
    for second in range(4):
        server._clock_sample(1_000_000 * second, f"2026-11-02T09:00:0{second}Z")
    expected = server.clock()
    server._server_times = {}  # every text is parsed again, below
    real = ServerState._server_us
    arrived = []

    def parse_while_a_sample_arrives(self, text):
        if not arrived:
            arrived.append(True)
            self._clock_sample(9_000_000, "2026-11-02T09:00:09Z")
        return real(self, text)

    monkeypatch.setattr(ServerState, "_server_us", parse_while_a_sample_arrives)
    assert server.clock() == expected
    assert arrived and len(server.first_clock_samples) + len(server.clock_samples) == 5


def test_one_call_notified_late_does_not_widen_a_gap(tmp_path):
    # a call notified 5 s after the time it carries (read last, at 9.9 s), after notes
    # read on time: the least delay of the last three is 0, the gap is 10-14 s (all
    # notes within a second: the server's clock is taken to run at our rate)
    header = {"format": "recstats-journal/1", "tz": "UTC", "server": "S1:1"}
    lines = [json.dumps(header) + "\n",
             *_session(0, [], [(9, "start", "b"), (9.3, "start", "c"), (9.6, "start", "d"),
                               (9.9, "start", "e", 4.9)], "S1"),
             _journal_line(10, mark="disconnect"),
             *_session(14, ["b", "c", "d", "e"], [], "S1"),
             _journal_line(20, mark="disconnect")]
    (tmp_path / "s1.jsonl").write_text("".join(lines))
    status = Capture.replay(tmp_path).status.set_index("server")
    assert status.loc["S1:1", "gap_seconds"] == pytest.approx(4)


# --------------------------------------------------------------------------- spilling


def _used_labels(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.apply(lambda c: c.cat.remove_unused_categories()
                       if isinstance(c.dtype, pd.CategoricalDtype) else c)


def _parts(folder: Path, name: str) -> pd.DataFrame:
    parts = [pd.read_parquet(p) for p in sorted(folder.glob(f"{name}-*.parquet"))]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


@pytest.mark.parametrize("chunk", [7, 65536])
def test_spilled_rows_read_back_as_if_kept_in_memory(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(_columns, "CHUNK", chunk)  # 7: prefixes cut inside Arrow chunks
    journal = tmp_path / "j"
    hour = pd.Timedelta(hours=1)
    with RecorderSimulator(location="SP", seed=11, keepalive=1, **TRAFFIC) as sim, \
            Capture([sim.address], journal=journal, keep="1h", backoff=0.1,
                    max_backoff=0.2) as capture:
        wait_for(lambda: capture.status.events.iloc[0] > 60, what="events")
        first = capture.events.received_at
        # the older half of the events, and the calls that ended then, leave memory
        capture.move_old(now=first.iloc[len(first) // 2] + hour)
        sim.drop_connections()  # a gap and a resync between two moves
        wait_for(lambda: capture.status.reconnects.iloc[0] >= 1
                 and capture.status.events.iloc[0] > len(first) + 60, what="more events")
        capture.move_old(now=pd.Timestamp.now("UTC") + hour)  # all that ended so far
        count = capture.status.events.iloc[0]
        wait_for(lambda: capture.status.events.iloc[0] > count + 20, what="events after")
    events, calls, status = capture.events, capture.calls, capture.status.iloc[0]
    replayed = Capture.replay(journal)  # keeps everything in memory
    pd.testing.assert_frame_equal(events, replayed.events)
    pd.testing.assert_frame_equal(calls, replayed.calls)
    # the calls in progress (read from memory alone: their labels are those in memory)
    pd.testing.assert_frame_equal(_used_labels(capture.ongoing), _used_labels(replayed.ongoing))
    assert capture.spill_folder.parent == journal
    spilled_events = _parts(capture.spill_folder, "events")
    spilled_calls = _parts(capture.spill_folder, "calls")
    assert 0 < len(spilled_events) < len(events) and 0 < len(spilled_calls) < len(calls)
    assert (status.spilled_events, status.spilled_calls) == (len(spilled_events),
                                                             len(spilled_calls))
    assert (status.dropped_events, status.dropped_calls) == (0, 0)
    # only ended calls left memory, never one in progress or with its end unknown
    assert spilled_calls.end_time.notna().all() and not spilled_calls.end_unknown.any()


def test_dropped_rows_are_counted_and_the_rest_is_unchanged(tmp_path):
    journal = tmp_path / "j"
    with RecorderSimulator(location="DR", seed=12, keepalive=1, **TRAFFIC) as sim, \
            Capture([sim.address], journal=journal, keep=600, spill=False) as capture:
        wait_for(lambda: capture.status.events.iloc[0] > 80, what="events")
        cut = capture.events.received_at.iloc[40]
        capture.move_old(now=cut + pd.Timedelta(seconds=600))
    assert capture.spill_folder is None
    everything = Capture.replay(journal)
    all_events, all_calls = everything.events, everything.calls
    # brute force: events received before the cut, calls whose end was received before it
    kept_events = all_events[all_events.received_at >= cut].reset_index(drop=True)
    ends = all_events[all_events.event == "end"].set_index("call_id").received_at
    ended_before = set(ends[ends < cut].index)
    kept_calls = all_calls[~all_calls.call_id.isin(ended_before)].reset_index(drop=True)
    # (the labels are those of the rows kept)
    pd.testing.assert_frame_equal(capture.events, _used_labels(kept_events))
    pd.testing.assert_frame_equal(capture.calls, _used_labels(kept_calls))
    status = capture.status.iloc[0]
    assert status.dropped_events == (all_events.received_at < cut).sum() > 0
    assert status.dropped_calls == len(ended_before) > 0
    assert (status.spilled_events, status.spilled_calls) == (0, 0)


def test_keep_is_validated():
    for bad in (0, -1, "soon", "-5s"):
        with pytest.raises(ValueError, match="keep must be"):
            Capture(["127.0.0.1:9"], keep=bad)
    assert Capture(["127.0.0.1:9"], keep="90s").keep == 90.0
    with pytest.raises(ValueError, match="give keep too"):
        Capture(["127.0.0.1:9"], spill=False)


def test_rows_that_cannot_be_spilled_are_counted_as_dropped_and_said(tmp_path):
    capture = Capture(["127.0.0.1:9"], keep=60, spill=tmp_path / "parts")
    server = capture._servers["127.0.0.1:9"]  # fed directly: no network needed
    t0 = 1_800_000_000_000_000  # [UTC us]
    start = {"id": "a", "location": "X", "start_time": "2026-11-02T09:00:00Z"}
    server.start(t0, start, "notification")
    server.start(t0, {**start, "id": "b"}, "notification")
    server.end(t0 + 1, {**start, "end_time": "2026-11-02T09:01:00Z"}, "notification")
    assert capture.spill_folder.parent == tmp_path / "parts"
    shutil.rmtree(capture.spill_folder)  # the parts cannot be written
    capture.move_old(now=pd.Timestamp(t0 + 100_000_000, unit="us", tz="UTC"))  # 100 s on
    status = capture.status.iloc[0]
    # 3 events older than 60 s; call a ended then, b is still in progress and stays
    assert (status.dropped_events, status.dropped_calls) == (3, 1)
    assert (status.spilled_events, status.spilled_calls) == (0, 0)
    assert "could not spill old rows" in status.last_error
    assert capture.events.empty and capture.calls.call_id.tolist() == ["b"]
