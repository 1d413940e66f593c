"""RecorderClient against the simulator (loopback) and against a scripted transport."""

from __future__ import annotations

import math
import socket
import threading
import time

import pandas as pd
import pytest

from recstats import (
    ConnectFailed,
    ConnectionLost,
    KeepaliveExpired,
    ProtocolError,
    ResponseTimeout,
    ServerClosed,
    ServerError,
    _schema,
    cdr,
    protocol,
)
from recstats.client import CallEvent, RecorderClient, parse_address
from recstats.sim import RecorderSimulator

START = "2026-11-02 09:00:00"
EXTENSIONS = [str(n) for n in range(1000, 1010)]
NAMES = {"start": "CallStarted", "end": "CallEnded"}


def make_sim(**kwargs) -> RecorderSimulator:
    options = {"rate": 1.0, "mean_holding": 60.0, "extensions": EXTENSIONS, "seed": 11,
               "start_time": START, "keepalive": None, "manual_clock": True,
               "steady_state": False}  # exactly the traffic model's arrivals
    options.update(kwargs)
    return RecorderSimulator(**options)


@pytest.fixture
def sim(tmp_path):
    with make_sim(archive=tmp_path) as simulator:
        yield simulator


def drain(client) -> list:
    """Every event already received: a request's answer comes after every notification
    sent before it, so after a round trip the queue holds them all."""
    client.ongoing_calls()
    events = []
    while (event := client.poll(0)) is not None:
        events.append(event)
    return events


def calls_seen(events) -> set[tuple[str, str]]:
    return {(NAMES[e.kind], e.call["call_id"]) for e in events if isinstance(e, CallEvent)}


def expected(truth, mask=None) -> set[tuple[str, str]]:
    if mask is not None:
        truth = truth[mask]
    return ({("CallStarted", c) for c in truth.call_id}
            | {("CallEnded", c) for c in truth.call_id[truth.end_time.notna()]})


def until_lost(client) -> tuple[list, ConnectionLost]:
    """Every event ``events()`` yields before it raises, and what it raised."""
    events = []
    iterator = client.events()
    while True:
        try:
            events.append(next(iterator))
        except ConnectionLost as exc:
            return events, exc


def involving(truth, numbers):
    return truth.caller.isin(numbers) | truth.callee.isin(numbers)


# --------------------------------------------------------------------------- live


def test_subscribe_all_sees_every_call(sim):
    with RecorderClient(*sim.address) as client:
        assert client.subscribe() is None  # this simulator sends no keep-alives
        sim.advance(200)
        first = drain(client)
        sim.advance(200)
        second = drain(client)
        truth = sim.truth
    assert calls_seen(first + second) == expected(truth)
    ended = [e for e in first + second if isinstance(e, protocol.CallEnded)]
    assert all(not pd.isna(e.call["end_time"]) for e in ended)
    assert len(truth) > 100


@pytest.mark.parametrize("numbers", [["1004"], ["1001", "1002", "1008"]])
def test_filtered_subscription_matches_caller_or_callee(sim, numbers):
    with RecorderClient(*sim.address) as client:
        client.subscribe(extensions=numbers)
        sim.advance(400)
        events = drain(client)
        truth = sim.truth
    mask = involving(truth, numbers)
    assert 0 < mask.sum() < len(truth)
    assert calls_seen(events) == expected(truth, mask)
    for event in events:
        if isinstance(event, CallEvent):
            assert event.call["caller"] in numbers or event.call["callee"] in numbers
    # both roles occur: the filter is not caller-only or callee-only
    assert truth.caller[mask].isin(numbers).any() and truth.callee[mask].isin(numbers).any()


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    columns = ["call_id", "site", "start_time", "caller", "callee", "caller_name",
               "direction", "direction_id", "modality", "audio_codec", "media_file",
               "native_call_id"]
    out = frame[columns].astype({"site": "str", "direction": "str", "modality": "str",
                                 "audio_codec": "str"})
    return out.sort_values("call_id").reset_index(drop=True)


