"""The simulated recording server, checked over raw sockets and the sans-IO protocol
(independently of RecorderClient), against the traffic model it plays."""

from __future__ import annotations

import socket
import time
import wave

import numpy as np
import pandas as pd
import pytest

from recstats import _schema, _time, _xml, cdr, protocol
from recstats.cli import UsageError, build_parser
from recstats.cli import _simulate as simulate
from recstats.sim import RecorderSimulator
from recstats.sim.traffic import generate_calls

START = "2026-11-02 09:00:00"
EXTENSIONS = [str(n) for n in range(1000, 1010)]


def make_sim(**kwargs) -> RecorderSimulator:
    """A manual-clock simulator that starts empty (unless ``steady_state=True``), so its
    calls are exactly the traffic model's arrivals from ``START``."""
    options = {"rate": 1.0, "mean_holding": 60.0, "extensions": EXTENSIONS, "seed": 7,
               "start_time": START, "keepalive": None, "manual_clock": True,
               "steady_state": False}
    options.update(kwargs)
    return RecorderSimulator(**options)


_open_peers: list = []


@pytest.fixture(autouse=True)
def _close_peers():
    """Every Peer's socket is closed after its test (no ResourceWarning, no fd leak)."""
    yield
    while _open_peers:
        _open_peers.pop().close()


class Peer:
    """A raw protocol client: a blocking socket plus a sans-IO ClientConnection."""

    def __init__(self, address):
        self.sock = socket.create_connection(address, timeout=5)
        _open_peers.append(self)
        self.conn = protocol.ClientConnection()
        self.events: list = []

    def send(self, data: bytes, chunk: int | None = None) -> None:
        if chunk is None:
            self.sock.sendall(data)
        else:
            for i in range(0, len(data), chunk):
                self.sock.sendall(data[i:i + chunk])

    def read_until(self, predicate, timeout=5.0) -> list:
        """Read until ``predicate(events)`` holds; returns every event so far."""
        deadline = time.monotonic() + timeout
        while not predicate(self.events):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; got {self.events[-3:]}")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            self.events.extend(self.conn.receive_data(data, time.monotonic()))
            if not data:
                break
        return self.events

    def request(self, made) -> object:
        """Send a request ``(id, bytes)`` and return its answer."""
        request_id, data = made
        self.send(data)
        answers = self.read_until(lambda evs: any(getattr(e, "request_id", None) == request_id
                                                  for e in evs))
        return next(e for e in answers if getattr(e, "request_id", None) == request_id)

    def close(self):
        self.sock.close()


def expected_calls(seconds, **kwargs):
    """The traffic model's calls starting in the first ``seconds`` (the reference)."""
    options = {"rate": 1.0, "mean_holding": 60.0, "extensions": EXTENSIONS, "rng": 7}
    options.update(kwargs)
    return generate_calls(START, seconds, **options)


def test_truth_follows_the_traffic_model_in_manual_time(tmp_path):
    with make_sim(archive=tmp_path) as sim:
        assert sim.truth.empty and list(sim.truth.columns)[:4] == list(_schema.CALL_COLUMNS[:4])
        sim.advance(300)
        truth = sim.truth
        assert sim.now == pd.Timestamp(START, tz="UTC") + pd.Timedelta(seconds=300)
    reference = expected_calls(300)
    assert truth.call_id.tolist() == [c["id"] for c in reference]  # start order
    cutoff = pd.Timestamp(START, tz="UTC") + pd.Timedelta(seconds=300)
    ref_end = pd.to_datetime([c["end_time"] for c in reference], utc=True)
    ended = np.asarray(ref_end <= cutoff)
    assert truth.end_time.notna().tolist() == ended.tolist()
    assert 0 < ended.sum() < len(reference)
    # ended calls carry every field, ongoing ones only what is known at their start
    done = truth[truth.end_time.notna()]
    np.testing.assert_array_equal(done.end_time.to_numpy(), ref_end[ended].to_numpy())
    assert truth.loc[~ended, "cause_id"].isna().all()
    assert truth.loc[ended, "cause_id"].notna().all()
    assert truth.site.astype(str).eq("SITE-A").all()


