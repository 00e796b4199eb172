"""Reading a test's drops from NFLOG until the kernel has been quiet for a while."""

from __future__ import annotations

import time

from policyctl.enforcer.drops import AddressBook, Drop, attribute
from policyctl.enforcer.nflog import NflogReader


def drain(readers: list[NflogReader], book: AddressBook, *, quiet: float) -> list[Drop]:
    """Every logged packet of ``readers``, attributed with ``book``, until none arrived for
    ``quiet`` seconds (logging is asynchronous: a fixed wait would race a busy machine)."""
    drops: list[Drop] = []
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < quiet:
        arrived = [p for r in readers for p in r.read(0.1)]
        if arrived:
            quiet_since = time.monotonic()
        drops.extend(d for p in arrived if (d := attribute(p, book, now=time.time())) is not None)
    return drops