def test_ongoing_calls_equal_truth(sim):
    with RecorderClient(*sim.address) as client:
        sim.advance(500)
        ongoing = client.ongoing_calls()
        filtered = client.ongoing_calls(extensions=["1005", "1006"])
        truth = sim.truth
    assert list(ongoing.columns[:len(_schema.CALL_COLUMNS)]) == list(_schema.CALL_COLUMNS)
    assert str(ongoing.start_time.dtype) == _schema.TIME_DTYPE
    assert ongoing.end_time.isna().all()
    now = truth[truth.end_time.isna()]
    assert len(now) > 10
    pd.testing.assert_frame_equal(_comparable(ongoing), _comparable(now))
    pd.testing.assert_frame_equal(_comparable(filtered),
                                  _comparable(now[involving(now, ["1005", "1006"])]))


def test_call_detail_equals_the_archived_cdr(sim):
    with RecorderClient(*sim.address) as client:
        sim.advance(300)
        truth = sim.truth
        done = truth[truth.end_time.notna()].call_id.tolist()
        for call_id in done[:5] + done[-5:]:
            assert client.call_detail(call_id) == cdr.read_cdr(sim.cdr_path(call_id))
        running = truth[truth.end_time.isna()].iloc[0]
        record = client.call_detail(running.call_id)
        assert record["start_time"] == running.start_time
        assert record["end_time"] is pd.NaT and math.isnan(record["duration"])
        with pytest.raises(ServerError) as info:
            client.call_detail("not-a-call")
        assert info.value.code == 2 and "not-a-call" in info.value.detail
        # the connection stays usable after a failure answer
        assert len(client.ongoing_calls()) == truth.end_time.isna().sum()


def test_notifications_arriving_during_a_request_are_kept_in_order(sim):
    with RecorderClient(*sim.address) as client:
        client.subscribe()
        sim.advance(120)
        truth = sim.truth
        record = client.call_detail(truth.call_id.iloc[0])  # notifications come first
        assert record["call_id"] == truth.call_id.iloc[0]
        events = []
        while (event := client.poll(0)) is not None:
            events.append(event)
    assert calls_seen(events) == expected(truth)
    order = [(NAMES[e.kind], e.call["call_id"]) for e in events]
    starts = [c for kind, c in order if kind == "CallStarted"]
    assert starts == truth.call_id.tolist()


def test_keepalive_loss_is_detected_after_one_and_a_half_intervals():
    with make_sim(keepalive=10) as sim, RecorderClient(*sim.address) as client:
        # 0.4 s: a scheduling hiccup of the loaded test machine must not end it early
        assert client.subscribe(keepalive=0.4) == 0.4
        for event in client.events():
            if isinstance(event, protocol.KeepAlive):
                break
        sim.stall_keepalives(30)
        with pytest.raises(KeepaliveExpired):
            for _ in client.events():
                pass
        lost_at = time.monotonic()
        assert lost_at >= client.last_keepalive + 1.5 * 0.4  # never before the deadline
        assert lost_at < client.last_keepalive + 15.0  # long before the stall ends
        assert client.closed
        assert client._transport._sock.fileno() == -1  # closed before raising


def test_late_keepalive_within_the_bound_keeps_the_session():
    with make_sim(keepalive=10) as sim, RecorderClient(*sim.address) as client:
        # stalled before subscribing: the first keep-alive, due 1.0 s after the subscribe
        # answer, comes about 1.2 s after it, inside the 1.5 s bound; the margin does not
        # depend on how fast this thread gets from one keep-alive to the next command
        stalled_at = time.monotonic()
        sim.stall_keepalives(1.2)
        client.subscribe(keepalive=1.0)
        arrivals = []
        for event in client.events():
            if isinstance(event, protocol.KeepAlive):
                arrivals.append(client.last_keepalive)
                if len(arrivals) == 2:
                    break
        assert arrivals[0] >= stalled_at + 1.2  # held back by the stall
        assert not client.closed


def test_server_closing_ends_events_with_the_socket_closed(sim):
    client = RecorderClient(*sim.address)
    client.subscribe()
    sim.advance(60)
    truth = sim.truth
    assert sim.drop_connections() == 1
    events, lost = until_lost(client)
    assert isinstance(lost, ServerClosed)
    assert client.closed and client._transport._sock.fileno() == -1
    assert calls_seen(events) == expected(truth)  # nothing sent before the close is lost
    with pytest.raises(ConnectionLost):
        client.ongoing_calls()
    client.close()  # idempotent
    client.close()


