"""AIGC edge offloading: a Gymnasium environment for diffusion-model requests at the edge.

Importing this package registers ``AIGCEdge-v0``, ``AIGCEdge-Battery-v0``, ``AIGCEdge-Large-v0`` and
``AIGCEdge-Measured-v0`` (idempotently), so ``gym.make("AIGCEdge-v0")`` works after
``import aigc_edge_env`` and ``gym.make("aigc_edge_env:AIGCEdge-v0")`` works anywhere.
"""

from aigc_edge_env.config import SCENARIOS, AIGCEdgeConfig, ConfigError, default_config, make_config
from aigc_edge_env.env import AIGCEdgeEnv, slot_info
from aigc_edge_env.error_curves import PowerLawErrorCurve, TabulatedErrorCurve
from aigc_edge_env.model import (
    PROBLEM_ARRAY_FIELDS,
    Decision,
    DropReason,
    OptionTable,
    SlotEvaluation,
    SlotProblem,
    evaluate_decision,
    option_grid,
    option_rows,
    option_table,
    serve,
)
from aigc_edge_env.registration import register_envs
from aigc_edge_env.sources import sources
from aigc_edge_env.vector_env import AIGCEdgeVectorEnv

__version__ = "0.5.1.dev0"

__all__ = [
    "AIGCEdgeConfig", "AIGCEdgeEnv", "AIGCEdgeVectorEnv", "ConfigError", "Decision", "DropReason",
    "OptionTable", "PROBLEM_ARRAY_FIELDS", "PowerLawErrorCurve", "SCENARIOS", "SlotEvaluation", "SlotProblem",
    "TabulatedErrorCurve", "default_config", "evaluate_decision", "make_config", "option_grid", "option_rows",
    "option_table", "register_envs", "serve", "slot_info", "sources",
]

register_envs()
