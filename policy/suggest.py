"""Suggestions ("did you mean") for every name a user types and policyctl looks up.

One rule everywhere, so a typo gets the same kind of answer whether it names a command, a pod,
a namespace, a node, a policy or a named port: the closest known names by ``difflib``
similarity, at most three, and never the whole list of names (a cluster has thousands).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

CUTOFF = 0.5
"""Below it two names share too little to be a typo of each other. Lower than ``difflib``'s
0.6 so that short names (``n3`` for ``n1``: 0.5) still get an answer; :data:`MARGIN` keeps
the answer to the best few."""
MARGIN = 0.1
"""Names this much less similar than the best are left out: ``shop/paymnts`` is a typo of
``shop/payments``, not of ``shop/cart``, which only shares the namespace."""


_LOOKALIKES = str.maketrans("lio", "110")
"""Characters that look alike in many fonts: ``node-l`` and ``node-I`` are ``node-1``."""


def closest(name: str, known: Iterable[str], *, limit: int = 3) -> tuple[str, ...]:
    """The known names nearest to ``name``, best first: those that differ from it only by
    characters that look alike, else by similarity. A bare name is also compared with the last
    part of each ``NAMESPACE/NAME``, so ``frontnd`` finds ``shop/frontend``."""
    candidates = set(known)
    plain = name.lower().translate(_LOOKALIKES)
    alike = sorted(c for c in candidates if c != name and c.lower().translate(_LOOKALIKES) == plain)
    if alike:
        return tuple(alike[:limit])
    scored: dict[str, float] = {}
    for candidate in candidates:
        score = difflib.SequenceMatcher(None, name, candidate).ratio()
        if "/" not in name and "/" in candidate:
            score = max(score, difflib.SequenceMatcher(None, name, candidate.rpartition("/")[2]).ratio())
        if score >= CUTOFF:
            scored[candidate] = score
    best = max(scored.values(), default=0.0)
    ranked = sorted((c for c, s in scored.items() if s >= best - MARGIN), key=lambda c: (-scored[c], len(c), c))
    return tuple(ranked[:limit])


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``"; did you mean 'a' or 'b'?"`` to append to an error, or ``""`` when nothing is close."""
    found = closest(name, known)
    return f"; did you mean {' or '.join(repr(f) for f in found)}?" if found else ""


def bare_names_in_unknown_namespace(ends: Iterable[str], namespace: str, known: Iterable[str]) -> str | None:
    """Why a name given without ``NAMESPACE/`` cannot be found when ``-n`` names a namespace the
    input does not have (a typo in ``-n`` would otherwise read as a typo in every name), or None."""
    names = set(known)
    bare = [end for end in ends if "/" not in end and not _is_address(end)]
    if not bare or namespace in names:
        return None
    return f"namespace {namespace!r} (-n) is not in the input{did_you_mean(namespace, names)}"


def _is_address(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        return False
    return True