def test_simulator_stop_is_seen_as_a_lost_connection(tmp_path):
    sim = make_sim().start()
    client = RecorderClient(*sim.address)
    client.subscribe()
    sim.stop()
    with pytest.raises(ServerClosed):
        list(client.events())


def test_garbage_is_a_typed_error_and_other_clients_go_on(sim):
    victim = RecorderClient(*sim.address)
    victim.subscribe()
    sim.send_raw(b"<VerbaApi><Notification></Oops></VerbaApi>")
    with pytest.raises(ConnectionLost) as info:
        list(victim.events())
    assert type(info.value) is ConnectionLost  # none of the subclasses' causes
    assert isinstance(info.value.__cause__, ProtocolError)
    assert victim.closed
    with RecorderClient(*sim.address) as other:
        other.subscribe()
        sim.advance(60)
        assert calls_seen(drain(other))


def test_half_a_document_then_close_is_surfaced(sim):
    with RecorderClient(*sim.address) as client:
        client.subscribe()
        sim.send_raw(b'<?xml version="1.0" encoding="UTF-8"?>\n<VerbaApi><Notifica')
        sim.drop_connections()
        events, _ = until_lost(client)
        assert isinstance(events[-1], protocol.UnknownMessage)
        assert b"<Notifica" in events[-1].raw


def test_close_from_another_thread_unblocks_events(sim):
    client = RecorderClient(*sim.address)
    client.subscribe(keepalive=0)
    outcome = []

    def consume():
        try:
            for _ in client.events():
                pass
        except ConnectionLost as exc:
            outcome.append(exc.reason)

    thread = threading.Thread(target=consume)
    thread.start()
    time.sleep(0.1)
    client.close()
    thread.join(5)
    assert not thread.is_alive()
    assert outcome == ["closed by the client"]


def test_idle_timeout_yields_none(sim):
    with RecorderClient(*sim.address) as client:
        client.subscribe(keepalive=0)
        iterator = client.events(idle_timeout=0.05)
        assert next(iterator) is None
        sim.advance(30)
        event = next(e for e in iterator if e is not None)
        assert isinstance(event, CallEvent) and event.kind == "start"


@pytest.mark.parametrize("port", [0, -1, 65536, 70000])
def test_a_port_out_of_range_is_a_value_error_not_another_port(port):
    with pytest.raises(ValueError, match="1-65535"):
        RecorderClient("127.0.0.1", port, timeout=1)


def test_connection_refused_is_connection_lost():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectFailed) as info:
        RecorderClient("127.0.0.1", port, timeout=2)
    assert info.value.reason.startswith(f"could not connect to 127.0.0.1:{port}")


@pytest.mark.parametrize("zone", ["Europe/Budapset", "", "UTC+1", 5])
def test_an_unknown_time_zone_is_one_clear_value_error_before_connecting(zone):
    with pytest.raises(ValueError, match="unknown time zone"):
        RecorderClient("127.0.0.1", 1, tz=zone, transport_factory=pytest.fail)


def test_addresses_are_read_in_one_place():
    assert parse_address("h.example:10300") == ("h.example", 10300)
    assert parse_address(("10.0.0.1", "7")) == ("10.0.0.1", 7)
    assert parse_address("[::1]:10300") == ("::1", 10300)
    for bad in ["h", "h:", ":7", "h:x", ("h",), 7]:
        with pytest.raises(ValueError, match="host:port"):
            parse_address(bad)
    for bad, port in [("h:0", 0), ("h:65536", 65536)]:
        with pytest.raises(ValueError, match=f"port {port} is not in 1..65535"):
            parse_address(bad)


# --------------------------------------------------------------------------- scripted


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class ScriptedTransport:
    """Plays ``(arrival time, bytes)`` items on a fake clock; records what is sent."""

    def __init__(self, clock, script, fail_send=False):
        self.clock = clock
        self.script = list(script)
        self.sent: list[bytes] = []
        self.waits: list[float] = []
        self.closed = False
        self.fail_send = fail_send

    def factory(self, host, port, timeout=None, ssl_context=None):
        return self

    def send(self, data):
        if self.fail_send:
            raise BrokenPipeError("broken pipe")
        self.sent.append(data)

    def recv(self, timeout):
        self.waits.append(timeout)
        if self.closed:
            return b""
        if not self.script:
            self.clock.now += timeout
            raise TimeoutError
        at, data = self.script[0]
        if at > self.clock.now + timeout:
            self.clock.now += timeout
            raise TimeoutError
        self.script.pop(0)
        self.clock.now = max(self.clock.now, at)
        return data

    def close(self):
        self.closed = True


