"""The traffic model: arrival rate, holding times, who calls whom, determinism."""

from __future__ import annotations

import math
import uuid
from itertools import islice

import numpy as np
import pandas as pd
import pytest

from recstats import _schema, _table, _time
from recstats.sim.traffic import call_stream, generate_calls, in_progress_at, office_hours_profile

START = "2026-11-02 00:00:00"  # a Monday
EXTENSIONS = [str(n) for n in range(1000, 1100)]


@pytest.fixture(scope="module")
def sample():
    # 2 calls/s for 5000 s: about 10 000 calls
    return generate_calls(START, 5000, rate=2.0, mean_holding=180.0, rng=42)


def test_same_seed_same_calls_and_shorter_window_is_a_prefix(sample):
    again = generate_calls(START, 5000, rate=2.0, mean_holding=180.0, rng=42)
    assert again == sample
    shorter = generate_calls(START, 1000, rate=2.0, mean_holding=180.0, rng=42)
    assert shorter == sample[:len(shorter)]
    assert generate_calls(START, 1000, rate=2.0, rng=43) != shorter
    generator = np.random.default_rng(42)
    assert generate_calls(START, 1000, rate=2.0, rng=generator) == shorter


def test_arrival_rate_within_poisson_tolerance(sample):
    n = len(sample)
    # Poisson count with mean 10 000: sd 100; allow 4 sd
    assert abs(n - 10_000) < 400
    starts = pd.to_datetime([c["start_time"] for c in sample])
    assert starts.min() >= pd.Timestamp(START)
    assert starts.max() < pd.Timestamp(START) + pd.Timedelta(seconds=5000)
    assert starts.is_monotonic_increasing
    # inter-arrival times of a Poisson process are exponential: mean 0.5 s, cv 1
    gaps = np.diff(starts.as_unit("ns").asi8) / 1e9
    assert gaps.mean() == pytest.approx(0.5, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.06)


def test_mean_holding_and_duration_consistent(sample):
    calls, rejected = _table.calls_from_fields(sample)
    assert rejected == {}
    held = (calls.end_time - calls.start_time).dt.total_seconds()
    # lognormal with sigma 1: sd = mean * sqrt(e - 1) ~ 236 s; standard error ~2.4 s
    assert held.mean() == pytest.approx(180.0, abs=12.0)
    assert (held > 0).all()
    stated = pd.Series([float(c["duration"]) for c in sample])
    np.testing.assert_allclose(stated.to_numpy(), held.to_numpy(), atol=1e-9)
    # a right-skewed distribution: the median is well below the mean
    assert held.median() < 0.8 * held.mean()


def test_directions_match_which_party_is_an_extension(sample):
    ext = set(EXTENSIONS)
    seen = set()
    for c in sample:
        caller = c["source_caller_id"]
        callee = c.get("destination_caller_id")
        if c["modality_id"] == "im":
            assert callee is None and "audio_codec_id" not in c
            assert caller in ext and c["direction_id"] == "0"
            assert c["media_file"] == f"{c['id']}.txt"
            continue
        assert c["media_file"] == f"{c['id']}.wav"
        assert c["audio_codec_id"] in _schema.AUDIO_CODECS
        if caller in ext and callee in ext:
            expected = "0"
            assert caller != callee
        elif callee in ext:
            expected = "1"
            assert caller.startswith("+36") and caller[1:].isdigit()
        else:
            expected = "2"
            assert caller in ext and callee.startswith("+36") and callee[1:].isdigit()
        assert c["direction_id"] == expected
        seen.add(expected)
    assert seen == {"0", "1", "2"}
    directions = pd.Series([c["direction_id"] for c in sample]).value_counts(normalize=True)
    assert directions["1"] == pytest.approx(0.4 * 0.95, abs=0.03)


