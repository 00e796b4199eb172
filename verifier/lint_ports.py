"""Lint rules about ports: DNS cut off by egress isolation, named ports nobody declares, and
Service ports used where the pod's port was needed.

API rules they rest on: a pod selected by a policy with policyType Egress may open only the
connections some egress rule allows, name lookups (UDP and TCP 53 to the cluster DNS) included,
which the Kubernetes documentation cautions about for default-deny egress. A named ``port``
"will be matched against the container port names of the destination pod" (``NetworkPolicyPort``);
a name no destination declares matches nothing. Policy applies to the pod after the Service
address and port are translated, so a rule must name the pod's port (the Service's
``targetPort``), not the Service ``port``.
"""

from __future__ import annotations

from collections.abc import Iterator

from policyctl.policy.diagnostics import Diagnostic, Severity
from policyctl.policy.model import Direction, NetworkPolicy, Pod, PodPeer, PortMatch, Protocol, Rule
from policyctl.policy.semantics import evaluate_direction, selecting_policies
from policyctl.policy.verdicts import Connection
from policyctl.verifier.lint_context import Check, LintContext, LintRule, PodGroup, pod_list, rule_path, rules_of
from policyctl.verifier.lint_sources import Service, ServicePort

DNS_PORT = 53
DNS_LABEL = ("k8s-app", "kube-dns")

EGRESS_BLOCKS_DNS = LintRule(
    "egress-blocks-dns",
    Severity.WARNING,
    "egress isolation without a rule that admits DNS",
    "A pod isolated for egress may open only what an egress rule allows: without UDP/TCP 53 "
    "to the cluster DNS its name lookups fail, and so does almost everything else.",
)
UNKNOWN_NAMED_PORT = LintRule(
    "unknown-named-port",
    Severity.WARNING,
    "named port that no destination pod declares",
    "A named port is looked up among the destination pod's container ports (name and "
    "protocol); where no container port has that name the port entry matches nothing.",
)
SERVICE_PORT = LintRule(
    "service-port-not-container-port",
    Severity.WARNING,
    "port of a Service rather than of the pods behind it",
    "Policy sees connections after the Service address and port are translated to the pod's: "
    "a rule must name the Service's targetPort (or its container port name).",
)


def _admits_dns_statically(rule: Rule) -> bool:
    """Whether some port of the rule can admit UDP 53 (named ports count: they may resolve
    to 53 on a DNS pod)."""
    if rule.any_port:
        return True
    for port in rule.ports:
        if port.protocol is not Protocol.UDP:
            continue
        if port.port is None or isinstance(port.port, str) or port.port == DNS_PORT:
            return True
        if port.end_port is not None and port.port <= DNS_PORT <= port.end_port:
            return True
    return False


def _dns_pods(context: LintContext) -> tuple[Pod, ...]:
    key, value = DNS_LABEL
    return tuple(p for p in context.pods() if p.labels.get(key) == value)


def _reaches_dns(context: LintContext, pod: Pod, dns: tuple[Pod, ...]) -> bool:
    if not dns:
        policies = [p for p in selecting_policies(context.cluster, pod) if p.isolates(Direction.EGRESS)]
        return any(_admits_dns_statically(r) for p in policies for r in p.egress)
    return any(
        evaluate_direction(context.cluster, Connection(pod, d, Protocol.UDP, DNS_PORT), Direction.EGRESS).allowed
        for d in dns
    )


def _policy_admits_dns(context: LintContext, policy: NetworkPolicy) -> bool:
    """Without pods: some egress rule of a policy in the namespace that selects at least the
    same pods (its selector's requirements a subset of this one's) admits UDP 53."""
    mine = set(policy.pod_selector.requirements)
    return any(
        _admits_dns_statically(rule)
        for other in context.cluster.policies_in(policy.namespace)
        if other.isolates(Direction.EGRESS) and set(other.pod_selector.requirements) <= mine
        for rule in other.egress
    )


def egress_without_dns(context: LintContext) -> Iterator[Diagnostic]:
    """Each cut-off pod is reported once, at the first policy (namespace/name order) that
    isolates it for egress. The egress half depends on the source's namespace and labels
    only (and the DNS pods), so it is decided once per group."""
    dns = _dns_pods(context)
    reported: set[str] = set()
    reaches: dict[int, bool] = {}
    hint = (
        "add an egress rule to the DNS pods, e.g. to: [{namespaceSelector: {matchLabels: "
        "{kubernetes.io/metadata.name: kube-system}}, podSelector: {matchLabels: {k8s-app: "
        "kube-dns}}}] with ports [{port: 53, protocol: UDP}, {port: 53, protocol: TCP}]"
    )
    for policy in context.cluster.policies:
        if not policy.isolates(Direction.EGRESS):
            continue
        placed = context.manifests.placed(policy)
        path = ("spec", "policyTypes") if placed is None or placed.has(("spec", "policyTypes")) else ("spec", "egress")
        groups = context.selected_groups(policy)
        if not groups:
            if not _policy_admits_dns(context, policy):
                yield context.finding(
                    EGRESS_BLOCKS_DNS, policy, path,
                    "this policy isolates its pods for egress and no egress rule for them admits DNS (UDP 53)",
                    hint=hint,
                )  # fmt: skip
            continue
        cut = sorted(
            (p for g in groups if not reaches.setdefault(id(g), _reaches_dns(context, g.pods[0], dns)) for p in g.pods),
            key=lambda p: p.key,
        )
        cut = [p for p in cut if p.key not in reported]
        if not cut:
            continue
        reported.update(p.key for p in cut)
        target = f" to {pod_list(dns)}" if dns else ""
        yield context.finding(
            EGRESS_BLOCKS_DNS, policy, path,
            f"pods {pod_list(cut)} are isolated for egress by this policy and no egress rule "
            f"admits DNS (UDP 53){target}: their name lookups fail",
            hint=hint,
        )  # fmt: skip


