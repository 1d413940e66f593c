"""Erlang B against the textbook formula, published table values and each other."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recstats.stats import channels_for, erlang_b, traffic_for


def exact_b(traffic: Fraction, channels: int) -> Fraction:
    """B = (A^N/N!) / sum_k A^k/k!, in exact rational arithmetic."""
    terms = [Fraction(traffic) ** k / math.factorial(k) for k in range(channels + 1)]
    return terms[-1] / sum(terms)


def log_b(traffic: float, channels: int) -> float:
    """log B via log-sum-exp of the formula's terms: independent of the recurrence."""
    logs = np.array([k * math.log(traffic) - math.lgamma(k + 1) for k in range(channels + 1)])
    top = logs.max()
    return logs[-1] - (top + math.log(np.exp(logs - top).sum()))


@pytest.mark.parametrize("traffic", [Fraction(1, 10), Fraction(1), Fraction(5, 2),
                                     Fraction(10), Fraction(37)])
@pytest.mark.parametrize("channels", [0, 1, 2, 5, 10, 25])
def test_erlang_b_matches_exact_formula(traffic, channels):
    assert erlang_b(float(traffic), channels) == pytest.approx(
        float(exact_b(traffic, channels)), rel=1e-12)


def test_erlang_b_known_values():
    assert erlang_b(10, 10) == pytest.approx(0.2146, abs=5e-5)
    assert erlang_b(1, 1) == 0.5            # A/(1+A)
    assert erlang_b(2, 2) == pytest.approx(0.4)  # (4/2)/(1+2+2)
    assert erlang_b(0, 0) == 1.0
    assert erlang_b(0, 3) == 0.0


def test_erlang_b_is_stable_for_thousands_of_channels():
    for traffic, channels in [(2000.0, 2000), (1900.0, 2000), (4500.0, 5000), (50.0, 3000)]:
        b = erlang_b(traffic, channels)
        if b == 0.0:  # below the smallest float: the reference must say so too
            assert log_b(traffic, channels) < -700
        else:
            assert math.log(b) == pytest.approx(log_b(traffic, channels), rel=1e-9)


def test_erlang_b_broadcasts_and_keeps_scalars_scalar():
    table = erlang_b(np.array([5.0, 10.0]), np.array([[10], [20]]))
    assert table.shape == (2, 2)
    for i, n in enumerate([10, 20]):
        for j, a in enumerate([5, 10]):
            assert table[i, j] == pytest.approx(float(exact_b(Fraction(a), n)), rel=1e-12)
    assert isinstance(erlang_b(3.0, 4), float)
    assert isinstance(channels_for(3.0, 0.01), int)
    assert isinstance(traffic_for(4, 0.01), float)


# Classic Erlang B table (offered erlangs for N channels at a grade of service).
TABLE = [(10, 0.01, 4.46), (20, 0.01, 12.03), (50, 0.01, 37.90), (100, 0.01, 84.06),
         (10, 0.001, 3.09), (10, 0.05, 6.22), (30, 0.02, 21.93), (5, 0.01, 1.36)]


@pytest.mark.parametrize("channels,blocking,traffic", TABLE)
def test_traffic_for_matches_published_tables(channels, blocking, traffic):
    assert traffic_for(channels, blocking) == pytest.approx(traffic, abs=0.006)


@pytest.mark.parametrize("channels,blocking,traffic", TABLE)
def test_channels_for_matches_published_tables(channels, blocking, traffic):
    # table values are rounded to 0.01: just below fits N channels, just above needs more
    assert channels_for(traffic - 0.006, blocking) == channels
    assert channels_for(traffic + 0.006, blocking) == channels + 1


@settings(max_examples=60, deadline=None)
@given(traffic=st.floats(0.01, 400), blocking=st.floats(0.0005, 0.5))
def test_channels_for_is_the_smallest_sufficient(traffic, blocking):
    n = channels_for(traffic, blocking)
    assert erlang_b(traffic, n) <= blocking
    assert n == 0 or erlang_b(traffic, n - 1) > blocking