def test_fields_use_documented_codes_and_unique_guids(sample):
    ids = [c["id"] for c in sample]
    assert len(set(ids)) == len(ids)
    for c in sample[:500]:
        assert str(uuid.UUID(c["id"])) == c["id"]
        assert c["cause_id"] in _schema.CAUSES
        assert c["modality_id"] in _schema.MODALITIES
        assert c["location"] == "SITE-A"
        for name in ("native_id", "native_call_id", "source_caller_id", "start_time",
                     "end_time"):
            assert c[name]
    modalities = pd.Series([c["modality_id"] for c in sample]).value_counts(normalize=True)
    assert modalities["voice"] > 0.85 and 0 < modalities["im"] < 0.1
    # the same extension always has the same name
    names = {}
    for c in sample:
        if c["source_caller_id"] in EXTENSIONS:
            names.setdefault(c["source_caller_id"], set()).add(c["source_name"])
    assert all(len(v) == 1 for v in names.values())


def test_times_are_wall_clock_in_the_site_zone():
    stream = call_stream("2026-07-01 12:00", rate=1.0, rng=5, tz="Europe/Budapest")
    for call in islice(stream, 20):
        assert _time.parse_time(call.start_fields["start_time"], "Europe/Budapest") == call.start
        assert _time.parse_time(call.end_fields["end_time"], "Europe/Budapest") == call.end
    first = next(iter(call_stream("2026-07-01 12:00", rate=1.0, rng=5, tz="Europe/Budapest")))
    assert first.start_fields["start_time"].startswith("2026-07-01 14:")  # UTC+2 in summer


def test_stream_splits_fields_known_at_start_and_end():
    call = next(iter(call_stream(START, rate=1.0, rng=3)))
    assert set(call.end_fields) == {"end_time", "duration", "cause_id"}
    assert not set(call.start_fields) & set(call.end_fields)
    assert call.fields == {**call.start_fields, **call.end_fields}
    assert call.end - call.start == pd.Timedelta(seconds=call.holding)
    assert call.start == pd.Timestamp(START, tz="UTC") + pd.Timedelta(seconds=call.offset)


def test_profile_thins_arrivals_by_local_hour():
    def mornings(hour):
        return 1.0 if hour < 12 else 0.0

    calls = generate_calls(START, 4 * 86400, rate=0.05, rng=9, profile=mornings,
                           tz="Europe/Budapest")
    hours = [int(c["start_time"][11:13]) for c in calls]  # local wall-clock hours
    assert max(hours) < 12
    # 4 days x 12 h x 3600 s x 0.05 = 8640 expected; sd ~93
    assert abs(len(calls) - 8640) < 400


def test_office_hours_profile_shapes_days_and_weekends():
    calls = generate_calls(START, 14 * 86400, rate=0.05, rng=11,
                           profile=office_hours_profile)
    starts = pd.to_datetime([c["start_time"] for c in calls])
    by_hour = pd.Series(1, index=starts).groupby(starts.hour).sum()
    assert by_hour.idxmax() in (9, 10, 11, 14, 15)
    assert by_hour.loc[[1, 2, 3, 4]].sum() < 0.05 * by_hour.loc[[9, 10, 14, 15]].sum()
    weekend = starts.day_of_week >= 5
    per_weekday = (~weekend).sum() / 10
    per_weekend_day = weekend.sum() / 4
    assert 0.06 < per_weekend_day / per_weekday < 0.2
    assert office_hours_profile(np.array([3.0, 10.0])).shape == (2,)


def test_one_extension_means_no_internal_calls():
    calls = generate_calls(START, 500, rate=1.0, rng=2, extensions=["1000"])
    assert calls
    assert {c["direction_id"] for c in calls if c["modality_id"] != "im"} <= {"1", "2"}


@pytest.mark.parametrize("kwargs", [{"rate": 0}, {"rate": -1}, {"rate": float("nan")},
                                    {"rate": 1, "mean_holding": 0},
                                    {"rate": 1, "extensions": []}])
def test_invalid_parameters(kwargs):
    with pytest.raises(ValueError):
        generate_calls(START, 10, **kwargs)


