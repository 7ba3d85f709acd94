"""A process-wide tweak of glibc's allocator for the single env's chunk temporaries."""

from __future__ import annotations

import numpy as np

__all__ = ["keep_heap_for"]

_kept_bytes = 0  # the largest block freed so far by keep_heap_for in this process


def keep_heap_for(n_bytes: int) -> None:
    """Allocate and free one block of ``n_bytes``, once per process and size, so glibc keeps temporaries.

    Each chunk's :func:`~aigc_edge_env.model.option_grid` makes a few MB of short-lived
    temporaries, each just under glibc's initial mmap threshold (128 KiB), so they come
    from the heap; glibc then returns the freed top of the heap to the OS (trim threshold
    128 KiB) and the next chunk faults every page in again, which doubled a chunk's cost
    in a process that had allocated little else.  Freeing one mmapped block raises glibc's
    mmap and trim thresholds to fit it (its documented dynamic threshold, which any program
    freeing a large array triggers), and the temporaries are reused in place.  The
    thresholds only grow, so a block no larger than one already freed does nothing and is
    skipped.  Elsewhere than glibc: a harmless allocation.
    """
    global _kept_bytes
    if n_bytes > _kept_bytes:
        np.empty(n_bytes // 8)  # allocated and freed at once
        _kept_bytes = n_bytes
