"""Undocumented CDR fields: which stay columns of the calls table and which go into its
``extras`` column, for one chunk of documents (:func:`fold_rare_fields`) or across the
chunks of a read (:func:`limit_columns`).

A CDR may carry any field name. The documented names are always columns; the first
:data:`DEFAULT_MAX_COLUMNS` other names (by name) become columns too, and every other
field goes, per row, into ``extras`` as JSON text, so that a flood of odd names cannot
make a table of thousands of columns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from ._schema import (
    ARCHIVE_COLUMNS,
    BOOLEAN_FIELDS,
    CALL_COLUMNS,
    ENUMS,
    RENAMES,
    SHADOWED,
    TIME_FIELDS,
)
from .cdr import COMPUTED_COLUMNS

__all__ = ["DEFAULT_MAX_COLUMNS", "DOCUMENTED_FIELDS", "EXTRAS", "fold_rare_fields",
           "limit_columns"]

#: Distinct undocumented field names kept as columns of their own; the others go into
#: the ``extras`` column (see :func:`recstats._table.calls_from_fields`).
DEFAULT_MAX_COLUMNS = 300
#: The column holding the other fields of a row, as JSON text of {name: value}.
EXTRAS = "extras"
#: Field names that are always columns: the schema's and PROTOCOL.md's documented ones.
DOCUMENTED_FIELDS = frozenset({
    "id", "ccdr_id", "duration", *TIME_FIELDS, *RENAMES, *SHADOWED, *ENUMS,
    *BOOLEAN_FIELDS, "native_id", "native_call_id", "owner_eid", "location_eid",
    "cisco_guid", "ms_conversation_id", "source_device", "source_eth", "source_ip",
    "destination_ip", "signaling_id", "recorder_service_id", "platform_call_id",
    "recorded_party", "meeting_id", "shared_item.id", "shared_item.publisher",
    "shared_item.title", "destination_device", "media_file",
    *(target for target, _ in ENUMS.values()), *COMPUTED_COLUMNS, *ARCHIVE_COLUMNS,
})


def fold_rare_fields(rows: list[Mapping[str, str]], max_columns: int
                     ) -> tuple[list[Mapping[str, str]], list[str | None] | None]:
    """Rows without the fields past the first ``max_columns`` undocumented names, and
    those fields as JSON text per row (None when every field stays a column)."""
    names: set[str] = set()
    for row in rows:
        names.update(row)
    free = names - DOCUMENTED_FIELDS
    if len(free) <= max_columns and EXTRAS not in free:
        return rows, None
    folded = free - set(sorted(free - {EXTRAS})[:max_columns])
    kept_rows: list[Mapping[str, str]] = []
    extras: list[str | None] = []
    for row in rows:
        if folded.isdisjoint(row):
            kept_rows.append(row)
            extras.append(None)
            continue
        kept_rows.append({k: v for k, v in row.items() if k not in folded})
        extras.append(_dump({k: v for k, v in row.items() if k in folded}))
    return kept_rows, extras


def _dump(fields: Mapping[str, Any]) -> str:
    return json.dumps(fields, ensure_ascii=False, sort_keys=True)


def limit_columns(tables: list[pa.Table], max_columns: int = DEFAULT_MAX_COLUMNS
                  ) -> list[pa.Table]:
    """Chunks of one calls table (Arrow) with the same undocumented columns in all.

    The first ``max_columns`` undocumented names by name, across every chunk and the
    chunks' ``extras``, stay columns; every other field goes into (or comes back out of)
    ``extras``, as :func:`fold_rare_fields` does for one chunk. The result does not
    depend on how the documents were split into chunks. Linear in the chunks' cells.

    >>> one = pa.table({"call_id": ["a"], "x1": ["1"], "x2": ["2"]})
    >>> [t.to_pylist() for t in limit_columns([one], max_columns=1)]
    [[{'call_id': 'a', 'x1': '1', 'extras': '{"x2": "2"}'}]]
    """
    free = set().union(*(_free(t) for t in tables))
    with_extras = [t for t in tables if EXTRAS in t.column_names]
    if not with_extras and len(free) <= max_columns:
        return tables
    inside: list[list[dict[str, Any] | None]] = []
    for table in tables:
        texts = table.column(EXTRAS).to_pylist() if EXTRAS in table.column_names else []
        inside.append([json.loads(text) if text else None for text in texts])
    for dicts in inside:
        for fields in dicts:
            if fields:
                free.update(fields)
    kept = set(sorted(free - {EXTRAS})[:max_columns])
    tables = [_refold(table, dicts, kept) for table, dicts in zip(tables, inside)]
    if all(t.column(EXTRAS).null_count == t.num_rows for t in tables
           if EXTRAS in t.column_names):  # every field is a column again
        tables = [t.drop_columns([EXTRAS]) if EXTRAS in t.column_names else t
                  for t in tables]
    return tables


def _free(table: pa.Table) -> set[str]:
    return set(table.column_names) - DOCUMENTED_FIELDS - set(CALL_COLUMNS) - {EXTRAS}


def _refold(table: pa.Table, dicts: list[dict[str, Any] | None], kept: set[str]
            ) -> pa.Table:
    fold = sorted(c for c in _free(table) if c not in kept)
    unfold = sorted({name for fields in dicts if fields for name in fields} & kept)
    if not fold and not unfold:
        return table
    n = table.num_rows
    dicts = dicts or [None] * n
    values = {c: table.column(c).to_pylist() for c in fold}
    back: dict[str, list[Any]] = {c: [None] * n for c in unfold}
    texts: list[str | None] = []
    for i in range(n):
        fields = dicts[i] or {}
        for name in fold:
            value = values[name][i]
            if value is not None:
                fields[name] = value
        for name in unfold:
            if name in fields:
                back[name][i] = fields.pop(name)
        texts.append(_dump(fields) if fields else None)
    table = table.drop_columns([*fold, *([EXTRAS] if EXTRAS in table.column_names else [])])
    for name in unfold:
        table = table.append_column(name, pa.array(back[name], type=pa.large_string()))
    return table.append_column(EXTRAS, pa.array(texts, type=pa.large_string()))
