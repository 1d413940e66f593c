"""Event-ingest benchmark: protocol decoding vs a bare lxml parse of the same documents.

Builds a pre-recorded stream of realistic call notifications (a start and an end per
call, ~15 CDR fields each) with a keep-alive every 100 messages, then measures:

* ``lxml``:    ``lxml.etree.fromstring`` over the pre-split documents (the baseline);
* ``framer``:  :class:`recstats.protocol.Framer` alone over 64 KiB reads;
* ``decode``:  :class:`recstats.protocol.ClientConnection` over 64 KiB reads: framing,
  hardened parsing and decoding every message into its event with the call's raw
  fields (the full protocol decode, each document once);
* ``typed``:   the same plus the edge's typing of every call
  (:func:`recstats.cdr.record_from_fields` with a site zone, Europe/Budapest), which
  :class:`recstats.RecorderClient` does per event and :class:`recstats.Capture` at
  snapshot time.

Times are CPU seconds of this process (best of ``--repeat`` interleaved rounds), so
other processes on a shared machine disturb the ratios less than they would wall time.

Target (DESIGN.md): decode >= 0.5 x lxml. When ``recstats/sim`` exists it also
measures end to end: a ``RecorderSimulator`` at maximum speed over loopback to one
``RecorderClient``. Prints rates and ratios, then one JSON line.

    .venv/bin/python bench/events.py [--calls 25000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lxml import etree

from recstats import _time
from recstats import protocol as P
from recstats.cdr import record_from_fields

READ = 64 * 1024


def notifications(calls: int, seed: int = 1) -> list[bytes]:
    """``2 * calls`` notifications (start then end, interleaved) plus keep-alives."""
    rng = random.Random(seed)
    docs: list[bytes] = []
    open_calls: list[dict] = []
    t0 = 1_790_000_000.0
    clock = t0
    for n in range(calls):
        clock += rng.expovariate(5.0)
        start = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(clock)) + \
            f".{rng.randrange(1000):03d}"
        fields = {
            "id": str(uuid.UUID(int=rng.getrandbits(128))),
            "modality_id": "voice", "native_id": str(rng.randrange(10**9)),
            "native_call_id": f"{rng.randrange(10**12):x}@10.0.0.{rng.randrange(255)}",
            "location": f"SITE-{rng.randrange(4)}",
            "source_caller_id": str(1000 + rng.randrange(500)),
            "source_name": rng.choice(["Ann Lee", "Bo Nagy", "Cy Ortiz", "Di Park"]),
            "destination_caller_id": f"+36{rng.randrange(10**8):08d}",
            "destination_name": "", "start_time": start,
            "direction_id": str(rng.randrange(3)), "audio_codec_id": "2",
            "recorder_service_id": "rec-1",
        }
        docs.append(P.call_notification("start", fields))
        open_calls.append((clock + rng.expovariate(1 / 180), fields))
        if len(open_calls) > 50 or n == calls - 1:
            while open_calls:
                end, fields = open_calls.pop(rng.randrange(len(open_calls)))
                ended = dict(fields, cause_id=str(rng.choice([0, 0, 0, 1, 2, 6])),
                             end_time=time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(end))
                             + ".250", media_file=fields["id"] + ".wav")
                docs.append(P.call_notification("end", ended))
                if len(docs) % 100 == 0:
                    docs.append(P.keepalive_message(10))
    return docs


def best(repeat: int, func) -> float:
    """Best CPU time of ``repeat`` runs: this process's CPU seconds, so that other
    processes sharing the machine disturb the ratios less than wall time would."""
    times = []
    for _ in range(repeat):
        t = time.process_time()
        func()
        times.append(time.process_time() - t)
    return min(times)


def bench_decoding(calls: int, repeat: int) -> dict:
    docs = notifications(calls)
    stream = b"\n".join(docs)
    reads = [stream[i:i + READ] for i in range(0, len(stream), READ)]
    n = len(docs)

    def lxml_loop():
        fromstring = etree.fromstring
        for doc in docs:
            fromstring(doc)

    def framer_loop():
        framer = P.Framer()
        count = 0
        for chunk in reads:
            count += len(framer.feed(chunk))
        assert count == n

    def decode_loop():
        _time._time_cache.clear()  # every run starts cold, as a fresh capture would
        conn = P.ClientConnection()
        count = 0
        for chunk in reads:
            count += len(conn.receive_data(chunk, now=0.0))
        assert count == n

    calls_of = (P.CallStarted, P.CallEnded)

    def typed_loop():
        _time._time_cache.clear()
        conn = P.ClientConnection()
        for chunk in reads:
            for event in conn.receive_data(chunk, now=0.0):
                if isinstance(event, calls_of):
                    record_from_fields(event.fields, tz="Europe/Budapest")

    # interleaved rounds: a burst of load from other processes hits every contender,
    # not only the one that happened to run then
    loops = [lxml_loop, framer_loop, decode_loop, typed_loop]
    times = [[] for _ in loops]
    for _ in range(repeat):
        for loop, spent in zip(loops, times, strict=True):
            spent.append(best(1, loop))
    t_lxml, t_framer, t_decode, t_typed = (min(spent) for spent in times)
    return {
        "typed_budapest_docs_per_s": n / t_typed,
        "typed_budapest_vs_lxml": t_lxml / t_typed,
        "documents": n, "stream_bytes": len(stream),
        "lxml_docs_per_s": n / t_lxml, "framer_docs_per_s": n / t_framer,
        "decode_docs_per_s": n / t_decode, "decode_vs_lxml": t_lxml / t_decode,
        "framer_vs_lxml": t_lxml / t_framer,
    }


_SERVER = """
import sys
from recstats.sim import RecorderSimulator
sim = RecorderSimulator(port=0, rate=float(sys.argv[1]), mean_holding=30.0,
                        speed=float(sys.argv[2]), keepalive=1.0, seed=1)