def scripted(script, **kwargs):
    clock = FakeClock()
    transport = ScriptedTransport(clock, script, **kwargs)
    client = RecorderClient("site", 1, transport_factory=transport.factory, clock=clock)
    return client, transport, clock


def test_keepalive_deadline_is_exact_on_a_fake_clock():
    client, transport, clock = scripted([
        (0.0, protocol.subscribe_response("1", 10)),
        (14.9, protocol.keepalive_message(4)),   # late but within 15 s: fine
        (20.8, protocol.keepalive_message(4)),   # within 14.9 + 6
    ])
    assert client.subscribe() == 10.0
    assert client.keepalive_deadline == 15.0
    kinds = []
    with pytest.raises(KeepaliveExpired):
        for event in client.events():
            kinds.append((type(event).__name__, clock.now))
    assert kinds == [("KeepAlive", 14.9), ("KeepAlive", 20.8)]
    # lost right after 20.8 + 1.5 x 4, and no wait overshot the deadline
    assert 26.8 < clock.now <= 26.8 + 0.01
    assert transport.closed


def test_a_slow_consumer_is_not_cut_off_while_keepalives_wait_in_the_socket():
    # keep-alives arrive on time (every 1 s, deadline 1.5 s) but the consumer of
    # events() comes back only at t=5: they are in the socket, the session goes on
    client, _, clock = scripted([(0.0, protocol.subscribe_response("1", 1))]
                                + [(t, protocol.keepalive_message(1))
                                   for t in (1.0, 2.0, 3.0, 4.0)])
    client.subscribe()
    clock.now = 5.0
    assert isinstance(client.poll(1.0), protocol.KeepAlive)
    assert not client.closed and client.keepalive_deadline == 6.5


def test_notifications_without_keepalives_still_end_an_overdue_session():
    note = protocol.call_notification("start", {"id": "c1", "location": "X"})
    client, transport, clock = scripted([(0.0, protocol.subscribe_response("1", 1))]
                                        + [(0.1 * i, note) for i in range(1, 100)])
    client.subscribe()
    clock.now = 20.0  # everything arrived long ago; none of it is a keep-alive
    events, lost = until_lost(client)
    assert isinstance(lost, KeepaliveExpired) and transport.closed
    assert len(events) < 99  # the look into the socket is bounded


def test_answers_matched_by_id_with_notifications_between():
    start = protocol.call_notification("start", {"id": "c1", "location": "X",
                                                 "start_time": "2026-11-02 09:00:00"})
    client, transport, _ = scripted([
        (0.0, protocol.subscribe_response("1", 0)),
        (0.1, start + protocol.ongoing_calls_response("2", [{"id": "c1"}])),
        (0.2, protocol.error_response(None, None, detail="nope")),  # no id: the waiting one
    ])
    assert client.subscribe() is None
    ongoing = client.ongoing_calls()
    assert ongoing.call_id.tolist() == ["c1"] and ongoing.site.tolist() == ["site:1"]
    with pytest.raises(ServerError) as info:
        client.call_detail("c9")
    assert info.value.detail == "nope"
    assert b'id="3"' in transport.sent[2]
    event = client.poll(0)
    assert isinstance(event, CallEvent) and event.kind == "start"
    assert event.call["call_id"] == "c1" and event.fields["id"] == "c1"
    # typed at the edge with the client's zone (UTC here)
    assert event.call["start_time"] == pd.Timestamp(START, tz="UTC")


def test_no_answer_within_timeout_is_connection_lost():
    client, transport, clock = scripted([])
    with pytest.raises(ResponseTimeout):
        client.subscribe()
    assert transport.closed
    assert clock.now == pytest.approx(10.0, abs=0.01)


def test_timeout_none_waits_for_a_late_answer():
    clock = FakeClock()
    transport = ScriptedTransport(clock, [(500.0, protocol.subscribe_response("1", 0))])
    client = RecorderClient("site", 1, timeout=None, transport_factory=transport.factory,
                            clock=clock)
    assert client.subscribe() is None  # answered after 500 s: no bound, no TypeError
    assert clock.now == 500.0 and not client.closed


