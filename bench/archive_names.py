"""Benchmark: read_archive on archives whose files each carry many distinct field names.

Usage: ``python bench/archive_names.py [--files 200] [--names 500]``

Two archives are parsed in-process (``workers=1``), each timed best of three:

* ``names``  -- ``--files`` CDRs, each with ``--names`` extra fields named only in it
  (``files x names`` distinct names: the flood that took 65 s and 1.4 GB for 200 x 500);
* ``names4`` -- the same with four times the files;
* ``plain``  -- ``--files`` CDRs of the same byte size with one padding field (the
  baseline: same bytes to read and parse, few names).

Printed: seconds per file for each, and the ratios ``names4/names`` (per file: 1.0 when
the work per file does not grow with the archive) and ``names/plain``; then one JSON line
(``{"bench": "archive_names", ...}``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import recstats as rs


def _head(i: int) -> str:
    return (f"<id>c{i:06d}</id><location>NY</location>"
            "<start_time>2026-11-02 09:00:00</start_time>")


def write(folder: Path, files: int, names: int, distinct: bool) -> None:
    folder.mkdir(parents=True)
    for i in range(files):
        if distinct:
            body = "".join(f"<n{i:06d}_{j:04d}>{j}</n{i:06d}_{j:04d}>" for j in range(names))
        else:
            body = "<pad>" + "x" * (names * 22) + "</pad>"
        (folder / f"c{i:06d}.xml").write_text(f"<verbacdr>{_head(i)}{body}</verbacdr>")


def per_file(folder: Path, files: int) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        calls = rs.read_archive(folder, progress=False, workers=1)
        best = min(best, time.perf_counter() - start)
        assert len(calls) == files, calls.attrs["errors"][:3]
    return best / files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--names", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write(root / "names", args.files, args.names, distinct=True)
        write(root / "names4", 4 * args.files, args.names, distinct=True)
        write(root / "plain", args.files, args.names, distinct=False)
        result = {"names": per_file(root / "names", args.files),
                  "names4": per_file(root / "names4", 4 * args.files),
                  "plain": per_file(root / "plain", args.files)}
    result["names4/names"] = result["names4"] / result["names"]
    result["names/plain"] = result["names"] / result["plain"]
    for key, value in result.items():
        print(f"{key:>14} {value * 1e3:10.3f} ms/file" if "/" not in key
              else f"{key:>14} {value:10.2f}")
    print(json.dumps({"bench": "archive_names", "files": args.files, "names": args.names,
                      **{k: round(v, 6) for k, v in result.items()}}))


if __name__ == "__main__":
    main()
