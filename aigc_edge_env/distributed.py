"""Parallel and distributed work on Ray: the one engine of the experiments, the agents benchmark
and the hyperparameter search (needs the ``distributed`` extra; ``import aigc_edge_env`` never
imports this module nor Ray).

Where the work runs (:func:`init_ray`):

* no ``--address`` and no ``RAY_ADDRESS``: a local Ray instance started by the command, with
  ``--workers`` CPUs (default: all of this machine's);
* ``--address auto``: the cluster started on this machine with ``ray start --head`` (or joined
  with ``ray start --address``); ``--address HOST:PORT`` a cluster's head (its GCS port), and
  ``--address ray://HOST:PORT`` a remote cluster through Ray Client; ``RAY_ADDRESS`` is the same
  as ``--address``;
* ``--workers 1`` without an address: the tasks run one after another in this process, without
  Ray (the serial reference, and a debugger works).

Every task declares one CPU (``num_cpus=1``; Ray then sets ``OMP_NUM_THREADS=1`` in its worker,
so torch and BLAS use one thread), so a node runs as many tasks at once as it has CPUs;
``--workers N`` also caps the tasks in flight at ``N`` on a cluster.  The package must be
installed on every node (the same version, e.g. ``pip install '.[all]'`` from the same
checkout): the tasks' code is the installed ``aigc_edge_env`` (the experiments included).  Tasks
return their results to the command, which writes every file where it was started, so results are
the same files whatever the number of workers or nodes; each task's randomness comes from its own
seeds, so they are also the same numbers.

Faults: a task whose worker process or node dies is run again (``max_retries``, default
:data:`MAX_RETRIES`); an exception raised by the task itself is not retried (the same seeds
would raise it again) and stops the command with that task's error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any

from aigc_edge_env.progress import progress_bar

__all__ = ["MAX_RETRIES", "as_completed", "check_workers", "init_ray", "parallel_map"]

#: Times a task whose worker died is run again.
MAX_RETRIES = 3


def check_workers(workers: int | None) -> None:
    """Raise ``ValueError`` for a ``--workers`` below 1."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"--workers must be an integer >= 1 (or omitted: every CPU), got {workers!r}")


def _address(address: str | None) -> str | None:
    return address or os.environ.get("RAY_ADDRESS") or None


def serial(workers: int | None, address: str | None) -> bool:
    """True when the tasks run in this process: ``--workers 1`` and no cluster address."""
    return workers == 1 and _address(address) is None


def _import_ray() -> ModuleType:
    """``ray``, or an ``ImportError`` saying how to get it or to run without it."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError("parallel runs need Ray: pip install 'aigc-edge-env[distributed]' (or run the "
                          "experiments one after another with --workers 1)") from exc
    return ray


def init_ray(address: str | None = None, workers: int | None = None) -> None:
    """Connect to the cluster at ``address`` (or ``$RAY_ADDRESS``), or start a local instance with ``workers`` CPUs
    (default all; its workers share this machine's files and import them as this process does);
    nothing when Ray is already initialised in this process."""
    ray = _import_ray()

    check_workers(workers)
    if ray.is_initialized():
        return
    address = _address(address)
    if address is None:
        ray.init(address="local", num_cpus=workers, include_dashboard=False)  # not a `ray start` cluster
    else:
        ray.init(address=address)


def as_completed(
    function: Callable[[Any], Any], tasks: Sequence[Any], workers: int | None = None, address: str | None = None,
    progress: bool = True, desc: str = "", unit: str = "task", own_process: bool = False,
    max_retries: int = MAX_RETRIES,
) -> Iterator[tuple[int, Any]]:
    """``(i, function(tasks[i]))`` for every task, as each finishes, with a progress bar over the tasks.

    ``function`` and its tasks must pickle (a module-level function of the installed package).
    ``own_process``: every task runs in a fresh worker process (its peak memory and global
    state are its own), through Ray even with ``--workers 1``.  Runs at most ``workers`` tasks at
    once (default: as many as the cluster's CPUs allow).
    """
    check_workers(workers)
    if not tasks:
        return
    with progress_bar(len(tasks), desc=desc, unit=unit, enabled=progress) as bar:
        if serial(workers, address) and not own_process:
            for i, task in enumerate(tasks):
                result = function(task)
                bar.update()
                yield i, result
            return
        ray = _import_ray()
        init_ray(address, workers)
        remote = ray.remote(num_cpus=1, max_retries=max_retries, max_calls=1 if own_process else 0)(function)
        limit = len(tasks) if workers is None else workers
        pending: dict[Any, int] = {}
        submitted = 0
        try:
            while submitted < len(tasks) or pending:
                while submitted < len(tasks) and len(pending) < limit:
                    pending[remote.remote(tasks[submitted])] = submitted
                    submitted += 1
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    i = pending.pop(ref)
                    result = ray.get(ref)
                    bar.update()
                    yield i, result
        finally:
            for ref in pending:  # an error or an interruption: nothing left running
                ray.cancel(ref, force=True)


def parallel_map(function: Callable[[Any], Any], tasks: Sequence[Any], workers: int | None = None,
                 address: str | None = None, progress: bool = True, desc: str = "", unit: str = "task",
                 ) -> list[Any]:
    """``[function(task) for task in tasks]``, the tasks run as :func:`as_completed` runs them."""
    results: list[Any] = [None] * len(tasks)
    for i, result in as_completed(function, tasks, workers, address, progress, desc, unit):
        results[i] = result
    return results
