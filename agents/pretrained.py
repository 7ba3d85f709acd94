"""Playing a pretrained policy of kind ``sb3`` (:mod:`aigc_edge_env.policies.pretrained`): its model and
VecNormalize statistics as a :class:`~aigc_edge_env.agents.policies.ModelPolicy`, the card standing in for
the run's ``run.yml``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aigc_edge_env.agents.algorithms import ALGORITHMS
from aigc_edge_env.agents.policies import ModelPolicy
from aigc_edge_env.agents.runs import FINAL_MODEL, TrainedModel, load_normalizer, normalizer_path

__all__ = ["load_sb3"]


def load_sb3(folder: Path, card: Mapping[str, Any]) -> ModelPolicy:
    """The policy of the card's ``model.zip`` in ``folder`` (checked against the env by the card's config)."""
    model_path = folder / FINAL_MODEL
    model = ALGORITHMS[card["algo"]].cls.load(model_path, device="cpu")
    record = {"algo": card["algo"], "hyperparams": card["hyperparams"], "env_id": card["env_id"]}
    return ModelPolicy.from_trained(
        TrainedModel(model_path, folder, record, model, load_normalizer(normalizer_path(model_path))))
