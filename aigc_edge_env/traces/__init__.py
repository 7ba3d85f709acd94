"""Measured throughput traces for the trace-driven channel (``channel_model="trace"``, docs/model.md).

The package ships one public trace, the 5Gophers 1.0 throughput table (CC BY 4.0; ``LICENSE`` and
``ATTRIBUTION.md`` beside this file): one-second TCP throughput samples (Mbit/s) of phones on three US
carriers' commercial 5G networks (Narayanan et al., WWW 2020).  A *trace* here is the single-connection
runs of one (carrier, server) setting joined in run order (about 600 s each): a phone app moves a
request's prompt or image over one TCP connection, so the 8-connection runs are left out.

A trace set (:data:`TRACE_NAMES`) is every trace of the table or those of one carrier.  Its samples are
held as one flat array; a *position* is an index into it, and :meth:`TraceSet.advance` moves positions
``k`` samples on, wrapping around within each trace.
"""

from __future__ import annotations

import csv
import functools
import importlib.resources
from dataclasses import dataclass

import numpy as np

__all__ = ["TRACE_FILE", "TRACE_NAMES", "TraceSet", "load_trace_set"]

#: The vendored table (package data).
TRACE_FILE = "5gophers_throughput.csv"
#: Trace set name -> the carriers it holds.
TRACE_NAMES: dict[str, tuple[str, ...]] = {
    "5gophers": ("SPRINT", "TMOBILE", "VERIZON"),
    "5gophers-sprint": ("SPRINT",),
    "5gophers-tmobile": ("TMOBILE",),
    "5gophers-verizon": ("VERIZON",),
}


@dataclass(frozen=True)
class TraceSet:
    """Traces as one flat array of throughput samples (Mbit/s) with each sample's trace bounds."""

    name: str
    throughput_mbps: np.ndarray  # (samples,), the traces one after another
    starts: np.ndarray  # (traces,) index of each trace's first sample
    lengths: np.ndarray  # (traces,) samples per trace
    labels: tuple[str, ...]  # "CARRIER/server" per trace

    @property
    def n_traces(self) -> int:
        return int(self.starts.size)

    def positions(self, trace: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """Flat positions of sample ``offset`` (< the trace's length) of trace ``trace``."""
        return self.starts[trace] + offset

    def advance(self, position: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """Positions ``steps`` samples after ``position`` (broadcast), wrapping around within each trace."""
        trace = np.searchsorted(self.starts, position, side="right") - 1
        start, length = self.starts[trace], self.lengths[trace]
        return start + (position - start + steps) % length


@functools.cache
def load_trace_set(name: str) -> TraceSet:
    """The traces of set ``name`` (one of :data:`TRACE_NAMES`), read once from the package data."""
    if name not in TRACE_NAMES:
        raise ValueError(f"trace_name {name!r} is unknown: accepted {sorted(TRACE_NAMES)}")
    runs: dict[tuple[str, str], list[tuple[int, int, float]]] = {}
    with importlib.resources.files(__name__).joinpath(TRACE_FILE).open(encoding="utf-8") as file:
        for row in csv.DictReader(file):
            if row["carrier"] in TRACE_NAMES[name] and row["num_tcp_conn"] == "1":
                runs.setdefault((row["carrier"], row["server_location"]), []).append(
                    (int(row["run_num"]), int(row["seq_num"]), float(row["throughput_mbps"])))
    traces = [[sample for _, _, sample in sorted(samples)] for _, samples in sorted(runs.items())]
    lengths = np.array([len(trace) for trace in traces])
    return TraceSet(name=name, throughput_mbps=np.concatenate([np.asarray(t) for t in traces]),
                    starts=np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths=lengths,
                    labels=tuple(f"{carrier}/{server}" for carrier, server in sorted(runs)))