sim.start()
print(sim.port, flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
sim.stop()
"""


def bench_end_to_end(seconds: float, rate: float = 2000.0, speed: float = 50.0) -> dict | None:
    """Events/s from a simulator at full speed to one client over loopback.

    The simulator runs in its own process (as a real server would), asked for far more
    calls per real second (``rate * speed``) than it can deliver, so it and the client
    run flat out; the figure is what one client receives and decodes per second.
    """
    root = Path(__file__).resolve().parents[1]
    if not (root / "recstats" / "sim").exists():
        print("end to end: skipped, recstats/sim does not exist")
        return None
    try:
        from recstats.client import RecorderClient
    except ImportError as exc:
        print(f"end to end: skipped, recstats.client is not usable yet ({exc})")
        return None
    server = subprocess.Popen([sys.executable, "-c", _SERVER, str(rate), str(speed)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=root,
                              text=True)
    try:
        port = int(server.stdout.readline())
        counts: dict[str, int] = {}
        with RecorderClient("127.0.0.1", port, timeout=30) as client:
            client.subscribe()
            t0 = time.perf_counter()
            cpu0 = time.process_time()
            for event in client.events():
                name = type(event).__name__
                counts[name] = counts.get(name, 0) + 1
                if time.perf_counter() - t0 > seconds:
                    break
            elapsed = time.perf_counter() - t0
            cpu = time.process_time() - cpu0
    except Exception as exc:  # noqa: BLE001 -- report it, keep the decoding figures
        print(f"end to end: failed: {type(exc).__name__}: {exc}")
        return None
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    total = sum(counts.values())
    return {"e2e_events": total, "e2e_events_per_s": total / elapsed,
            "e2e_client_cpu_share": cpu / elapsed, "e2e_counts": counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=25_000,
                        help="calls (each a start and an end notification)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--e2e-seconds", type=float, default=3.0)
    args = parser.parse_args()
    result = bench_decoding(args.calls, args.repeat)
    print(f"{result['documents']} documents, {result['stream_bytes'] / 1e6:.1f} MB, "
          f"{READ // 1024} KiB reads")
    print(f"  lxml.fromstring loop : {result['lxml_docs_per_s']:>10,.0f} docs/s")
    print(f"  Framer only          : {result['framer_docs_per_s']:>10,.0f} docs/s "
          f"({result['framer_vs_lxml']:.2f} x lxml)")
    print(f"  ClientConnection     : {result['decode_docs_per_s']:>10,.0f} docs/s "
          f"({result['decode_vs_lxml']:.2f} x lxml; target >= 0.5)")
    print(f"  + typed at the edge  : {result['typed_budapest_docs_per_s']:>10,.0f} docs/s "
          f"({result['typed_budapest_vs_lxml']:.2f} x lxml; tz=Europe/Budapest)")
    e2e = bench_end_to_end(args.e2e_seconds)
    if e2e:
        print(f"  end to end           : {e2e['e2e_events_per_s']:>10,.0f} events/s "
              f"({e2e['e2e_events']} events, client busy "
              f"{100 * e2e['e2e_client_cpu_share']:.0f}% of the time; {e2e['e2e_counts']})")
        result.update(e2e)
    print(json.dumps({"bench": "events", **{k: round(v, 3) if isinstance(v, float) else v
                                            for k, v in result.items()}}))


if __name__ == "__main__":
    main()