def test_starts_in_steady_state_with_calls_already_in_progress(tmp_path):
    # rate 2 calls/s x mean holding 120 s = 240 erlangs: the number in progress at start
    # is Poisson(240) (M/G/inf), sd sqrt(240) = 15.5; 4 sd = 62 calls either way
    start = pd.Timestamp(START, tz="UTC")
    with make_sim(rate=2.0, mean_holding=120.0, archive=tmp_path, steady_state=True,
                  tz="Europe/Budapest") as sim:
        initial = sim.ongoing
        assert abs(len(initial) - 240) <= 4 * 240 ** 0.5
        peer = Peer(sim.address)
        peer.request(peer.conn.subscribe())
        listed = peer.request(peer.conn.get_ongoing_calls())
        sim.advance(300)
        truth = sim.truth
        peer.request(peer.conn.get_ongoing_calls())  # after every notification sent so far
        again = make_sim(rate=2.0, mean_holding=120.0, steady_state=True,
                         tz="Europe/Budapest")
        with again:
            assert again.ongoing == initial             # seeded: the same population
    ids = [c["id"] for c in initial]
    assert [c["id"] for c in listed.calls] == ids   # what a client is told at connect
    starts = pd.Series([_time.parse_time(c["start_time"], "Europe/Budapest")
                        for c in initial])
    assert (starts < start).all() and starts.is_monotonic_increasing
    assert (start - starts).max() > pd.Timedelta(minutes=5)  # some long calls run already
    assert not any("end_time" in c for c in initial)
    # they end later, as CallEnded notifications without a CallStarted, and as CDR files
    first = truth.set_index("call_id").loc[ids]
    ended = first[first.end_time.notna()]
    assert (ended.end_time > start).all()
    assert len(ended) > len(first) / 2   # mean residual life ~ 1.36 x 120 s < 300 s
    assert (first.loc[first.end_time.isna(), "start_time"] < start).all()
    seen = {(type(e).__name__, e.fields["id"]) for e in peer.events
            if isinstance(e, (protocol.CallStarted, protocol.CallEnded))}
    assert {c for kind, c in seen if kind == "CallEnded"} >= set(ended.index)
    assert not {c for kind, c in seen if kind == "CallStarted"} & set(ids)
    for call_id, row in ended.iterrows():
        record = cdr.read_cdr(sim.cdr_path(call_id), tz="Europe/Budapest")
        assert record["start_time"] == row.start_time and record["end_time"] == row.end_time
        local = row.start_time.tz_convert("Europe/Budapest")
        assert sim.cdr_path(call_id).parent == (tmp_path / "SITE-A" / f"{local:%Y}"
                                                / f"{local:%m}" / f"{local:%d}")
    assert len(list(tmp_path.rglob("*.xml"))) == int(truth.end_time.notna().sum())
    # the arrivals from the start on are the traffic model's, as without the warm start
    later = truth[~truth.call_id.isin(ids)]
    reference = expected_calls(300, rate=2.0, mean_holding=120.0)
    assert later.call_id.tolist() == [c["id"] for c in reference]


def test_paused_start_holds_the_clock_until_resume():
    # real time, 600 simulated seconds per second: left running, the ~60 calls in
    # progress (rate 1 x 60 s) would mostly end within the first real second
    with make_sim(manual_clock=False, speed=600, steady_state=True, paused=True) as sim:
        initial = {c["id"] for c in sim.ongoing}
        peer = Peer(sim.address)
        peer.request(peer.conn.subscribe())
        time.sleep(0.3)
        assert sim.now == pd.Timestamp(START, tz="UTC")
        assert {c["id"] for c in sim.ongoing} == initial and sim.stats["calls_ended"] == 0
        sim.resume()
        peer.read_until(lambda evs: sum(isinstance(e, protocol.CallEnded)
                                        for e in evs) >= 5)
        assert sim.now > pd.Timestamp(START, tz="UTC")
    ended = {e.fields["id"] for e in peer.events if isinstance(e, protocol.CallEnded)}
    assert ended & initial   # the calls in progress at the start end first


def test_steady_state_off_starts_empty():
    with make_sim(steady_state=False) as sim:
        assert sim.ongoing == [] and sim.truth.empty
        assert sim.stats["calls_started"] == 0


