"""Where a long capture's old rows go: Parquet parts in a folder, or nowhere.

:class:`Spill` moves what :meth:`recstats._live.Tables.take_old` hands it to numbered
Parquet parts (``events-000001.parquet``, ``calls-000001.parquet``...) in a folder of
its own, or counts and drops it; :meth:`Spill.read` puts the parts and the rows still
in memory back together as one table, equal to the one a capture that kept everything
in memory would show.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._typed_tables import SEQ

__all__ = ["Spill", "parse_keep"]


def parse_keep(keep) -> float | None:
    """A horizon given as seconds, a ``pandas.Timedelta`` (or ``datetime.timedelta``)
    or its text (``"90s"``, ``"1h"``) -> seconds; ``None`` stays ``None``.

    >>> parse_keep("1h"), parse_keep(90), parse_keep(None)
    (3600.0, 90.0, None)
    """
    if keep is None:
        return None
    if isinstance(keep, bool):
        raise TypeError(f"keep must be a duration, not {keep!r}")
    try:
        seconds = float(keep) if isinstance(keep, (int, float)) \
            else pd.Timedelta(keep).total_seconds()
    except (TypeError, ValueError):
        raise ValueError(f"keep must be seconds or a duration such as '1h', not {keep!r}") \
            from None
    if not seconds > 0:
        raise ValueError(f"keep must be a positive duration, not {keep!r}")
    return seconds


class Spill:
    """Old rows of one capture: written to Parquet parts in ``folder`` (a new
    ``spill-*`` folder made inside it; ``None``: inside the system's temporary folder,
    removed with this object) or, with ``drop=True``, counted and forgotten."""

    def __init__(self, folder: str | os.PathLike | None, drop: bool = False):
        self.drop = drop
        self.folder: Path | None = None
        if not drop:
            if folder is not None:
                Path(folder).mkdir(parents=True, exist_ok=True)
            self.folder = Path(tempfile.mkdtemp(prefix="spill-" if folder else
                                                "recstats-spill-", dir=folder))
            if folder is None:
                self._cleanup = weakref.finalize(self, shutil.rmtree, self.folder,
                                                 ignore_errors=True)
        self.parts = 0
        #: server -> rows [events spilled, calls spilled, events dropped, calls dropped]
        self.counts: dict[str, list[int]] = {}
        #: held while rows move out of memory, and while a table is read back
        self.moving = threading.Lock()

    def count(self, server: str) -> list[int]:
        """Rows of ``server`` [events spilled, calls spilled, events dropped, calls
        dropped]."""
        return list(self.counts.get(server, (0, 0, 0, 0)))

    def _count(self, events: pd.DataFrame, calls: pd.DataFrame, dropped: bool) -> None:
        for i, frame in enumerate((events, calls)):
            for server, n in frame["server"].value_counts(sort=False).items():
                self.counts.setdefault(str(server), [0, 0, 0, 0])[i + 2 * dropped] += n

    def put(self, events: pd.DataFrame, calls: pd.DataFrame) -> None:
        """Store (or drop) rows taken out of memory (call it holding :attr:`moving`).

        A part that cannot be written (e.g. a full disk) raises :class:`OSError`; its
        rows are then counted as dropped."""
        if not len(events) and not len(calls):
            return
        if self.drop or self.folder is None:
            self._count(events, calls, dropped=True)
            return
        self.parts += 1
        written = []
        try:
            for name, frame in (("events", events), ("calls", calls)):
                if len(frame):
                    path = self.folder / f"{name}-{self.parts:06d}.parquet"
                    frame.to_parquet(path.with_suffix(".tmp"), index=False)
                    written.append(path)
            for path in written:  # both parts or neither
                os.replace(path.with_suffix(".tmp"), path)
        except OSError:
            for path in written:
                path.with_suffix(".tmp").unlink(missing_ok=True)
            self._count(events, calls, dropped=True)
            raise
        self._count(events, calls, dropped=False)

    def read(self, name: str, memory: pd.DataFrame) -> pd.DataFrame:
        """The ``events`` or ``calls`` table: the parts, then the rows in ``memory``
        (a calls frame with :data:`SEQ`), in the order the whole table would have."""
        parts = [] if self.folder is None else \
            [pd.read_parquet(p) for p in sorted(self.folder.glob(f"{name}-*.parquet"))]
        if not parts:
            return memory.drop(columns=[SEQ], errors="ignore")
        frame = _concat([*parts, memory])
        if name == "events":
            order = np.lexsort((_codes(frame["server"]),
                                frame["received_at"].to_numpy("int64")))
        else:
            starts = frame["start_time"].to_numpy("int64")
            starts = np.where(frame["start_time"].isna().to_numpy(),
                              np.iinfo(np.int64).max, starts)
            order = np.lexsort((frame[SEQ].to_numpy(), _codes(frame["server"]), starts))
            frame = frame.drop(columns=[SEQ])
        return frame.take(order).reset_index(drop=True)


def _codes(column: pd.Series) -> np.ndarray:
    """Ranks of a categorical column's values by label (its categories are sorted)."""
    return column.cat.codes.to_numpy()


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Frames of one table -> one frame with the last one's columns and dtypes: a
    column a part lacks is all-null there; label columns get the sorted union of the
    labels used, as one frame built from all the rows would have."""
    last = frames[-1]
    columns = {}
    for name, dtype in last.dtypes.items():
        if isinstance(dtype, pd.CategoricalDtype):
            pieces: list[Any] = [f[name].astype(object).to_numpy() if name in f
                      else np.full(len(f), None, dtype=object) for f in frames]
            values = np.concatenate(pieces)
            used = sorted({v for v in values if isinstance(v, str)})
            columns[name] = pd.Categorical(values, dtype=pd.CategoricalDtype(
                pd.Index(used, dtype="str" if used else object)))
        else:
            pieces = [f[name].astype(dtype) if name in f
                      else pd.Series(pd.array([None] * len(f), dtype=dtype)) for f in frames]
            columns[name] = pd.concat(pieces, ignore_index=True).array
    return pd.DataFrame(columns)
