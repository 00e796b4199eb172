"""Element removals that decide no packet once the rest of their step is in force.

Every element of an allow set carries the address of the local pod it decides for (its local
field, :func:`~policyctl.compiler.elements.local_group`), and a packet reaches the allow sets
of a direction and family only through that direction's dispatch map of the family, keyed by
the same address: the dispatch map jumps to the pod's chain, the pod's chain to the shared
allow chain, the allow chain to the identity chains, and every lookup on the way is keyed by
the packet's local address (``docs/ruleset.md``, "Pod chains, allow chains, identity chains,
sets"). So an element whose local address has no dispatch entry after a step is looked up by
no packet: the elements of a deleted local pod, or of one that no policy isolates any more.
Their removal can follow the transaction that puts the step in force, which the agent does
(``Enforcer.apply_delta(later=...)``): the local pod deletes of the 10k bench leave 2 to 40 of
them (median 5, 31-40 in the twelve heaviest), among them the ipBlock sets' elements, the
dearest removals the kernel has (a concatenated interval set cuts each removed element's bits
out of its whole lookup table), and each costs the Python on the way to the kernel as much as
an element that decides.

The same holds for the identity chains a step removes (:func:`split_gone_identities`): a
packet reaches an identity chain only through its direction's peer map (or, in the marked
layout, the identity map's entry chain and the tree without marks), whose entries for it the
step removes, so the chain, its entry chain and its sets may go after the kernel has the step.

Only a NetworkPolicy-only ruleset is split (cluster policies add tier chains that this
argument does not cover); the removals of any other set, and every map entry, stay in the
step.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping
from dataclasses import replace

from policyctl.policy.model import Direction, Family, IPAddress

from .delta import RulesetDelta
from .elements import local_group
from .intervals import as_address
from .layout import SetLayout, marked_entry_chain_name, peer_chain_prefix
from .ruleset import Element


def split_unreachable(
    delta: RulesetDelta,
    layout_of: Callable[[str], SetLayout | None],
    dispatched: Mapping[tuple[Direction, Family], Container[IPAddress]],
) -> tuple[RulesetDelta, RulesetDelta]:
    """``delta`` as the part that decides packets and the element removals that decide none
    once that part is applied: those of allow sets (``layout_of`` gives their layout, None for
    any other set) whose local address is not among ``dispatched`` of the set's direction and
    family after the step. Applying the first and then the second equals applying ``delta``.
    The second is empty when nothing is unreachable, and the first is then ``delta`` itself."""
    now: list[tuple[str, tuple[Element, ...]]] = []
    later: list[tuple[str, tuple[Element, ...]]] = []
    for name, elements in delta.removed_elements:
        layout = layout_of(name)
        if layout is None:
            now.append((name, elements))
            continue
        guard = dispatched[(layout.direction, layout.family)]
        kept: list[Element] = []
        gone: list[Element] = []
        for element in elements:
            local = local_group(layout, element)
            unreachable = local.is_single and as_address(local.low, layout.family) not in guard
            (gone if unreachable else kept).append(element)
        if kept:
            now.append((name, tuple(kept)))
        if gone:
            later.append((name, tuple(gone)))
    if not later:
        return delta, RulesetDelta()
    return replace(delta, removed_elements=tuple(now)), RulesetDelta(removed_elements=tuple(later))


def split_gone_identities(delta: RulesetDelta) -> tuple[RulesetDelta, RulesetDelta]:
    """``delta`` as the part that decides packets and the removal of the identity chains it
    removes, with their entry chains (marked layout) and their sets: nothing reaches them
    once the first part is in force, since it removes every peer-map (or identity-map)
    entry that led to them, and the tree without marks keeps only rules that no address
    meets until the second part (``MarkedPeers.split_later``). Applying the first and then
    the second equals applying ``delta``.

    Why: the slowest local pod deletes of the 10k bench remove 4-5 identity chains and
    their entry chains on the way to the kernel, a merge of identities they alone told apart."""
    prefixes = tuple(peer_chain_prefix(d) for d in Direction)
    gone = [n for n in delta.removed_chains if n.startswith(prefixes)]
    if not gone:
        return delta, RulesetDelta()
    chains = set(gone) | {marked_entry_chain_name(n) for n in gone}
    owners = tuple(f"{n}-" for n in gone)
    sets = {n for n in delta.removed if n.startswith(owners)}
    chains &= set(delta.removed_chains)
    return (
        replace(
            delta,
            removed_chains=tuple(n for n in delta.removed_chains if n not in chains),
            removed=tuple(n for n in delta.removed if n not in sets),
        ),
        RulesetDelta(removed=tuple(sorted(sets)), removed_chains=tuple(sorted(chains))),
    )
