"""``sca_kkt`` against its own decisions on a fixed corpus, recorded before its numpy speed-up.

The corpus is every fifteenth slot of :func:`test_exact_corpus.corpus` (sizes 3 to 100 users; the
default slot, tight deadlines, a capacity-bound edge, a wide edge, small batteries; no prices,
battery-like prices, prices that move requests to the edge, prices far above battery prices).
``data/sca_kkt_corpus.json`` holds, per slot and in corpus order, the objective and the decision
of ``sca_kkt`` with and without its final local search (``search=False``: the relaxation, the
rounding and the repair alone), recorded by running this file as a script
(``python tests/test_sca_kkt_corpus.py --record``; only meaningful with the solver the data is
meant to pin).  A speed-up of the method must leave both unchanged.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from test_exact_corpus import corpus, decision_code, objective

from aigc_edge_env import SlotProblem, evaluate_decision
from aigc_edge_env.baselines import sca_kkt

DATA = Path(__file__).parent / "data" / "sca_kkt_corpus.json"
#: Every ``STRIDE``-th slot of the exact solver's corpus.
STRIDE = 15


def slots() -> list[tuple[str, SlotProblem]]:
    return corpus()[::STRIDE]


def run(problem: SlotProblem, search: bool) -> tuple[float, str]:
    decision = sca_kkt.solve(problem, search=search)
    return objective(problem, evaluate_decision(problem, decision)), decision_code(problem, decision.offload,
                                                                                   decision.steps)


def record() -> None:
    """Write ``DATA`` from the installed ``sca_kkt``."""
    rows = [[*run(problem, True), *run(problem, False)] for _, problem in slots()]
    DATA.write_text(json.dumps({"solver": "sca_kkt", "slots": rows}, separators=(",", ":")) + "\n")


@pytest.fixture(scope="module")
def recorded() -> list[list]:
    return json.loads(DATA.read_text())["slots"]


def same(result: tuple[float, str], objective_value: float, code: str) -> bool:
    """The recorded decision, or (a tie) one with the recorded objective to 1e-9 relative."""
    return result[1] == code or abs(result[0] - objective_value) <= 1e-9 * max(1.0, abs(objective_value))


def test_sca_kkt_reproduces_the_recorded_decisions(recorded) -> None:
    cases = slots()
    assert len(cases) == len(recorded) >= 140
    assert {problem.n_users for _, problem in cases} >= {3, 100}
    assert any(problem.has_energy_prices for _, problem in cases)
    for (label, problem), (searched, searched_code, rounded, rounded_code) in zip(cases, recorded, strict=True):
        assert same(run(problem, False), rounded, rounded_code), label  # relaxation, rounding, repair
        assert same(run(problem, True), searched, searched_code), label  # ... then the local search


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        raise SystemExit("usage: python tests/test_sca_kkt_corpus.py --record")
    record()
