"""An incremental node compiler: each new cluster snapshot in, the change of the node's ruleset out.

:class:`NodeCompiler` holds what :func:`compile.compile_node` derives from a snapshot, broken
into pieces small enough that an event touches a handful of them:

* the local pods (scheduled on the node, not hostNetwork), the policies selecting each (their
  ``podSelector`` matches the pod's labels in the policy's namespace) and, per direction the
  pod is isolated in, its rule views;
* the membership of every peer selector those rules use (:mod:`membership`), and per
  direction each peer pod's :class:`PeerIdentity` (the used selectors that select it, plus
  ``any`` when an egress rule without peers has a named port, and its named ports);
* per local pod and direction, its raw contribution: what ``elements.collect`` adds for that
  pod alone, by set and by local address;
* per set, its finished elements per local address (``finish_elements`` groups by the local
  pod's address, and groups never overlap), and reference-counted sources, which make the
  comments of sets and of the lookup rules that read them;
* the chains (peer identity, shared allow, pod), the peer maps (address -> identity chain,
  with every claim on an address kept so the compile's tie-break, the greatest identity by
  ``sort_key``, can be recomputed), the dispatch maps and the node sets.

A step diffs the new snapshot against the previous one by object identity (snapshots share the
frozen objects that did not change; a snapshot from the agent's store names what it gained and
lost against the one before, :mod:`policy.snapshots`, so at 100k pods an event does not compare
100k-pod tuples), follows the change through these pieces and reports each
piece that changed as a :class:`RulesetDelta`: set elements and map entries one by one, sets,
maps and chains whole when they appear or are re-created. What a step recomputes:

* a local pod's contribution in full, when the pod, its selecting policies or their rules
  changed, and when a pod with an address inside an ipBlock of one of its egress rules with a
  named port came or went;
* only its part in the sets of some peer identities, when those appeared, disappeared or
  changed families and one of its selectors reaches them (or, for any identity, it has an
  egress rule without peers and with a named port): what a pod adds to one identity's sets
  depends on nothing but the pod, its rules and that identity (``collect`` with
  ``peer_sets_only``);
* of a contribution, only the sets, local address groups and sources that differ from before
  are re-finished and diffed; a peer identity's chain is rebuilt only when one of its sets
  appeared, disappeared or changed comments;
* a peer identity's members, when a pod joined or left it or its identity's selectors changed
  (a selector came into or went out of use, or ``any`` did).

Changes of namespace labels move every selector's scope: they take the slow path, a rebuild
from scratch whose delta is :func:`delta.diff` of the whole rulesets. So does every snapshot
that has cluster-scoped policies (ClusterNetworkPolicy, AdminNetworkPolicy,
BaselineAdminNetworkPolicy), and the first snapshot without them after one that had them: the
ruleset is :func:`compile.compile_node` of the snapshot and the delta :func:`delta.diff` against
the previous ruleset (correct by construction; it costs a whole compile). The NetworkPolicy
bookkeeping still follows every snapshot, so the pieces above stay current and the path of
snapshots without cluster policies is as fast as before. Everything else (node
addresses, hostNetwork pods, pods without addresses, dual-stack, policies selecting no local
pod) is followed precisely.

Costs that grow with more than the change: a peer identity that appears, disappears or
changes families recomputes, for every local pod whose rules use one of its selectors, that
pod's part in its sets (the pod's rules that name those selectors, not all of them); ``any``
coming into or going out of use re-places every peer pod of the egress direction; an egress
rule with a named port and ipBlock peers scans every pod when its local pod is recomputed.

Invariants (held by property tests): after ``update(c)``, ``ruleset == compile_node(c, node,
table=, mode=)``; ``patch(previous, delta) == ruleset``; ``delta.empty`` exactly when the
ruleset did not change.

What the node follows of a snapshot (pods, selecting policies, rule views, selector membership
and users) lives in :class:`nodeview.NodeView`, whose ``follow`` reports a step's change as a
:class:`nodeview.ViewChange`; the peer identity bookkeeping in :mod:`peerstate`; the ruleset
state (sets, chains, peer map claims, dispatch entries, node sets) in
:class:`tracking.RulesetStore`, whose per-step journal, :class:`tracking.Tracker`, ends a step
with its delta. This module carries each view change through the peers and the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet

from policyctl.policy.ipblocks import end_address
from policyctl.policy.model import Direction, Family, IPAddress, Labels, NetworkPolicy, Pod
from policyctl.policy.cluster import Cluster

from .chains import allow_chain, base_chains, dispatch_map, isolating_sources, pod_chain
from .compile import compile_node
from .delta import RulesetDelta, diff, empty_ruleset, merge
from .elements import GatheredSets, collect, local_group
from .graph import RuleView, SelectedIdentities
from .identities import Identity
from .intervals import Interval
from .layout import FAMILIES, SetLayout, allow_chain_name, peer_set_name
from .markedpeers import IdentityMark, MarkedPeers
from .newpods import NewPodWindow
from .newpodstate import UnknownAddresses
from .nodeview import NodeView, reaches_everyone
from .peeridentity import ANY_SELECTOR, PeerIdentity, named_ports
from .peerstate import Lookup, Peers, Within
from .ruleset import Element, Jump, Mode, Ruleset, VerdictMap
from .tracking import DIRECTIONS, PodDirection, RulesetStore, SetState, Tracker
from .unreachable import split_gone_identities, split_unreachable


# A contribution: per set name, its raw elements per local address group and its sources.
_Contribution = dict[str, tuple[dict[Interval, frozenset[Element]], frozenset[str]]]


def _concerning(views: Iterable[RuleView], selectors: AbstractSet[str]) -> list[RuleView]:
    """The views that can reach a peer identity with one of ``selectors``: a pod peer naming
    one of them, or (selector ``any``) an egress rule without peers and with a named port."""
    return [
        v
        for v in views
        if (v.peers is None and ANY_SELECTOR in selectors and reaches_everyone((v,)))
        or (v.peers is not None and any(isinstance(p, SelectedIdentities) and p.node in selectors for p in v.peers))
    ]


def _peer_set_names(direction: Direction, peer: PeerIdentity) -> tuple[str, ...]:
    return tuple(peer_set_name(direction, peer, what, family) for what in ("ports", "any") for family in FAMILIES)


class NodeCompiler:
    """The ruleset of one node over a sequence of snapshots, and the delta of each step."""

    def __init__(
        self, node: str, *, table: str = "policyctl", mode: Mode = Mode.ENFORCE,
        new_pods: NewPodWindow = NewPodWindow.ALLOW, identity_mark: IdentityMark | None = None,
    ) -> None:
        self.node = node
        self.table = table
        self.mode = mode
        self.new_pods = new_pods
        self.identity_mark = identity_mark
        self._marker = MarkedPeers(identity_mark) if identity_mark is not None else None
        self._marked: Ruleset | None = None
        self._retired: tuple[Ruleset | None, ...] = ()
        self._started = False
        self._tiered = False
        self._window = UnknownAddresses(node, new_pods)
        self._reset({})

    # state -----------------------------------------------------------------------------

    def _reset(self, namespace_labels: Mapping[str, Labels]) -> None:
        self._view = NodeView(self.node, namespace_labels)
        self._namespaces_seen: object = None
        self._nodes_seen: object = None
        self._node_addresses: tuple[IPAddress, ...] = ()
        self._peers: dict[Direction, Peers] = {d: Peers() for d in DIRECTIONS}
        self._lookup = Lookup(self._peers, self._view.nonhost)
        self._contributions: dict[PodDirection, _Contribution] = {}
        self._store = RulesetStore(self.node)
        self._ruleset: Ruleset | None = empty_ruleset(self.table, self.node, self.mode)

    # public ----------------------------------------------------------------------------

    def update(self, cluster: Cluster) -> RulesetDelta:
        """Advance to ``cluster``. Returns the delta from the previous step's ruleset (the first
        call: from ``empty_ruleset(table, node, mode)``, everything whole). A snapshot with
        cluster policies, or the first one after them, is compiled whole and diffed. With an
        identity mark, the delta of the marked layout (:mod:`markedpeers`).

        The whole rulesets this step replaces (built when someone asked for :attr:`ruleset`)
        are freed by :meth:`release`, else by the next update, not here: freeing the object
        tree of a large node's ruleset takes milliseconds, which a caller on the way from an
        event to the kernel wants to spend after the kernel has the change. A step that
        changes nothing keeps them."""
        retired = (self._ruleset, self._marked)
        delta = self._update(cluster)
        if delta.empty:
            self._ruleset, self._marked = retired
            return delta
        self._retired = retired
        if self._marker is None:
            return delta
        self._marked = None
        return self._marker.translate(delta)

    def _update(self, cluster: Cluster) -> RulesetDelta:
        tiered = bool(cluster.cluster_policies)
        if not tiered and not self._tiered:
            return self._follow(cluster)
        previous = self._plain
        self._follow(cluster)
        if tiered:
            self._ruleset = compile_node(cluster, self.node, table=self.table, mode=self.mode, new_pods=self.new_pods)
        self._tiered = tiered
        return diff(previous, self._plain)

    def _follow(self, cluster: Cluster) -> RulesetDelta:
        """Follow ``cluster``'s NetworkPolicy pieces; the delta of the NetworkPolicy-only
        ruleset they make."""
        labels = self._view.namespace_labels
        if cluster.namespaces is not self._namespaces_seen:
            labels = {n.name: n.labels for n in cluster.namespaces}
        if not self._started or labels != self._view.namespace_labels:
            previous = self._plain
            self._reset(labels)
            self._started = True
            self._namespaces_seen = cluster.namespaces
            self._step(cluster).cleanup()
            self._window.follow(cluster, self.table, self.mode)
            return diff(previous, self._plain)
        self._namespaces_seen = cluster.namespaces
        track = self._step(cluster)
        delta = track.delta()
        track.cleanup()
        window = self._window.follow(cluster, self.table, self.mode)
        return delta if window is None else merge(delta, window)

    def split_unreachable(self, delta: RulesetDelta) -> tuple[RulesetDelta, RulesetDelta]:
        """The last update's ``delta`` as the part that decides packets and what no packet
        reaches once that part is in force: in the marked layout the tree changes of the
        numbers the step freed or retired (``MarkedPeers.split_later``), the identity chains
        it removes with their sets (:func:`~policyctl.compiler.unreachable.split_gone_identities`),
        and element removals of allow sets
        (:func:`~policyctl.compiler.unreachable.split_unreachable`, read against this node's
        dispatch entries after the step); after a step with cluster policies the second part
        is empty."""
        if self._tiered:
            return delta, RulesetDelta()
        sets = self._store.sets

        def layout_of(name: str) -> SetLayout | None:
            state = sets.get(name)
            return None if state is None else state.layout

        now, tree = self._marker.split_later(delta) if self._marker is not None else (delta, RulesetDelta())
        now, identities = split_gone_identities(now)
        now, removals = split_unreachable(now, layout_of, self._store.policed)
        return now, merge(merge(tree, identities), removals)

    def release(self) -> None:
        """Free the whole rulesets the last update replaced (see :meth:`update`)."""
        self._retired = ()

    @property
    def ruleset(self) -> Ruleset:
        """The ruleset of the last update, equal to compile_node(cluster, node, table=, mode=,
        new_pods=, identity_mark=), but for the identity mark's numbers, which follow the steps
        (``markedpeers.MarkedPeers``; ``markedpeers.canonical`` of it equals the whole
        compile): the ruleset the deltas built, as the kernel holds it (costs as much as the
        ruleset is large; cached until the next update)."""
        if self._marker is None:
            return self._plain
        if self._marked is None:
            self._marked = self._marker.ruleset(self._plain)
        return self._marked

    @property
    def _plain(self) -> Ruleset:
        """The ruleset of the last update in the layout whose peer maps jump."""
        if self._ruleset is None:
            self._ruleset = self._assemble()
        return self._ruleset

    @property
    def local_pods(self) -> tuple[Pod, ...]:
        """The pods this node enforces for, sorted by key (``compile.local_pods``)."""
        return self._view.local_pods

    @property
    def selecting(self) -> Mapping[str, tuple[NetworkPolicy, ...]]:
        """For each local pod key, the policies whose podSelector selects it (sorted by ref).
        A pod whose selecting policies are still the same objects keeps the very same tuple,
        so a reader can find what changed by identity."""
        return self._view.selecting

    # one step --------------------------------------------------------------------------

    def _step(self, cluster: Cluster) -> Tracker:
        track = Tracker(self._store)
        self._ruleset = None
        node_dirty = self._follow_nodes(cluster)
        view = self._view
        change = view.follow(cluster)
        dirty, chains_dirty = set(change.reselected), set(change.reselected)
        partial: dict[PodDirection, set[PeerIdentity]] = {}
        for direction in DIRECTIONS:
            peers = self._peers[direction]
            peers.before.clear()
            peers.moved.clear()
            for identity in change.gone_identities:
                peers.names.pop(identity, None)
            rename: set[Identity] = set()
            for selector in change.toggled[direction]:
                rename |= change.reach[selector]
            if direction is Direction.EGRESS and change.everyone_toggled:
                rename |= set(peers.names)
            moving = set(change.changed_pods)
            for identity in rename:
                if identity in peers.names:
                    names = view.names(direction, identity)
                    if names != peers.names[identity]:
                        peers.names[identity] = names
                        moving.update(view.membership.members.get(identity, {}))
            for key in sorted(moving):
                pod = view.nonhost.get(key)
                peers.place(key, pod, self._peer_for(direction, pod) if pod is not None else None)
            for peer in peers.settle():
                for selector in peer.selectors:
                    users = view.everyone if selector == ANY_SELECTOR else view.users[direction].get(selector, ())
                    for key in users:
                        partial.setdefault((key, direction), set()).add(peer)
        for pod in change.candidates:
            for key, blocks in view.block_users.items():
                if any(b.contains(a) for b in blocks for a in pod.ips):
                    dirty.add((key, Direction.EGRESS))
        for item in sorted(dirty, key=lambda kd: (kd[0], kd[1].value)):
            self._recontribute(item, track)
        for item in sorted(partial.keys() - dirty, key=lambda kd: (kd[0], kd[1].value)):
            self._recontribute(item, track, peers=partial[item])
        track.finish_sets()
        allow_dirty = track.refresh_peers(self._peers)
        for direction in DIRECTIONS:
            for family in FAMILIES:
                if allow_dirty.get((direction, family)) or track.peer_map_toggled(direction, family):
                    chain = allow_chain(
                        direction,
                        family,
                        peer_map=bool(self._store.peer_entries[(direction, family)]),
                        comments=self._store.comments,
                    )
                    name = allow_chain_name(direction, family)
                    track.set_chain(name, chain)
                    if (chain is not None) != self._store.allow[(direction, family)]:
                        self._store.allow[(direction, family)] = chain is not None
                        chains_dirty.update((k, direction) for k, d in view.isolated if d is direction)
        for item in sorted(chains_dirty, key=lambda kd: (kd[0], kd[1].value)):
            self._repod(item, track)
        if node_dirty or change.host_changed:
            self._refresh_node_sets(cluster, track)
        return track

    def _follow_nodes(self, cluster: Cluster) -> bool:
        if cluster.nodes is self._nodes_seen:
            return False
        self._nodes_seen = cluster.nodes
        this = cluster.node_by_name.get(self.node)
        addresses = this.addresses if this is not None else ()
        if addresses == self._node_addresses:
            return False
        self._node_addresses = addresses
        return True

    def _peer_for(self, direction: Direction, pod: Pod) -> PeerIdentity | None:
        if not pod.ips:
            return None
        identity = Identity(pod.namespace, pod.labels)
        peers = self._peers[direction]
        names = peers.names.get(identity)
        if names is None:
            names = peers.names[identity] = self._view.names(direction, identity)
        return PeerIdentity(names, named_ports(pod)) if names else None

    def _recontribute(
        self, item: PodDirection, track: Tracker, *, peers: AbstractSet[PeerIdentity] | None = None
    ) -> None:
        """Recompute what a local pod adds in one direction: all of it, or with ``peers`` only
        its part in the sets of those peer identities (the rest cannot have changed when
        only they appeared, disappeared or changed families). Only the sets, groups and
        sources that differ from before are touched."""
        key, direction = item
        views = self._view.isolated.get(item)
        pod = self._view.local.get(key)
        gathered = GatheredSets()
        admitted: set[PeerIdentity] = set()
        if views is not None and pod is not None:
            if peers is None:
                collect(self._lookup, pod, direction, views, gathered, admitted)
            else:
                within = Within(self._peers[direction], peers)
                concerned = _concerning(views, {s for p in peers for s in p.selectors})
                collect(within, pod, direction, concerned, gathered, admitted, peer_sets_only=True)
        new: _Contribution = {}
        for name, raw in gathered.elements.items():
            groups: dict[Interval, set[Element]] = {}
            for element in raw:
                groups.setdefault(local_group(gathered.layouts[name], element), set()).add(element)
            new[name] = ({g: frozenset(e) for g, e in groups.items()}, frozenset(gathered.sources[name]))
        contribution = self._contributions.setdefault(item, {})
        if peers is None:
            names: AbstractSet[str] = contribution.keys() | new.keys()
        else:
            names = {n for p in peers for n in _peer_set_names(direction, p)}
        for name in sorted(names):
            old_entry = contribution.get(name)
            new_entry = new.get(name)
            if old_entry == new_entry:
                continue
            state = self._store.sets.get(name)
            if state is None:
                owner = next((p for p in admitted if name in _peer_set_names(direction, p)), None)
                state = self._store.sets[name] = SetState(name, gathered.layouts[name], owner)
            self._replace(item, state, old_entry, new_entry, track)
            if new_entry is None:
                del contribution[name]
            else:
                contribution[name] = new_entry
        if not contribution:
            del self._contributions[item]

    def _replace(
        self,
        item: PodDirection,
        state: SetState,
        old: tuple[dict[Interval, frozenset[Element]], frozenset[str]] | None,
        new: tuple[dict[Interval, frozenset[Element]], frozenset[str]] | None,
        track: Tracker,
    ) -> None:
        """Swap one contribution to one set, touching only the groups whose elements differ."""
        name = state.name
        old_groups, old_sources = old if old is not None else ({}, frozenset())
        new_groups, new_sources = new if new is not None else ({}, frozenset())
        track.touch_set(name)
        for group in old_groups.keys() | new_groups.keys():
            elements = new_groups.get(group)
            if old_groups.get(group) == elements:
                continue
            track.touch_group(name, group)
            if elements is None:
                held = state.raw[group]
                del held[item]
                if not held:
                    del state.raw[group]
            else:
                state.raw.setdefault(group, {})[item] = elements
        if old_sources != new_sources:
            for source in old_sources - new_sources:
                state.drop_source(source)
            for source in new_sources - old_sources:
                state.add_source(source)

    def _repod(self, item: PodDirection, track: Tracker) -> None:
        """Refresh a local pod's chain of one direction and its dispatch entries. Pods with
        the same isolating policies and families share a chain (``chains.pod_chain``): it is
        added with its first pod and removed with its last."""
        key, direction = item
        store = self._store
        old = store.pod_chains.pop(item, None)
        pod = self._view.local.get(key)
        views = self._view.isolated.get(item)
        chain = None
        if pod is not None and views is not None:
            families = [f for f in FAMILIES if pod.ip(f) is not None]
            allows = tuple(allow_chain_name(direction, f) for f in families if store.allow[(direction, f)])
            chain = pod_chain(self.mode, direction, allows,
                              isolating_sources(self._view.selecting.get(key, ()), direction))
            store.pod_chains[item] = chain
            users = store.pod_chain_users.get(chain.name, 0)
            store.pod_chain_users[chain.name] = users + 1
            if not users:
                track.set_chain(chain.name, chain)
        if old is not None:
            left = store.pod_chain_users[old.name] - 1
            if left:
                store.pod_chain_users[old.name] = left
            else:
                del store.pod_chain_users[old.name]
                track.set_chain(old.name, None)
        for family in FAMILIES:
            ip = pod.ip(family) if pod is not None else None
            entry = (ip, Jump(chain.name)) if chain is not None and ip is not None else None
            track.set_dispatch(direction, family, key, entry)

    def _refresh_node_sets(self, cluster: Cluster, track: Tracker) -> None:
        """The addresses of "agents on a node": its own and its hostNetwork pods'
        (``compile.node_addresses``)."""
        for family in FAMILIES:
            found: set[IPAddress] = set(a for a in self._node_addresses or () if Family.of(a) is family)
            for pod in self._view.host.values():
                address = end_address(cluster, pod, family).address
                if address is not None:
                    found.add(address)
            now = tuple(sorted(found))
            if now != self._store.node_sets[family]:
                track.touch_node_set(family)
                self._store.node_sets[family] = now

    # assembly --------------------------------------------------------------------------

    def _dispatch_map(self, direction: Direction, family: Family) -> VerdictMap:
        entries = self._store.dispatch[(direction, family)]
        return dispatch_map(direction, family, (entries[k] for k in sorted(entries)))

    def _assemble(self) -> Ruleset:
        sets = [self._store.node_set(f) for f in FAMILIES] + [
            self._store.set_object(n) for n, s in self._store.sets.items() if s.finished
        ]
        sets += [self._store.policed_set(d, f) for d in DIRECTIONS for f in FAMILIES]
        sets += self._window.sets
        maps = [self._dispatch_map(d, f) for d in DIRECTIONS for f in FAMILIES]
        maps += [self._store.peer_map(d, f) for d in DIRECTIONS for f in FAMILIES if self._store.peer_entries[(d, f)]]
        return Ruleset(
            table=self.table,
            node=self.node,
            mode=self.mode,
            sets=tuple(sorted(sets, key=lambda s: s.name)),
            maps=tuple(sorted(maps, key=lambda m: m.name)),
            chains=base_chains(self.mode, self._window.families)
            + tuple(sorted(self._store.chains.values(), key=lambda c: c.name)),
        )
