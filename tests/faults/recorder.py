"""A scripted recording server that keeps its own record of the calls it ran.

:class:`RecordingServer` plays one fault on its first connection and serves every
later connection right, so a test can check a client's typed error, its reconnection
and, for a capture, the reconciliation rule: every call the server started or ended
while a client was connected is present once, with the server's own times.

The first connection (``peer.number == 0``) goes:

* ``early`` faults: ``fault(peer, server)`` right after the accept (it plays the
  protocol as far as it wants), then the connection ends;
* other faults: subscribe and ongoing list answered right, call ``a0`` started, ``b0``
  started and ended, then the test sets :attr:`RecordingServer.go` (once the client
  has seen them) and ``fault(peer, server)`` breaks the connection. ``a0`` then ends
  while nobody is connected: a reconnecting client learns its end from the detail.

Every later connection lists the calls in progress, answers detail requests from the
record, starts and ends a call of its own, and sends keep-alives if it announced them.
"""

from __future__ import annotations

import threading
import time

import pandas as pd

from recstats import protocol

from .servers import Peer, ScriptedServer

BASE = pd.Timestamp("2026-11-02 09:00:00", tz="UTC")
STAMP = "%Y-%m-%d %H:%M:%S"


class RecordingServer(ScriptedServer):
    """A :class:`ScriptedServer` with a call record and one fault on connection 0."""

    def __init__(self, fault, *, early: bool = False, keepalive: float | None = None,
                 port: int = 0, first_number: int = 0):
        super().__init__(self._handle, port=port, first_number=first_number)
        self.fault = fault
        self.early = early
        self.keepalive = keepalive
        self.go = threading.Event()        # the test: the client saw connection 0's calls
        self.broken = threading.Event()    # connection 0 is over (and a0 ended)
        self.lock = threading.Lock()
        self.record: dict[str, dict] = {}  # call id -> {"start_time", "end_time"}
        self._clock = 0                    # seconds after BASE, one per call event

    # ------------------------------------------------------------------ the record

    def _tick(self) -> pd.Timestamp:
        with self.lock:
            self._clock += 7
            return BASE + pd.Timedelta(seconds=self._clock)

    def fields(self, call_id: str) -> dict:
        entry = self.record[call_id]
        fields = {"id": call_id, "location": "F", "start_time": f"{entry['start_time']:{STAMP}}"}
        if entry["end_time"] is not None:
            fields["end_time"] = f"{entry['end_time']:{STAMP}}"
            fields["cause_id"] = "0"
        return fields

    def start(self, peer: Peer | None, call_id: str) -> None:
        self.record[call_id] = {"start_time": self._tick(), "end_time": None}
        if peer is not None:
            peer.answer(protocol.CallStarted(self.fields(call_id)))

    def end(self, peer: Peer | None, call_id: str) -> None:
        self.record[call_id]["end_time"] = self._tick()
        if peer is not None:
            peer.answer(protocol.CallEnded(self.fields(call_id)))

    def live(self) -> tuple[dict, ...]:
        return tuple(self.fields(k) for k, v in self.record.items() if v["end_time"] is None)

    def expected(self) -> pd.DataFrame:
        """The server's record as (call_id, start_time, end_time), sorted by id."""
        rows = [(k, v["start_time"], v["end_time"]) for k, v in self.record.items()]
        frame = pd.DataFrame(rows, columns=["call_id", "start_time", "end_time"])
        for column in ("start_time", "end_time"):
            frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[us, UTC]")
        return frame.sort_values("call_id", ignore_index=True)

    # ------------------------------------------------------------------ connections

    def keepalive_until(self, peer: Peer, event: threading.Event, timeout: float = 15) -> None:
        """Wait for ``event``, sending keep-alives on time if they were announced."""
        deadline = time.monotonic() + timeout
        while not event.wait(self.keepalive / 3 if self.keepalive else 0.05):
            if time.monotonic() > deadline:
                raise TimeoutError("the test never said go")
            if self.keepalive:
                peer.send(protocol.keepalive_message(self.keepalive))

    def _handle(self, peer: Peer) -> None:
        if peer.number == 0:
            try:
                self._first(peer)
            finally:
                if "a0" in self.record and self.record["a0"]["end_time"] is None:
                    self.end(None, "a0")  # ends while nobody is connected
                self.broken.set()
        else:
            self._later(peer)

    def _first(self, peer: Peer) -> None:
        if self.early:
            self.fault(peer, self)
            return
        request = peer.request()
        peer.answer(protocol.SubscribeAccepted(request.request_id, self.keepalive))
        request = peer.request()
        if isinstance(request, protocol.OngoingCallsRequest):  # a client may skip it
            peer.answer(protocol.OngoingCalls(request.request_id, self.live()))
        self.start(peer, "a0")
        self.start(peer, "b0")
        self.end(peer, "b0")
        self.keepalive_until(peer, self.go)
        self.fault(peer, self)

    def _later(self, peer: Peer) -> None:
        self.broken.wait(15)
        request = peer.request()
        if isinstance(request, protocol.ConnectionClosed):
            return  # a client that stops at once
        peer.answer(protocol.SubscribeAccepted(request.request_id, self.keepalive))
        name = f"c{peer.number}"
        started = False
        last_keepalive = time.monotonic()
        while True:
            try:
                request = peer.request(timeout=self.keepalive / 3 if self.keepalive else 0.2)
            except TimeoutError:
                request = None
            if isinstance(request, protocol.ConnectionClosed):
                return
            if isinstance(request, protocol.OngoingCallsRequest):
                peer.answer(protocol.OngoingCalls(request.request_id, self.live()))
            elif isinstance(request, protocol.CallDetailRequest):
                if request.call_id in self.record:
                    peer.answer(protocol.CallDetail(request.request_id,
                                                    self.fields(request.call_id)))
                else:
                    peer.answer(protocol.ErrorResponse(request.request_id, "GetCallDetail",
                                                       2, "Processing Error", "unknown call"))
            elif request is not None:
                raise AssertionError(f"unexpected request {request!r}")
            if not started and any(isinstance(r, protocol.OngoingCallsRequest)
                                   for r in peer.requests):
                self.start(peer, name)  # one new call per connection, after the list
                self.end(peer, name)
                started = True
            if self.keepalive and time.monotonic() - last_keepalive > self.keepalive / 3:
                peer.send(protocol.keepalive_message(self.keepalive))
                last_keepalive = time.monotonic()
