"""Stream faults, each played by a small server with its own record of the calls.

For each fault: the client's typed error, in bounded time; then a reconnection; then,
for a capture, the reconciliation rule checked against the server's record: every call
the server started or ended while connected is present once, with the server's times
(a call that ended while nobody was connected is learnt from its detail).
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

import pytest

from recstats import protocol
from recstats.capture import Capture
from recstats.client import CallEvent, RecorderClient
from recstats.errors import (
    ConnectFailed,
    ConnectionLost,
    KeepaliveExpired,
    ProtocolError,
    ResponseTimeout,
    ServerClosed,
)

from .recorder import RecordingServer
from .servers import ScriptedServer, wait_for

pytestmark = pytest.mark.timeout(60)

BOUND = 5.0  # [s] generous: the machine is loaded; the faults take well under 1 s


# ---------------------------------------------------------------------- the faults

def cut_mid_document(peer, server):
    server.start(None, "d0")  # live at the server; its notification is cut in half
    data = protocol.call_notification("start", server.fields("d0"))
    peer.send(data[: len(data) // 2])


def cut_between_documents(peer, server):
    pass  # the handler returns: the socket closes after whole documents


def keepalives_stop(peer, server):
    peer.wait_closed(15)


def half_document_then_silence(peer, server):
    peer.send(b'<VerbaApi><Notification type="CallStart"><id>e0</id><loca')
    peer.wait_closed(15)


def garbage(peer, server):
    peer.send(b"\x00\xff\xfe\x07 this is not XML at all <<<>>>")
    peer.wait_closed(15)


def document_growing_past_the_bound(peer, server):
    peer.send(b'<VerbaApi><Notification type="CallStart"><id>g0</id><note>')
    chunk = b"x" * 65536
    for _ in range(20 * 16):  # 20 MiB, past the 16 MiB bound
        peer.send(chunk)
    peer.wait_closed(15)


def drip(peer, server):
    data = b'<VerbaApi><Notification type="CallStart"><id>p0</id><note>' + b"y" * 2000
    for byte in data:  # 20 s of drip: longer than any bound the client may use
        peer.send(bytes([byte]))
        time.sleep(0.01)


def never_answer(peer, server):
    peer.wait_closed(15)


def wrong_ids(peer, server):
    request = peer.request()
    peer.answer(protocol.SubscribeAccepted(f"{request.request_id}7", None))
    peer.wait_closed(15)


def unexpected_document_types(peer, server):
    request = peer.request()
    peer.answer(protocol.SubscribeAccepted(request.request_id, None))
    ongoing = peer.request()
    peer.send(b'<VerbaApi><Request type="GetOngoingCalls" id="1"/></VerbaApi>'
              b'<VerbaApi><Notification type="CallTransferred"><id>x</id>'
              b'</Notification></VerbaApi>')
    # the ongoing request's id on a call detail
    peer.answer(protocol.CallDetail(ongoing.request_id, {"id": "z", "start_time": "x"}))
    peer.wait_closed(15)


def reset(peer, server):
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    peer.sock.close()  # RST, not FIN


@dataclass(frozen=True)
class Fault:
    play: object
    error: type          # what the client raises (exactly this class)
    capture_says: str    # in the capture's last_error
    early: bool = False  # the fault comes before the session is established
    keepalive: float | None = None

    def __str__(self):
        return self.play.__name__


FAULTS = [
    Fault(cut_mid_document, ServerClosed, "the server closed the connection"),
    Fault(cut_between_documents, ServerClosed, "the server closed the connection"),
    Fault(keepalives_stop, KeepaliveExpired, "no keep-alive", keepalive=0.3),
    Fault(half_document_then_silence, KeepaliveExpired, "no keep-alive", keepalive=0.3),
    Fault(garbage, ConnectionLost, "protocol error"),
    Fault(document_growing_past_the_bound, ConnectionLost, "protocol error"),
    Fault(drip, KeepaliveExpired, "no keep-alive", keepalive=0.3),
    Fault(never_answer, ResponseTimeout, "no answer to request", early=True),
    Fault(wrong_ids, ResponseTimeout, "no answer to request", early=True),
    Fault(unexpected_document_types, ProtocolError, "answer to GetOngoingCalls", early=True),
    Fault(reset, ServerClosed, "reset by peer"),
]


def server_for(fault: Fault, port: int = 0) -> RecordingServer:
    return RecordingServer(fault.play, early=fault.early, keepalive=fault.keepalive,
                           port=port)


# ---------------------------------------------------------------------- client

def read_until_lost(client):
    seen = []
    began = time.monotonic()
    with pytest.raises(ConnectionLost) as lost:
        for event in client.events(idle_timeout=0.2):
            if event is not None:
                seen.append(event)
    return lost, time.monotonic() - began, seen


def established_then_lost(client, server):
    client.subscribe()
    assert client.ongoing_calls().empty
    wanted = [("start", "a0"), ("start", "b0"), ("end", "b0")]
    seen = []
    while seen != wanted:
        event = client.poll(timeout=BOUND)
        assert event is not None, f"only {seen} arrived"
        if isinstance(event, CallEvent):
            seen.append((event.kind, event.call["call_id"]))
    server.go.set()
    return read_until_lost(client)


@pytest.mark.parametrize("fault", FAULTS, ids=str)
def test_the_client_raises_a_typed_error_in_bounded_time_then_reconnects(fault):
    with server_for(fault) as server:
        client = RecorderClient("127.0.0.1", server.port, timeout=1.0)
        if fault.play is unexpected_document_types:
            client.subscribe()
            began = time.monotonic()
            with pytest.raises(ProtocolError, match="answer to GetOngoingCalls"):
                client.ongoing_calls()
            took = time.monotonic() - began
            assert not client.closed  # an answer not understood: the session goes on
            unknown = [client.poll(timeout=BOUND) for _ in range(2)]
            assert all(isinstance(e, protocol.UnknownMessage) for e in unknown), unknown
            client.close()
        elif fault.early:
            began = time.monotonic()
            with pytest.raises(fault.error) as lost:
                client.subscribe()
            took = time.monotonic() - began
            assert type(lost.value) is fault.error and client.closed
        else:
            lost, took, seen = established_then_lost(client, server)
            assert type(lost.value) is fault.error, lost.value
            if fault.error is ConnectionLost:  # the stream broke the protocol
                assert isinstance(lost.value.__cause__, ProtocolError)
            assert not any(isinstance(e, CallEvent) for e in seen)
        assert took < BOUND

        with RecorderClient("127.0.0.1", server.port, timeout=BOUND) as again:
            assert again.subscribe() == fault.keepalive
            live = sorted(again.ongoing_calls().call_id)
            assert live == sorted(k for k, v in server.record.items()
                                  if v["end_time"] is None and k != "c1")
            kinds = []
            while len(kinds) < 2:
                event = again.poll(timeout=BOUND)
                assert event is not None, kinds
                if isinstance(event, CallEvent):
                    kinds.append((event.kind, event.call["call_id"]))
        assert kinds == [("start", "c1"), ("end", "c1")]
    assert not server.errors


# ---------------------------------------------------------------------- capture

def table(calls):
    """(call_id, start, end) rows as text, so NaT compares equal to NaT."""
    rows = calls[["call_id", "start_time", "end_time"]].astype(str)
    return sorted(map(tuple, rows.itertuples(index=False)))


def reconciled(capture, server) -> bool:
    return "c1" in server.record and \
        server.record["c1"]["end_time"] is not None and \
        table(capture.calls) == table(server.expected())


@pytest.mark.parametrize("fault", FAULTS, ids=str)
def test_the_capture_reconnects_and_holds_every_call_the_server_sent(fault):
    with server_for(fault) as server, \
            Capture([server.address], backoff=0.05, max_backoff=0.1, timeout=1.0,
                    keepalive=fault.keepalive) as capture:
        if not fault.early:
            wait_for(lambda: "b0" in server.record and
                     table(capture.calls) == table(server.expected()),
                     what="connection 0's calls")
            server.go.set()
        wait_for(lambda: len(server.peers) >= 2, what="a reconnection")
        said = capture.status.iloc[0].last_error
        try:
            wait_for(lambda: reconciled(capture, server), what="the reconciliation")
        except AssertionError:
            print(capture.calls, server.expected(), capture.status.T, capture.sessions)
            raise
    assert fault.capture_says in str(said), said
    assert "internal" not in str(said)
    calls, expected = capture.calls, server.expected()
    assert calls.call_id.is_unique
    assert table(calls) == table(expected)  # once each, with the server's times
    assert not calls.end_unknown.any()
    if not fault.early:
        assert len(capture.gaps) >= 1
    assert not server.errors


def server_going_down(peer, server):
    server._stop.wait(15)  # the connection ends when the server shuts down


def test_a_server_restarted_on_the_same_port_is_found_again():
    first = RecordingServer(server_going_down)
    with first:
        port = first.port
        capture = Capture([first.address], backoff=0.05, max_backoff=0.2, timeout=1.0)
        with capture:
            wait_for(lambda: "b0" in first.record and
                     table(capture.calls) == table(first.expected()),
                     what="the first server's calls")
            first.go.set()
            first.__exit__(None, None, None)  # the server is down
            began = time.monotonic()
            with pytest.raises(ConnectFailed):
                RecorderClient("127.0.0.1", port, timeout=1.0)
            assert time.monotonic() - began < BOUND
            # the restarted server has no call in progress and no record of a0 (it
            # went down with it): a0's end stays unknown; b0 and c1 are as sent
            second = RecordingServer(cut_between_documents, port=port, first_number=1)
            second.broken.set()
            with second:
                wait_for(lambda: len(capture.calls) == 3 and
                         capture.calls.end_time.notna().sum() == 2, what="c1 captured")
                reconnects = capture.status.iloc[0].reconnects
    assert reconnects >= 1
    calls = capture.calls.set_index("call_id")
    record = {**first.record, **second.record}
    assert sorted(calls.index) == ["a0", "b0", "c1"]
    for call_id in ("b0", "c1"):
        assert calls.loc[call_id, "start_time"] == record[call_id]["start_time"]
        assert calls.loc[call_id, "end_time"] == record[call_id]["end_time"]
    assert calls.loc["a0", "start_time"] == record["a0"]["start_time"]
    assert calls.loc["a0", "end_unknown"] and not calls.loc[["b0", "c1"], "end_unknown"].any()
    assert not first.errors and not second.errors


def test_half_a_document_then_silence_without_keepalives_ends_by_the_silence_bound():
    def handler(peer):
        request = peer.request()
        peer.answer(protocol.SubscribeAccepted(request.request_id, None))  # keep-alive off
        peer.send(b'<VerbaApi><Notification type="CallStart"><id>s0</id><loca')
        peer.wait_closed(15)

    with ScriptedServer(handler) as server:
        client = RecorderClient("127.0.0.1", server.port, timeout=1.0, silence_timeout=0.5)
        assert client.subscribe() is None
        lost, took, seen = read_until_lost(client)
    assert type(lost.value) is KeepaliveExpired and "nothing from" in lost.value.reason
    assert took < BOUND and seen == [] and not server.errors


def test_an_answer_dripped_one_byte_per_10_ms_is_a_response_timeout_in_bounded_time():
    def handler(peer):
        request = peer.request()
        answer = protocol.subscribe_response(request.request_id, 10)
        assert answer.count(b"<Response") == 1
        # 400 blanks inside the tag: the whole answer takes over 4 s to drip
        answer = answer.replace(b"<Response", b"<Response" + b" " * 400)
        for byte in answer:
            peer.send(bytes([byte]))  # bytes keep coming: the bound is time, not silence
            time.sleep(0.01)

    with ScriptedServer(handler) as server:
        client = RecorderClient("127.0.0.1", server.port, timeout=1.0, silence_timeout=0.5)
        began = time.monotonic()
        with pytest.raises(ResponseTimeout):
            client.subscribe()
        took = time.monotonic() - began
    assert took < BOUND and client.closed and not server.errors
