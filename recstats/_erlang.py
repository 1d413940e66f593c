"""Erlang B (blocking, channels needed, traffic allowed; vectorised) and capacity tables.

The three functions answer the three questions of the classic Erlang B tables:

* :func:`erlang_b` -- blocking probability ``B(A, N)`` for offered traffic ``A``
  (erlangs) on ``N`` channels;
* :func:`channels_for` -- the smallest ``N`` with ``B(A, N) <= blocking``;
* :func:`traffic_for` -- the largest ``A`` with ``B(A, N) <= blocking``.

``B`` is evaluated with the numerically stable recurrence
``B(A, 0) = 1``, ``B(A, n) = A·B(A, n-1) / (n + A·B(A, n-1))``, which never forms the
factorials of the textbook formula, so thousands of channels are fine. Every function
broadcasts NumPy arrays and returns a Python scalar for scalar inputs.
A pandas Series (or DataFrame) in gives one out with the same index. :func:`capacity_table`
(in :mod:`recstats._capacity`) applies them to a calls table's busy hour per site. Every
public name is importable from :mod:`recstats.stats` too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["channels_for", "check_blocking", "erlang_b", "traffic_for"]


def _traffic(traffic) -> np.ndarray:
    a = np.asarray(traffic, dtype="float64")
    if np.any(~(a >= 0)) or np.any(np.isinf(a)):  # NaN too: channels_for(NaN) gave 1
        raise ValueError("traffic must be a finite number of erlangs >= 0; "
                         "pass the offered load, e.g. busy-hour erlangs")
    return a


def _channels(channels) -> np.ndarray:
    raw = np.asarray(channels)
    if raw.dtype.kind not in "iuf" and raw.dtype != bool:
        raise ValueError("channels must be whole numbers >= 0, e.g. 10 or [10, 20]")
    n = raw.astype("float64")
    if np.any(~np.isfinite(n)) or np.any(n < 0) or np.any(n != np.floor(n)):
        raise ValueError("channels must be whole numbers >= 0, e.g. 10 or [10, 20]")
    return n.astype("int64")


def check_blocking(blocking) -> np.ndarray:
    b = np.asarray(blocking, dtype="float64")
    if np.any(~(b > 0)) or np.any(~(b < 1)):
        raise ValueError("blocking must be a probability strictly between 0 and 1, "
                         "e.g. 0.01 for 1 %")
    return b


def _out(value: np.ndarray, scalar: bool, kind=float):
    return kind(value) if scalar else value


def _like(result, name: str, *inputs):
    """``result`` as a Series (DataFrame) with the index of the pandas inputs, if any."""
    frames = [x for x in inputs if isinstance(x, (pd.Series, pd.DataFrame))]
    if not frames or np.shape(result) != frames[0].shape:
        return result
    first = frames[0]
    for other in frames[1:]:
        if not other.index.equals(first.index):
            raise ValueError("the pandas arguments have different indexes; align them "
                             "first (e.g. b.reindex(a.index))")
    if isinstance(first, pd.Series):
        return pd.Series(result, index=first.index, name=name)
    return pd.DataFrame(result, index=first.index, columns=first.columns)


def _b_scalar(a: float, n: int) -> float:
    b = 1.0
    for k in range(1, n + 1):
        ab = a * b
        b = ab / (k + ab)
    return b


def _b_array(a: np.ndarray, n: np.ndarray) -> np.ndarray:
    """B for broadcast arrays ``a``, ``n``: one recurrence step per channel count."""
    a, n = np.broadcast_arrays(a, n)
    b = np.ones(a.shape, dtype="float64")
    top = int(n.max()) if n.size else 0
    for k in range(1, top + 1):
        ab = a * b
        with np.errstate(invalid="ignore"):
            step = ab / (k + ab)
        b = np.where(n >= k, step, b)
    return b


def erlang_b(traffic, channels):
    """Erlang B blocking probability for ``traffic`` erlangs offered to ``channels`` lines.

    ``B(A, N) = (A^N / N!) / sum_{k=0..N} A^k / k!``, computed with the stable
    recurrence ``B(A, n) = A·B(A, n-1) / (n + A·B(A, n-1))`` from ``B(A, 0) = 1``.
    Arrays broadcast (``erlang_b([5, 10], [[10], [20]])`` is a 2 x 2 table).

    Parameters
    ----------
    traffic : float, array-like or pandas.Series
        Offered traffic [erlang], finite and >= 0.
    channels : int, array-like or pandas.Series
        Number of channels (lines, licences), whole numbers >= 0.

    Returns
    -------
    float, numpy.ndarray or pandas.Series
        Blocking probability (0-1): a float for scalars, a Series with the input's
        index for a Series.

    References
    ----------
    .. [1] A. K. Erlang, "Solution of some problems in the theory of probabilities of
       significance in automatic telephone exchanges", Elektroteknikeren 13, 1917.

    Examples
    --------
    >>> round(erlang_b(10, 10), 4)
    0.2146
    >>> erlang_b([1.0, 2.0], 1).round(4).tolist()
    [0.5, 0.6667]
    >>> erlang_b(pd.Series([1.0, 2.0], index=["LA", "NY"]), 1).round(4).to_dict()
    {'LA': 0.5, 'NY': 0.6667}
    """
    scalar = np.ndim(traffic) == 0 and np.ndim(channels) == 0
    a, n = _traffic(traffic), _channels(channels)
    if scalar:
        return _b_scalar(float(a), int(n))
    return _like(_b_array(a, n), "blocking", traffic, channels)


def channels_for(traffic, blocking):
    """The smallest number of channels ``N`` with ``B(traffic, N) <= blocking``.

    Zero traffic needs zero channels (nothing is offered, nothing is blocked).

    Parameters
    ----------
    traffic : float, array-like or pandas.Series
        Offered traffic [erlang], finite and >= 0 (e.g. the busy-hour traffic).
    blocking : float or array-like
        Target blocking probability, strictly between 0 and 1 (0.01 for 1 %).

    Returns
    -------
    int, numpy.ndarray or pandas.Series
        Channels needed: an int for scalars, a Series with the input's index for a
        Series.

    References
    ----------
    .. [1] A. K. Erlang, "Solution of some problems in the theory of probabilities of
       significance in automatic telephone exchanges", Elektroteknikeren 13, 1917.

    Examples
    --------
    >>> channels_for(10, 0.01)
    18
    >>> channels_for([1, 10, 100], 0.01).tolist()
    [5, 18, 117]
    """
    scalar = np.ndim(traffic) == 0 and np.ndim(blocking) == 0
    a, b = np.broadcast_arrays(_traffic(traffic), check_blocking(blocking))
    a, b = np.array(a, dtype="float64"), np.array(b, dtype="float64")
    if scalar:
        return _channels_for_one(float(a), float(b))
    result = np.zeros(a.shape, dtype="int64")
    value = np.ones(a.shape, dtype="float64")
    todo = (value > b) & (a > 0)
    n = 0
    while todo.any():
        n += 1
        ab = a[todo] * value[todo]
        value[todo] = ab / (n + ab)
        result[todo] = n
        todo &= value > b
    return _like(result, "channels", traffic, blocking)


def _channels_for_one(traffic: float, blocking: float) -> int:
    """:func:`channels_for` of one traffic [erlang] and one blocking probability."""
    if traffic == 0:
        return 0
    n, value = 0, 1.0
    while value > blocking:
        n += 1
        ab = traffic * value
        value = ab / (n + ab)
    return n


def _log_b_and_slope(a: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log B(A, N) and its derivative d log B / dA = N/A - 1 + B (for A > 0)."""
    b = _b_array(a, n)
    with np.errstate(divide="ignore"):
        return np.log(b), n / a - 1.0 + b


