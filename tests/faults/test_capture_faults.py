"""Capture and client under faults played by small purpose-built servers.

Each server records what it sent; the capture's tables are checked against that
record, never against timing.
"""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest

from recstats import protocol
from recstats.capture import Capture

from .servers import ScriptedServer, subscribed, wait_for

pytestmark = pytest.mark.timeout(60)

START = "2026-11-02 09:00:00"
END = "2026-11-02 09:05:30"


def call(call_id: str, **more) -> dict:
    return {"id": call_id, "location": "F", "start_time": START, **more}


def test_a_misspelt_zone_is_a_value_error_before_any_thread():
    with pytest.raises(ValueError, match="unknown time zone 'Europe/Budapset'"):
        Capture(["127.0.0.1:9"], tz="Europe/Budapset")


def test_an_answer_of_the_wrong_type_is_a_protocol_error_then_a_calm_reconnect():
    def handler(peer):
        if subscribed(peer, keepalive=None) is None:
            return
        request = peer.request()
        if peer.number > 0 and isinstance(request, protocol.ConnectionClosed):
            return  # the capture stopped before asking again: nothing left to answer
        assert isinstance(request, protocol.OngoingCallsRequest)
        # the right id, the subscribe response's shape
        peer.answer(protocol.SubscribeAccepted(request.request_id, 10))
        peer.wait_closed()

    with ScriptedServer(handler) as server, \
            Capture([server.address], backoff=0.2, max_backoff=0.4) as capture:
        wait_for(lambda: len(server.peers) >= 2, what="a reconnect")
        status = capture.status.iloc[0]
    assert "SubscribeOnCallEvent answer to GetOngoingCalls" in status.last_error
    assert "internal error" not in status.last_error
    assert status.state != "error" and not server.errors


def test_a_keepalive_carrying_the_request_id_is_not_the_ongoing_list():
    sent = threading.Event()

    def handler(peer):
        subscribed(peer, keepalive=None)
        request = peer.request()
        peer.send(f'<VerbaApi><Response code="0" id="{request.request_id}">'
                  f'<Keepalive time="30"/></Response></VerbaApi>'.encode())
        peer.answer(protocol.OngoingCalls(request.request_id, (call("a"), call("b"))))
        sent.set()
        peer.wait_closed()

    with ScriptedServer(handler) as server, Capture([server.address]) as capture:
        wait_for(lambda: len(capture.calls) == 2, what="the two listed calls")
        time.sleep(0.2)  # a wrongly read empty list would have asked for their details
        calls = capture.calls
        requests = list(server.peers[0].requests)
    assert sorted(calls.call_id) == ["a", "b"] and calls.end_time.isna().all()
    assert not calls.end_unknown.any()
    assert not any(isinstance(r, protocol.CallDetailRequest) for r in requests)


def test_a_later_real_end_wins_over_an_unknown_end():
    resumed = threading.Event()

    def handler(peer):
        subscribed(peer, keepalive=None)
        ongoing = peer.request()
        if peer.number == 0:
            peer.answer(protocol.OngoingCalls(ongoing.request_id, ()))
            peer.answer(protocol.CallStarted(call("c1")))
            time.sleep(0.3)
            return  # cut: the capture reconnects
        # the list omits c1 and its detail is refused: its end is unknown for now
        peer.answer(protocol.OngoingCalls(ongoing.request_id, ()))
        detail = peer.request()
        assert isinstance(detail, protocol.CallDetailRequest) and detail.call_id == "c1"
        peer.answer(protocol.ErrorResponse(detail.request_id, "GetCallDetail", 2,
                                           "Processing Error", "unknown call"))
        resumed.wait(10)
        peer.answer(protocol.CallEnded(call("c1", end_time=END, cause_id="0")))
        peer.wait_closed()

    with ScriptedServer(handler) as server, \
            Capture([server.address], backoff=0.05, max_backoff=0.1) as capture:
        wait_for(lambda: capture.calls.end_unknown.any(), what="the unknown end")
        assert capture.ongoing.empty
        resumed.set()
        wait_for(lambda: capture.calls.end_time.notna().any(), what="the real end")
        calls = capture.calls
    assert not server.errors
    [row] = calls.itertuples()
    assert row.call_id == "c1" and not row.end_unknown
    assert row.end_time == pd.Timestamp(END, tz="UTC")
    assert row.duration == 330.0  # 09:00:00 -> 09:05:30


