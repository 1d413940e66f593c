"""The live tables type queued events in bulk: the tables equal the per-event path's.

The reference is :class:`recstats._live.Tables` with bulk typing off, which types each
event with :func:`recstats.cdr.record_from_fields` and folds it with
:meth:`recstats._typed_tables.TypedTables.add`; the bulk path types a batch with one
vectorised pass and folds it with :meth:`~recstats._typed_tables.TypedTables.add_many`.
Both are fed the same queue (events, and end-unknown flags interleaved) and read at the
same points; every snapshot and every :meth:`~recstats._live.Tables.take_old` part
(what the spill writes and reads back) must be equal, dtypes and column order included.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from recstats import _live
from recstats._live import Tables, bad_time
from recstats.sim.traffic import call_stream

ZONES = ["UTC", "Europe/Budapest", "America/New_York", "Australia/Lord_Howe"]


def _sim_events(tz: str, seed: int, start: str, calls: int) -> list[tuple[str, dict]]:
    """(event, fields) of simulator traffic in ``tz``: each call's start, later its end."""
    timeline = []
    for call in itertools.islice(call_stream(start, rate=0.5, mean_holding=600, tz=tz,
                                             rng=seed, location=f"SITE-{seed}"), calls):
        timeline.append((call.start.value, "start", call.start_fields))
        timeline.append((call.end.value, "end", {**call.start_fields, **call.end_fields}))
    timeline.sort(key=lambda item: item[0])
    return [(kind, fields) for _, kind, fields in timeline]


# texts a live server might send for a field; some are not readable as their type
ODD_BOOLS = ["1", "0", "true", "FALSE", "yes", "No", "maybe", "", " 1 "]
ODD_DURATIONS = ["90", "12.5", "-5", "nan", "inf", "1_000", "1e13", "", "٣", " 7 "]
ODD_TIMES = [
    "2026-10-25 02:30:00", "2026-10-25 02:30:00.250", "2026-03-29 02:30:00",  # DST
    "2026-03-08 02:30:00", "2026-11-01 01:30:00",  # New York's gap and repeated hour
    "2026-04-05 01:45:00",  # Lord Howe's half-hour repeat
    "2026-11-02T09:00:00Z", "2026-11-02 09:00:00+05:30", "2026-11-02 09:00:00.123456",
    "9999-12-31 23:30:00", "0001-01-01 00:10:00",  # ends of the calendar
    "2026-02-30 10:00:00", "soon", "2026-11-02 25:00:00",  # not times: refused on arrival
]


def _odd_events(rng: np.random.Generator, n: int) -> list[tuple[str, dict]]:
    """Events with odd fields: ids either way, shadowed and foreign names, unreadable
    booleans and durations, DST and calendar-end times, fields changing between a
    call's start and end, ends without starts."""
    out = []
    for i in range(n):
        call = f"c{rng.integers(0, n // 3 + 1)}"
        fields: dict[str, str] = {}
        which = rng.integers(0, 4)
        if which == 0:
            fields["id"] = call
        elif which == 1:
            fields["ccdr_id"] = call
        elif which == 2:
            fields["id"], fields["ccdr_id"] = call, f"cc-{call}"
        else:
            fields["id"], fields["ccdr_id"] = "", call  # an empty id: the ccdr_id names it
        for name, choices in [
                ("location", ["NY", "LDN", "", "Zürich"]), ("site", ["S1", "S2"]),
                ("call_id", ["foreign"]), ("start_time", ODD_TIMES),
                ("end_time", ODD_TIMES), ("duration", ODD_DURATIONS),
                ("ondemand", ODD_BOOLS), ("secondary", ODD_BOOLS),
                ("direction_id", ["0", "1", "2", "9", "x"]),
                ("cause_id", ["0", "6", "77", ""]), ("audio_codec_id", ["0", "8", "?"]),
                ("source_caller_id", ["1001", "+3612345", ""]),
                ("caller", ["shadow"]), ("end_unknown", ["1"]), ("extras", ['{"a": 1}']),
                (f"x_{rng.integers(0, 5)}", ["v", "", "ü"]), ("server", ["spoof"]),
                ("received_at", ["spoof"]), ("event", ["spoof"])]:
            if rng.random() < 0.35:
                fields[name] = str(rng.choice(choices))
        out.append(("start" if rng.random() < 0.5 else "end", fields))
    return out


