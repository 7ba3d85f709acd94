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
would raise it again) and stops the command with :class:`TaskFailed`, one line naming the task
and the worker's error.  A cluster address that answers nothing (a wrong ``--address``, a dead
``RAY_ADDRESS``, the stale cluster file ``--address auto`` reads after its head stopped) is
refused within :data:`CONNECT_TIMEOUT_S` seconds with :class:`ClusterUnreachable`, naming the
address, where it came from, and how to start a cluster.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import Any

from aigc_edge_env.progress import progress_bar

__all__ = ["CONNECT_TIMEOUT_S", "MAX_RETRIES", "ClusterUnreachable", "TaskFailed", "as_completed", "check_address",
           "check_workers", "init_ray", "parallel_map"]

#: Times a task whose worker died is run again.
MAX_RETRIES = 3
#: Seconds to wait for a cluster's head to answer before giving up.
CONNECT_TIMEOUT_S = 30.0


class ClusterUnreachable(ConnectionError):
    """No Ray cluster answers at the address given (the message names it, its source and how to start one)."""


class TaskFailed(RuntimeError):
    """A task raised an exception on a Ray worker (the message: which task, the worker's error in one line)."""


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


_START_HINT = ("start one with `ray start --head --port=6379` (then --address auto or HOST:6379), or leave "
               "--address and RAY_ADDRESS unset for a local instance")


def _cluster_file() -> str:
    """Where ``ray start`` leaves the address of the cluster it started (read by ``--address auto``)."""
    base = os.environ.get("RAY_TMPDIR") or (os.environ.get("TMPDIR") if os.name == "posix" else None) or "/tmp"
    return os.path.join(base, "ray", "ray_current_cluster")


def check_address(address: str | None, timeout_s: float = CONNECT_TIMEOUT_S) -> str | None:
    """The cluster address to connect to (``None``: none given, a local instance), once its head answers.

    ``address`` or else ``$RAY_ADDRESS``; ``auto`` is read from the cluster file of ``ray start``.
    Raises :class:`ClusterUnreachable` when nothing answers there within ``timeout_s`` seconds.
    """
    given = _address(address)
    if given is None or given == "local":
        return None
    source = "--address" if address else "RAY_ADDRESS"
    resolved = given
    if given == "auto":
        path = _cluster_file()
        try:
            with open(path) as handle:
                resolved = handle.read().strip()
        except OSError:
            raise ClusterUnreachable(f"{source} auto: no Ray cluster was started on this machine (no {path}); "
                                     f"{_START_HINT}") from None
        source = f"{source} auto, from {path}"
    host, _, port = resolved.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ClusterUnreachable(f"{source}: {resolved!r} is not a Ray address (auto, HOST:PORT or ray://HOST:PORT)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ClusterUnreachable(f"no Ray cluster at {resolved} ({source}): {reason} within {timeout_s:g} s; "
                                 f"{_START_HINT}") from None
    return resolved


def init_ray(address: str | None = None, workers: int | None = None) -> None:
    """Connect to the cluster at ``address`` (or ``$RAY_ADDRESS``), or start a local instance with ``workers`` CPUs
    (default all; its workers share this machine's files and import them as this process does);
    nothing when Ray is already initialised in this process.  :class:`ClusterUnreachable` when the
    address answers nothing (:func:`check_address`)."""
    ray = _import_ray()

    check_workers(workers)
    if ray.is_initialized():
        return
    resolved = check_address(address)
    # ray.init replaces the SIGTERM handler with sys.exit(15): keep this program's (aigc-edge's: one line, 143)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if in_main_thread else None
    if resolved is None:
        ray.init(address="local", num_cpus=workers, include_dashboard=False)  # not a `ray start` cluster
    else:
        ray.init(address=resolved)
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


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
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:
                        cause = exc.cause
                        if isinstance(cause, (KeyboardInterrupt, ray.exceptions.TaskCancelledError)):
                            raise KeyboardInterrupt from None  # Ctrl-C reached the task first
                        message = " ".join(f"{type(cause).__name__}: {cause}".split())
                        raise TaskFailed(f"{desc or 'task'} {i + 1} of {len(tasks)} failed on a Ray worker: "
                                         f"{message}") from None
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