def test_archive_holds_exactly_the_ended_calls_in_the_documented_layout(tmp_path):
    with make_sim(archive=tmp_path, tz="Europe/Budapest") as sim:
        sim.advance(400)
        truth = sim.truth
    ended = truth[truth.end_time.notna()]
    files = sorted(tmp_path.rglob("*.xml"))
    assert len(files) == len(ended)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    by_id = {p.stem: p for p in files}
    assert set(by_id) == set(ended.call_id)
    for row in ended.itertuples():
        path = by_id[row.call_id]
        local = row.start_time.tz_convert("Europe/Budapest")
        assert path.parent == tmp_path / "SITE-A" / f"{local:%Y}" / f"{local:%m}" / f"{local:%d}"
        record = cdr.read_cdr(path, tz="Europe/Budapest")
        assert record["start_time"] == row.start_time and record["end_time"] == row.end_time
        assert record["caller"] == row.caller
        # per-record and vectorised durations may differ in the last bit (cdr.py paths)
        assert record["duration"] == row.duration
        media = path.with_name(record["media_file"])
        assert media.exists()
        if record["modality"] == "im":
            assert media.suffix == ".txt"
        else:
            assert media.suffix == ".wav"
            with wave.open(str(media)) as w:
                assert w.getframerate() == 8000
    # times in the files are the site's wall-clock time (09:00 UTC is 10:00 in Budapest)
    first = _xml.fields_of(_xml.parse_document(files[0].read_bytes()))
    assert first["start_time"][11:13] in ("10", "11")


def test_a_failing_archive_write_leaves_no_temp_files_and_the_calls_go_on(tmp_path,
                                                                         monkeypatch):
    from recstats.sim import _simulator as module

    def full(data, path):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(module.os, "replace", full)
    with make_sim(archive=tmp_path) as sim:
        sim.advance(400)
        truth = sim.truth
    ended = int(truth.end_time.notna().sum())
    assert ended > 0 and sim.stats["archive_errors"] == ended
    assert sim.stats["calls_ended"] == ended
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_notifications_follow_starts_and_ends_with_filters(tmp_path):
    with make_sim() as sim:
        everyone = Peer(sim.address)
        few = Peer(sim.address)
        assert isinstance(everyone.request(everyone.conn.subscribe()),
                          protocol.SubscribeAccepted)
        few.request(few.conn.subscribe(extensions=["1001", "1007"]))
        sim.advance(240)
        truth = sim.truth
        # an answer comes after every notification sent before it (one ordered stream)
        everyone.request(everyone.conn.get_ongoing_calls())
        few.request(few.conn.get_ongoing_calls())
    def seen(peer):
        return [(type(e).__name__, e.fields["id"]) for e in peer.events
                if isinstance(e, (protocol.CallStarted, protocol.CallEnded))]
    starts = [("CallStarted", c) for c in truth.call_id]
    ends = [("CallEnded", c) for c in truth.call_id[truth.end_time.notna()]]
    got = seen(everyone)
    assert sorted(got) == sorted(starts + ends)
    # each call starts before it ends
    position = {item: i for i, item in enumerate(got)}
    assert all(position[("CallStarted", c)] < position[("CallEnded", c)] for _, c in ends)
    wanted = set(truth.call_id[truth.caller.isin(["1001", "1007"])
                               | truth.callee.isin(["1001", "1007"])])
    assert wanted and wanted != set(truth.call_id)
    assert {c for _, c in seen(few)} == wanted
    for e in few.events:
        if isinstance(e, (protocol.CallStarted, protocol.CallEnded)):
            assert {e.fields.get("source_caller_id"),
                    e.fields.get("destination_caller_id")} & {"1001", "1007"}


