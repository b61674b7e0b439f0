"""The C heap of a decoding worker: keep freed memory for the next image instead of returning it.

OpenCV's SIFT and ORB allocate a few megabytes of image pyramid for every image and free them
again. glibc's ``malloc`` gives freed memory at the top of its heap back to the system as soon as
more than 128 KiB of it is free (its trim threshold), so the next image asks the kernel for fresh
pages again and pays a page fault for each. Whether that happens depends on what the process did
before (which libraries it loaded first, in which order): with ``cv2`` imported before ``torch``
it does, and the lesion method's features of an image take longer (``benchmarks/bench_heap.py``
measures both, in one process and in decoding workers).

:func:`keep_freed_heap` raises the trim and ``mmap`` thresholds of the calling process. hamkit
calls it only in the decoding processes it starts for keypoint methods, never in the user's own
process.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["keep_freed_heap"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_heap(trim_bytes: int = 64 << 20, mmap_bytes: int = 32 << 20) -> bool:
    """Keep up to ``trim_bytes`` of freed heap in this process, and serve allocations below
    ``mmap_bytes`` from the heap (glibc's ``mallopt``), so that a buffer freed after one image
    is reused for the next one.

    Args:
        trim_bytes: Free memory at the top of the heap that is kept rather than returned.
        mmap_bytes: Allocations at least this large get their own mapping (glibc allows at
            most 32 MiB on 64-bit systems).

    Returns:
        ``True`` where both were set (Linux with glibc), ``False`` elsewhere (nothing changed).

    Examples:
        >>> isinstance(keep_freed_heap(), bool)
        True
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - a C library without mallopt (musl)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_TRIM_THRESHOLD, int(trim_bytes))) and bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_bytes)))