def test_keepalive_loss_is_found_in_bounded_time_under_a_flood_of_notifications():
    stop = threading.Event()

    def handler(peer):
        subscribed(peer, keepalive=0.3)  # the next keep-alive is due within 0.45 s
        ongoing = peer.request()
        peer.answer(protocol.OngoingCalls(ongoing.request_id, ()))
        n = 0
        while not stop.is_set() and peer.number == 0:  # notifications, no keep-alive
            peer.answer(protocol.CallStarted(call(f"c{n}")))
            n += 1
            time.sleep(0.001)
        peer.wait_closed()

    with ScriptedServer(handler) as server, \
            Capture([server.address], backoff=0.05, max_backoff=0.1) as capture:
        began = time.monotonic()
        wait_for(lambda: len(server.peers) >= 2, what="the session to end and resume")
        took = time.monotonic() - began
        stop.set()
        status = capture.status.iloc[0]
    assert "keep-alive" in status.last_error
    assert took < 15  # bounded by time, whatever keeps arriving


def test_unknown_documents_are_counted_never_internal_errors():
    def handler(peer):
        subscribed(peer, keepalive=None)
        ongoing = peer.request()
        peer.send(b"<VerbaApi><Reboot/></VerbaApi><Hello/>"
                  b'<VerbaApi><Response code="0" id="99"/></VerbaApi>')
        peer.answer(protocol.OngoingCalls(ongoing.request_id, (call("a"),)))
        peer.wait_closed()

    with ScriptedServer(handler) as server, Capture([server.address]) as capture:
        wait_for(lambda: len(capture.calls) == 1, what="the listed call")
        status = capture.status.iloc[0]
    assert status.unknown_messages == 3 and status.connected
    assert "internal" not in str(status.last_error)


def test_a_thread_that_dies_shows_error_and_the_other_servers_go_on(tmp_path):
    def handler(peer):
        subscribed(peer, keepalive=None)
        ongoing = peer.request()
        peer.answer(protocol.OngoingCalls(ongoing.request_id, (call(f"p{peer.number}"),)))
        peer.wait_closed()

    with ScriptedServer(handler) as good, ScriptedServer(handler) as doomed:
        capture = Capture([good.address, doomed.address], journal=tmp_path / "j")

        def broken(folder):
            raise RuntimeError("disk on fire")

        capture._servers[doomed.address].open_journal = broken
        with capture:
            wait_for(lambda: len(capture.calls) == 1, what="the good server's call")
            wait_for(lambda: (capture.status.state == "error").any(), what="the error")
            status = capture.status.set_index("server")
    assert status.loc[doomed.address, "state"] == "error"
    assert "disk on fire" in status.loc[doomed.address, "last_error"]
    assert status.loc[good.address, "state"] in ("connected", "stopped")
    assert capture.calls.call_id.tolist() == ["p0"]


def test_gaps_and_window_in_the_servers_clock_survive_the_replay(tmp_path):
    skew = pd.Timedelta(hours=1)  # the server's clock runs an hour ahead of ours
    record = {}

    def server_now():
        return pd.Timestamp.now(tz="UTC") + skew

    def handler(peer):
        subscribed(peer, keepalive=None)
        ongoing = peer.request()
        peer.answer(protocol.OngoingCalls(ongoing.request_id, ()))
        for i in range(5):  # notifications carry the server's times
            stamp = f"{server_now():%Y-%m-%d %H:%M:%S.%f}"
            peer.answer(protocol.CallStarted({"id": f"s{peer.number}-{i}", "location": "F",
                                              "start_time": stamp}))
        if peer.number == 0:
            time.sleep(0.2)
            record["cut"] = server_now()
            return  # the connection drops; the capture comes back after its backoff
        record["back"] = server_now()
        peer.wait_closed()

    journal = tmp_path / "j"
    with ScriptedServer(handler) as server:
        capture = Capture([server.address], journal=journal, backoff=0.6, max_backoff=0.8)
        with capture:
            wait_for(lambda: len(capture.calls) == 10, what="both sessions' calls")
        record["stop"] = server_now()
    gaps, window, calls = capture.gaps, capture.window, capture.calls
    tolerance = pd.Timedelta(seconds=1)
    [gap] = gaps.itertuples()
    assert (gap.server, gap.site) == (server.address, "F")
    # the backoff kept the capture away for at least 0.3 s (half fixed, half jitter)
    assert gap.end - gap.start >= pd.Timedelta(seconds=0.3)
    assert abs(gap.start - record["cut"]) < tolerance
    assert abs(gap.end - record["back"]) < tolerance
    assert abs(window[1] - record["stop"]) < tolerance
    assert window[0] < gap.start < gap.end < window[1]
    assert calls.attrs["window"] == [f"{w:%Y-%m-%dT%H:%M:%S.%fZ}" for w in window]
    assert calls.attrs["gaps"] == [{"server": server.address, "site": "F",
                                    "start": f"{gap.start:%Y-%m-%dT%H:%M:%S.%fZ}",
                                    "end": f"{gap.end:%Y-%m-%dT%H:%M:%S.%fZ}"}]
    replayed = Capture.replay(journal)
    pd.testing.assert_frame_equal(replayed.gaps, gaps)
    assert replayed.window == window
    assert replayed.calls.attrs == calls.attrs


