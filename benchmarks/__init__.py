"""Benchmarks that print numbers (installed as ``aigc_edge_env.benchmarks``; run them with
``aigc-edge bench --help``): env steps per second, the slot solvers' time and quality, the learned
agents' score and throughput, the per-user formulation's ceiling."""

from __future__ import annotations

if __name__ != "aigc_edge_env.benchmarks":  # the repository's top-level folder, imported by its own name
    raise ImportError(f"the benchmarks/ folder is installed as aigc_edge_env.benchmarks: import "
                      f"aigc_edge_env.benchmarks, not {__name__} (it would load a second copy of every module)")
