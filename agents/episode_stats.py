"""Per-episode cost components, aggregated from the env's per-slot ``info``.

The env puts every component of a slot into ``info`` (:func:`aigc_edge_env.slot_info`);
this module turns a sequence of such slot infos into one row per episode, the unit that
training logs (TensorBoard) and evaluation (confidence intervals over episodes) report.

Episode metrics (:data:`EPISODE_METRICS`):

* ``reward``: sum of the env's rewards (``-reward_scale * cost``), passed in by the caller.
* ``cost``, ``time_s`` (s), ``energy_j`` (J), ``utility``, ``n_dropped``: sums over the slots.
* ``mean_error``: average error per served request over the whole episode
  (slot means weighted by the slot's ``n_served``).
* ``offload_share``: requests served at the edge over all requests of the episode.
"""

from __future__ import annotations

from typing import Mapping

__all__ = ["COMPONENTS", "EPISODE_METRICS", "EpisodeAccumulator"]

#: Slot-info entries that add up over an episode.
_SUMMED = ("cost", "time_s", "energy_j", "utility", "n_dropped", "n_requests", "n_served", "n_offloaded")
#: Cost components reported per episode (all but the reward).
COMPONENTS = ("cost", "time_s", "energy_j", "mean_error", "utility", "n_dropped", "offload_share")
#: Everything reported per episode, reward first.
EPISODE_METRICS = ("reward",) + COMPONENTS


class EpisodeAccumulator:
    """Adds up slot infos of one episode; :meth:`result` gives the episode's metrics."""

    def __init__(self) -> None:
        self._sums = dict.fromkeys(_SUMMED, 0.0)
        self._error_sum = 0.0  # sum over served requests of their error
        self.n_slots = 0

    def add(self, info: Mapping[str, float]) -> None:
        """Add one slot's ``info`` (the env's per-slot component dict)."""
        for name in _SUMMED:
            self._sums[name] += float(info[name])
        self._error_sum += float(info["mean_error"]) * float(info["n_served"])
        self.n_slots += 1

    def result(self, reward: float) -> dict[str, float]:
        """The episode's :data:`EPISODE_METRICS`, given its total ``reward``."""
        s = self._sums
        return {
            "reward": float(reward),
            "cost": s["cost"],
            "time_s": s["time_s"],
            "energy_j": s["energy_j"],
            "mean_error": self._error_sum / s["n_served"] if s["n_served"] else 0.0,
            "utility": s["utility"],
            "n_dropped": s["n_dropped"],
            "offload_share": s["n_offloaded"] / s["n_requests"] if s["n_requests"] else 0.0,
        }
