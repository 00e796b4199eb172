"""The ends a proof ranges over, and the ports between two of them.

An end specification (:class:`EndSpec`) names pods (namespace, namespace labels, pod labels,
workload, pod), addresses outside the cluster (a CIDR), or the whole outside (``internet``:
every address no pod or node has). It resolves, in one family, to :class:`End` groups that
policies cannot tell apart:

* existing pods of one class of the relation (:mod:`verifier.relation`);
* with ``scope: any``, pods that could be created (:mod:`verifier.labelspace`), at every
  address class of the family or without an address, with no container ports;
* outside address classes, cut to the CIDR when one is given.

Ports between two groups are the class answer for every pair the pod-pair bypasses do not
touch, and every port for the pairs they do (a hostNetwork pod and a pod on its node, which a
new pod may always be scheduled on). A pod is never paired with itself: reaching its own
address is not traffic between two ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from policyctl.compiler.intervals import as_address, network_interval
from policyctl.policy.endpoints import workload_label
from policyctl.policy.model import Family, IPNetwork, Labels, LabelSelector, Pod, SelectedNamespaces
from policyctl.policy.cluster import Cluster

from .index import EndKind, View
from .labelspace import namespace_choices, pod_label_choices
from .portsets import ALL, PortSet
from .relation import Relation
from .viewclasses import view_classes


@dataclass(frozen=True, slots=True)
class EndSpec:
    """One side of an assertion or query. Unset fields do not restrict; ``internet`` and
    ``cidr`` name outside addresses, the other fields pods."""

    namespace: str | None = None
    namespace_selector: LabelSelector | None = None
    pod_selector: LabelSelector | None = None
    workload: str | None = None
    pod: str | None = None
    cidr: IPNetwork | None = None
    internet: bool = False
    text: str = ""

    @property
    def outside(self) -> bool:
        return self.internet or self.cidr is not None

    def matches_pod(self, pod: Pod, cluster: Cluster) -> bool:
        if self.outside:
            return False
        if self.pod is not None and pod.key != self.pod:
            return False
        if self.workload is not None and self.workload not in (workload_label(pod), f"{pod.namespace}/{pod.workload}"):
            return False
        return self.labels_match(pod.namespace, cluster.namespace_labels(pod.namespace), pod.labels)

    def labels_match(self, namespace: str, namespace_labels: Labels, labels: Labels) -> bool:
        if self.namespace is not None and namespace != self.namespace:
            return False
        if self.namespace_selector is not None and not self.namespace_selector.matches(namespace_labels):
            return False
        return self.pod_selector is None or self.pod_selector.matches(labels)

    def __str__(self) -> str:
        return self.text or "<any>"


@dataclass(frozen=True, slots=True)
class End:
    """Ends policies treat alike. ``pods`` for existing pods; otherwise ``view`` with a
    ``witness`` describing one concrete end (a new pod's namespace and labels, or an address)."""

    view: View
    pods: tuple[Pod, ...] = ()
    witness: str = ""
    hypothetical: bool = False

    def describe(self) -> str:
        return self.pods[0].key if self.pods else self.witness


def _existing(relation: Relation, spec: EndSpec, family: Family) -> Iterator[End]:
    classes = view_classes(relation, family)
    for view, members in zip(classes.views, classes.members):
        chosen = tuple(p for p in members if spec.matches_pod(p, relation.cluster))
        if chosen:
            yield End(view, chosen)


def _hypothetical(relation: Relation, spec: EndSpec, family: Family, *, inside: bool = True) -> Iterator[End]:
    """New pods ``spec`` names (``inside``) or does not name. A new pod is never a named pod
    or workload replica that exists: those are covered by the existing pods."""
    index = relation.index
    namespace_selectors = [s.scope.selector for s in index.selectors if isinstance(s.scope, SelectedNamespaces)]
    if spec.namespace_selector is not None:
        namespace_selectors.append(spec.namespace_selector)
    pod_selectors = [s.pods for s in index.selectors] + ([spec.pod_selector] if spec.pod_selector is not None else [])
    atoms = {a.blocks: a for a in index.atoms(family)}
    addresses: list[tuple[frozenset[int] | None, str]] = [(None, "without an address")]
    addresses += [
        (blocks, f"at {as_address(a.low, family)}") for blocks, a in sorted(atoms.items(), key=lambda i: i[1].low)
    ]
    named = tuple((name, protocol, ()) for name, protocol in index.named)
    seen: set[View] = set()
    extra = [spec.namespace] if spec.namespace else []
    for choice in namespace_choices(relation.cluster, namespace_selectors, names=extra):
        for labels in pod_label_choices(pod_selectors):
            named_by_spec = not spec.outside and spec.pod is None and spec.workload is None and spec.labels_match(
                choice.name, choice.labels, labels
            )
            if named_by_spec is not inside:
                continue
            selectors = index.selectors_of(choice.name, labels, namespace_labels=choice.labels)
            where = f"namespace {choice.name}" if choice.exists else f"new namespace {choice.name} {{{choice.labels}}}"
            for blocks, place in addresses:
                view = View(EndKind.POD, selectors, blocks, named)
                if view in seen:
                    continue
                seen.add(view)
                yield End(view, witness=f"a new pod in {where} with labels {{{labels}}} {place}", hypothetical=True)


def _outside(relation: Relation, spec: EndSpec, family: Family) -> Iterator[End]:
    if spec.cidr is not None and Family.of(spec.cidr) is not family:
        return
    span = network_interval(spec.cidr) if spec.cidr is not None else None
    for found in relation.external(family):
        for atom in found.atoms:
            if span is None or (atom.low <= span.high and span.low <= atom.high):
                low = atom.low if span is None else max(atom.low, span.low)
                yield End(found.view, witness=str(as_address(low, family)))
                break


def resolve(relation: Relation, spec: EndSpec, family: Family, *, any_pod: bool = False) -> tuple[End, ...]:
    """The end groups ``spec`` stands for in ``family``."""
    if spec.outside:
        return tuple(_outside(relation, spec, family))
    found = list(_existing(relation, spec, family))
    if any_pod:
        found.extend(_hypothetical(relation, spec, family))
    return tuple(found)


def complement(relation: Relation, spec: EndSpec, family: Family, *, any_pod: bool = False) -> tuple[End, ...]:
    """Every end ``spec`` does not name: other pods (and new pods), and outside addresses
    not in its CIDR (none when it is ``internet``)."""
    found: list[End] = []
    classes = view_classes(relation, family)
    for view, members in zip(classes.views, classes.members):
        chosen = tuple(p for p in members if not spec.matches_pod(p, relation.cluster))
        if chosen:
            found.append(End(view, chosen))
    if any_pod:
        found.extend(_hypothetical(relation, spec, family, inside=False))
    if spec.internet:
        return tuple(found)
    span = network_interval(spec.cidr) if spec.cidr is not None and Family.of(spec.cidr) is family else None
    for group in relation.external(family):
        for atom in group.atoms:
            if span is None or atom.low < span.low:
                found.append(End(group.view, witness=str(as_address(atom.low, family))))
                break
            if atom.high > span.high:
                found.append(End(group.view, witness=str(as_address(max(atom.low, span.high + 1), family))))
                break
    return tuple(found)


@dataclass(frozen=True, slots=True)
class Meeting:
    """Ports allowed between two ends, with the concrete pair it was found on."""

    source: str
    destination: str
    ports: PortSet
    pods: tuple[Pod, Pod] | None = None


def meetings(relation: Relation, source: End, destination: End, family: Family) -> Iterator[Meeting]:
    """The distinct answers between the members of two groups (see the module docstring)."""
    if source.pods and destination.pods:
        classes = view_classes(relation, family)
        cell = relation.decider.ports(source.view, destination.view)
        pair = classes.ordinary_pair(source.pods, destination.pods)
        if pair is not None:
            yield Meeting(pair[0].key, pair[1].key, cell, pair)
        for s in source.pods:
            if s.host_network and s.node is not None:
                for d in destination.pods:
                    if d.key != s.key and d.node == s.node:
                        bypassed = classes.bypass(s, d)
                        yield Meeting(s.key, d.key, cell if bypassed is None else bypassed, (s, d))
                        break
        return
    if source.pods and destination.hypothetical:
        host = next((s for s in source.pods if s.host_network and s.node is not None), None)
        if host is not None and not view_classes(relation, family).view(host).impossible:
            text = f"{destination.witness} on node {host.node}"
            yield Meeting(host.key, text, ALL)
    yield Meeting(source.describe(), destination.describe(), relation.decider.ports(source.view, destination.view))