def traffic_for(channels, blocking, *, rtol: float = 1e-10):
    """The largest offered traffic ``A`` (erlangs) with ``B(A, channels) <= blocking``.

    ``B`` grows with ``A``, so the answer is the root of ``log B(A, N) = log blocking``,
    found by Newton's method safeguarded by bisection inside the bracket
    ``[0, N / (1 - blocking)]`` (carried traffic ``A (1 - B)`` never exceeds ``N``),
    to a relative accuracy ``rtol``. Zero channels carry nothing: the answer is 0.

    Parameters
    ----------
    channels : int, array-like or pandas.Series
        Number of channels, whole numbers >= 0.
    blocking : float or array-like
        Target blocking probability, strictly between 0 and 1.
    rtol : float
        Relative accuracy of the answer.

    Returns
    -------
    float, numpy.ndarray or pandas.Series
        Offered traffic [erlang]: a float for scalars, a Series with the input's index
        for a Series.

    References
    ----------
    .. [1] A. K. Erlang, "Solution of some problems in the theory of probabilities of
       significance in automatic telephone exchanges", Elektroteknikeren 13, 1917.

    Examples
    --------
    >>> round(traffic_for(10, 0.01), 3)
    4.461
    >>> channels_for(traffic_for(30, 0.02), 0.02)
    30
    """
    scalar = np.ndim(channels) == 0 and np.ndim(blocking) == 0
    n, b = np.broadcast_arrays(_channels(channels), check_blocking(blocking))
    shape = n.shape
    n, b = n.astype("float64").ravel(), b.ravel()
    target = np.log(b)
    lo = np.zeros(n.shape)
    hi = n / (1.0 - b) * 1.01 + 1.0
    x = np.maximum(n - np.sqrt(n), 0.5 * n) + 1e-3  # a reasonable first guess
    active = n > 0
    for _ in range(200):
        if not active.any():
            break
        xa, na = x[active], n[active]
        logb, slope = _log_b_and_slope(xa, na)
        f = logb - target[active]
        lo_a = np.where(f <= 0, xa, lo[active])
        hi_a = np.where(f > 0, xa, hi[active])
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = xa - f / slope
        close = np.isfinite(newton) & (np.abs(newton - xa) <= rtol * xa)
        bad = ~np.isfinite(newton) | (newton <= lo_a) | (newton >= hi_a)
        nxt = np.where(close, xa, np.where(bad, 0.5 * (lo_a + hi_a), newton))
        done = close | (hi_a - lo_a <= rtol * hi_a)
        lo[active], hi[active], x[active] = lo_a, hi_a, nxt
        idx = np.flatnonzero(active)
        active[idx[done]] = False
    x = np.where(n > 0, x, 0.0)
    # The root may sit a hair above the true boundary; step down inside it.
    over = (n > 0) & (_b_array(x, n.astype("int64")) > b)
    x = np.where(over, lo, x).reshape(shape)
    if scalar:
        return _out(x, scalar)
    return _like(x, "traffic", channels, blocking)
