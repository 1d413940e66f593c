"""Reading the Parquet datasets :func:`recstats.ingest` writes (layout and manifest:
:mod:`recstats._dataset`): the manifest, partition pruning, and the calls table back.
"""

from __future__ import annotations

import json
import os

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from ._table import coerce_calls

__all__ = ["FORMAT", "MANIFEST", "NULL_PARTITION", "PARTITIONS", "dataset_parts",
           "read_calls", "read_fragment", "read_manifest", "read_parts"]

MANIFEST = "_manifest.parquet"
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
FORMAT = "recstats-dataset-1"
PARTITIONS = pa.schema([("site", pa.string()), ("date", pa.date32())])


def read_manifest(root: str) -> tuple[pd.DataFrame | None, dict]:
    """The manifest of the dataset at ``root`` and its metadata; ``(None, {})`` if none."""
    path = os.path.join(root, MANIFEST)
    if not os.path.exists(path):
        return None, {}
    table = pq.ParquetFile(path).read()  # one file: no dataset discovery
    meta = json.loads((table.schema.metadata or {}).get(b"recstats", b"{}"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{root} is not a recstats dataset (its {MANIFEST} has another "
                         "format); give an empty or new folder")
    return table.to_pandas(), meta


# --------------------------------------------------------------------------- reading


def dataset_parts(dataset: str | os.PathLike, *, sites=None, start=None, end=None
                  ) -> tuple[pads.Dataset, pads.Expression | None, dict]:
    """The data files that can hold calls of ``sites`` in ``[start, end)`` (pruned by
    partition, no other file is opened) as a pyarrow dataset with their unified schema,
    the row filter, and the dataset's ``source``, ``tz``, ``files`` and ``errors``."""
    root = os.fspath(dataset)
    manifest, meta = read_manifest(root) if os.path.isdir(root) else (None, {})
    if manifest is None:
        raise FileNotFoundError(f"no recstats dataset at {root} (no {MANIFEST}); "
                                "write one with recstats.ingest")
    tz = meta["tz"]
    condition = None
    if sites is not None:
        sites = [sites] if isinstance(sites, str) else [str(s) for s in sites]
        condition = pads.field("site").isin(sites)
    for bound, op in ((start, "ge"), (end, "lt")):
        if bound is None:
            continue
        moment = pd.Timestamp(bound)
        moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment
        # end is exclusive: an end at local midnight needs nothing of that day
        last = moment if op == "ge" else moment - pd.Timedelta(1, "us")
        local_day = last.tz_convert(tz).date()
        # the date partitions prune files; the start_time test is exact
        day_test = pads.field("date") >= local_day if op == "ge" else \
            pads.field("date") <= local_day
        time = pa.scalar(moment.tz_convert("UTC").as_unit("us").to_pydatetime(),
                         pa.timestamp("us", "UTC"))
        time_test = pads.field("start_time") >= time if op == "ge" else \
            pads.field("start_time") < time
        test = day_test & time_test
        condition = test if condition is None else condition & test
    files = [os.path.join(root, f) for f in sorted(set(manifest["part"].dropna()))]
    partitioning = pads.partitioning(PARTITIONS, flavor="hive")
    # a schema given: no file is opened to find one
    listed = pads.dataset(files, format="parquet", partition_base_dir=root,
                          partitioning=partitioning, schema=pa.unify_schemas(
                              [PARTITIONS, pa.schema([("start_time",
                                                        pa.timestamp("us", "UTC"))])]))
    chosen = [f.path for f in listed.get_fragments(filter=condition)]
    schema = pa.unify_schemas([*(pq.read_schema(f) for f in chosen), PARTITIONS],
                              promote_options="permissive")
    data = pads.dataset(chosen, schema=schema, format="parquet", partition_base_dir=root,
                        partitioning=partitioning)
    errors = manifest[manifest["outcome"] == "error"]
    info = {"source": meta["source"], "tz": tz, "files": len(manifest),
            "errors": [{"path": p, "error": r} for p, r in zip(errors["path"], errors["reason"])]}
    return data, condition, info


def read_fragment(path: str, root: str, schema: pa.Schema,
                  condition: pads.Expression | None) -> pa.Table:
    """The rows of one data file of :func:`dataset_parts` that ``condition`` keeps."""
    data = pads.dataset([path], schema=schema, format="parquet", partition_base_dir=root,
                        partitioning=pads.partitioning(PARTITIONS, flavor="hive"))
    return data.to_table(filter=condition)


def read_parts(table: pa.Table) -> pd.DataFrame:
    """Data-file rows (with their ``site``/``date`` partition columns) -> calls table,
    ordered as :func:`recstats.read_archive` orders it."""
    frame = table.drop_columns([c for c in ("date",) if c in table.column_names]) \
        .replace_schema_metadata(None).to_pandas()
    for column in ("media_path", "cdr_path"):  # a dataset without calls has no files
        if column not in frame.columns:
            frame[column] = pd.Series(pd.NA, index=frame.index, dtype="str")
    frame = coerce_calls(frame)
    if "end_unknown" not in frame.columns:  # a dataset without calls: as read_archive's
        at = frame.columns.get_loc("end_time")
        assert isinstance(at, int), "the calls table's column names are unique"
        frame.insert(at + 1, "end_unknown", frame["end_time"].isna())
    return frame.sort_values(["start_time", "call_id", "cdr_path"], kind="stable",
                             na_position="last").reset_index(drop=True)


def read_calls(dataset: str | os.PathLike, *, sites=None, start=None, end=None
               ) -> pd.DataFrame:
    """Read a dataset written by :func:`recstats.ingest` back as the calls table.

    Parameters
    ----------
    dataset : path
        The dataset folder.
    sites : str or list of str, optional
        Only these sites (partition pruning: other sites' files are not opened).
    start, end : timestamp-like, optional
        Only calls with ``start <= start_time < end`` (naive means UTC); only the date
        partitions that can hold them are read. Calls without a start time are left
        out as soon as either bound is given.

    Returns
    -------
    pandas.DataFrame
        The calls table with the dtypes and row order of :func:`recstats.read_archive`;
        for the whole dataset it equals ``read_archive`` of the archive's current files.
        ``attrs`` holds ``source``, ``tz``, ``files`` (CDR files in the manifest),
        ``parsed`` (rows returned), ``failed`` and ``errors`` (every parse error of the
        dataset, as ``{"path", "error"}`` dicts sorted by path, whatever the filters).

    Examples
    --------
    >>> import recstats as rs
    >>> calls = rs.read_calls("/tmp/calls-ds", sites=["NY-RECORDER"])  # doctest: +SKIP
    """
    data, condition, info = dataset_parts(dataset, sites=sites, start=start, end=end)
    calls = read_parts(data.to_table(filter=condition))
    calls.attrs = {"source": info["source"], "tz": info["tz"], "files": info["files"],
                   "parsed": len(calls), "failed": len(info["errors"]),
                   "errors": info["errors"]}
    return calls
