"""Experiments of the paper's evaluation, reproduced and extended (installed as ``aigc_edge_env.experiments``;
run them with ``aigc-edge experiments --help``).

* :mod:`.sweep`: one-parameter sweeps of every solver; :mod:`.curves`: the optimum under each error curve;
* :mod:`.tradeoff`: the latency-energy-quality front of ``exact``;
* :mod:`.battery`: myopic solvers, planning rules, ``mpc`` and agents where batteries couple the slots;
* :mod:`.rules`: the battery rules' parameter grid on training seeds.
"""

from __future__ import annotations

if __name__ != "aigc_edge_env.experiments":  # the repository's top-level folder, imported by its own name
    raise ImportError(f"the experiments/ folder is installed as aigc_edge_env.experiments: import "
                      f"aigc_edge_env.experiments, not {__name__} (it would load a second copy of every module)")