def test_requests_answered_with_ids_and_errors(tmp_path):
    with make_sim(archive=tmp_path) as sim:
        sim.advance(200)
        truth = sim.truth
        peer = Peer(sim.address)
        ongoing = peer.request(peer.conn.get_ongoing_calls())
        assert {c["id"] for c in ongoing.calls} == set(truth.call_id[truth.end_time.isna()])
        filtered = peer.request(peer.conn.get_ongoing_calls(extensions=["1003"]))
        assert all("1003" in (c.get("source_caller_id"), c.get("destination_caller_id"))
                   for c in filtered.calls)
        done = truth[truth.end_time.notna()].call_id.iloc[0]
        detail = peer.request(peer.conn.get_call_detail(done))
        assert cdr.record_from_fields(detail.fields) == cdr.read_cdr(sim.cdr_path(done))
        unknown = peer.request(peer.conn.get_call_detail("no-such-call"))
        assert isinstance(unknown, protocol.ErrorResponse) and unknown.code == 2
        assert "no-such-call" in unknown.detail
        # a request type the server does not know: code 2 with the id echoed
        peer.send(b'<VerbaApi><Request type="Reboot" id="77"/></VerbaApi>', chunk=1)
        [error] = [e for e in peer.read_until(
            lambda evs: any(getattr(e, "request_id", None) == "77" for e in evs))
            if getattr(e, "request_id", None) == "77"]
        assert isinstance(error, protocol.ErrorResponse) and error.code == 2
        assert error.request_type == "Reboot"
        assert "unsupported request type 'Reboot'" in error.detail
        # a known type it cannot read: the error says what is wrong, not "unsupported"
        peer.send(b'<VerbaApi><Request type="SubscribeOnCallEvent" id="78">'
                  b'<Keepalive time="-1"/></Request></VerbaApi>')
        [error] = [e for e in peer.read_until(
            lambda evs: any(getattr(e, "request_id", None) == "78" for e in evs))
            if getattr(e, "request_id", None) == "78"]
        assert isinstance(error, protocol.ErrorResponse) and "'-1'" in error.detail
        assert "unsupported" not in error.detail
        assert sim.stats["errors_sent"] == 3


def test_the_documented_subscribe_exchange_on_the_wire():
    # PROTOCOL.md's request and response, byte for byte, over a real socket
    request = (b'<?xml version="1.0" encoding="UTF-8"?>\n<VerbaApi><Request '
               b'type="SubscribeOnCallEvent" id="1"><Extension number="1000"/></Request>'
               b'</VerbaApi>')
    response = (b'<?xml version="1.0" encoding="UTF-8"?>\n<VerbaApi><Response code="0">'
                b'<Request type="SubscribeOnCallEvent" id="1"/><Keepalive time="10"/>'
                b'</Response></VerbaApi>')
    with make_sim(keepalive=10) as sim:
        peer = Peer(sim.address)
        peer.send(request)
        received = b""
        while len(received) < len(response):
            chunk = peer.sock.recv(len(response) - len(received))
            assert chunk, "the server hung up"
            received += chunk
        assert received == response


def test_keepalive_default_requested_and_off():
    with make_sim(keepalive=0.05) as sim:
        default = Peer(sim.address)
        assert default.request(default.conn.subscribe()).keepalive == 0.05
        asked = Peer(sim.address)
        assert asked.request(asked.conn.subscribe(keepalive=0.1)).keepalive == 0.1
        off = Peer(sim.address)
        assert off.request(off.conn.subscribe(keepalive=0)).keepalive is None
        kinds = default.read_until(
            lambda evs: sum(isinstance(e, protocol.KeepAlive) for e in evs) >= 3)
        assert {e.interval for e in kinds if isinstance(e, protocol.KeepAlive)} == {0.05}
        asked.read_until(lambda evs: any(isinstance(e, protocol.KeepAlive) for e in evs))
        assert asked.events[-1] == protocol.KeepAlive(0.1)
        off.request(off.conn.get_ongoing_calls())  # the stream is in order: nothing before
        assert not any(isinstance(e, protocol.KeepAlive) for e in off.events)


def test_stall_keepalives_pauses_them():
    with make_sim(keepalive=0.05) as sim:
        peer = Peer(sim.address)
        peer.request(peer.conn.subscribe())
        peer.read_until(lambda evs: any(isinstance(e, protocol.KeepAlive) for e in evs))
        stalled_at = time.monotonic()
        sim.stall_keepalives(1.0)
        sent = sim.stats["keepalives"]
        time.sleep(0.3)
        still_sent = sim.stats["keepalives"]
        # a loaded machine may wake this thread after the stall is over: only judge
        # what happened while it lasted
        assert still_sent == sent or time.monotonic() > stalled_at + 1.0
        deadline = time.monotonic() + 5
        while sim.stats["keepalives"] == sent and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sim.stats["keepalives"] > sent  # and they come back after the stall


def test_garbage_from_one_client_drops_only_that_one():
    with make_sim() as sim:
        good = Peer(sim.address)
        good.request(good.conn.subscribe())
        bad = Peer(sim.address)
        bad.send(b"<VerbaApi><Request type='x'></Nope></VerbaApi>")
        bad.sock.settimeout(5)
        assert bad.sock.recv(100) == b""  # the server hung up on it
        sim.advance(30)
        answer = good.request(good.conn.get_ongoing_calls())
        assert isinstance(answer, protocol.OngoingCalls)
        assert any(isinstance(e, protocol.CallStarted) for e in good.events)
        assert sim.stats["protocol_errors"] == 1


