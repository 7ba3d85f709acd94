"""The policy names every command accepts: :func:`make_policy` and the name grammar.

* ``<solver>``: a slot solver of :data:`~aigc_edge_env.baselines.SOLVERS` (:class:`~.base.SolverPolicy`);
* ``<solver>+price<λ>``: the solver with a shadow price ``λ`` per joule of device energy for
  every user (:class:`~.pricing.ShadowPricePolicy`); scored with the true costs;
* ``<solver>+price<λ>(1-t/H)``: the same with a price ``λ (1 - t/H)`` that decays to 0 at the horizon;
* ``lyapunov``, ``lyapunov(V=<V>,theta=<θ>)``, ``<solver>+lyapunov(...)``: drift-plus-penalty
  with a perturbed virtual battery queue (:class:`~.pricing.LyapunovPolicy`), per-user prices
  ``max(θ - battery, 0) / V``; bare ``lyapunov`` takes :data:`~.pricing.LYAPUNOV_DEFAULTS` (tuned on
  training seeds) and ``exact``;
* ``mpc``, ``mpc(every=<k>,slots=<m>)``: ``exact`` under the prices of the hindsight dual of one
  sampled future, re-planned every ``k`` slots on ``m`` sampled slots (:mod:`aigc_edge_env.policies.mpc`);
  bare ``mpc`` takes its tuned defaults;
* ``pretrained``: the policy shipped with the package for the env it acts in (resolved at its first
  action from the env's id and config, refused where it does not fit: :mod:`aigc_edge_env.policies.pretrained`);
* ``torch:PATH``: a per-user torch network saved by a training script, played greedily
  (:mod:`aigc_edge_env.policies.torch_module`; needs torch);
* ``quantised:PATH``: the same network through DROO's order-preserving quantisation (the cheapest of a few
  offload sets in the order of the network's preference for the edge, valued by the env's cost:
  :mod:`aigc_edge_env.policies.quantisation`);
* ``packed:PATH``: the same network filling the edge: the most users in the order of its preference for the
  edge whose steps fit the edge's step capacity, the others on their devices (no valuation; the same module).
* ``rllib:PATH``: an RLlib checkpoint's per-user module played greedily (the ``rllib`` extra:
  :class:`aigc_edge_env.agents.rllib.RLlibPolicy`).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from aigc_edge_env.baselines import SOLVERS
from aigc_edge_env.policies.base import Policy, SolverPolicy
from aigc_edge_env.policies.mpc import MPC_DEFAULTS, MPCPolicy, mpc_policy_name
from aigc_edge_env.policies.pretrained import PRETRAINED, PretrainedPolicy
from aigc_edge_env.policies.pricing import LYAPUNOV_DEFAULTS, LyapunovPolicy, ShadowPricePolicy
from aigc_edge_env.policies.torch_module import NETWORK_PREFIXES, load_torch_policy

__all__ = ["RLLIB_PREFIX", "lyapunov_policy_name", "make_policy", "mpc_policy_name", "policy_files",
           "price_policy_name"]

#: ``rllib:PATH``: a saved RLlib module (the ``rllib`` extra; :class:`aigc_edge_env.agents.rllib.RLlibPolicy`).
RLLIB_PREFIX = "rllib:"

_PRICED = re.compile(r"^(?P<solver>\w+)\+price(?P<price>[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)(?P<decaying>\(1-t/H\))?$")
_NUMBER = r"[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?"
_LYAPUNOV = re.compile(rf"^(?:(?P<solver>\w+)\+)?lyapunov(?:\(V=(?P<v>{_NUMBER}),theta=(?P<theta>{_NUMBER})\))?$")
_MPC = re.compile(r"^mpc(?:\(every=(?P<every>[0-9]+),slots=(?P<slots>[0-9]+)\))?$")


def price_policy_name(solver: str, price: float, decaying: bool = False) -> str:
    """The :func:`make_policy` name of ``solver`` under a (decaying) shadow price (``price`` written
    as ``{price:g}`` where that reads back as the same float, else in full)."""
    return f"{solver}+price{_number(price)}" + ("(1-t/H)" if decaying else "")


def lyapunov_policy_name(v_j2_per_cost: float, perturbation_j: float, solver: str = "exact") -> str:
    """The :func:`make_policy` name of ``lyapunov`` with the given ``V`` and ``theta``."""
    prefix = "" if solver == "exact" else f"{solver}+"
    return f"{prefix}lyapunov(V={_number(v_j2_per_cost)},theta={_number(perturbation_j)})"


def _number(value: float) -> str:
    text = f"{value:g}"
    return text if float(text) == value else repr(value)


def policy_files(name: str) -> list[Path]:
    """The files or folders a named policy reads besides the package (``torch:PATH``, ``quantised:PATH``,
    ``packed:PATH``, ``rllib:PATH``)."""
    for prefix in (*NETWORK_PREFIXES, RLLIB_PREFIX):
        if name.startswith(prefix):
            return [Path(name.removeprefix(prefix))]
    return []


def make_policy(name: str) -> Policy:
    """The policy called ``name`` (the grammar in the module docstring).

    Raises ``ValueError`` naming the accepted forms for any other name.
    """
    if not isinstance(name, str):
        raise ValueError(f"a policy name must be a string (the grammar of aigc_edge_env.policies.registry), "
                         f"got {name!r}")
    if name in SOLVERS:
        return SolverPolicy(SOLVERS[name], name)
    if name == PRETRAINED:
        return PretrainedPolicy()
    for prefix, decode in NETWORK_PREFIXES.items():
        if name.startswith(prefix):
            if not name.removeprefix(prefix):
                raise ValueError(f"{prefix}PATH: the path of the saved network is missing after {prefix!r}")
            return load_torch_policy(name.removeprefix(prefix), decode=decode)
    if name.startswith(RLLIB_PREFIX):  # the agents package plays it (the rllib extra), named by module path
        return importlib.import_module("aigc_edge_env.agents.rllib").RLlibPolicy(name.removeprefix(RLLIB_PREFIX))
    match = _PRICED.match(name)
    if match and match["solver"] in SOLVERS:
        return ShadowPricePolicy(SOLVERS[match["solver"]], float(match["price"]), bool(match["decaying"]), name)
    match = _LYAPUNOV.match(name)
    if match and (match["solver"] or "exact") in SOLVERS:
        v = float(match["v"]) if match["v"] else LYAPUNOV_DEFAULTS["V"]
        theta = float(match["theta"]) if match["theta"] else LYAPUNOV_DEFAULTS["theta"]
        return LyapunovPolicy(SOLVERS[match["solver"] or "exact"], v, theta, name)
    match = _MPC.match(name)
    if match:
        every = int(match["every"]) if match["every"] else MPC_DEFAULTS["every"]
        slots = int(match["slots"]) if match["slots"] else MPC_DEFAULTS["slots"]
        return MPCPolicy(every, slots, name=name)
    raise ValueError(f"unknown policy {name!r}: accepted a solver of {list(SOLVERS)}, "
                     "'<solver>+price<λ>', '<solver>+price<λ>(1-t/H)', 'lyapunov', 'lyapunov(V=<V>,theta=<θ>)', "
                     "'mpc', 'mpc(every=<k>,slots=<m>)', 'torch:PATH', 'quantised:PATH', 'packed:PATH', "
                     "'rllib:PATH' or "
                     "'pretrained'")

