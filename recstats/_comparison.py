"""Calls captured live checked against the archive the servers wrote (private).

Import :class:`Comparison` and :func:`compare_calls` from :mod:`recstats.report`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ._report_html import table

__all__ = ["COMPARED_COLUMNS", "Comparison", "compare_calls"]

#: Columns that must agree between a call seen live and its CDR file.
COMPARED_COLUMNS = ("site", "start_time", "end_time", "caller", "callee")


@dataclass
class Comparison:
    """Calls captured live checked against the calls parsed from the servers' archive.

    Only calls that *ended* during the capture can be checked (an ongoing call has no
    CDR yet). ``missing`` lists ended live calls without a CDR, ``mismatches`` one row
    per (call, column) whose values differ, ``archive_only`` archive calls that ended
    inside the span of the live calls' end times but were never seen live.
    """

    live_calls: int
    live_ended: int
    archive_calls: int
    matched: int
    missing: pd.DataFrame = field(repr=False)
    mismatches: pd.DataFrame = field(repr=False)
    archive_only: pd.DataFrame = field(repr=False)

    @property
    def differences(self) -> int:
        """Ended live calls that are missing from the archive or differ from their CDR."""
        return len(self.missing) + self.mismatches["call_id"].nunique()

    @property
    def ok(self) -> bool:
        """True when every ended live call matched its CDR and none was missed live."""
        return self.differences == 0 and len(self.archive_only) == 0

    def summary(self) -> dict[str, int]:
        """The counts as a plain dict (for printing and JSON)."""
        return {"live calls": self.live_calls, "ended live": self.live_ended,
                "in progress at the end (no CDR yet)": self.live_calls - self.live_ended,
                "archive calls": self.archive_calls, "matched": self.matched,
                "missing from archive": len(self.missing),
                "calls with differences": int(self.mismatches["call_id"].nunique()),
                "archive only": len(self.archive_only)}

    def __str__(self) -> str:
        parts = [f"{k}: {v}" for k, v in self.summary().items()]
        return ("OK " if self.ok else "DIFFERENCES ") + ", ".join(parts)

    def _repr_html_(self) -> str:
        verdict = ('<p class="ok">every ended live call matches its CDR</p>' if self.ok else
                   f'<p class="bad">{self.differences} live call(s) differ from the archive; '
                   f'{len(self.archive_only)} archive call(s) were not seen live</p>')
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>"
                       for k, v in self.summary().items())
        parts = [verdict, f"<table>{rows}</table>"]
        for label, frame in (("Missing from the archive", self.missing),
                             ("Differences", self.mismatches),
                             ("In the archive, not seen live", self.archive_only)):
            if len(frame):
                parts.append(f"<h3>{html.escape(label)}</h3>{table(frame, 50)}")
        return "\n".join(parts)


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Element-wise equality where two missing values count as equal."""
    a_na, b_na = a.isna().to_numpy(), b.isna().to_numpy()
    eq = (a.astype("object").to_numpy() == b.astype("object").to_numpy())
    return np.where(a_na | b_na, a_na & b_na, eq).astype(bool)


def compare_calls(live: pd.DataFrame, archive: pd.DataFrame,
                  columns: tuple[str, ...] = COMPARED_COLUMNS) -> Comparison:
    """Check calls captured live against the same servers' CDR archive, by ``call_id``.

    Each live call that has an ``end_time`` must have a CDR with equal ``columns``
    (times compared exactly: both sides come from the same millisecond texts).

    Parameters
    ----------
    live : pandas.DataFrame
        Calls captured live (``Capture.calls``).
    archive : pandas.DataFrame
        Calls parsed from the same servers' CDR files (:func:`recstats.read_archive`).
    columns : tuple of str, default ("site", "start_time", "end_time", "caller", "callee")
        The columns that must agree.

    Returns
    -------
    Comparison
        Counts, missing calls, mismatches (one row per call and column) and archive
        calls never seen live; ``str()`` is one line, notebooks show tables.

    Examples
    --------
    >>> from recstats import calls_frame
    >>> t = pd.Timestamp("2026-11-02 09:00", tz="UTC")
    >>> rec = {"call_id": "a", "site": "NY", "start_time": t, "caller": "1000",
    ...        "end_time": t + pd.Timedelta("1min")}
    >>> live = calls_frame([rec, {**rec, "call_id": "b", "end_time": pd.NaT}])
    >>> arch = calls_frame([{**rec, "caller": "1001"}])
    >>> c = compare_calls(live, arch)
    >>> c.live_ended, c.matched, c.differences, c.mismatches["column"].tolist()
    (1, 0, 1, ['caller'])
    """
    ended = live[live["end_time"].notna()].drop_duplicates("call_id", keep="last")
    arch = archive.drop_duplicates("call_id", keep="last").set_index("call_id")
    known = ended["call_id"].isin(arch.index).to_numpy()
    missing = ended.loc[~known, ["call_id", *[c for c in columns if c in ended]]]
    both = ended[known].set_index("call_id")
    other = arch.loc[both.index]
    bad_rows: list[pd.DataFrame] = []
    differs = np.zeros(len(both), dtype=bool)
    for column in columns:
        if column not in both.columns and column not in other.columns:
            continue
        mine = both[column] if column in both.columns else pd.Series(pd.NA, index=both.index)
        theirs = other[column] if column in other.columns else pd.Series(pd.NA,
                                                                         index=both.index)
        if isinstance(mine.dtype, pd.CategoricalDtype):
            mine = mine.astype("str")
        if isinstance(theirs.dtype, pd.CategoricalDtype):
            theirs = theirs.astype("str")
        same = _same(mine, theirs)
        differs |= ~same
        if (~same).any():
            bad_rows.append(pd.DataFrame({
                "call_id": both.index[~same], "column": column,
                "live": mine[~same].astype("str").to_numpy(),
                "archive": theirs[~same].astype("str").to_numpy()}))
    mismatches = (pd.concat(bad_rows, ignore_index=True) if bad_rows else
                  pd.DataFrame({"call_id": pd.Series(dtype="str"),
                                "column": pd.Series(dtype="str"),
                                "live": pd.Series(dtype="str"),
                                "archive": pd.Series(dtype="str")}))
    if len(ended):
        lo, hi = ended["end_time"].min(), ended["end_time"].max()
        window = archive["end_time"].between(lo, hi) & ~archive["call_id"].isin(live["call_id"])
        archive_only = archive.loc[window, ["call_id", *[c for c in columns if c in archive]]]
    else:
        archive_only = archive.iloc[:0][["call_id"]]
    return Comparison(live_calls=int(live["call_id"].nunique()), live_ended=len(ended),
                      archive_calls=len(arch), matched=int((~differs).sum()),
                      missing=missing.reset_index(drop=True),
                      mismatches=mismatches,
                      archive_only=archive_only.reset_index(drop=True))
