"""Ship a trained run as the pretrained policy of its env id (``aigc_edge_env/pretrained/<env_id>/``).

    python tools/pretrained_card.py ship RUN_DIR
    aigc-edge evaluate --env ENV_ID --episodes 10 --seed 10000 --policies exact random pretrained --out DIR
    python tools/pretrained_card.py evaluation ENV_ID DIR/results.json --machine "2-core VM, idle"

``ship`` copies the run's model files (an SB3 run's ``model.zip`` and normaliser, a price network's
``.npz`` or a ``ppo_mixture`` run's ``policy.pt``) and writes ``card.json`` from the run's ``run.yml``
(command, hyperparameters, seed, versions, training slots and CPU time); ``evaluation`` folds the held-out
evaluation of the shipped policy into the card.  docs/pretrained.md describes the cards.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import shutil
from pathlib import Path
from typing import Any

import yaml

from aigc_edge_env.agents.runs import (
    FINAL_MODEL,
    IMITATION_MIXTURE_ALGO,
    MIXTURE_FILE,
    PPO_MIXTURE_ALGO,
    PRICE_NETWORK_ALGO,
    PRICE_NETWORK_FILE,
    RUN_RECORD,
    normalizer_path,
)
from aigc_edge_env.config import make_config
from aigc_edge_env.policies.pretrained import CARD, file_entry

ROOT = Path(__file__).resolve().parent.parent / "aigc_edge_env" / "pretrained"
KEYS = ("reward", "reward_low", "reward_high", "score", "score_low", "score_high", "gap_closed", "gap_closed_low",
        "gap_closed_high", "decision_ms")


def _sb3_fields(record: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    sessions = record["sessions"]
    if len(sessions) != 1:
        raise SystemExit(f"{run_dir}: {len(sessions)} training sessions; ship a run trained in one command")
    (session,) = sessions
    normalizer = normalizer_path(run_dir / FINAL_MODEL)
    return {"kind": "sb3", "algo": record["algo"],
            "files": [FINAL_MODEL] + ([normalizer.name] if normalizer.exists() else []),
            "command": shlex.join(session["command"]), "training_slots": session["total_timesteps"],
            "training_cpu_s": session["cpu_time_s"], "training_wall_s": session["wall_time_s"],
            "created": session["started"][:10]}


def _network_fields(record: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """A price network's or a ``ppo_mixture`` run's fields (trainers of their own: one network file)."""
    created = datetime.date.fromtimestamp((run_dir / RUN_RECORD).stat().st_mtime).isoformat()
    fields = {"algo": record["algo"], "command": shlex.join(record["command"]),
              "training_cpu_s": record["training_cpu_s"], "created": created}
    if record["algo"] == PPO_MIXTURE_ALGO:
        return {**fields, "kind": "torch", "files": [MIXTURE_FILE], "training_slots": record["training_slots"]}
    hp, horizon = record["hyperparams"], record["env_config"]["horizon_slots"]
    episodes = hp["episodes"] + hp["dagger_rounds"] * hp["dagger_episodes"]
    return {**fields, "kind": "price_network", "files": [PRICE_NETWORK_FILE], "training_slots": episodes * horizon,
            "steps": record["steps"]}


def ship(run_dir: Path) -> None:
    record = yaml.safe_load((run_dir / RUN_RECORD).read_text())
    if record["algo"] == IMITATION_MIXTURE_ALGO:  # a card of kind torch plays its network greedily
        raise SystemExit(f"{run_dir}: an {IMITATION_MIXTURE_ALGO} network is played by packed:PATH, and a card of "
                         "kind torch plays its network greedily: not shipped")
    fields = (_network_fields(record, run_dir) if record["algo"] in (PRICE_NETWORK_ALGO, PPO_MIXTURE_ALGO)
              else _sb3_fields(record, run_dir))
    out = ROOT / record["env_id"]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in fields["files"]:
        shutil.copyfile(run_dir / name, out / name)
    card = {"env_id": record["env_id"], **fields, "files": {name: file_entry(out / name) for name in fields["files"]},
            "config": make_config(record["env_id"], record["env_config"]).to_dict(),  # in full, this release's fields
            "package_version": record["versions"]["aigc-edge-env"],
            "versions": record["versions"], "hyperparams": record["hyperparams"],
            "hyperparam_overrides": record["hyperparam_overrides"],
            "seeds": {"training": record["seed"], "evaluation": None}, "evaluation": None}
    (out / CARD).write_text(json.dumps(card, indent=1) + "\n")


def evaluation(env_id: str, results: Path, machine: str) -> None:
    out = ROOT / env_id
    card = json.loads((out / CARD).read_text())
    data = json.loads(results.read_text())
    rows = {row["policy"]: {k: row[k] for k in KEYS if k in row} for row in data["summary"]}
    card["seeds"]["evaluation"] = data["seeds"]
    card["evaluation"] = {"command": shlex.join(data["command"]), "confidence": data["confidence"],
                          "machine": machine, "summary": rows,
                          "episode_rewards": {name: episodes["reward"] for name, episodes in data["episodes"].items()}}
    (out / CARD).write_text(json.dumps(card, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    sub.add_parser("ship").add_argument("run_dir", type=Path)
    ev = sub.add_parser("evaluation")
    ev.add_argument("env_id")
    ev.add_argument("results", type=Path)
    ev.add_argument("--machine", required=True)
    args = parser.parse_args()
    if args.step == "ship":
        ship(args.run_dir)
    else:
        evaluation(args.env_id, args.results, args.machine)


if __name__ == "__main__":
    main()