def test_drop_connections_and_send_raw_reach_every_client():
    with make_sim() as sim:
        peers = [Peer(sim.address) for _ in range(3)]
        for peer in peers:
            peer.request(peer.conn.subscribe())
        sim.send_raw(b"<VerbaApi><Surprise/></VerbaApi>")
        for peer in peers:
            peer.read_until(lambda evs: any(isinstance(e, protocol.UnknownMessage)
                                            for e in evs))
        assert sim.drop_connections() == 3
        for peer in peers:
            events = peer.read_until(lambda evs: any(isinstance(e, protocol.ConnectionClosed)
                                                     for e in evs))
            assert isinstance(events[-1], protocol.ConnectionClosed)
        # still listening
        late = Peer(sim.address)
        assert isinstance(late.request(late.conn.subscribe()), protocol.SubscribeAccepted)
        assert sim.client_count == 1


def test_stop_keeps_ongoing_calls_and_closes_the_port():
    sim = make_sim().start()
    peer = Peer(sim.address)
    peer.request(peer.conn.subscribe())
    sim.advance(120)
    before = sim.truth
    sim.stop()
    sim.stop()  # idempotent
    after = sim.truth
    pd.testing.assert_frame_equal(before, after)
    assert after.end_time.isna().any()
    events = peer.read_until(lambda evs: any(isinstance(e, protocol.ConnectionClosed)
                                             for e in evs))
    assert isinstance(events[-1], protocol.ConnectionClosed)
    with pytest.raises(OSError):
        socket.create_connection(sim.address, timeout=2)
    assert not sim.running


def test_a_stopped_simulator_cannot_be_started_again():
    for started in (True, False):  # stopped after running, or before ever starting
        sim = make_sim()
        if started:
            sim.start()
        sim.stop()
        with pytest.raises(RuntimeError, match="cannot be restarted"):
            sim.start()
        assert not sim.running


def _ipv6_loopback() -> bool:
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_listens_on_an_ipv6_address():
    with make_sim(host="::1") as sim:
        peer = Peer(sim.address)
        assert isinstance(peer.request(peer.conn.subscribe()), protocol.SubscribeAccepted)


def test_real_time_clock_speed_and_pause():
    sim = make_sim(manual_clock=False, speed=600, rate=2.0)
    before = time.monotonic()
    with sim:
        after = time.monotonic()
        deadline = time.monotonic() + 5
        while len(sim.truth) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        pause_from = time.monotonic()
        sim.pause()
        pause_to = time.monotonic()
        frozen = sim.truth
        now = sim.now
        assert len(frozen) >= 50
        # simulated seconds = 600 x real seconds since start (bounds from both sides)
        simulated = (now - pd.Timestamp(START, tz="UTC")).total_seconds()
        assert 600 * (pause_from - after) <= simulated <= 600 * (pause_to - before)
        assert (frozen.start_time <= now).all()
        assert (frozen.end_time.dropna() <= now).all()
        time.sleep(0.1)
        assert sim.now == now
        pd.testing.assert_frame_equal(sim.truth, frozen)
        sim.advance(60)
        assert sim.now == now + pd.Timedelta(seconds=60)
        sim.resume()
    reference = [c["id"] for c in expected_calls(10_000, rate=2.0)]
    assert frozen.call_id.tolist() == reference[:len(frozen)]


def test_a_client_that_stops_reading_is_dropped_not_waited_for(monkeypatch):
    from recstats.sim import _server as module
    monkeypatch.setattr(module, "HIGH_WATER_BYTES", 32 * 1024)
    monkeypatch.setattr(module, "STUCK_SECONDS", 0.3)
    with make_sim(manual_clock=False, speed=2000, rate=5.0) as sim:
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(sim.address)
        stuck.sendall(protocol.subscribe_request("1"))  # and never reads again
        reader = Peer(sim.address)
        reader.request(reader.conn.subscribe())
        deadline = time.monotonic() + 10
        while sim.stats["dropped_clients"] == 0 and time.monotonic() < deadline:
            reader.read_until(lambda evs: True, timeout=1)
            reader.sock.settimeout(0.05)
            try:
                reader.events.extend(reader.conn.receive_data(reader.sock.recv(1 << 20), 0.0))
            except TimeoutError:
                pass
        assert sim.stats["dropped_clients"] == 1 and sim.client_count == 1
        count = sum(isinstance(e, protocol.CallStarted) for e in reader.events)
        reader.read_until(lambda evs: sum(isinstance(e, protocol.CallStarted)
                                          for e in evs) > count + 10)
        stuck.close()


