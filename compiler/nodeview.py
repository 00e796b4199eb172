"""What a node's rules follow of the cluster: its pods, the policies selecting each local pod and
the peer selectors their rules use.

:class:`NodeView` is the half of the incremental compiler (:mod:`incremental`) that reads
snapshots: it keeps the pods on the pod network, the node's local and hostNetwork pods, per local
pod the policies whose ``podSelector`` selects it (``matchers.selecting``, the one definition the
compile and the oracle share) and, per direction the pod is isolated in (``matchers.isolating``),
its rule views; the membership of every peer selector those rules use; and who uses each selector.
:meth:`NodeView.follow` advances it by one snapshot and returns a :class:`ViewChange`, all the
ruleset side needs to know of the step. It knows nothing of sets, chains or deltas.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from policyctl.policy import matchers
from policyctl.policy.model import (
    Direction,
    IPBlockPeer,
    Labels,
    LabelSelector,
    NamespaceScope,
    NetworkPolicy,
    Pod,
    PolicyRef,
)
from policyctl.policy.cluster import Cluster
from policyctl.policy.snapshots import changed_objects

from .graph import RuleView, SelectedIdentities, rule_views, selector_node
from .identities import Identity
from .membership import Membership
from .peeridentity import ANY_SELECTOR
from .tracking import DIRECTIONS, PodDirection


def _pod_selectors(views: Iterable[RuleView]) -> set[str]:
    return {p.node for v in views if v.peers is not None for p in v.peers if isinstance(p, SelectedIdentities)}


def reaches_everyone(views: Iterable[RuleView]) -> bool:
    """An egress rule without peers but with a named port reaches every pod (selector ``any``)."""
    return any(
        v.peers is None and v.direction is Direction.EGRESS and any(isinstance(m.port, str) for m in v.ports)
        for v in views
    )


def _named_blocks(views: Iterable[RuleView]) -> tuple[IPBlockPeer, ...]:
    """ipBlocks of egress rules with a named port: the port resolves on every pod inside."""
    return tuple(
        p
        for v in views
        if v.peers is not None and v.direction is Direction.EGRESS and any(isinstance(m.port, str) for m in v.ports)
        for p in v.peers
        if isinstance(p, IPBlockPeer)
    )



@dataclass(frozen=True)
class ViewChange:
    """What one snapshot changed of a :class:`NodeView`.

    ``changed_pods``: keys of pods on the pod network that came, went or changed;
    ``candidates``: those pods, old and new objects; ``local_changed``: keys of local pods
    that did; ``gone_identities``: identities left without members; ``host_changed``: whether
    the node's hostNetwork pods did; ``reselected``: the local pods and directions whose
    selecting policies or rule views were recomputed; ``toggled``: per direction, the selectors
    whose use started or stopped; ``everyone_toggled``: whether ``any`` did; ``reach``: for
    each toggled selector, the identities it selects (or selected)."""

    changed_pods: frozenset[str]
    candidates: tuple[Pod, ...]
    local_changed: frozenset[str]
    gone_identities: frozenset[Identity]
    host_changed: bool
    reselected: frozenset[PodDirection]
    toggled: Mapping[Direction, frozenset[str]]
    everyone_toggled: bool
    reach: Mapping[str, frozenset[Identity]]


class NodeView:
    """The pods, selecting policies, rule views and selector membership one node follows."""

    def __init__(self, node: str, namespace_labels: Mapping[str, Labels]) -> None:
        self.node_name = node
        self.namespace_labels: dict[str, Labels] = dict(namespace_labels)
        self.membership = Membership(namespace_labels)
        self.nonhost: dict[str, Pod] = {}
        self.host: dict[str, Pod] = {}
        self.local: dict[str, Pod] = {}
        self.isolated: dict[PodDirection, tuple[RuleView, ...]] = {}
        self.users: dict[Direction, dict[str, set[str]]] = {d: {} for d in DIRECTIONS}
        self.everyone: set[str] = set()
        self.block_users: dict[str, tuple[IPBlockPeer, ...]] = {}
        self._pods_seen: Sequence[Pod] = ()
        self._policies_seen: Sequence[NetworkPolicy] = ()
        self._local_by_namespace: dict[str, set[str]] = {}
        self._local_sorted: tuple[Pod, ...] | None = ()
        self._policies: dict[str, dict[PolicyRef, NetworkPolicy]] = {}
        self._views: dict[int, tuple[NetworkPolicy, dict[Direction, tuple[RuleView, ...]]]] = {}
        self._selecting: dict[str, tuple[NetworkPolicy, ...]] = {}
        self._selector_names: dict[tuple[NamespaceScope, LabelSelector], str] = {}
        self._selector_definitions: dict[str, tuple[NamespaceScope, LabelSelector]] = {}

    @property
    def local_pods(self) -> tuple[Pod, ...]:
        """The pods this node enforces for, sorted by key (``compile.local_pods``)."""
        if self._local_sorted is None:
            self._local_sorted = tuple(self.local[k] for k in sorted(self.local))
        return self._local_sorted

    @property
    def selecting(self) -> Mapping[str, tuple[NetworkPolicy, ...]]:
        """For each local pod key, the policies whose podSelector selects it (sorted by ref).
        A pod whose selecting policies are still the same objects keeps the very same tuple,
        so a reader can find what changed by identity."""
        return MappingProxyType(self._selecting)

    def follow(self, cluster: Cluster) -> ViewChange:
        """Advance to ``cluster``'s pods and policies (namespace labels are fixed for a view's
        life: their change moves every selector's scope, and the compiler starts a new view)."""
        changed_pods, candidates, local_changed, gone_identities, host_changed = self._follow_pods(cluster)
        reselect = self._follow_policies(cluster) | local_changed
        if local_changed:
            self._local_sorted = None
        reselected, toggled, everyone_toggled = self._reselect(reselect, local_changed)
        reach = self._follow_selectors(toggled)
        return ViewChange(
            changed_pods=frozenset(changed_pods),
            candidates=tuple(candidates),
            local_changed=frozenset(local_changed),
            gone_identities=frozenset(gone_identities),
            host_changed=host_changed,
            reselected=frozenset(reselected),
            toggled=MappingProxyType({d: frozenset(s) for d, s in toggled.items()}),
            everyone_toggled=everyone_toggled,
            reach=MappingProxyType({s: frozenset(i) for s, i in reach.items()}),
        )

    def _follow_pods(self, cluster: Cluster) -> tuple[set[str], list[Pod], set[str], set[Identity], bool]:
        """Apply the pods that came and went; returns the keys of pods on the pod network that
        changed, those pods (old and new), the keys of local pods that changed, identities
        left without members, and whether the node's hostNetwork pods changed."""
        pods = cluster.pods
        if pods is self._pods_seen:
            return set(), [], set(), set(), False
        gone, came = changed_objects(self._pods_seen, pods)
        self._pods_seen = pods
        changed: set[str] = set()
        candidates: list[Pod] = []
        local_changed: set[str] = set()
        gone_identities: set[Identity] = set()
        host_changed = False
        membership = self.membership
        for pod in gone:
            if pod.host_network:
                if pod.node == self.node_name and self.host.get(pod.key) is pod:
                    del self.host[pod.key]
                    host_changed = True
                continue
            identity = Identity(pod.namespace, pod.labels)
            if membership.remove(identity, pod):
                gone_identities.add(identity)
            if self.nonhost.get(pod.key) is pod:
                del self.nonhost[pod.key]
            changed.add(pod.key)
            candidates.append(pod)
            if pod.node == self.node_name and self.local.get(pod.key) is pod:
                del self.local[pod.key]
                self._local_by_namespace[pod.namespace].discard(pod.key)
                local_changed.add(pod.key)
        for pod in came:
            if pod.host_network:
                if pod.node == self.node_name:
                    self.host[pod.key] = pod
                    host_changed = True
                continue
            identity = Identity(pod.namespace, pod.labels)
            membership.add(identity, pod)
            gone_identities.discard(identity)
            self.nonhost[pod.key] = pod
            changed.add(pod.key)
            candidates.append(pod)
            if pod.node == self.node_name:
                self.local[pod.key] = pod
                self._local_by_namespace.setdefault(pod.namespace, set()).add(pod.key)
                local_changed.add(pod.key)
        return changed, candidates, local_changed, gone_identities, host_changed

    def _follow_policies(self, cluster: Cluster) -> set[str]:
        """Apply the policies that came and went; returns the local pods they may select."""
        policies = cluster.policies
        if policies is self._policies_seen:
            return set()
        gone, came = changed_objects(self._policies_seen, policies)
        self._policies_seen = policies
        touched: set[str] = set()
        for policy in gone:
            held = self._policies.get(policy.namespace, {})
            if held.get(policy.ref) is policy:
                del held[policy.ref]
            self._views.pop(id(policy), None)
        for policy in came:
            self._policies.setdefault(policy.namespace, {})[policy.ref] = policy
        for policy in itertools.chain(gone, came):
            local = (self.local[key] for key in self._local_by_namespace.get(policy.namespace, ()))
            touched.update(pod.key for pod in local if self._selects(policy, pod))
        return touched

    def _policy_views(self, policy: NetworkPolicy, direction: Direction) -> tuple[RuleView, ...]:
        held = self._views.get(id(policy))
        if held is None or held[0] is not policy:
            views = {d: rule_views(policy, d, self._named_selector) for d in DIRECTIONS}
            held = self._views[id(policy)] = (policy, views)
        return held[1][direction]

    def _named_selector(self, scope: NamespaceScope, pods: LabelSelector) -> SelectedIdentities:
        """A pod peer named by its selector only (its identities are kept in the membership)."""
        name = self._selector_names.get((scope, pods))
        if name is None:
            name = self._selector_names[(scope, pods)] = selector_node(scope, pods)
            self._selector_definitions[name] = (scope, pods)
        return SelectedIdentities(name, ())

    def _selects(self, policy: NetworkPolicy, pod: Pod) -> bool:
        return matchers.subject_selects(policy, pod.namespace, self.membership.labels_of(pod.namespace), pod.labels)

    def _reselect(self, keys: set[str], changed: set[str]) -> tuple[set[PodDirection], dict[Direction, set[str]], bool]:
        """Recompute the selecting policies and rule views of local pods; returns the pods
        and directions recomputed, the selectors whose use in a direction started or stopped,
        and whether ``any`` did."""
        dirty: set[PodDirection] = set()
        toggled: dict[Direction, set[str]] = {d: set() for d in DIRECTIONS}
        everyone_before = bool(self.everyone)
        for key in keys:
            pod = self.local.get(key)
            if pod is None:
                selecting: tuple[NetworkPolicy, ...] = ()
                self._selecting.pop(key, None)
            else:
                namespace = self._policies.get(pod.namespace, {})
                labels = self.membership.labels_of(pod.namespace)
                selecting = tuple(sorted(matchers.selecting(namespace.values(), pod, labels), key=lambda p: p.ref))
                old = self._selecting.get(key)
                same = old is not None and len(old) == len(selecting) and all(a is b for a, b in zip(old, selecting))
                if old is not None and same:
                    selecting = old
                self._selecting[key] = selecting
                if key not in changed and same:
                    continue
            blocks: tuple[IPBlockPeer, ...] = ()
            for direction in DIRECTIONS:
                item = (key, direction)
                old_views = self.isolated.get(item)
                views = None
                isolating = matchers.isolating(selecting, direction) if pod is not None else ()
                if isolating:
                    views = tuple(v for p in isolating for v in self._policy_views(p, direction))
                    self.isolated[item] = views
                else:
                    self.isolated.pop(item, None)
                dirty.add(item)
                before = _pod_selectors(old_views or ())
                after = _pod_selectors(views or ())
                users = self.users[direction]
                for selector in before - after:
                    held = users[selector]
                    held.discard(key)
                    if not held:
                        del users[selector]
                        toggled[direction].add(selector)
                for selector in after - before:
                    if selector not in users:
                        users[selector] = set()
                        toggled[direction].add(selector)
                    users[selector].add(key)
                if direction is Direction.EGRESS:
                    if views is not None and reaches_everyone(views):
                        self.everyone.add(key)
                    else:
                        self.everyone.discard(key)
                    blocks = _named_blocks(views or ())
            if blocks:
                self.block_users[key] = blocks
            else:
                self.block_users.pop(key, None)
        return dirty, toggled, everyone_before != bool(self.everyone)

    def _follow_selectors(self, toggled: Mapping[Direction, set[str]]) -> dict[str, set[Identity]]:
        """Register the selectors that came into use and drop those no rule uses any more;
        returns, for each selector whose use changed, the identities it selects (or selected)."""
        reach: dict[str, set[Identity]] = {}
        for selector in set().union(*toggled.values()):
            used = any(selector in self.users[d] for d in DIRECTIONS)
            known = selector in self.membership.selected
            if used and not known:
                scope, pods = self._selector_definitions[selector]
                reach[selector] = set(self.membership.register(selector, scope, pods))
            elif known and not used:
                reach[selector] = set(self.membership.selected[selector])
                self.membership.unregister(selector)
            else:
                reach[selector] = set(self.membership.selected.get(selector, ()))
        return reach

    def names(self, direction: Direction, identity: Identity) -> tuple[str, ...]:
        users = self.users[direction]
        names = {s for s in self.membership.selectors_of.get(identity, ()) if s in users}
        if direction is Direction.EGRESS and self.everyone:
            names.add(ANY_SELECTOR)
        return tuple(sorted(names))
