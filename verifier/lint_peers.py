"""Lint rules about peers: AND written as OR and OR written as AND, namespace labels nobody
has, and ipBlocks over pod addresses.

API rules they rest on (``NetworkPolicyPeer``): with both ``namespaceSelector`` and
``podSelector`` one peer "selects particular Pods within particular Namespaces"; separate list
items are alternatives ("traffic is allowed if it matches at least one item"). The Kubernetes
documentation warns that the two spellings differ by one ``-`` and are easy to confuse.
``ipBlock`` "selects particular IP CIDR ranges ... These should be cluster-external IPs, since
Pod IPs are ephemeral and unpredictable."
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterator

from policyctl.policy.diagnostics import Diagnostic, Severity
from policyctl.policy.model import (
    NAMESPACE_NAME_LABEL,
    IPBlockPeer,
    LabelSelector,
    Pod,
    NetworkPolicy,
    Operator,
    OwnNamespace,
    PodPeer,
    Rule,
    SelectedNamespaces,
)
from policyctl.verifier.lint_context import Check, LintContext, LintRule, peer_path, pod_list, rules_of

SPLIT_PEER = LintRule(
    "split-peer-selectors",
    Severity.WARNING,
    "namespaceSelector and podSelector written as two peers (OR) where one peer (AND) was likely meant",
    "Two list items are alternatives: the namespaceSelector item admits every pod of those "
    "namespaces, whatever its labels. One item with both selectors admits only the selected "
    "pods of the selected namespaces.",
)
JOINED_PEER = LintRule(
    "joined-peer-selectors",
    Severity.WARNING,
    "namespaceSelector and podSelector in one peer (AND) select no pod, while each alone would",
    "One item with both selectors admits only pods matching both; when no pod does, the item "
    "admits nothing, and two items (OR) were likely meant.",
)
UNKNOWN_NAMESPACE_LABEL = LintRule(
    "unknown-namespace-label",
    Severity.WARNING,
    "namespaceSelector requires a label that no namespace has",
    "A namespaceSelector matches namespace labels, not names: every namespace has the label "
    "kubernetes.io/metadata.name set to its name by the API server, other labels only if "
    "someone set them.",
)
IPBLOCK_COVERS_PODS = LintRule(
    "ipblock-covers-pods",
    Severity.WARNING,
    "ipBlock covers pod addresses",
    "ipBlocks are meant for cluster-external addresses: pod IPs change when pods are "
    "recreated, and implementations differ on ipBlocks for pod traffic (e.g. after SNAT).",
)


def _namespaces_only(peer: object) -> LabelSelector | None:
    """The namespaceSelector of a peer that has no podSelector (or ``{}``), else None."""
    if (
        isinstance(peer, PodPeer)
        and isinstance(peer.namespaces, SelectedNamespaces)
        and not peer.namespaces.selector.is_empty
        and peer.pods.is_empty
    ):
        return peer.namespaces.selector
    return None


def _pods_only(peer: object) -> LabelSelector | None:
    """The podSelector of a peer without namespaceSelector (this namespace), else None."""
    if isinstance(peer, PodPeer) and isinstance(peer.namespaces, OwnNamespace) and not peer.pods.is_empty:
        return peer.pods
    return None


def _split(context: LintContext, policy: NetworkPolicy, rule: Rule) -> Iterator[Diagnostic]:
    namespace_items = [(i, s) for i, p in enumerate(rule.peers) if (s := _namespaces_only(p)) is not None]
    pod_items = [(j, s) for j, p in enumerate(rule.peers) if (s := _pods_only(p)) is not None]
    if not namespace_items:
        return
    i, selector = namespace_items[0]
    own = selector.matches(context.cluster.namespace_labels(policy.namespace))
    for j, pods in pod_items:
        path = peer_path(rule, j)
        key = path[-2]
        message = (
            f"{key}[{i}] (every pod in namespaces with {selector}) and {key}[{j}] (pods with "
            f"{pods} in {policy.namespace}) are two peers, which the API ORs"
        )
        if own:
            message += (
                f"; namespace {policy.namespace} itself has {selector}, so {key}[{i}] admits every "
                f"pod of {policy.namespace} and {key}[{j}] adds nothing"
            )
        hint = (
            f"if pods with {pods} in namespaces with {selector} were meant, make them one "
            f"peer: remove the '-' before podSelector in {key}[{j}] and indent it under {key}[{i}]"
        )
        yield context.finding(
            SPLIT_PEER, policy, path, message, hint=hint, severity=None if own else Severity.INFO
        )


def split_peers(context: LintContext) -> Iterator[Diagnostic]:
    for policy in context.cluster.policies:
        for rule in rules_of(policy):
            yield from _split(context, policy, rule)


def joined_peers(context: LintContext) -> Iterator[Diagnostic]:
    if not context.pods():
        return
    for policy in context.cluster.policies:
        for rule in rules_of(policy):
            for j, peer in enumerate(rule.peers):
                if not (isinstance(peer, PodPeer) and isinstance(peer.namespaces, SelectedNamespaces)):
                    continue
                if peer.namespaces.selector.is_empty or peer.pods.is_empty or context.peer_pods(peer):
                    continue
                in_namespaces = context.peer_pods(PodPeer(peer.namespaces, LabelSelector()))
                here = context.peer_pods(PodPeer(OwnNamespace(policy.namespace), peer.pods))
                if not (in_namespaces and here):
                    continue
                path = peer_path(rule, j)
                yield context.finding(
                    JOINED_PEER, policy, path,
                    f"this peer admits only pods with {peer.pods} in namespaces with "
                    f"{peer.namespaces.selector}, and there are none; the namespaces hold "
                    f"{pod_list(in_namespaces)}, the pods with {peer.pods} are {pod_list(here)}",
                    hint="if either was meant, make them two peers: put '- ' before podSelector "
                    "so it becomes its own list item",
                )  # fmt: skip


def _missing_keys(selector: LabelSelector, keys: set[str]) -> list[str]:
    needed = (Operator.IN, Operator.EXISTS)
    return sorted({r.key for r in selector.requirements if r.operator in needed and r.key not in keys})


def _namespace_hint(context: LintContext, selector: LabelSelector, keys: set[str]) -> str:
    names = set(context.cluster.namespace_by_name)
    for requirement in selector.requirements:
        if requirement.operator is Operator.IN and len(requirement.values) == 1 and requirement.values[0] in names:
            value = requirement.values[0]
            return (
                f"to select namespace {value} by name, use {NAMESPACE_NAME_LABEL}: {value} "
                f"(set by the API server on every namespace) instead of {requirement.key}"
            )
    return f"label the namespaces, or select on a label they have ({', '.join(sorted(keys))})"


def unknown_namespace_labels(context: LintContext) -> Iterator[Diagnostic]:
    """Only when the manifests define namespaces: a namespace only referred to has no labels
    but its name, and lint would then flag every custom label."""
    defined = [n for n in context.cluster.namespaces if n.provenance is not None]
    if not defined:
        return
    keys = {k for n in context.cluster.namespaces for k in n.labels}
    for policy in context.cluster.policies:
        for rule in rules_of(policy):
            for j, peer in enumerate(rule.peers):
                if not (isinstance(peer, PodPeer) and isinstance(peer.namespaces, SelectedNamespaces)):
                    continue
                selector = peer.namespaces.selector
                missing = _missing_keys(selector, keys)
                if not missing or any(selector.matches(n.labels) for n in context.cluster.namespaces):
                    continue
                shown = ", ".join(missing)
                yield context.finding(
                    UNKNOWN_NAMESPACE_LABEL, policy, (*peer_path(rule, j), "namespaceSelector"),
                    f"no namespace has the label {shown}, so this namespaceSelector selects no namespace",
                    hint=_namespace_hint(context, selector, keys),
                )  # fmt: skip


def _addresses(context: LintContext) -> dict[int, tuple[list[int], list[Pod]]]:
    """Per IP version, the addresses of the pods on the pod network in order, and their pods."""
    pairs = sorted((a.version, int(a), p.key, p) for p in context.pods() for a in p.ips)
    found: dict[int, tuple[list[int], list[Pod]]] = {}
    for version, number, _, pod in pairs:
        numbers, pods = found.setdefault(version, ([], []))
        numbers.append(number)
        pods.append(pod)
    return found


def ip_address(number: int, version: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.IPv4Address(number) if version == 4 else ipaddress.IPv6Address(number)


def _covered(peer: IPBlockPeer, addresses: dict[int, tuple[list[int], list[Pod]]]) -> list[Pod]:
    """Pods with an address the ipBlock contains: a bisection into the sorted addresses for the
    cidr, then the ipBlock's own test on each address found there."""
    numbers, pods = addresses.get(peer.cidr.version, ([], []))
    low = bisect.bisect_left(numbers, int(peer.cidr.network_address))
    high = bisect.bisect_right(numbers, int(peer.cidr.broadcast_address))
    found = {pods[i].key: pods[i] for i in range(low, high) if peer.contains(ip_address(numbers[i], peer.cidr.version))}
    return [found[k] for k in sorted(found)]


def ipblocks_over_pods(context: LintContext) -> Iterator[Diagnostic]:
    """``0.0.0.0/0`` and ``::/0`` are left alone: "everything" is what they say."""
    addresses = _addresses(context)
    for policy in context.cluster.policies:
        for rule in rules_of(policy):
            for j, peer in enumerate(rule.peers):
                if not isinstance(peer, IPBlockPeer) or peer.cidr.prefixlen == 0:
                    continue
                covered = _covered(peer, addresses)
                if not covered:
                    continue
                yield context.finding(
                    IPBLOCK_COVERS_PODS, policy, (*peer_path(rule, j), "ipBlock"),
                    f"ipBlock {peer} covers the addresses of pods {pod_list(covered)}",
                    hint="select those pods with podSelector/namespaceSelector instead, or add "
                    "their range to ipBlock.except",
                )  # fmt: skip


CHECKS: tuple[tuple[LintRule, Check], ...] = (
    (SPLIT_PEER, split_peers),
    (JOINED_PEER, joined_peers),
    (UNKNOWN_NAMESPACE_LABEL, unknown_namespace_labels),
    (IPBLOCK_COVERS_PODS, ipblocks_over_pods),
)
