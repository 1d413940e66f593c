"""Test and demo infrastructure, beside the analysis: an embedded recording server.

* :class:`RecorderSimulator` speaks the recorder API over TCP (loopback by default) and
  writes a CDR archive, so every feature runs on a laptop without a real server;
* :mod:`recstats.sim.traffic` is the seeded traffic model it plays (office-hours and
  weekday/weekend patterns);
* :mod:`recstats.sim.samples` writes sample archives and the odd-file corpus.

>>> from recstats.sim import RecorderSimulator
>>> with RecorderSimulator(rate=2, speed=60, seed=1) as sim:   # doctest: +SKIP
...     print(sim.port)
"""

from ._simulator import RecorderSimulator

__all__ = ["RecorderSimulator"]
