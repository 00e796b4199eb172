"""Long reads that give way: the periodic read-back's steps stop as soon as an event waits.

The agent reads its table back in full every ``--max-interval`` (``Enforcer.verify``), and at
100k pods the steps of that read take up to a second each: listing the kernel's table, reading
the listing. An event that arrives meanwhile must not wait for them, so each step asks the
caller's ``interrupted()`` while it runs and, told so, stops with :class:`GaveWay`; nothing has
been sent then, and the read-back is tried again after the event's sync.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable


class GaveWay(Exception):
    """A read-back step abandoned half-way because the caller was told to give way."""


#: How often a listing that may give way asks whether it must.
GIVE_WAY_POLL_SECONDS = 0.002


def listing_giving_way(
    command: list[str], interrupted: Callable[[], bool], *, poll: float = GIVE_WAY_POLL_SECONDS
) -> tuple[int, bytes, str]:
    """Run ``command`` (an ``nft -j list ...``) as a child process, asking ``interrupted()``
    every ``poll`` seconds while it runs; when it says so, the child is killed and reaped and
    :class:`GaveWay` raised. A listing of a large table is one long C call in libnftables
    (at 100k pods about a second), which no thread can give up half-way; a process can be
    stopped at any moment, and it holds no lock of ours meanwhile. Returns the exit status,
    standard output and standard error."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        while True:
            try:
                out, err = child.communicate(timeout=poll)
            except subprocess.TimeoutExpired:
                if interrupted():
                    child.kill()
                    child.communicate()
                    raise GaveWay(" ".join(command)) from None
                continue
            return child.returncode, out, err.decode(errors="replace")


def give_way_if(interrupted: Callable[[], bool] | None) -> None:
    """Raise :class:`GaveWay` when there is an ``interrupted`` and it says so (loops over
    elements call this every thousand elements or so: asking costs more than reading one)."""
    if interrupted is not None and interrupted():
        raise GaveWay("reading")