@pytest.mark.timeout(30)
def test_pause_at_an_impossible_speed_freezes_where_playback_got_to():
    with make_sim(manual_clock=False, speed=1e6, rate=100.0) as sim:
        peer = Peer(sim.address)
        peer.request(peer.conn.subscribe())
        time.sleep(0.3)  # far behind by now: 3e5 simulated seconds, ~3e7 calls due
        sim.pause()
        truth = sim.truth
        now = sim.now
        assert 0 < len(truth) < 1_000_000
        assert (truth.start_time <= now).all() and (truth.end_time.dropna() <= now).all()
        time.sleep(0.05)
        pd.testing.assert_frame_equal(sim.truth, truth)


def test_manual_clock_refuses_resume_and_backwards():
    with make_sim() as sim:
        with pytest.raises(RuntimeError):
            sim.resume()
        with pytest.raises(ValueError):
            sim.advance(-1)
    with make_sim(manual_clock=False) as sim, pytest.raises(RuntimeError):
        sim.advance(1)


def test_history_bounds_the_ended_calls_kept():
    with make_sim(history=5) as sim:
        sim.advance(600)
        truth = sim.truth
    assert truth.end_time.notna().sum() == 5
    assert truth.end_time.isna().sum() > 0


def test_simulate_command_runs_one_simulator_per_site(tmp_path, capsys):
    args = build_parser().parse_args(["simulate", "--port", "0", "--sites", "2", "--rate",
                                      "5", "--speed", "600", "--seed", "3", "--archive",
                                      str(tmp_path), "--keepalive", "0.5"])
    seen = {}

    def wait(simulators):
        for sim in simulators:
            peer = Peer(sim.address)
            assert peer.request(peer.conn.subscribe()).keepalive == 0.5
            event = next(e for e in peer.read_until(
                lambda evs: any(isinstance(e, protocol.CallStarted) for e in evs))
                if isinstance(e, protocol.CallStarted))
            seen[sim.port] = event.fields["location"]
        raise KeyboardInterrupt

    assert simulate.run(args, wait=wait) == 0
    assert sorted(seen.values()) == ["SITE-A", "SITE-B"]
    out = capsys.readouterr().out
    for port in seen:
        assert f"127.0.0.1:{port}" in out
    with pytest.raises(UsageError):
        simulate.run(build_parser().parse_args(["simulate", "--sites", "0"]))


def test_site_names():
    assert [simulate.site_name(i) for i in (0, 2, 25, 26, 27, 701)] == [
        "SITE-A", "SITE-C", "SITE-Z", "SITE-AA", "SITE-AB", "SITE-ZZ"]


def test_repr_shows_site_address_and_state():
    sim = make_sim()
    assert "stopped" in repr(sim)
    with sim:
        page = sim._repr_html_()
        assert "SITE-A" in page and f"127.0.0.1:{sim.port}" in page and "running" in page


def test_simulate_command_reports_a_busy_port_in_one_line():
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(UsageError, match=f"cannot listen on 127.0.0.1:{port}: .*in use"):
            simulate.run(build_parser().parse_args(["simulate", "--port", str(port)]))


def test_simulate_command_names_a_host_it_cannot_resolve(monkeypatch):
    from recstats.sim import _simulator as module

    def unresolvable(*args, **kwargs):  # what socket.create_server raises (no DNS here)
        raise OSError(-2, "Name or service not known (while attempting to bind on "
                          "address ('nowhere.invalid', 10300))")
    monkeypatch.setattr(module, "RecorderSimulator", unresolvable)
    with pytest.raises(UsageError) as info:
        simulate.run(build_parser().parse_args(["simulate", "--host", "nowhere.invalid"]))
    assert str(info.value) == ("cannot listen on nowhere.invalid:10300: "
                               "Name or service not known")
