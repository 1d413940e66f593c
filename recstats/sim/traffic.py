"""A seeded traffic model: when calls arrive, how long they last and who talks to whom.

Pure functions over a :class:`numpy.random.Generator`; no I/O, no clocks. Two levels:

* :func:`call_stream` yields :class:`PlannedCall` objects one by one in arrival order,
  each split into the fields known when the call starts and those known only at its
  end, so the simulator can emit starts and ends as simulated time passes;
* :func:`generate_calls` collects a time window of that stream into complete raw CDR
  field dicts (source field names, text values), e.g. to write a sample archive.

The model:

* arrivals are a Poisson process of ``rate`` calls per second; with a ``profile`` the
  rate at a moment is ``rate * profile(local hour of day)`` (a non-homogeneous Poisson
  process, drawn by thinning);
* holding times are lognormal with mean ``mean_holding`` seconds (shape ``sigma=1``),
  rounded to the millisecond, at least 1 ms;
* with ``steady_state=True`` the stream first yields the calls already in progress at
  its start in a system that has run for ever (the M/G/inf stationary population: a
  Poisson number with mean ``rate x mean_holding``; each call's length drawn from the
  length-biased holding distribution, its age uniform over that length), so a
  simulator starts loaded as a real recorder is, not empty;
* 40 % inbound (an outside ``+36...`` number calls an extension), 30 % outbound, 30 %
  internal (extension to another extension); ``direction_id`` follows recstats' CHOSEN
  mapping: 0 Internal, 1 Inbound, 2 Outbound;
* modality mostly ``voice``, some ``video`` and ``im``; an ``im`` session is internal,
  has no callee, no audio codec, and its media file is a ``.txt`` transcript;
* ``cause_id`` and ``audio_codec_id`` are drawn from the documented tables.

Times are written with :func:`recstats._time.format_time` as wall-clock time in ``tz``.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import functools
import inspect
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from .._time import as_utc

__all__ = [
    "DIRECTION_CODES",
    "PlannedCall",
    "call_stream",
    "generate_calls",
    "in_progress_at",
    "office_hours_profile",
]

#: recstats' CHOSEN ``direction_id`` codes (only 0 = Internal is documented).
DIRECTION_CODES = {"internal": "0", "inbound": "1", "outbound": "2"}


class _Table:
    """A weighted choice drawn with one uniform number (``rng.choice(p=...)`` is slow)."""

    def __init__(self, table):
        self.values = [v for v, _ in table]
        self.cumulative = list(itertools.accumulate(w for _, w in table))

    def draw(self, rng: np.random.Generator) -> str:
        u = rng.random() * self.cumulative[-1]
        return self.values[min(bisect.bisect_right(self.cumulative, u), len(self.values) - 1)]


_DIRECTION_WEIGHTS = {"inbound": 0.4, "outbound": 0.3, "internal": 0.3}
_MODALITIES = _Table((("voice", 0.92), ("video", 0.03), ("im", 0.05)))
# cause codes of a call that ended; mostly ordinary hang-ups
_CAUSES = _Table((("0", 0.50), ("1", 0.20), ("2", 0.18), ("4", 0.03), ("5", 0.02),
                  ("6", 0.02), ("13", 0.02), ("28", 0.01), ("80", 0.01), ("82", 0.01)))
_CODECS = _Table((("2", 0.45), ("4", 0.15), ("6", 0.15), ("11", 0.12), ("12", 0.05),
                  ("90", 0.05), ("16", 0.03)))
_FIRST = ("Anna", "Bence", "Csilla", "Dániel", "Eszter", "Ferenc", "Gábor", "Hanna",
          "István", "Judit", "Katalin", "László", "Márta", "Norbert", "Orsolya", "Péter",
          "Réka", "Sándor", "Tamás", "Zsófia", "Alice", "Bob", "Carol", "David")
_LAST = ("Kovács", "Nagy", "Tóth", "Szabó", "Horváth", "Varga", "Kiss", "Molnár",
         "Németh", "Farkas", "Balogh", "Papp", "Smith", "Jones")
_COMPANIES = ("ACME Kft.", "Contoso Zrt.", "Globex Bt.", "Initech", "Umbrella Kft.")
_AREAS = ("1", "20", "30", "70", "22", "46", "52", "62", "72", "96")
_SIGMA = 1.0  # lognormal shape of holding times: median ~0.6 x mean, long right tail


@dataclass(frozen=True)
class PlannedCall:
    """One call of the traffic model, before it is played.

    ``offset`` and ``holding`` are seconds (from the stream's start, and the call's
    length); ``start``/``end`` the same moments as UTC timestamps. ``start_fields`` are
    the raw CDR fields known when the call starts, ``end_fields`` those added at its end
    (``end_time``, ``duration``, ``cause_id``); :attr:`fields` is the complete record.
    """

    offset: float
    holding: float
    start: pd.Timestamp
    end: pd.Timestamp
    start_fields: dict[str, str] = field(repr=False)
    end_fields: dict[str, str] = field(repr=False)

    @property
    def call_id(self) -> str:
        """The call's GUID (its ``id`` field)."""
        return self.start_fields["id"]

    @property
    def fields(self) -> dict[str, str]:
        """Every raw field of the finished call (a new dict)."""
        return {**self.start_fields, **self.end_fields}