def test_in_progress_at_start_is_the_stationary_population():
    # M/G/inf with rate 0.2/s and mean holding 180 s: N ~ Poisson(36); a call seen in
    # progress has a length-biased holding time, and its age and residual life both have
    # mean E[S^2] / (2 E[S]) = 180 * e^(sigma^2) / 2 = 180 * e / 2 = 244.6 s (sigma 1).
    # Over 150 seeds: count mean sd = 6 / sqrt(150) = 0.49; residual sd (E[S^3]/(3E[S])
    # - 244.6^2 = 180^2 e^3 / 3 - 244.6^2, sd ~396 s) over ~5 400 calls: 5.4 s.
    counts, ages, residuals = [], [], []
    for seed in range(150):
        calls = in_progress_at(START, rate=0.2, mean_holding=180.0, rng=seed,
                               extensions=["1000", "1001"])
        counts.append(len(calls))
        for call in calls:
            assert call.offset < 0 < call.offset + call.holding
            assert call.start < pd.Timestamp(START, tz="UTC") < call.end
            assert "end_time" not in call.start_fields and call.end_fields["end_time"]
        ages += [-c.offset for c in calls]
        residuals += [c.offset + c.holding for c in calls]
        assert [c.offset for c in calls] == sorted(c.offset for c in calls)
    assert np.mean(counts) == pytest.approx(36, abs=4 * 0.49)
    # Poisson: variance = mean; the sample variance's sd is 36 * sqrt(2 / 149) = 4.2
    assert np.var(counts) == pytest.approx(36, abs=4 * 4.2)
    expected = 180 * math.e / 2
    assert np.mean(residuals) == pytest.approx(expected, abs=4 * 5.4)
    assert np.mean(ages) == pytest.approx(expected, abs=4 * 5.4)


def test_in_progress_with_a_profile_matches_a_numerical_integral():
    # E[N] = rate * integral over ages a of profile(start - a) * P(S > a), summed here
    # second by second (a brute-force reference of the thinning). The office opens at
    # 08:00 and the moment is 08:02: only calls younger than 120 s can be in progress,
    # rate * sum_{a < 120 s} P(S > a), far below rate * mean_holding = 3600 erlangs.
    def opens_at_eight(hour):
        return 1.0 if hour >= 8 else 0.0

    start = pd.Timestamp("2026-11-02 08:02", tz="UTC")
    mu = math.log(180.0) - 0.5
    ages = np.arange(0.5, 20_000)
    survive = np.array([0.5 * math.erfc((math.log(a) - mu) / math.sqrt(2)) for a in ages])
    moments = start - pd.to_timedelta(ages, unit="s")
    hours = moments.hour + moments.minute / 60 + moments.second / 3600
    expected = 20.0 * float(np.sum([opens_at_eight(h) for h in hours] * survive))
    calls = in_progress_at(start, rate=20.0, mean_holding=180.0, rng=8,
                           profile=opens_at_eight, extensions=["1", "2"])
    assert 1000 < expected < 2400
    assert len(calls) == pytest.approx(expected, abs=4 * math.sqrt(expected))  # Poisson
    assert min(c.start for c in calls) >= pd.Timestamp("2026-11-02 08:00", tz="UTC")


def test_steady_state_stream_keeps_the_arrivals_of_a_cold_start():
    cold = list(islice(call_stream(START, rate=0.5, rng=4), 50))
    warm = list(islice(call_stream(START, rate=0.5, rng=4, steady_state=True), 400))
    initial = [c for c in warm if c.offset < 0]
    assert initial and warm[:len(initial)] == initial        # the in-progress calls first
    assert warm[len(initial):len(initial) + 50] == cold
    names = {c.start_fields["source_caller_id"]: c.start_fields["source_name"]
             for c in warm if c.start_fields["source_caller_id"] in EXTENSIONS}
    for c in cold:   # one directory of names for both
        if c.start_fields["source_caller_id"] in names:
            assert names[c.start_fields["source_caller_id"]] == c.start_fields["source_name"]