def _feed(events: list[tuple[str, str, dict]], rng: np.random.Generator,
          tz: str) -> list[list[pd.DataFrame]]:
    """Queue ``(server, event, fields)`` in a bulk and a per-event :class:`Tables` alike,
    flags and reads interleaved; return both sides' frames, read at the same points."""
    sides = [Tables(tz), Tables(tz)]
    sides[1]._bulk = False
    frames: list[list[pd.DataFrame]] = [[], []]
    t = 1_700_000_000_000_000
    ids: list[tuple[str, str]] = []
    for server, kind, fields in events:
        t += int(rng.integers(0, 2_000_000))
        if bad_time(fields) is not None:  # refused on arrival, as the capture does
            continue
        origin = str(rng.choice(["notification", "resync"]))
        ids.append((server, fields.get("id") or fields["ccdr_id"]))
        roll = rng.random()
        for side, out in zip(sides, frames, strict=True):
            side.add(t, server, kind, origin, fields)
            if roll < 0.05:  # an unknown end, or one cleared, between events
                side.end_unknown(*ids[int(len(ids) * roll * 20) % len(ids)], roll < 0.04)
            if roll > 0.97:
                side.end_unknown(server, f"never-seen-{t}")
            if roll > 0.99:  # a snapshot in the middle: the queue is typed in parts
                out += [side.events_frame(), side.calls_frame(with_seq=True)]
            if 0.985 < roll <= 0.99:
                out += list(side.take_old(t - 5_000_000))
    for side, out in zip(sides, frames, strict=True):
        out += [side.events_frame(), side.calls_frame(with_seq=True),
                side.calls_frame(), *side.take_old(t + 1)]
    return frames


def _assert_same(frames: list[list[pd.DataFrame]]) -> None:
    bulk, each = frames
    assert len(bulk) == len(each)
    for got, want in zip(bulk, each, strict=True):
        pd.testing.assert_frame_equal(got, want, check_exact=True)


@pytest.mark.parametrize("tz", ZONES)
def test_simulator_traffic_typed_alike(tz):
    rng = np.random.default_rng(1)
    # around the autumn change in Europe and New York, so times fall in repeated hours
    start = "2026-10-24 22:00" if tz != "America/New_York" else "2026-11-01 03:00"
    events = [(f"10.0.0.{seed}:10300", kind, fields)
              for seed in range(3) for kind, fields in _sim_events(tz, seed, start, 150)]
    events = [events[i] for i in rng.permutation(len(events))] if tz == "UTC" else events
    frames = _feed(events, rng, tz)
    _assert_same(frames)
    calls = frames[0][-3]
    assert len(calls) > 0 and calls["duration"].notna().any()