@settings(max_examples=60, deadline=None)
@given(channels=st.integers(1, 600), blocking=st.floats(0.0005, 0.5))
def test_traffic_for_is_the_boundary(channels, blocking):
    a = traffic_for(channels, blocking)
    assert erlang_b(a, channels) <= blocking * (1 + 1e-9)
    assert erlang_b(a * (1 + 1e-6), channels) > blocking  # largest: a bit more blocks more
    assert channels_for(a * (1 - 1e-7), blocking) <= channels


def test_the_three_functions_agree_on_arrays():
    channels = np.array([1, 5, 10, 100, 1000, 3000])
    blocking = np.array([0.001, 0.01, 0.05, 0.01, 0.001, 0.02])
    traffic = traffic_for(channels, blocking)
    assert np.allclose(erlang_b(traffic, channels), blocking, rtol=1e-6)
    assert channels_for(traffic * (1 - 1e-9), blocking).tolist() == channels.tolist()
    assert channels_for(traffic * (1 + 1e-6), blocking).tolist() == (channels + 1).tolist()


def test_edge_cases():
    assert traffic_for(0, 0.01) == 0.0
    assert channels_for(0, 0.01) == 0
    assert channels_for([0.0, 1.0], 0.01).tolist() == [0, 5]


@pytest.mark.parametrize("call", [
    lambda: erlang_b(-1, 3), lambda: erlang_b(1, -3), lambda: erlang_b(1, 2.5),
    lambda: erlang_b(float("inf"), 2), lambda: erlang_b(1, "ten"),
    lambda: channels_for(-2, 0.01), lambda: channels_for(2, 0), lambda: channels_for(2, 1),
    lambda: channels_for(2, 1.5), lambda: traffic_for(10, 0), lambda: traffic_for(10, -0.1),
    lambda: traffic_for(-1, 0.01), lambda: traffic_for([1, 2], [0.1, 1.0]),
])
def test_invalid_inputs_say_what_to_do(call):
    with pytest.raises(ValueError, match=r"must be|strictly between"):
        call()


@pytest.mark.parametrize("call", [
    lambda: erlang_b(float("nan"), 3), lambda: erlang_b([1.0, float("nan")], 3),
    lambda: channels_for(float("nan"), 0.01), lambda: channels_for([float("nan")], 0.01),
])
def test_nan_traffic_is_refused_not_sized(call):
    # NaN compared as "not above the target" and came back as 1 (scalar) or 0 (array)
    with pytest.raises(ValueError, match="traffic must be a finite number"):
        call()


def test_pandas_inputs_keep_their_index():
    traffic = pd.Series([1.0, 10.0], index=pd.Index(["LA", "NY"], name="site"))
    blocking = erlang_b(traffic, 1)
    assert isinstance(blocking, pd.Series) and blocking.index.equals(traffic.index)
    assert blocking.tolist() == pytest.approx([1 / 2, 10 / 11])  # A / (1 + A) for N = 1
    channels = channels_for(traffic, 0.01)
    assert channels.index.equals(traffic.index) and channels.tolist() == [5, 18]
    allowed = traffic_for(pd.Series([10, 20], index=["a", "b"]), 0.01)
    assert allowed.index.tolist() == ["a", "b"]
    assert allowed.tolist() == pytest.approx([4.46, 12.03], abs=0.006)
    frame = erlang_b(pd.DataFrame({"x": [1.0], "y": [2.0]}), 1)
    assert frame.columns.tolist() == ["x", "y"] and frame.iloc[0].tolist() == \
        pytest.approx([0.5, 2 / 3])
    with pytest.raises(ValueError, match="different indexes"):
        erlang_b(traffic, pd.Series([1, 2], index=["NY", "LA"]))
    with pytest.raises(TypeError):
        traffic_for(10, 0.01, 1e-8)  # rtol is keyword-only
