"""rs.dask on a two-worker distributed.LocalCluster: same results as the local path.

References are the local functions (recstats.read_archive/read_calls/stats) on the same
data, plus hand-computed cases for what only the distributed path can get wrong (a peak
is not the sum of partition peaks).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import recstats as rs

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
rd = rs.dask

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, timeout=60)
    with distributed.Client(cluster, timeout=60) as c:
        yield c
    cluster.close(timeout=30)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    from recstats.sim.samples import generate_archive

    root = tmp_path_factory.mktemp("dask") / "archive"
    generate_archive(root, calls=240, days=3, seed=5, tz="America/New_York",
                     start="2026-10-31")  # across the end of DST (1 November 2026)
    return root


def _by_id(frame: pd.DataFrame) -> pd.DataFrame:
    return rs.coerce_calls(frame).sort_values(["call_id", "cdr_path"]).reset_index(drop=True)


def _synthetic(n: int = 3000, seed: int = 1) -> pd.DataFrame:
    """Calls on whole minutes (so many share instants and bin edges), some long, some
    zero-length, a few without start, lost end or still ongoing."""
    rng = np.random.default_rng(seed)
    origin = pd.Timestamp("2026-10-31 00:00", tz="UTC").value // 1000
    start = origin + rng.integers(0, 3 * 1440, n) * 60_000_000
    length = rng.choice([0, 1, 5, 15, 60, 600], n, p=[.05, .2, .3, .3, .1, .05])
    end = start + length * 60_000_000
    calls = pd.DataFrame({
        "call_id": [f"c{k}" for k in range(n)],
        "site": rng.choice(["NY", "LDN", "SYD"], n),
        "start_time": pd.to_datetime(start, unit="us", utc=True),
        "end_time": pd.to_datetime(end, unit="us", utc=True),
        "end_unknown": False})
    calls.loc[:4, "start_time"] = pd.NaT
    calls.loc[5:9, ["end_time", "end_unknown"]] = [pd.NaT, True]
    calls.loc[10:14, "end_time"] = pd.NaT  # ongoing: count until `until`
    return rs.coerce_calls(calls)


UNTIL = pd.Timestamp("2026-11-03 06:00", tz="UTC")


def test_read_archive_is_the_local_table(client, archive):
    calls = rd.read_archive(archive, files_per_partition=50, tz="America/New_York")
    assert calls.npartitions == 5  # 240 files / 50
    local = rs.read_archive(archive, progress=False, tz="America/New_York")
    assert list(calls.columns) == list(rd.read_archive(archive).columns)
    assert calls.dtypes["site"] == "category"
    assert str(calls.dtypes["start_time"]) == "datetime64[us, UTC]"
    got = calls.compute()
    pd.testing.assert_frame_equal(_by_id(got), _by_id(local[list(got.columns)]))


def test_read_calls_is_the_local_dataset(client, archive, tmp_path):
    rs.ingest(archive, tmp_path / "ds", tz="America/New_York", progress=False)
    calls = rd.read_calls(tmp_path / "ds")
    assert calls.npartitions == len(list((tmp_path / "ds").rglob("part-*.parquet")))
    local = rs.read_calls(tmp_path / "ds")
    pd.testing.assert_frame_equal(_by_id(calls.compute()), _by_id(local))
    some = rd.read_calls(tmp_path / "ds", sites="NY-RECORDER", start="2026-11-01 12:00")
    pd.testing.assert_frame_equal(
        _by_id(some.compute()),
        _by_id(rs.read_calls(tmp_path / "ds", sites="NY-RECORDER",
                             start="2026-11-01 12:00")))


def test_peak_is_not_the_sum_of_partition_peaks(client):
    # partition 1: 10:00-10:05, partition 2: 10:10-10:15. Each partition peaks at 1 in
    # the 10:00-10:20 bin, but the calls never overlap: the peak is 1, not 2.
    # A third call 09:50-10:30 is in progress throughout, carried into both bins.
    calls = pd.DataFrame({
        "start_time": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 10:10",
                                      "2024-01-01 09:50"], utc=True),
        "end_time": pd.to_datetime(["2024-01-01 10:05", "2024-01-01 10:15",
                                    "2024-01-01 10:30"], utc=True)})
    out = rd.concurrency(dd.from_pandas(calls, npartitions=3, sort=False), freq="20min")
    # bins 09:40, 10:00, 10:20; 10:00 bin: 1 carried + 1 -> 2; means:
    # 09:40: 10 min of 1 call / 20 = 0.5; 10:00: (20 + 5 + 5) / 20 = 1.5; 10:20: 10/20
    assert out["peak"].tolist() == [1, 2, 1]
    assert out["mean"].tolist() == [0.5, 1.5, 0.5]
    assert out["started"].tolist() == [1, 2, 0]


def test_concurrency_equals_local(client):
    freq = "7min"  # bins that do not tile the day: partial coverage at the ends
    calls = _synthetic()
    many = dd.from_pandas(calls, npartitions=7, sort=False)
    got = rd.concurrency(many, freq=freq, until=UNTIL)
    pd.testing.assert_frame_equal(got.drop(columns="coverage"),
                                  rs.concurrency(calls, freq=freq, until=UNTIL))
    by = rd.concurrency(many, freq=freq, by="site", until=UNTIL)
    pd.testing.assert_frame_equal(by.drop(columns="coverage"),
                                  rs.concurrency(calls, freq=freq, by="site", until=UNTIL))
    # the window: whole UTC days from the first start (31 October) to the last
    # activity, the ongoing calls' end at UNTIL (3 November): [31 Oct, 4 Nov)
    lo, hi = pd.Timestamp("2026-10-31", tz="UTC"), pd.Timestamp("2026-11-04", tz="UTC")
    width = pd.Timedelta(freq)
    bins = got.index
    observed = (np.minimum(bins + width, hi) - np.maximum(bins, lo)) / width
    np.testing.assert_allclose(got["coverage"], np.clip(observed, 0, 1))
    assert got["coverage"].iloc[1:-1].eq(1.0).all()


def test_coverage_is_the_observed_fraction(client):
    # one call 10:00-11:00 UTC = 15:30-16:30 in Kolkata (UTC+05:30): the window is that
    # local day, 2023-12-31 18:30 to 2024-01-01 18:30 UTC, so the UTC day bin
    # 2024-01-01 is observed for 18.5 of its 24 hours
    calls = pd.DataFrame({"start_time": pd.to_datetime(["2024-01-01 10:00"], utc=True),
                          "end_time": pd.to_datetime(["2024-01-01 11:00"], utc=True)})
    out = rd.concurrency(dd.from_pandas(calls, npartitions=1), freq="1D", tz="Asia/Kolkata")
    assert out["coverage"].tolist() == [18.5 / 24]
    assert out["mean"].tolist() == [1 / 24]


def test_busy_hour_and_capacity_equal_local(client):
    tz = "America/New_York"  # the synthetic days hold the end of DST: a 25-hour day
    calls = _synthetic(seed=2)
    many = dd.from_pandas(calls, npartitions=5, sort=False)
    for method, days in (("time-consistent", None), ("bouncing", ["2026-11-01", "2026-11-02"])):
        got = rd.busy_hour(many, method, days=days, tz=tz, until=UNTIL)
        want = rs.busy_hour(calls, method, days=days, tz=tz, until=UNTIL)
        assert (got.method, got.hour, got.traffic, got.tz) == \
            (want.method, want.hour, want.traffic, want.tz)
        pd.testing.assert_frame_equal(got.per_day, want.per_day)
        pd.testing.assert_series_equal(got.profile, want.profile)
    pd.testing.assert_frame_equal(rd.capacity_table(many, tz=tz, until=UNTIL),
                                  rs.capacity_table(calls, tz=tz, until=UNTIL))


def test_stats_on_an_archive_frame(client, archive):
    calls = rd.read_archive(archive, files_per_partition=60, tz="America/New_York")
    local = rs.read_archive(archive, progress=False, tz="America/New_York")
    pd.testing.assert_frame_equal(rd.capacity_table(calls, tz="America/New_York"),
                                  rs.capacity_table(local, tz="America/New_York"))


def test_errors(client):
    calls = dd.from_pandas(_synthetic(50), npartitions=2)
    with pytest.raises(ValueError, match="freq"):
        rd.concurrency(calls, freq="1M")
    with pytest.raises(ValueError, match="no nothing column"):
        rd.concurrency(calls, freq="1h", by="nothing")
    with pytest.raises(ValueError, match="files_per_partition"):
        rd.read_archive("data/samples/archive", files_per_partition=0)
    with pytest.raises(ValueError, match="method"):
        rd.busy_hour(calls, "busiest")
