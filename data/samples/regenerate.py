"""Regenerate the committed sample archive and odd files (deterministic, seeded).

    .venv/bin/python data/samples/regenerate.py

Writes ``archive/`` (generated with :func:`recstats.sim.samples.generate_archive`) and
``odd/`` (:func:`recstats.sim.samples.write_odd_cases`) beside this script.
"""

import shutil
from pathlib import Path

from recstats.sim.samples import generate_archive, write_odd_cases

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    for folder in ("archive", "odd"):
        shutil.rmtree(HERE / folder, ignore_errors=True)
    truth = generate_archive(HERE / "archive", calls=400, days=5, seed=2026)
    write_odd_cases(HERE / "odd")
    print(f"{len(truth)} calls, sites {sorted(truth.site.unique())}, "
          f"{truth.start_time.min()} .. {truth.start_time.max()}")
