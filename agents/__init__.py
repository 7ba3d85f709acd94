"""Learned agents (installed as aigc_edge_env.agents).

PPO and MaskablePPO act on the env's joint ``MultiDiscrete`` slot action; DQN decides one
requesting user at a time through :class:`~aigc_edge_env.agents.wrappers.PerUserDecisionWrapper`.
``aigc-edge train``, ``aigc-edge evaluate``, ``aigc-edge tune`` and ``aigc-edge bench agents`` are the
command lines (:mod:`aigc_edge_env.cli`); the modules here do the work, one job each:

* :mod:`.algorithms`: the algorithms and what each needs from the env.
* :mod:`.hyperparameters`: zoo-style YAML hyperparameters (``hyperparams/<algo>.yml``) and CLI overrides.
* :mod:`.environments`, :mod:`.vec_env`, :mod:`.wrappers`: training envs (the SB3 adapter over the
  numpy-batched vector env, the per-user wrapper, VecNormalize).
* :mod:`.per_user_net`: the per-user (permutation-equivariant) actor-critic as a plain torch module, for
  any RL library (no SB3 import); :mod:`.networks`: SB3's ``PerUserPolicy`` built from it.
* :mod:`.training`, :mod:`.callbacks`, :mod:`.runs`: training into a run directory (TensorBoard cost
  components, periodic evaluation, checkpoints, resolved config and versions) and loading it back.
* :mod:`.tune`: the hyperparameter search on Ray Tune (``aigc-edge tune``).
* :mod:`.policies`: trained models as policies of the evaluation engine (:mod:`aigc_edge_env.evaluation.runner`,
  which plays them beside the solvers on common seeds); :mod:`.plots`: evaluation and learning-curve plots.
* :mod:`.mixture`: the per-user network on a mixture of user counts, by PPO (``--algo ppo_mixture``) or by
  imitation of ``exact`` (``--algo imitation_mixture``);
  :mod:`.example_flags`: the flags of the training examples (``examples/``).
"""

if __name__ != "aigc_edge_env.agents":  # the repository's top-level folder, imported by its own name
    raise ImportError(f"the agents/ folder is installed as aigc_edge_env.agents: import aigc_edge_env.agents, "
                      f"not {__name__} (it would load a second copy of every module)")
