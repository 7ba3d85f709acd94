"""Calibrating the env's error curve ``eps(s) = eps_inf + a s^-b`` on a real diffusion sampler.

``aigc-edge calibrate`` (see ``--help`` and ``docs/model.md``, "Measured error curves")
samples a local diffusers pipeline at a list of step counts, measures a Frechet distance to a reference
set with bootstrap intervals, times the seconds per step, fits the curve and writes a spec the config
accepts as it is.  ``--train`` makes the shipped digits model (:mod:`aigc_edge_env.calibrate.digits`).

Needs the ``calibrate`` extra (``pip install 'aigc-edge-env[calibrate]'``: diffusers, torch, scikit-learn,
matplotlib).  Nothing in the core imports this package; importing it imports only numpy and scipy
(:mod:`.fit`, :mod:`.metrics`), and torch and diffusers load when a sampler does.
"""

from aigc_edge_env.calibrate.fit import PowerLawFit, curve_spec, fit_convex_table, fit_power_law
from aigc_edge_env.calibrate.metrics import bootstrap_interval, frechet_distance

__all__ = ["PowerLawFit", "bootstrap_interval", "curve_spec", "fit_convex_table", "fit_power_law",
           "frechet_distance"]
