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
    zero-length, and every kind of row check_calls lists: no start, unknown end, end
    before start, a wrong duration, and repeats of earlier calls (same id, site and
    start) at the end of the table, so in later partitions; plus ongoing calls."""
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
        "end_unknown": False, "duration": length * 60.0})
    calls.loc[:4, "start_time"] = pd.NaT
    calls.loc[5:9, ["end_time", "end_unknown"]] = [pd.NaT, True]
    calls.loc[10:14, "end_time"] = pd.NaT  # ongoing: count until the window's end
    calls.loc[15:16, "end_time"] = calls.loc[15:16, "start_time"] - pd.Timedelta("1min")
    calls.loc[17, "duration"] = 9999.0
    again = calls.iloc[20:26]
    return rs.coerce_calls(pd.concat([calls, again], ignore_index=True))


WINDOW = ("2026-10-31 06:00", "2026-11-02 13:30")
GAPS = [{"server": "a", "site": "NY", "start": "2026-11-01T05:10:00+00:00",
         "end": "2026-11-01T09:00:00+00:00"},
        {"server": "b", "site": "SYD", "start": "2026-11-02T12:00:00+00:00",
         "end": "2026-11-03T00:00:00+00:00"}]


def _with_attrs(calls: pd.DataFrame) -> pd.DataFrame:
    calls = calls.copy()
    calls.attrs = {"window": [pd.Timestamp(w, tz="UTC").isoformat() for w in WINDOW],
                   "gaps": GAPS}
    return calls


def _same_warning(name: str, many, calls: pd.DataFrame, **settings) -> tuple:
    """``rd.<name>(many)`` and ``rs.<name>(calls)``, after checking both warn the same
    DataQualityWarning."""
    with pytest.warns(rs.DataQualityWarning) as got:
        dask_result = getattr(rd, name)(many, **settings)
    with pytest.warns(rs.DataQualityWarning) as want:
        local_result = getattr(rs, name)(calls, **settings)
    assert [str(w.message) for w in got] == [str(w.message) for w in want]
    return dask_result, local_result


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
    out = rd.concurrency(dd.from_pandas(calls, npartitions=3, sort=False), freq="20min",
                         window=("2024-01-01 09:40", "2024-01-01 10:40"))
    # bins 09:40, 10:00, 10:20; 10:00 bin: 1 carried + 1 -> 2; means:
    # 09:40: 10 min of 1 call / 20 = 0.5; 10:00: (20 + 5 + 5) / 20 = 1.5; 10:20: 10/20
    assert out["peak"].tolist() == [1, 2, 1]
    assert out["mean"].tolist() == [0.5, 1.5, 0.5]
    assert out["started"].tolist() == [1, 2, 0]
    assert out["coverage"].tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("freq, tz", [("7min", "UTC"), ("1h", "America/New_York")])
def test_concurrency_equals_local(client, freq, tz):
    # 7 min bins do not tile the day; New York's hours hold the end of DST (25-hour day)
    calls = _synthetic()
    many = dd.from_pandas(calls, npartitions=7, sort=False)
    if tz == "UTC":  # the archive rule's window, no group and by site
        for by in (None, "site"):
            got, want = _same_warning("concurrency", many, calls, freq=freq, by=by, tz=tz)
            pd.testing.assert_frame_equal(got, want)
        # the window: whole UTC days from 31 October; 10-hour calls run into 3 November,
        # so it ends 4 November 00:00
        assert rs.observation_window(calls)[1] == pd.Timestamp("2026-11-04", tz="UTC")
        # 7 min bins are aligned to the epoch: the first, 23:57-00:04, is 4 min observed
        assert got.xs("NY").index[0] == pd.Timestamp("2026-10-30 23:57", tz="UTC")
        assert got.xs("NY")["coverage"].iloc[0] == 4 / 7
        # the last, 23:58-00:05, is observed for 2 min, in which every ongoing NY call
        # is still in progress
        last = got.xs("NY").iloc[-1]
        assert got.xs("NY").index[-1] == pd.Timestamp("2026-11-03 23:58", tz="UTC")
        assert last["coverage"] == 2 / 7
        assert last["peak"] >= calls.loc[10:14, "site"].eq("NY").sum() > 0
        return
    # a window given, and one (with gaps) in the attrs
    windowed = _same_warning("concurrency", many, calls, freq=freq, tz=tz, window=WINDOW)
    pd.testing.assert_frame_equal(*windowed)
    marked = _with_attrs(_synthetic(seed=3))  # dask names a frame by its data only
    in_attrs = dd.from_pandas(marked, npartitions=4, sort=False)
    got, want = _same_warning("concurrency", in_attrs, marked, freq=freq, by="site", tz=tz)
    pd.testing.assert_frame_equal(got, want)
    assert (got["coverage"] < 1).any() and got["mean"].isna().any()  # the gaps


def test_coverage_of_a_local_day(client):
    # one call 10:00-11:00 UTC = 15:30-16:30 in Kolkata (UTC+05:30): the window is that
    # local day, 2023-12-31 18:30 to 2024-01-01 18:30 UTC; one local-day bin, fully
    # observed, carrying 1 h / 24 h; a UTC-aligned 12 h bin grid cuts it in three
    calls = pd.DataFrame({"start_time": pd.to_datetime(["2024-01-01 10:00"], utc=True),
                          "end_time": pd.to_datetime(["2024-01-01 11:00"], utc=True)})
    one = dd.from_pandas(calls, npartitions=1)
    out = rd.concurrency(one, freq="1D", tz="Asia/Kolkata")
    assert out.index.tolist() == [pd.Timestamp("2023-12-31 18:30", tz="UTC")]
    assert out[["peak", "mean", "started", "coverage"]].values.tolist() == \
        [[1.0, 1 / 24, 1.0, 1.0]]
    out = rd.concurrency(one, freq="12h", window=("2023-12-31 18:30", "2024-01-01 18:30"))
    # bins 12:00 (observed 18:30-24:00: 5.5 h), 00:00 (12 h), 12:00 (12:00-18:30: 6.5 h)
    assert out["coverage"].tolist() == [5.5 / 12, 1.0, 6.5 / 12]
    assert out["mean"].tolist() == [0.0, 1 / 12, 0.0]


def test_busy_hour_and_capacity_equal_local(client):
    tz = "America/New_York"  # the synthetic days hold the end of DST: a 25-hour day
    calls = _synthetic(seed=2)
    # other calls: dask names a frame by its data, not its attrs
    marked = _with_attrs(_synthetic(seed=3))
    cases = [(calls, {}, ("busy_hour", "capacity_table")),
             (calls, {"window": WINDOW, "days": "weekdays", "method": "bouncing",
                      "top_days": 1}, ("busy_hour",)),
             (marked, {"days": ["2026-11-01", "2026-11-02"], "top_days": 2,
                       "min_coverage": 0.9}, ("busy_hour", "capacity_table"))]
    for frame, settings, names in cases:
        many = dd.from_pandas(frame, npartitions=5, sort=False)
        got, want = _same_warning("busy_hour", many, frame, tz=tz, **settings)
        assert (got.method, got.hour, got.traffic, got.tz, got.coverage, got.days_rule,
                got.window) == (want.method, want.hour, want.traffic, want.tz,
                                want.coverage, want.days_rule, want.window)
        pd.testing.assert_frame_equal(got.per_day, want.per_day)
        pd.testing.assert_series_equal(got.profile, want.profile)
        if "capacity_table" in names:
            got, want = _same_warning("capacity_table", many, frame, tz=tz, **settings)
            pd.testing.assert_frame_equal(got, want)


def test_stats_on_an_archive_frame(client, archive):
    # partitions parsed on the workers, each with its own site categories
    calls = rd.read_archive(archive, files_per_partition=60, tz="America/New_York")
    pd.testing.assert_frame_equal(
        rd.concurrency(calls, freq="1h", by="site", tz="America/New_York"),
        rs.concurrency(calls.compute(), freq="1h", by="site", tz="America/New_York"))


def test_errors(client):
    calls = dd.from_pandas(_synthetic(50), npartitions=2)
    with pytest.raises(ValueError, match="freq"):
        rd.concurrency(calls, freq="1M")
    with pytest.raises(ValueError, match="no such column"):
        rd.concurrency(calls, freq="1h", by="nothing")
    with pytest.raises(ValueError, match="files_per_partition"):
        rd.read_archive("data/samples/archive", files_per_partition=0)
    with pytest.raises(ValueError, match="method"):
        rd.busy_hour(calls, method="busiest")
    with pytest.raises(ValueError, match="window"):
        rd.busy_hour(calls, window=("2026-11-02", "2026-11-01"))
    empty = dd.from_pandas(_synthetic(50).iloc[:0], npartitions=1)
    with pytest.raises(ValueError, match="no call with a start time"):
        rd.busy_hour(empty)
    assert rd.concurrency(empty, freq="1h").empty


def test_a_repeat_in_another_partition_is_left_out_everywhere(client):
    # c1 23:00-23:30 and, in the second partition, the same call again (same id, site
    # and start) with an end the next day: a repeat, so not activity either -- the
    # window is 1 January only (one day bin carrying 30 min / 24 h)
    calls = rs.coerce_calls(pd.DataFrame({
        "call_id": ["c1", "c2", "c1"], "site": ["NY", "NY", "NY"],
        "start_time": pd.to_datetime(["2024-01-01 23:00", "2024-01-01 10:00",
                                      "2024-01-01 23:00"], utc=True),
        "end_time": pd.to_datetime(["2024-01-01 23:30", "2024-01-01 10:00",
                                    "2024-01-02 01:00"], utc=True)}))
    many = dd.from_pandas(calls, npartitions=2, sort=False)
    assert many.npartitions == 2
    got, want = _same_warning("concurrency", many, calls, freq="1D")
    pd.testing.assert_frame_equal(got, want)
    assert got.index.tolist() == [pd.Timestamp("2024-01-01", tz="UTC")]
    assert got["mean"].tolist() == [0.5 / 24]


def test_many_partitions_and_fine_bins(client):
    # 12 partitions exchange their events in 12 pieces: each piece holds a range of
    # bins from every partition; 1-minute bins put many instants on bin edges
    calls = _synthetic(400, seed=4)
    many = dd.from_pandas(calls, npartitions=12, sort=False)
    assert many.npartitions == 12
    got, want = _same_warning("concurrency", many, calls, freq="1min", by="site")
    pd.testing.assert_frame_equal(got, want)