def _port_path(rule: Rule, index: int) -> tuple[str | int, ...]:
    return (*rule_path(rule), "ports", index)


def unknown_named_ports(context: LintContext) -> Iterator[Diagnostic]:
    """Destinations are the rule's pods (see :meth:`LintContext.destinations`), every pod when
    it has none in the manifests; silent without pods at all."""
    everyone = tuple(g for groups in context.groups.values() for g in groups)
    if not everyone:
        return
    for policy in context.cluster.policies:
        for rule in rules_of(policy):
            if not any(isinstance(port.port, str) for port in rule.ports):
                continue
            destinations = context.destination_groups(policy, rule) or everyone
            for k, port in enumerate(rule.ports):
                if not isinstance(port.port, str):
                    continue
                named = [(g, c) for g in destinations for c in g.ports if c.name == port.port]
                if any(c.protocol is port.protocol for _, c in named):
                    continue
                where = f"pods {pod_list(p for g in destinations for p in g.pods)}"
                if named:
                    found = sorted({f"{c.port}/{c.protocol.value}" for _, c in named})
                    message = (
                        f'named port "{port.port}" is {", ".join(found)} on {where}, not '
                        f"{port.protocol.value}: this port entry matches nothing"
                    )
                    hint = f"set protocol: {named[0][1].protocol.value} on this port entry"
                else:
                    message = f'no container port named "{port.port}" on {where}: this port entry matches nothing'
                    hint = f'name the container port "{port.port}" (ports[].name) or use its number'
                yield context.finding(UNKNOWN_NAMED_PORT, policy, _port_path(rule, k), message, hint=hint)


def _target_number(target: int | str, pod: Pod, protocol: Protocol) -> int | None:
    if isinstance(target, int):
        return target
    return next((c.port for c in pod.ports if c.name == target and c.protocol is protocol), None)


def _service_mismatch(
    context: LintContext, port: PortMatch, groups: tuple[PodGroup, ...]
) -> tuple[Service, ServicePort, int] | None:
    """A Service in front of the groups' pods whose ``port`` is this number but sends it
    elsewhere, when no pod declares the number itself (one pod per group decides: its
    namespace, labels and container ports are the group's)."""
    number = port.port
    if not isinstance(number, int) or port.end_port is not None:
        return None
    if any(c.port == number and c.protocol is port.protocol for g in groups for c in g.ports):
        return None
    for service in context.manifests.services:
        for pod in (g.pods[0] for g in groups):
            if not service.selects(pod.namespace, pod.labels):
                continue
            for service_port in service.ports:
                if service_port.port != number or service_port.protocol is not port.protocol:
                    continue
                target = _target_number(service_port.target, pod, port.protocol)
                if target is not None and target != number:
                    return service, service_port, target
    return None


def service_ports(context: LintContext) -> Iterator[Diagnostic]:
    if not context.manifests.services:
        return
    for policy in context.cluster.policies:
        for rule in rules_of(policy):
            if rule.direction is Direction.EGRESS and (
                rule.any_peer or not all(isinstance(p, PodPeer) for p in rule.peers)
            ):
                continue
            groups = context.destination_groups(policy, rule)
            for k, port in enumerate(rule.ports):
                found = _service_mismatch(context, port, groups)
                if found is None:
                    continue
                service, service_port, target = found
                name = f' (the name "{service_port.target}")' if isinstance(service_port.target, str) else ""
                yield context.finding(
                    SERVICE_PORT, policy, _port_path(rule, k),
                    f"{port.port}/{port.protocol.value} is the port of Service "
                    f"{service.namespace}/{service.name}, which sends it to {target} on the pods; "
                    f"no destination pod has a container port {port.port}",
                    hint=f"use port {target}{name}: policy sees the pod's port, after the Service translates it",
                )  # fmt: skip


CHECKS: tuple[tuple[LintRule, Check], ...] = (
    (EGRESS_BLOCKS_DNS, egress_without_dns),
    (UNKNOWN_NAMED_PORT, unknown_named_ports),
    (SERVICE_PORT, service_ports),
)
