"""The calls table of an archive as a file: its error entries as a frame, and Parquet
that keeps ``attrs`` (counts, errors, the window).

Both are re-exported by :mod:`recstats.archive`, where users find them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa

__all__ = ["archive_errors", "write_parquet"]


def archive_errors(calls: pd.DataFrame) -> pd.DataFrame:
    """The files :func:`recstats.read_archive` could not parse, as a frame (``path``, ``error``).

    Parameters
    ----------
    calls : DataFrame
        A table from :func:`recstats.read_archive` (or read back from its Parquet file).

    Returns
    -------
    DataFrame
        One row per file: ``path`` and ``error`` (one line saying why).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame(); df.attrs["errors"] = [{"path": "a.xml", "error": "empty"}]
    >>> archive_errors(df)
        path  error
    0  a.xml  empty
    """
    errors = calls.attrs.get("errors", [])
    return pd.DataFrame({"path": pd.Series([e["path"] for e in errors], dtype="str"),
                         "error": pd.Series([e["error"] for e in errors], dtype="str")})


def write_parquet(calls: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a calls table to Parquet, keeping ``calls.attrs`` (errors, counts).

    ``pandas.read_parquet(path)`` gives back an equal frame, attrs included; the file is
    written to a temporary name and renamed, so a crash never leaves half a file. Only a
    regular file or a new path is replaced (a symlink's target, keeping the link); an
    empty path, a folder, a FIFO or a device raises
    :class:`recstats._output.OutputPathError` (a ``ValueError``) before any work.

    Parameters
    ----------
    calls : DataFrame
        A calls table.
    path : str or os.PathLike
        The Parquet file to write.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import recstats as rs, pandas as pd
    >>> calls = rs.calls_frame([rs.read_cdr(b"<verbacdr><id>a</id></verbacdr>")])
    >>> p = write_parquet(calls, "/tmp/recstats-doctest.parquet")  # doctest: +SKIP
    >>> pd.read_parquet(p).call_id.tolist()  # doctest: +SKIP
    ['a']
    """
    import pyarrow.parquet as pq

    from ._output import check_output, replacing

    if not isinstance(calls, pd.DataFrame):
        raise TypeError(f"calls must be a DataFrame, not {type(calls).__name__}")
    check_output(path)  # before the work: a FIFO or a folder is refused at once
    table = pa.Table.from_pandas(calls)
    # a category column without any value gets a null/float-typed dictionary, which reads
    # back as object/float: give it string values so it reads back as a category
    for i, column in enumerate(table.columns):
        if pa.types.is_dictionary(column.type) and column.null_count == len(column) \
                and not pa.types.is_string(column.type.value_type):
            kind = pa.dictionary(column.type.index_type, pa.large_string())
            table = table.set_column(i, table.field(i).with_type(kind), column.cast(kind))
    metadata = dict(table.schema.metadata or {})
    metadata[b"PANDAS_ATTRS"] = json.dumps(calls.attrs, default=str).encode()
    table = table.replace_schema_metadata(metadata)
    with replacing(path) as temp:
        pq.write_table(table, temp)
    return Path(path)

