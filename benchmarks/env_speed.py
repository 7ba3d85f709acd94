"""Speed of the AIGC edge env next to Gymnasium's CartPole-v1, measured in one run.

Prints steps per second of

* the single env (``gym.make``, so with Gymnasium's default wrappers, as users get it) for
  ``AIGCEdge-v0`` and ``AIGCEdge-Large-v0``, and of ``CartPole-v1`` made the same way
  (raw ``env.unwrapped`` figures too);
* the batched vector env (``gym.make_vec(..., vectorization_mode="vector_entry_point")``),
  as steps per second and user decisions per second (``num_envs * n_users * steps/s``);

then the two target ratios: one ``AIGCEdge-v0`` step as a multiple of one CartPole step
(target <= 5x) and the vector env's user decisions per second (target >= 1,000,000).

Actions are sampled before timing, so sampling is not timed; resets at episode ends are
(they are part of running episodes, for CartPole too).  numpy/BLAS are pinned to one
thread (set before numpy is imported), and ``--cpu`` optionally pins the process to one
core, so the figures are single-core figures.

Usage: ``aigc-edge bench env [--seconds 2] [--rounds 4] [--n-envs 256] [--cpu 0]``
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import platform  # noqa: E402
import time  # noqa: E402

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import aigc_edge_env  # noqa: E402,F401  (registers the ids)
from aigc_edge_env.cli.common import ArgumentParser, count, positive_float  # noqa: E402
from aigc_edge_env.config import make_config  # noqa: E402

CARTPOLE_RATIO_TARGET = 5.0
DECISIONS_TARGET = 1_000_000


def time_single(env, actions: list, seconds: float) -> float:
    """Steps per second of ``env`` cycling through pre-sampled ``actions`` for ``seconds``."""
    env.reset(seed=0)
    step, reset = env.step, env.reset
    for action in actions[:50]:  # warm-up
        _, _, terminated, truncated, _ = step(action)
        if terminated or truncated:
            reset()
    steps = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for action in actions:
            _, _, terminated, truncated, _ = step(action)
            if terminated or truncated:
                reset()
        steps += len(actions)
        now = time.perf_counter()
        if now >= deadline:
            return steps / (now - start)


def time_vector(envs, actions: list, seconds: float) -> float:
    """Batched steps per second (each step advances every sub-env); autoresets are included."""
    envs.reset(seed=0)
    for action in actions[:5]:
        envs.step(action)
    steps = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for action in actions:
            envs.step(action)
        steps += len(actions)
        now = time.perf_counter()
        if now >= deadline:
            return steps / (now - start)


def env_step_cpu_s(steps: int = 10_000, rounds: int = 3) -> float:
    """CPU seconds (``time.process_time``) of one ``AIGCEdge-v0`` step via ``gym.make``, best of ``rounds``
    runs of ``steps`` pre-sampled actions (resets included): the unit the solver benchmarks report in."""
    env = gym.make("AIGCEdge-v0")
    actions = presample(env.action_space, 1000, 0)
    env.reset(seed=0)
    best = float("inf")
    for _ in range(rounds):
        start, done = time.process_time(), 0
        while done < steps:
            for action in actions:
                _, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    env.reset()
            done += len(actions)
        best = min(best, (time.process_time() - start) / done)
    env.close()
    return best


def presample(space, count: int, seed: int) -> list:
    space.seed(seed)
    return [space.sample() for _ in range(count)]


def main(argv: list[str] | None = None, prog: str = "aigc-edge bench env") -> int:
    parser = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=positive_float, default=2.0, help="seconds per measurement (default 2)")
    parser.add_argument("--rounds", type=count, default=4,
                        help="split each measurement into this many interleaved rounds and keep the best "
                             "(robust to other load on the machine; default 4)")
    parser.add_argument("--n-envs", type=count, default=256, help="sub-envs of the vector env (default 256)")
    parser.add_argument("--cpu", type=int, default=None, help="pin the process to this CPU core")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        allowed = sorted(os.sched_getaffinity(0))
        if args.cpu not in allowed:
            parser.error(f"--cpu {args.cpu}: accepted a CPU this process may run on, {allowed}")
        os.sched_setaffinity(0, {args.cpu})

    print(f"python {platform.python_version()}, numpy {np.__version__}, gymnasium {gym.__version__}, "
          f"{args.seconds:g} s per measurement in {args.rounds} interleaved rounds (best kept), "
          f"numpy pinned to 1 thread" + (f", process pinned to CPU {args.cpu}" if args.cpu is not None else ""))

    # name -> (unit multiplier, function(seconds) -> steps/s); every env is built once, up front.
    measurements = {}
    for env_id, raw in (("CartPole-v1", False), ("AIGCEdge-v0", False), ("AIGCEdge-Large-v0", False),
                        ("CartPole-v1", True), ("AIGCEdge-v0", True)):
        env = gym.make(env_id)
        env = env.unwrapped if raw else env
        actions = presample(env.action_space, 1000, 0)
        name = f"{env_id} single{' (unwrapped)' if raw else ''}"
        measurements[name] = (1, lambda sec, env=env, actions=actions: time_single(env, actions, sec))
    for env_id in ("AIGCEdge-v0", "AIGCEdge-Large-v0"):
        envs = gym.make_vec(env_id, num_envs=args.n_envs, vectorization_mode="vector_entry_point")
        actions = presample(envs.action_space, 64, 0)
        decisions_per_step = args.n_envs * make_config(env_id).n_users
        measurements[f"{env_id} vector x{args.n_envs}"] = (
            decisions_per_step, lambda sec, envs=envs, actions=actions: time_vector(envs, actions, sec))

    best = dict.fromkeys(measurements, 0.0)
    for _ in range(args.rounds):
        for name, (_, measure) in measurements.items():
            best[name] = max(best[name], measure(args.seconds / args.rounds))

    width = max(map(len, best))
    for name, rate in best.items():
        print(f"  {name:<{width}}  {rate:>12,.0f} steps/s")
        multiplier = measurements[name][0]
        if multiplier > 1:
            print(f"  {'':<{width}}  {rate * multiplier:>12,.0f} user decisions/s")

    ratio = best["CartPole-v1 single"] / best["AIGCEdge-v0 single"]
    raw_ratio = best["CartPole-v1 single (unwrapped)"] / best["AIGCEdge-v0 single (unwrapped)"]
    print(f"AIGCEdge-v0 step = {ratio:.1f} x CartPole-v1 step via gym.make "
          f"(target <= {CARTPOLE_RATIO_TARGET:g}x: {'met' if ratio <= CARTPOLE_RATIO_TARGET else 'MISSED'}); "
          f"unwrapped: {raw_ratio:.1f}x")
    decisions = {}
    for env_id in ("AIGCEdge-v0", "AIGCEdge-Large-v0"):
        name = f"{env_id} vector x{args.n_envs}"
        decisions[env_id] = best[name] * measurements[name][0]
    print(f"AIGCEdge-v0 vector env: {decisions['AIGCEdge-v0']:,.0f} user decisions/s (target >= "
          f"{DECISIONS_TARGET:,}: {'met' if decisions['AIGCEdge-v0'] >= DECISIONS_TARGET else 'MISSED'}); "
          f"AIGCEdge-Large-v0: {decisions['AIGCEdge-Large-v0']:,.0f}")
    return 0


if __name__ == "__main__":  # run as a script by its old name
    raise SystemExit("this module runs as `aigc-edge bench env` (see `aigc-edge bench env --help`)")