class QueuedTransport:
    """Bytes already waiting in the socket, handed out one item per read."""

    def __init__(self):
        self.waiting: list[bytes] = []
        self.sent: list[bytes] = []

    def recv(self, timeout):
        if not self.waiting:
            raise TimeoutError
        return self.waiting.pop(0)

    def send(self, data):
        self.sent.append(data)

    def close(self):
        pass


def test_a_capture_that_fell_behind_reads_the_waiting_keepalive_before_ending():
    from types import SimpleNamespace

    from recstats._capture_server import ServerState
    from recstats._capture_session import Session
    from recstats._live import Tables
    from recstats.errors import KeepaliveExpired

    capture = SimpleNamespace(extensions=None, keepalive=0.1, silence_timeout=None,
                              timeout=None, _stopping=threading.Event())
    server = ServerState("h:1", Tables())
    server.mark("connect")
    transport = QueuedTransport()
    session = Session(capture, transport, server)
    request_id = session.request(type="subscribe", extensions=None, keepalive=0.1)
    transport.waiting.append(protocol.subscribe_response(request_id, 0.1))
    assert session.read(0.01)
    time.sleep(0.2)  # the capture was busy past the 0.15 s deadline...
    # ...while the next keep-alive (and a notification) waited in the socket
    transport.waiting += [protocol.call_notification("start", call("a")),
                          protocol.keepalive_message(0.1)]
    session.check_deadlines(time.monotonic())  # not overdue: the session goes on
    assert not transport.waiting and server.conn.keepalive_deadline is not None
    time.sleep(0.2)  # now nothing waits: overdue for real
    with pytest.raises(KeepaliveExpired):
        session.check_deadlines(time.monotonic())


def test_sessions_say_which_ones_received_their_ongoing_list(tmp_path):
    def handler(peer):
        if subscribed(peer, keepalive=None) is None:
            return
        ongoing = peer.request()
        if peer.number == 0:  # notifications flow, the list never comes: cut
            peer.answer(protocol.CallStarted(call("n0")))
            time.sleep(0.2)
            return
        peer.answer(protocol.OngoingCalls(ongoing.request_id, (call("l1"),)))
        peer.wait_closed()

    journal = tmp_path / "j"
    with ScriptedServer(handler) as server:
        capture = Capture([server.address], journal=journal, backoff=0.2, max_backoff=0.4)
        with capture:
            wait_for(lambda: "l1" in set(capture.calls.call_id), what="the second list")
    sessions = capture.sessions
    assert list(sessions.columns) == ["server", "site", "connected", "disconnected",
                                      "resynced"]
    first, second = sessions.iloc[0], sessions.iloc[1]
    assert pd.isna(first.resynced)  # cut before its list: calls across it went unseen
    assert second.connected <= second.resynced <= second.disconnected
    listed = capture.events.query("origin == 'resync'")
    assert second.resynced == listed.received_at.min()
    pd.testing.assert_frame_equal(Capture.replay(journal).sessions, sessions)


def test_events_are_typed_at_a_cadence_without_anyone_reading_the_tables():
    def handler(peer):
        subscribed(peer, keepalive=None)
        ongoing = peer.request()
        peer.answer(protocol.OngoingCalls(ongoing.request_id, ()))
        for i in range(30):
            peer.answer(protocol.CallStarted(call(f"c{i}")))
        peer.wait_closed()

    with ScriptedServer(handler) as server, Capture([server.address]) as capture:
        tables = capture._tables
        # no snapshot is taken: the housekeeping thread types the 30 events by itself
        wait_for(lambda: tables.counts.get(server.address) == 30 and not tables._queued
                 and tables._typed.calls.n == 30, what="the events typed")
        assert len(capture.calls) == 30