def test_an_answer_not_understood_fails_the_request_at_once_and_the_session_goes_on():
    echo = b'<VerbaApi><Response code="0"><Request type="GetCallDetail" id="1"/></Response>'
    client, transport, clock = scripted([
        (0.5, echo + b"</VerbaApi>"),                                  # no CDR in it
        (1.0, b'<VerbaApi><Response code="zero" id="2"/></VerbaApi>'),  # code not a number
        (1.5, protocol.ongoing_calls_response("3", [{"id": "c1"}])),
    ])
    with pytest.raises(ProtocolError, match="GetCallDetail request 1 was not understood"):
        client.call_detail("c1")
    assert clock.now == 0.5  # not after the 10 s timeout
    with pytest.raises(ProtocolError, match="'zero' is not a number"):
        client.ongoing_calls()
    assert list(client.ongoing_calls().call_id) == ["c1"]
    assert not client.closed and not transport.closed


def test_send_failure_is_connection_lost():
    client, transport, _ = scripted([], fail_send=True)
    with pytest.raises(ServerClosed) as info:
        client.ongoing_calls()
    assert isinstance(info.value.__cause__, BrokenPipeError) and transport.closed


def test_events_before_broken_bytes_are_delivered():
    note = protocol.call_notification("end", {"id": "c2", "location": "X"})
    client, _, _ = scripted([(0.0, note + b"<VerbaApi><</VerbaApi>")])
    events, lost = until_lost(client)
    assert [e.kind for e in events] == ["end"]
    assert isinstance(lost.__cause__, ProtocolError)


def test_a_failing_on_document_callback_ends_the_session_typed():
    def journal(raw):
        raise OSError("disk full")

    clock = FakeClock()
    transport = ScriptedTransport(clock, [(0.0, protocol.keepalive_message(5))])
    client = RecorderClient("site", 1, transport_factory=transport.factory, clock=clock,
                            on_document=journal)
    with pytest.raises(ConnectionLost) as info:
        client.poll(1)
    assert isinstance(info.value.__cause__, OSError) and transport.closed


def test_an_answer_of_the_wrong_type_is_a_protocol_error_and_the_session_goes_on():
    # GetOngoingCalls (id 1) answered in the subscribe response's shape
    client, _, _ = scripted([
        (0.1, protocol.subscribe_response("1", 10)),
        (0.2, protocol.ongoing_calls_response("2", [{"id": "c1"}])),
    ])
    with pytest.raises(ProtocolError, match="SubscribeOnCallEvent answer to GetOngoingCalls"):
        client.ongoing_calls()
    assert list(client.ongoing_calls().call_id) == ["c1"]
    assert not client.closed and client.keepalive_deadline is None


def test_a_notification_with_a_bad_time_is_an_unknown_message_at_the_edge():
    note = protocol.call_notification("start", {"id": "c1", "start_time": "noon"})
    client, _, _ = scripted([(0.0, note)])
    event = client.poll(1)
    assert isinstance(event, protocol.UnknownMessage)
    assert "start_time 'noon' is not a time" in event.reason


def test_silence_timeout_ends_a_session_without_keepalives():
    clock = FakeClock()
    transport = ScriptedTransport(clock, [(0.0, protocol.subscribe_response("1", 0)),
                                          (2.0, protocol.call_notification("start",
                                                                           {"id": "a"}))])
    client = RecorderClient("site", 1, transport_factory=transport.factory, clock=clock,
                            silence_timeout=5.0)
    assert client.subscribe(keepalive=0) is None
    events, lost = until_lost(client)
    assert [e.kind for e in events] == ["start"]
    assert isinstance(lost, KeepaliveExpired) and transport.closed
    # the last bytes came at 2.0: lost 5 s later, not before
    assert 7.0 <= clock.now <= 7.0 + 0.01


def test_the_notification_queue_is_bounded():
    notes = b"".join(protocol.call_notification("start", {"id": f"c{i}"}) for i in range(5))
    client, transport, _ = scripted([(0.0, notes)])
    client.max_queue = 3
    events, lost = until_lost(client)
    # the read that overfilled the queue ends the session; what was queued is delivered
    assert [e.call["call_id"] for e in events] == ["c0", "c1", "c2", "c3", "c4"]
    assert type(lost) is ConnectionLost and "more than 3 notifications" in lost.reason
    assert transport.closed