@pytest.mark.parametrize("tz", ZONES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_odd_fields_typed_alike(tz, seed):
    rng = np.random.default_rng(seed)
    events = [(str(rng.choice(["a:1", "b:2"])), kind, fields)
              for kind, fields in _odd_events(rng, 600)]
    frames = _feed(events, rng, tz)
    _assert_same(frames)
    assert len(frames[0][-5]) > 0  # the last events snapshot


def test_a_call_whose_fields_change_keeps_the_later_values():
    fields = {"id": "a", "location": "NY", "source_caller_id": "1001",
              "start_time": "2026-11-02 09:00:00", "ondemand": "maybe"}
    end = {"id": "a", "location": "LDN", "end_time": "2026-11-02 09:01:30",
           "ondemand": "1", "x": "1"}
    for bulk in (True, False):
        tables = Tables("UTC")
        tables._bulk = bulk
        tables.add(1, "s", "start", "notification", fields)
        tables.add(2, "s", "end", "notification", end)
        calls = tables.calls_frame()
        # hand-computed: the end's site and flag win, the start's caller stays,
        # duration = 09:01:30 - 09:00:00 = 90 s
        assert calls["site"].tolist() == ["LDN"]
        assert calls["caller"].tolist() == ["1001"]
        assert calls["ondemand"].tolist() == [True]
        assert calls["duration"].tolist() == [90.0]
        assert calls["x"].tolist() == ["1"]
        assert tables.events_frame()["ondemand"].tolist() == [pd.NA, True]


def test_rows_the_bulk_pass_refuses_are_typed_one_by_one():
    # year 9999 west of UTC cannot be placed: the call is kept without that time
    rows = [{"id": "a", "start_time": "9999-12-31 23:30:00"},
            {"id": "", "ccdr_id": "b"}, {"id": "c", "start_time": "2026-11-02 09:00:00"}]
    typed = _live.typed_records(rows, "America/New_York")
    assert typed[0] is None and typed[1] is None
    # 09:00 in New York on 2 November 2026 (EST, UTC-5) is 14:00 UTC
    assert typed[2]["start_time"] == pd.Timestamp("2026-11-02 14:00", tz="UTC").value // 1000
    tables = Tables("America/New_York")
    for i, fields in enumerate(rows):
        tables.add(i, "s", "start", "notification", fields)
    calls = tables.calls_frame()
    assert calls["call_id"].tolist() == ["c", "a", "b"]  # unknown starts last
    assert calls["start_time"].isna().tolist() == [False, True, True]


def test_large_backlog_is_typed_in_batches(monkeypatch):
    monkeypatch.setattr(_live, "BATCH", 7)
    rng = np.random.default_rng(5)
    events = [("s", kind, fields) for kind, fields in _odd_events(rng, 200)]
    _assert_same(_feed(events, rng, "Europe/Budapest"))


def _lifecycles(rng: np.random.Generator, calls: int, tz: str) -> list[tuple[str, str, dict]]:
    """(server, event, fields) of calls with every life a capture sees: start and end,
    a start without an end (still going), an end without a start (started while away),
    an end repeated (a detail after a notification), a call first seen in an ongoing
    list (a resync start), fields that change between events; calls interleaved, a few
    events out of order."""
    out = []
    stream = call_stream("2026-10-24 22:00", rate=0.5, mean_holding=600, tz=tz, rng=7,
                         location="SITE-L")
    for i, call in enumerate(itertools.islice(stream, calls)):
        server = f"10.0.0.{i % 3}:10300"
        start = dict(call.start_fields)
        end = {**call.start_fields, **call.end_fields}
        if rng.random() < 0.3:  # the end names another site, or drops a field
            end["location"] = str(rng.choice(["SITE-M", ""]))
            end.pop("source_name", None)
        if rng.random() < 0.2:
            end["ondemand"] = str(rng.choice(["1", "0", "maybe"]))
        life = int(rng.integers(0, 5))
        steps = {0: [("start", start), ("end", end)], 1: [("start", start)],
                 2: [("end", end)], 3: [("start", start), ("end", end), ("end", end)],
                 4: [("start", {k: v for k, v in start.items() if k != "location"}),
                     ("end", end)]}[life]
        t = call.start.value
        for kind, fields in steps:
            out.append((t, server, kind, fields))
            t += int(rng.integers(1, 10**12))
    out.sort(key=lambda item: item[0])
    for _ in range(len(out) // 20):  # a few swapped neighbours: out of order
        i = int(rng.integers(0, len(out) - 1))
        out[i], out[i + 1] = out[i + 1], out[i]
    return [(server, kind, fields) for _, server, kind, fields in out]


def _count_column_folds(monkeypatch) -> list[int]:
    """The events each call of TypedTables.add_columns folds, call by call."""
    folded: list[int] = []
    original = _live.TypedTables.add_columns

    def add_columns(self, items, *args):
        folded.append(sum(item[0] is not None for item in items))
        return original(self, items, *args)

    monkeypatch.setattr(_live.TypedTables, "add_columns", add_columns)
    return folded


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_vectorised_calls_fold_equals_the_per_event_fold(monkeypatch, seed):
    monkeypatch.setattr(_live, "BATCH", [50, 20_000][seed % 2])  # within and across batches
    folded = _count_column_folds(monkeypatch)
    rng = np.random.default_rng(seed)
    tz = ZONES[seed]
    lives = _lifecycles(rng, 400, tz)
    frames = _feed(lives, rng, tz)
    _assert_same(frames)
    assert sum(folded) == len(lives)  # every event went through the vectorised fold
    calls = frames[0][-3]
    assert calls["end_time"].isna().any() and calls["start_time"].isna().any()


@pytest.mark.parametrize("seed", [0, 1])
def test_odd_fields_fold_by_columns_between_refused_rows(monkeypatch, seed):
    monkeypatch.setattr(_live, "BATCH", 97)
    folded = _count_column_folds(monkeypatch)
    rng = np.random.default_rng(seed)
    events = [(str(rng.choice(["a:1", "b:2"])), kind, fields)
              for kind, fields in _odd_events(rng, 800)]
    _assert_same(_feed(events, rng, "America/New_York"))
    assert sum(folded) > 400  # most odd rows type in bulk; the refused ones one by one


def test_the_untyped_backlog_is_bounded_by_the_threads_that_add(monkeypatch):
    monkeypatch.setattr(_live, "BACKLOG", 40)
    monkeypatch.setattr(_live, "BATCH", 32)  # a thread past the bound types 32 // 4 = 8
    rng = np.random.default_rng(3)
    lives = _lifecycles(rng, 150, "UTC")
    bounded, reference = Tables("UTC"), Tables("UTC")
    reference._bulk = False
    most = 0
    for i, (server, kind, fields) in enumerate(lives):
        t = 1_700_000_000_000_000 + i
        bounded.add(t, server, kind, "notification", fields)
        most = max(most, len(bounded._queued))
        monkeypatch.setattr(_live, "BACKLOG", 10**9)  # the reference keeps its queue
        reference.add(t, server, kind, "notification", fields)
        monkeypatch.setattr(_live, "BACKLOG", 40)
    assert len(lives) > 200
    # the add that brings the queue to 40 types 8 before it returns: 32 .. 39 seen after
    assert most == 39
    assert len(reference._queued) == len(lives)
    pd.testing.assert_frame_equal(bounded.events_frame(), reference.events_frame())
    pd.testing.assert_frame_equal(bounded.calls_frame(with_seq=True),
                                  reference.calls_frame(with_seq=True))
