"""Evaluation of policies, one module per job.

* :mod:`.runner`: the episode runner and its metrics (every policy on the same seeded slots);
* :mod:`.slots`: slots as optimisation problems and every named solver on them;
* :mod:`.statistics`: bootstrap intervals, the normalised score, the share of the gap closed ``G``,
  relative gaps;
* :mod:`.writers`: Markdown tables, CSV and JSON files.

The policies themselves are in :mod:`aigc_edge_env.policies`.  This ``__init__`` imports nothing
(no import cycle with the slot solvers; ``tests/test_structure.py`` checks there is none).
"""
