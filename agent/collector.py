"""Keeping Python's cyclic garbage collector off the event -> kernel path.

An event reaches the kernel in a few milliseconds, but the collector runs whenever enough
container objects were allocated, and an event's snapshot, compiler step and delta allocate
that many: a collection of the young generations then lands inside the sync (1-5 ms measured
at 10k pods, a full collection ~80 ms). Two measures, both for the agent's long-running
process:

* :func:`paused` holds automatic collection off for the length of one sync; whatever is due
  runs right after it, when the kernel already holds the new ruleset. Garbage without cycles
  is freed by reference counting as always, so memory grows by at most one sync's cycles.
* :func:`freeze_survivors` moves everything alive after the first sync (the snapshot, the
  compiler's state: they live as long as the process) out of the collector's generations
  (``gc.freeze``), so later full collections walk only what events create.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused() -> Iterator[None]:
    """Automatic collection off inside the block (restored as it was, also on error)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def freeze_survivors() -> None:
    """Collect once, then exempt every object still alive from future collections."""
    gc.collect()
    gc.freeze()
