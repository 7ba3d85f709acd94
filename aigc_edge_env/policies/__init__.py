"""Policies of the package, one module per job.

* :mod:`.base`: the :class:`~.base.Policy` protocol, :class:`~.base.SolverPolicy` (a slot solver
  per slot) and :class:`~.base.ReplayPolicy` (stored actions);
* :mod:`.pricing`: solvers under per-user energy prices set by a rule (shadow prices, Lyapunov
  drift-plus-penalty, a plan's prices per slot);
* :mod:`.mpc`: re-planning on sampled futures with the hindsight dual;
* :mod:`.registry`: :func:`~.registry.make_policy`, the names every command accepts.

The package's ``__init__`` imports nothing, so that the slot solvers' hindsight bound can use
the pricing rules without an import cycle (``tests/test_structure.py`` checks there is none).
"""
