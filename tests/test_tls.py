"""TLS end to end: ``RecorderClient`` and ``Capture`` through a TLS-wrapping loopback
proxy in front of the simulator, with self-signed certificates made here by the
``openssl`` command line."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
import time

import pytest

from recstats.capture import Capture
from recstats.client import CallEvent, RecorderClient
from recstats.errors import ConnectFailed
from recstats.sim import RecorderSimulator

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("openssl") is None,
                       reason="the openssl command line is needed to make a certificate"),
]


def _certificate(folder, name: str) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (and localhost): (cert, key) paths."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True, timeout=30)
    return str(cert), str(key)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    return {"server": _certificate(folder, "server"), "other": _certificate(folder, "other")}


class TLSProxy:
    """Accepts TLS on a loopback port and relays the plain bytes to ``target``."""

    def __init__(self, target: tuple[str, int], cert: str, key: str):
        self.target = target
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()[:2]
        self.handshakes = 0
        self.failed_handshakes = 0
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(10)
        try:
            tls = self.context.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError):
            self.failed_handshakes += 1
            sock.close()
            return
        self.handshakes += 1
        plain = socket.create_connection(self.target, timeout=10)
        self._sockets += [tls, plain]
        threading.Thread(target=self._pump, args=(plain, tls), daemon=True).start()
        self._pump(tls, plain)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        source.settimeout(None)
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.close()
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        for sock in self._sockets:
            try:
                sock.close()
            except OSError:
                pass


@pytest.fixture
def tls_sim(certificates):
    with RecorderSimulator(rate=5, speed=30, seed=7, keepalive=1, location="TLS") as sim:
        proxy = TLSProxy(sim.address, *certificates["server"])
        try:
            yield sim, proxy
        finally:
            proxy.close()


def _trusting(cert: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cert)


def test_the_client_speaks_the_protocol_over_tls(tls_sim, certificates):
    sim, proxy = tls_sim
    context = _trusting(certificates["server"][0])
    with RecorderClient(*proxy.address, ssl_context=context, timeout=10) as client:
        client.subscribe()
        listed = set(client.ongoing_calls()["call_id"])
        event = next(e for e in client.events() if isinstance(e, CallEvent))
    assert proxy.handshakes == 1
    # the ongoing list went through TLS both ways: it names calls the simulator has
    truth = set(sim.truth["call_id"])
    assert listed and listed <= truth
    assert event.call["call_id"] in set(sim.truth["call_id"])


def test_a_certificate_the_client_does_not_trust_is_connect_failed(tls_sim, certificates):
    _, proxy = tls_sim
    context = _trusting(certificates["other"][0])
    with pytest.raises(ConnectFailed, match="certificate verify failed"):
        RecorderClient(*proxy.address, ssl_context=context, timeout=10)


def test_the_capture_captures_over_tls(tls_sim, certificates):
    sim, proxy = tls_sim
    context = _trusting(certificates["server"][0])
    with Capture([proxy.address], ssl_context=context, timeout=10) as capture:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (capture.calls["end_time"].notna().sum() < 3):
            time.sleep(0.1)
        status = capture.status.iloc[0]
    calls = capture.calls
    assert status.state in ("connected", "stopped") and status.events > 0
    assert calls["end_time"].notna().sum() >= 3
    truth = sim.truth.set_index("call_id")
    ended = calls[calls["end_time"].notna()].set_index("call_id")
    # the ends captured through TLS are the simulator's own
    assert (truth.loc[ended.index, "end_time"] == ended["end_time"]).all()


def test_the_capture_reports_a_wrong_certificate_as_a_failed_connect(tls_sim, certificates):
    _, proxy = tls_sim
    context = _trusting(certificates["other"][0])
    with Capture([proxy.address], ssl_context=context, timeout=10, backoff=0.2,
                 max_backoff=0.4) as capture:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proxy.failed_handshakes < 2:
            time.sleep(0.05)
        status = capture.status.iloc[0]
    assert proxy.failed_handshakes >= 2 and proxy.handshakes == 0
    assert status.events == 0 and not status.connected
    assert status.last_error.startswith("could not connect to 127.0.0.1:")
    assert "certificate verify failed" in status.last_error