# --------------------------------------------------------------------------- profiles


def _bump(hour, centre: float, width: float):
    return np.exp(-0.5 * ((np.asarray(hour, dtype=float) - centre) / width) ** 2)


def office_hours_profile(hour, weekday=None):
    """Rate multiplier of an office: low at night, a morning and an afternoon peak.

    ``hour`` is the local hour of day as a float (``9.5`` is 09:30); ``weekday`` is
    Monday=0 ... Sunday=6 or ``None`` (a working day). The peaks are about 10:00 (1.0)
    and 14:30 (about 0.85) with a lunch dip between; nights stay near 0.03; Saturdays
    and Sundays get 12 % of a working day's traffic. Works on NumPy arrays too.

    >>> round(float(office_hours_profile(10.0)), 2), round(float(office_hours_profile(3.0)), 2)
    (1.05, 0.03)
    >>> float(office_hours_profile(10.0, weekday=6)) < 0.2
    True
    """
    value = 0.03 + 1.0 * _bump(hour, 10.0, 1.4) + 0.85 * _bump(hour, 14.5, 1.6)
    if weekday is not None:
        value = np.where(np.asarray(weekday) >= 5, 0.12 * value, value)
    return value if np.ndim(value) else float(value)


def _profile_caller(profile: Callable) -> Callable[[float, int], float]:
    """Call ``profile(hour)`` or ``profile(hour, weekday)``, whichever it accepts."""
    try:
        params = [p for p in inspect.signature(profile).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        two = len(params) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in
                                      inspect.signature(profile).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature
        two = False
    if two:
        return lambda hour, weekday: float(profile(hour, weekday))
    return lambda hour, weekday: float(profile(hour))


def _profile_peak(call: Callable[[float, int], float]) -> float:
    # thinning needs an upper bound of the multiplier: scan each minute of a week
    peak = max(call(m / 60.0, day) for day in range(7) for m in range(24 * 60))
    if not math.isfinite(peak) or peak < 0:
        raise ValueError(f"profile must return finite multipliers >= 0, got max {peak}")
    # a bound above the true maximum keeps thinning exact; one below would bias it
    return peak * 1.01


# --------------------------------------------------------------------------- the stream


def _guid(rng: np.random.Generator) -> str:
    """``str(uuid.UUID(bytes=rng.bytes(16), version=4))``, without the UUID object."""
    raw = bytearray(rng.bytes(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # the RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _outside_number(rng: np.random.Generator) -> str:
    area = _AREAS[int(rng.integers(len(_AREAS)))]
    digits = 7 if area == "1" else 6 + int(area in ("20", "30", "70"))
    return "+36" + area + "".join(map(str, rng.integers(0, 10, digits).tolist()))


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def _cdr_text(micros: int, tz: str) -> str:
    """UTC microseconds -> CDR time text in ``tz`` (:func:`recstats._time.format_time`'s
    text, through the standard library: the simulator writes one per start and end)."""
    moment = _EPOCH + _dt.timedelta(microseconds=micros)
    if tz not in ("UTC", "utc"):
        moment = moment.astimezone(_zone(tz))
    return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d}"


@functools.lru_cache(maxsize=64)
def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


def _local_clock(tz: str) -> Callable[[float], tuple[float, int]]:
    """epoch seconds -> (local hour of day as a float, weekday)."""
    if tz in ("UTC", "utc", None):
        def utc_clock(epoch: float) -> tuple[float, int]:
            days, secs = divmod(epoch, 86400.0)
            return secs / 3600.0, int((days + 3) % 7)  # 1970-01-01 was a Thursday
        return utc_clock
    zone = ZoneInfo(tz)

    def zone_clock(epoch: float) -> tuple[float, int]:
        local = _dt.datetime.fromtimestamp(epoch, zone)
        hour = local.hour + local.minute / 60 + (local.second + local.microsecond / 1e6) / 3600
        return hour, local.weekday()
    return zone_clock


def call_stream(start, *, rate: float, mean_holding: float = 180.0,
                extensions: Iterable = range(1000, 1100), location: str = "SITE-A",
                rng: np.random.Generator | int | None = None,
                profile: Callable | None = None, tz: str = "UTC",
                steady_state: bool = False) -> Iterator[PlannedCall]:
    """An endless stream of :class:`PlannedCall` in arrival order, from ``start`` on.

    ``start`` is a moment (a naive one is taken as UTC); ``rate`` calls per second
    (times ``profile(hour[, weekday])`` of the local time in ``tz`` when a profile is
    given); ``extensions`` the monitored numbers (text or integers); ``rng`` a NumPy
    generator or a seed. Everything is drawn from ``rng`` in a fixed order, so a seed
    gives the same calls, and a shorter window is a prefix of a longer one.

    With ``steady_state=True`` the stream begins with the calls in progress at
    ``start`` (negative ``offset``, an end after ``start``): about ``rate x
    mean_holding`` of them [erlang], see :func:`in_progress_at`. They are drawn from a
    generator spawned from ``rng``, so the calls from ``start`` on are the same with or
    without them.

    >>> from itertools import islice
    >>> calls = list(islice(call_stream("2026-11-02 09:00", rate=1.0, rng=7), 3))
    >>> [c.offset < d.offset for c, d in zip(calls, calls[1:])]
    [True, True]
    >>> calls[0].start_fields["location"], "end_time" in calls[0].start_fields
    ('SITE-A', False)
    """
    if not (rate > 0 and math.isfinite(rate)):
        raise ValueError(f"rate must be a positive number of calls per second, got {rate}")
    if not (mean_holding > 0 and math.isfinite(mean_holding)):
        raise ValueError(f"mean_holding must be positive seconds, got {mean_holding}")
    numbers = [str(e) for e in extensions]
    if not numbers:
        raise ValueError("extensions must name at least one extension")
    rng = np.random.default_rng(rng)
    origin = as_utc(start).as_unit("us")
    origin_epoch = origin.timestamp()
    names = {n: f"{_FIRST[int(rng.integers(len(_FIRST)))]} "
                f"{_LAST[int(rng.integers(len(_LAST)))]}" for n in numbers}
    directions = dict(_DIRECTION_WEIGHTS)
    if len(numbers) < 2:
        directions.pop("internal")  # an internal call needs two extensions
    direction_table = _Table(tuple(directions.items()))
    mu = math.log(mean_holding) - _SIGMA ** 2 / 2
    if profile is None:
        accept = None
        candidate_rate = rate
    else:
        accept = _profile_caller(profile)
        peak = _profile_peak(accept)
        if peak == 0:
            return
        candidate_rate = rate * peak
        clock = _local_clock(tz)
    if steady_state:
        yield from _in_progress(_spawn(rng), origin, rate, mu, mean_holding, accept,
                                peak if accept is not None else 1.0,
                                clock if accept is not None else None,
                                numbers, names, direction_table, location, tz)
    t = 0.0
    sequence = 0
    while True:
        t += float(rng.exponential(1.0 / candidate_rate))
        if accept is not None:
            hour, weekday = clock(origin_epoch + t)
            if rng.random() * peak >= accept(hour, weekday):
                continue
        holding = float(rng.lognormal(mu, _SIGMA))
        sequence += 1
        yield _plan(rng, origin, t, holding, sequence, numbers, names, direction_table,
                    location, tz)


def _spawn(rng: np.random.Generator) -> np.random.Generator:
    """An independent generator derived from ``rng`` without drawing from it."""
    try:
        return rng.spawn(1)[0]
    except TypeError:  # a bit generator without a SeedSequence
        return np.random.Generator(rng.bit_generator.jumped())  # type: ignore[attr-defined]


def _in_progress(rng, origin, rate, mu, mean_holding, accept, peak, clock, numbers, names,
                 direction_table, location, tz) -> Iterator[PlannedCall]:
    # In a stationary M/G/inf system the calls present at a moment are a Poisson process
    # over (age, length) with intensity rate * f(length) for 0 < age < length: their
    # number is Poisson(rate * mean_holding), each length is length-biased (lognormal
    # (mu, s) -> lognormal(mu + s^2, s)) and the age is uniform over the length. With a
    # profile, candidates at the peak rate are thinned by the rate when each started.
    ages_ms, lengths_ms = [], []
    for _ in range(int(rng.poisson(rate * peak * mean_holding))):
        length = float(rng.lognormal(mu + _SIGMA ** 2, _SIGMA))
        age = float(rng.random()) * length
        if accept is not None:
            hour, weekday = clock(origin.timestamp() - age)
            if rng.random() * peak >= accept(hour, weekday):
                continue
        # whole milliseconds (the CDR resolution): started before, still running at start
        age_ms = max(1, round(age * 1000))
        ages_ms.append(age_ms)
        lengths_ms.append(max(age_ms + 1, round(length * 1000)))
    order = sorted(range(len(ages_ms)), key=lambda i: -ages_ms[i])  # earliest first
    for sequence, i in enumerate(order, start=1):
        yield _plan(rng, origin, -ages_ms[i] / 1000, lengths_ms[i] / 1000, sequence,
                    numbers, names, direction_table, location, tz)


def in_progress_at(start, *, rate: float, mean_holding: float = 180.0,
                   extensions: Iterable = range(1000, 1100), location: str = "SITE-A",
                   rng: np.random.Generator | int | None = None,
                   profile: Callable | None = None,
                   tz: str = "UTC") -> list[PlannedCall]:
    """The calls in progress at ``start`` in a stationary system, earliest start first.

    Same parameters as :func:`call_stream`; these are the calls its
    ``steady_state=True`` stream yields first. Without a profile their number is Poisson
    with mean ``rate * mean_holding`` (the offered traffic in erlangs: Little's law for an
    M/G/inf system); each started before ``start`` (negative ``offset``) and ends after
    it, with the full length (``holding``) of a call seen in progress, which is
    length-biased: longer than a typical call.

    References
    ----------
    .. [1] L. Takacs, "On Erlang's formula", Ann. Math. Statist. 40 (1969), 71-78
       (the M/G/inf stationary distribution).

    >>> calls = in_progress_at("2026-11-02 09:00", rate=0.5, mean_holding=180, rng=1)
    >>> 90 - 4 * 90 ** 0.5 < len(calls) < 90 + 4 * 90 ** 0.5   # Poisson(90), 4 sd
    True
    >>> all(c.offset < 0 < c.offset + c.holding for c in calls)
    True
    """
    stream = call_stream(start, rate=rate, mean_holding=mean_holding, extensions=extensions,
                         location=location, rng=rng, profile=profile, tz=tz,
                         steady_state=True)
    return list(itertools.takewhile(lambda call: call.offset < 0, stream))


def _plan(rng, origin, t, holding, sequence, numbers, names, direction_table, location,
          tz) -> PlannedCall:
    start_us = round(t * 1e6 / 1000) * 1000  # to the millisecond: the CDR time resolution
    holding_ms = max(1, round(holding * 1000))
    start_at = origin.value // 1000 + start_us  # [UTC us]
    end_at = start_at + holding_ms * 1000
    start = pd.Timestamp(start_at, unit="us", tz="UTC")
    end = pd.Timestamp(end_at, unit="us", tz="UTC")
    call_id = _guid(rng)
    modality = _MODALITIES.draw(rng)
    direction = "internal" if modality == "im" else direction_table.draw(rng)
    ext = numbers[int(rng.integers(len(numbers)))]
    if direction == "internal":
        others = len(numbers) - 1
        pick = int(rng.integers(others)) if others else 0
        peer = numbers[pick + (pick >= numbers.index(ext))] if others else ext
        caller, callee = ext, peer
        caller_name, callee_name = names[ext], names[peer]
    else:
        outside = _outside_number(rng)
        company = _COMPANIES[int(rng.integers(len(_COMPANIES)))] \
            if rng.random() < 0.3 else None
        if direction == "inbound":
            caller, callee, caller_name, callee_name = outside, ext, company, names[ext]
        else:
            caller, callee, caller_name, callee_name = ext, outside, names[ext], company
    native = int(rng.integers(10 ** 8, 10 ** 9))
    fields: dict[str, str | None] = {
        "id": call_id,
        "location": location,
        "modality_id": modality,
        "native_id": str(native),
        "native_call_id": f"{native:x}-{sequence}@{location.lower()}",
        "source_caller_id": caller,
        "source_name": caller_name,
        "source_device": f"SEP{caller[-4:].rjust(4, '0')}" if caller in names else None,
        "destination_caller_id": None if modality == "im" else callee,
        "destination_name": None if modality == "im" else callee_name,
        "destination_device": f"SEP{callee[-4:].rjust(4, '0')}"
        if modality != "im" and callee in names else None,
        "start_time": _cdr_text(start_at, tz),
        "direction_id": DIRECTION_CODES[direction],
        "audio_codec_id": None if modality == "im" else _CODECS.draw(rng),
        "media_file": f"{call_id}.{'txt' if modality == 'im' else 'wav'}",
    }
    start_fields = {k: v for k, v in fields.items() if v is not None}
    end_fields = {
        "end_time": _cdr_text(end_at, tz),
        "duration": f"{holding_ms / 1000:.3f}",
        "cause_id": "0" if modality == "im" else _CAUSES.draw(rng),
    }
    return PlannedCall(offset=start_us / 1e6, holding=holding_ms / 1000, start=start,
                       end=end, start_fields=start_fields, end_fields=end_fields)


def generate_calls(start, seconds: float, *, rate: float, mean_holding: float = 180.0,
                   extensions: Iterable = range(1000, 1100), location: str = "SITE-A",
                   rng: np.random.Generator | int | None = None,
                   profile: Callable | None = None, tz: str = "UTC") -> list[dict[str, str]]:
    """The complete raw CDR fields of every call arriving in ``[start, start + seconds)``.

    Same parameters as :func:`call_stream`. Each dict maps source field names (``id``,
    ``location``, ``source_caller_id``, ``destination_caller_id``, ``start_time``,
    ``end_time``, ``duration``, ``direction_id``, ``cause_id``, ``audio_codec_id``,
    ``media_file``, ...) to text, ready for :func:`recstats._xml.cdr_xml`. Calls may end
    after the window.

    >>> calls = generate_calls("2026-11-02 09:00", 60, rate=0.5, rng=1)
    >>> calls == generate_calls("2026-11-02 09:00", 60, rate=0.5, rng=1)
    True
    >>> sorted(calls[0])[:4]
    ['audio_codec_id', 'cause_id', 'destination_caller_id', 'destination_device']
    """
    if seconds < 0:
        raise ValueError(f"seconds must be >= 0, got {seconds}")
    out = []
    for call in call_stream(start, rate=rate, mean_holding=mean_holding,
                            extensions=extensions, location=location, rng=rng,
                            profile=profile, tz=tz):
        if call.offset >= seconds:
            break
        out.append(call.fields)
    return out
