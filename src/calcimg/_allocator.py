"""The C allocator of calcimg's own processes (workers and commands): freed large arrays kept for reuse."""

from __future__ import annotations

import ctypes
import sys

#: glibc's mallopt parameters, and the thresholds a calcimg worker sets: a film's full-size arrays (64 MiB for a float
#: 4096^2 image, 256 MiB at 8192^2) stay in the heap when freed and are reused by the next step or item.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_WORKER_MMAP_THRESHOLD = 512 * 1024 * 1024
_WORKER_TRIM_THRESHOLD = 1024 * 1024 * 1024


def keep_large_arrays_in_heap() -> bool:
    """Let this process reuse the memory of freed large arrays instead of returning it to the system (glibc only);
    True when done. Meant for calcimg's own worker processes and commands, not for a library caller's process.

    glibc serves arrays above its mmap threshold (at most 32 MiB by its own rule) with a fresh ``mmap`` and unmaps
    them when freed, so every full-size array of a large film faults its pages in again: on a 3500 x 4300 film
    about a tenth of ``segment_image``'s time (README, speed). A Dask nanny makes it worse: it starts workers with
    ``MALLOC_TRIM_THRESHOLD_=65536``, which also pins the mmap threshold at 128 KiB (docs/batch.md). Raising both
    thresholds (:data:`_WORKER_MMAP_THRESHOLD`, :data:`_WORKER_TRIM_THRESHOLD`) keeps the freed arrays for reuse;
    the process then holds on to the memory of its largest film between items.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, ...)
        return False
    mmap_ok = libc.mallopt(_M_MMAP_THRESHOLD, _WORKER_MMAP_THRESHOLD)
    return bool(mmap_ok and libc.mallopt(_M_TRIM_THRESHOLD, _WORKER_TRIM_THRESHOLD))
