"""The C allocator's settings for the service process (glibc ``mallopt``).

kafka-python reads each fetch response into buffers of up to megabytes, then the records out of
them. With glibc's defaults, freeing such buffers hands the top of the heap (or the whole mapping)
back to the kernel, and the next fetch faults the same memory in again, a zeroed page at a time: in
(b) of ``privwatch bench``, 350-500 minor page faults per 1,000 events, about 4% of the service's
CPU. With a fixed mmap threshold (glibc's largest, 32 MiB; setting it also stops glibc from moving
it as it goes) those buffers come from the heap, and with a trim threshold of ``keep_bytes`` that
much free memory stays at the heap's top for the next fetch: 7-17 faults per 1,000 events, and
19.1 against 20.0 us of CPU per event (medians of four alternating runs each). The price is up to
``keep_bytes`` of resident memory the process no longer needs.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

#: glibc's ``mallopt`` parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: glibc's largest mmap threshold on 64-bit systems (``DEFAULT_MMAP_THRESHOLD_MAX``)
MMAP_THRESHOLD = 32 << 20


def keep_free_heap(keep_bytes: int) -> bool:
    """Keep up to ``keep_bytes`` of freed heap memory for reuse, and allocations under 32 MiB on the
    heap; process-wide. False (and nothing changed) when ``keep_bytes`` is 0 or the C library is not
    glibc (``mallopt`` missing or refusing, as musl's does).
    """
    if keep_bytes <= 0:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    done = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, keep_bytes) == 1
    if not done:
        log.warning("allocator settings not applied (not glibc?): freed buffers go back to the kernel")
    return done
