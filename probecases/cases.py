"""Probe cases (``../shared/spec/probe-cases.md``) parsed into typed values and cluster snapshots.

A probe case is a small cluster, a sequence of steps that change it, and the probes to run after
each step. Parsing turns the whole file into one :class:`ProbeCase` whose steps each carry the
:class:`~policyctl.policy.cluster.Cluster` as it is after that step, so every engine (model,
compiled, lab) is shown exactly the same snapshots and none re-implements the step rules.

Invariants:

* Every pod ever present in the case (model pods and ``pods_added``) gets its addresses before
  any step runs, so ``{{ip4:ns/pod}}`` in a policy of any step resolves, and a pod keeps its
  addresses for the whole case (:mod:`probecases.addresses` says which).
* Step fields apply in the order the spec lists them: ``remove_policies``, ``policies``,
  ``namespace_labels``, ``pod_labels``, ``pods_removed``, ``pods_added``; then the probes run.
* Policies go through the loader's ``parse_network_policy`` after address substitution, so an
  invalid policy is reported with the case file, the line and the field path, like a manifest.
* The file is read as PyYAML reads it, not as kubectl does (:mod:`probecases.reader` says why).
* Bad input never half-parses: every problem found is collected and raised at once as
  :class:`~policyctl.policy.diagnostics.InputError`.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policyctl.probecases.addresses import assign_addresses, node_address, substitute_addresses
from policyctl.manifests.yamlsource import Document
from policyctl.probecases.reader import CaseReader, PathT, kind_of, read_case_documents
from policyctl.policy.diagnostics import Diagnostic, InputError, Severity, format_path
from policyctl.probecases.engines import Probe
from policyctl.policy.addresses import parse_ip_sloppy
from policyctl.policy.suggest import did_you_mean
from policyctl.policy.clustermodel import ClusterNetworkPolicy
from policyctl.manifests.clusterparse import CLUSTER_POLICY_KINDS, parse_cluster_policy
from policyctl.manifests.fields import Site
from policyctl.manifests.loader import parse_network_policy
from policyctl.policy.model import (
    NAMESPACE_NAME_LABEL,
    ContainerPort,
    Family,
    IPAddress,
    Labels,
    Namespace,
    NetworkPolicy,
    Node,
    Pod,
    Protocol,
    Provenance,
)
from policyctl.policy.cluster import Cluster


STANDARD_NAMESPACES = ("x", "y", "z")
STANDARD_POD_NAMES = ("a", "b", "c")
STANDARD_NODES = ("node-1", "node-2")
STANDARD_PORTS = tuple(
    ContainerPort(port, protocol, f"serve-{port}-{protocol.value.lower()}")
    for port in (80, 81)
    for protocol in (Protocol.TCP, Protocol.UDP, Protocol.SCTP)
)
"""Every standard pod serves 80 and 81 on TCP, UDP and SCTP, named ``serve-80-tcp`` etc."""

_STEP_KEYS = (
    "remove_policies",
    "policies",
    "namespace_labels",
    "pod_labels",
    "pods_removed",
    "pods_added",
    "probes",
)
_POD_KEYS = ("labels", "node", "ports", "host_network", "ips")
_PROBE_KEYS = ("port", "protocol", "family", "via", "expected")


@dataclass(frozen=True, slots=True)
class Expectation:
    """One expected cell of a truth table: may ``source`` open a connection to ``destination``."""

    source: str
    destination: str
    allowed: bool


@dataclass(frozen=True, slots=True)
class CaseProbe:
    """A probe as written in a step, with its expected cells (none: nothing is checked)."""

    probe: Probe
    expected: tuple[Expectation, ...] = ()
    provenance: Provenance | None = None


@dataclass(frozen=True, slots=True)
class CaseStep:
    """One step: the cluster as it is after the step's changes, and the probes to run on it."""

    index: int
    cluster: Cluster
    probes: tuple[CaseProbe, ...] = ()
    provenance: Provenance | None = None


@dataclass(frozen=True, slots=True)
class ProbeCase:
    """A parsed probe case. ``addresses`` maps every pod key that ever exists in the case to its
    addresses in family order of ``families``; it is what the output's ``addresses`` reports."""

    name: str
    source: str
    families: tuple[Family, ...]
    addresses: tuple[tuple[str, tuple[IPAddress, ...]], ...]
    steps: tuple[CaseStep, ...]


@dataclass(frozen=True, slots=True)
class _PodSpec:
    key: str
    labels: Labels
    node: str
    ports: tuple[ContainerPort, ...]
    host_network: bool
    pinned: tuple[IPAddress, ...]
    provenance: Provenance
    path: PathT


def load_probe_case(path: str | Path) -> ProbeCase:
    """Read and parse the probe case at ``path``."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(
            [Diagnostic(source, 0, Severity.ERROR, "unreadable-file", f"cannot read: {error}")]
        ) from error
    return parse_probe_case(text, source=source)


def parse_probe_case(text: str, *, source: str) -> ProbeCase:
    """Parse a probe case; raises :class:`InputError` with every problem found."""
    documents = [d for d in read_case_documents(text, source=source) if d.value is not None]
    if len(documents) != 1:
        line = documents[1].line_of(()) if len(documents) > 1 else 1
        raise InputError(
            [
                Diagnostic(
                    source,
                    line,
                    Severity.ERROR,
                    "invalid-probe-case",
                    f"a probe case is exactly one YAML document, found {len(documents)}",
                )
            ]
        )
    parser = _CaseParser(documents[0])
    case = parser.parse()
    if _errors(parser.diagnostics) or case is None:
        raise InputError(parser.diagnostics)
    return case


def _errors(diagnostics: Sequence[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diagnostics)


class _CaseParser(CaseReader):
    """Builds the case from its document: the model, then each step on the previous snapshot."""

    def __init__(self, document: Document) -> None:
        super().__init__(document)
        self.node_details: dict[str, tuple[tuple[IPAddress, ...], Labels]] = {}

    # -- the case --------------------------------------------------------------------------

    def parse(self) -> ProbeCase | None:
        top = self.mapping(self.document.value, (), keys=("name", "model", "steps"))
        name = top.get("name", "")
        if not isinstance(name, str):
            self.error(("name",), f"must be a string, not {kind_of(name)}")
            name = str(name)
        model = top.get("model", "standard")
        if model == "standard":
            families, nodes, namespaces, pods = self.standard_model()
        else:
            families, nodes, namespaces, pods = self.inline_model(model)
        if not nodes:
            return None
        raw_steps = self.sequence(top.get("steps"), ("steps",))
        added = self.added_pods(raw_steps, nodes=nodes, start=len(pods))
        everyone = {**{p.key: p for p in added}, **pods}
        pins = {name: pinned for name, (pinned, _) in self.node_details.items()}
        addresses, problems = assign_addresses(
            [(p.key, p.node, p.host_network, p.pinned) for p in everyone.values()],
            families=families,
            nodes=nodes,
            node_pins=pins,
        )
        for key, message in problems:
            self.error((*everyone[key].path, "ips"), message)
        node_values = tuple(
            Node(
                name,
                tuple(node_address(name, i, f, pins) for f in families),
                labels=self.node_details.get(name, ((), Labels()))[1],
            )
            for i, name in enumerate(nodes, start=1)
        )
        cluster = Cluster(
            namespaces=tuple(namespaces[n] for n in sorted(namespaces)),
            pods=tuple(self.pod(spec, addresses) for spec in pods.values()),
            nodes=node_values,
        )
        added_by_key = {p.key: p for p in added}
        steps = []
        for index, raw in enumerate(raw_steps):
            path: PathT = ("steps", index)
            cluster = self.apply_step(
                cluster, self.mapping(raw, path, keys=_STEP_KEYS), path,
                addresses=addresses, added=added_by_key,
            )
            probes = self.probes(
                self.mapping(raw, path).get("probes"), (*path, "probes"),
                cluster=cluster, families=families,
            )
            steps.append(CaseStep(index, cluster, probes, self.provenance(path)))
        ordered = tuple(
            (key, tuple(addresses[key][f] for f in families if f in addresses[key]))
            for key in sorted(addresses)
        )
        return ProbeCase(name, self.source, families, ordered, tuple(steps))

    def standard_model(
        self,
    ) -> tuple[tuple[Family, ...], tuple[str, ...], dict[str, Namespace], dict[str, _PodSpec]]:
        namespaces = {
            ns: Namespace(ns, Labels({"ns": ns, NAMESPACE_NAME_LABEL: ns}))
            for ns in STANDARD_NAMESPACES
        }
        where = self.provenance(("model",))
        pods: dict[str, _PodSpec] = {}
        for i, (ns, name) in enumerate(
            (ns, name) for ns in STANDARD_NAMESPACES for name in STANDARD_POD_NAMES
        ):
            key = f"{ns}/{name}"
            node = STANDARD_NODES[i % len(STANDARD_NODES)]
            pods[key] = _PodSpec(
                key, Labels({"pod": name}), node, STANDARD_PORTS, False, (), where, ("model",)
            )
        return (Family.IPV4,), STANDARD_NODES, namespaces, pods

    def inline_model(
        self, value: Any
    ) -> tuple[tuple[Family, ...], tuple[str, ...], dict[str, Namespace], dict[str, _PodSpec]]:
        path: PathT = ("model",)
        if isinstance(value, str):
            self.error(path, f"must be 'standard' or an inline model, not {value!r}")
            return (Family.IPV4,), (), {}, {}
        model = self.mapping(value, path, keys=("ip_families", "nodes", "namespaces", "pods"))
        families: list[Family] = []
        raw_families = model.get("ip_families", ["IPv4"])
        for i, raw in enumerate(self.sequence(raw_families, (*path, "ip_families"))):
            family = self.enum(raw, (*path, "ip_families", i), Family, None)
            if family is not None and family in families:
                self.error((*path, "ip_families", i), f"{family.value} is listed twice")
            elif family is not None:
                families.append(family)
        if not families:
            self.error((*path, "ip_families"), "must list IPv4, IPv6 or both")
            families = [Family.IPV4]
        nodes = self.model_nodes(model.get("nodes", list(STANDARD_NODES)), (*path, "nodes"), families)
        if not nodes:
            self.error((*path, "nodes"), "a model needs at least one node")
            return tuple(families), (), {}, {}
        namespaces: dict[str, Namespace] = {}
        for ns, labels in self.mapping(model.get("namespaces"), (*path, "namespaces")).items():
            ns_path = (*path, "namespaces", ns)
            namespaces[ns] = Namespace(
                ns,
                self.labels(labels, ns_path).with_label(NAMESPACE_NAME_LABEL, ns),
                self.provenance(ns_path),
            )
        pods: dict[str, _PodSpec] = {}
        raw_pods = self.mapping(model.get("pods"), (*path, "pods"))
        for i, (key, raw) in enumerate(raw_pods.items()):
            spec = self.pod_spec(
                key, raw, (*path, "pods", key), nodes=tuple(nodes), ordinal=i,
                namespaces=namespaces,
            )
            if spec is not None:
                pods[key] = spec
        return tuple(families), tuple(nodes), namespaces, pods

    def model_nodes(self, value: Any, path: PathT, families: list[Family]) -> list[str]:
        """``nodes``: a list of names, or a map of names to ``{addresses, labels}`` (for
        ``nodes`` peers and ipBlocks over node addresses), kept in :attr:`node_details`."""
        nodes: list[str] = []
        if isinstance(value, Mapping):
            for name, raw in value.items():
                at = (*path, name)
                details = self.mapping(raw, at, keys=("addresses", "labels"))
                pinned: list[IPAddress] = []
                for i, text in enumerate(self.sequence(details.get("addresses"), (*at, "addresses"))):
                    parsed = parse_ip_sloppy(text) if isinstance(text, str) else None
                    if parsed is None:
                        self.error((*at, "addresses", i), f"{text!r} is not an IP address")
                    elif Family.of(parsed.address) not in families:
                        self.error((*at, "addresses", i), f"{text} is not of a family of this cluster")
                    else:
                        pinned.append(parsed.address)
                self.node_details[str(name)] = (tuple(pinned), self.labels(details.get("labels"), (*at, "labels")))
                nodes.append(str(name))
            return nodes
        for i, raw in enumerate(self.sequence(value, path)):
            name = self.string(raw, (*path, i))
            if name is not None and name in nodes:
                self.error((*path, i), f"node {name} is listed twice")
            elif name is not None:
                nodes.append(name)
        return nodes

    def pod_spec(
        self,
        key: str,
        value: Any,
        path: PathT,
        *,
        nodes: tuple[str, ...],
        ordinal: int,
        namespaces: Mapping[str, Namespace] | None,
    ) -> _PodSpec | None:
        if self.pod_key(key, path) is None:
            return None
        if namespaces is not None and key.split("/")[0] not in namespaces:
            self.error(path, f"namespace {key.split('/')[0]} is not in model.namespaces")
        fields = self.mapping(value, path, keys=_POD_KEYS)
        node = fields.get("node", nodes[ordinal % len(nodes)])
        if node not in nodes:
            self.error((*path, "node"), f"unknown node {node!r}; nodes: {', '.join(nodes)}")
            node = nodes[0]
        host_network = fields.get("host_network", False)
        if not isinstance(host_network, bool):
            self.error((*path, "host_network"), f"must be true or false, not {host_network!r}")
            host_network = False
        ports = STANDARD_PORTS
        if "ports" in fields:
            ports = self.container_ports(fields["ports"], (*path, "ports"))
        pinned: list[IPAddress] = []
        for i, raw in enumerate(self.sequence(fields.get("ips"), (*path, "ips"))):
            try:
                address = ipaddress.ip_address(str(raw))
            except ValueError:
                self.error((*path, "ips", i), f"not an IP address: {raw!r}")
                continue
            if any(a.version == address.version for a in pinned):
                self.error((*path, "ips", i), "at most one address per family")
                continue
            pinned.append(address)
        return _PodSpec(
            key,
            self.labels(fields.get("labels"), (*path, "labels")),
            node,
            ports,
            host_network,
            tuple(pinned),
            self.provenance(path),
            path,
        )

    def container_ports(self, value: Any, path: PathT) -> tuple[ContainerPort, ...]:
        ports = []
        for i, raw in enumerate(self.sequence(value, path)):
            item = self.mapping(raw, (*path, i), keys=("name", "port", "protocol"))
            number = item.get("port")
            if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 65535:
                self.error((*path, i, "port"), f"must be a port number 1-65535, not {number!r}")
                continue
            protocol = self.enum(item.get("protocol"), (*path, i, "protocol"), Protocol, Protocol.TCP)
            name = item.get("name")
            if name is not None and not isinstance(name, str):
                self.error((*path, i, "name"), f"must be a string, not {kind_of(name)}")
                name = None
            ports.append(ContainerPort(number, protocol, name))
        return tuple(ports)

    def added_pods(
        self, raw_steps: list[Any], *, nodes: tuple[str, ...], start: int
    ) -> list[_PodSpec]:
        added: list[_PodSpec] = []
        for index, raw in enumerate(raw_steps):
            if not isinstance(raw, Mapping):
                continue
            path: PathT = ("steps", index, "pods_added")
            for key, value in self.mapping(raw.get("pods_added"), path).items():
                spec = self.pod_spec(
                    key, value, (*path, key), nodes=nodes, ordinal=start + len(added),
                    namespaces=None,
                )
                if spec is not None:
                    added.append(spec)
        return added

    def pod(self, spec: _PodSpec, addresses: Mapping[str, Mapping[Family, IPAddress]]) -> Pod:
        return Pod(
            namespace=spec.key.split("/")[0],
            name=spec.key.split("/")[1],
            labels=spec.labels,
            node=spec.node,
            ips=tuple(addresses[spec.key].values()),
            host_network=spec.host_network,
            ports=spec.ports,
            provenance=spec.provenance,
        )

    # -- steps -----------------------------------------------------------------------------

    def apply_step(
        self,
        cluster: Cluster,
        step: Mapping[str, Any],
        path: PathT,
        *,
        addresses: Mapping[str, Mapping[Family, IPAddress]],
        added: Mapping[str, _PodSpec],
    ) -> Cluster:
        policies = {p.ref: p for p in cluster.policies}
        refs = {str(ref): ref for ref in policies}
        scoped = {(p.kind.value, p.name): p for p in cluster.cluster_policies}
        for i, raw in enumerate(self.sequence(step.get("remove_policies"), (*path, "remove_policies"))):
            named = [k for k in scoped if k[1] == raw]
            if raw in refs and refs[raw] in policies:
                del policies[refs[raw]]
            elif named:
                for key in named:
                    del scoped[key]
            else:
                known = ", ".join(sorted([*refs, *(name for _, name in scoped)])) or "none"
                self.error((*path, "remove_policies", i), f"no policy {raw!r} to remove (present: {known})")
        for i, raw in enumerate(self.sequence(step.get("policies"), (*path, "policies"))):
            policy = self.policy(raw, (*path, "policies", i), cluster=cluster, addresses=addresses)
            if isinstance(policy, ClusterNetworkPolicy):
                scoped[(policy.kind.value, policy.name)] = policy
            elif policy is not None:
                policies[policy.ref] = policy
        namespaces = {n.name: n for n in cluster.namespaces}
        raw_ns = self.mapping(step.get("namespace_labels"), (*path, "namespace_labels"))
        for name, labels in raw_ns.items():
            ns_path = (*path, "namespace_labels", name)
            if name not in namespaces:
                self.error(ns_path, f"no namespace {name!r} (present: {', '.join(sorted(namespaces))})")
                continue
            namespaces[name] = dataclasses.replace(
                namespaces[name],
                labels=self.labels(labels, ns_path).with_label(NAMESPACE_NAME_LABEL, name),
            )
        pods = {p.key: p for p in cluster.pods}
        for pod_key, labels in self.mapping(step.get("pod_labels"), (*path, "pod_labels")).items():
            if self.known_pod(pod_key, pods, (*path, "pod_labels", pod_key)):
                relabelled = self.labels(labels, (*path, "pod_labels", pod_key))
                pods[pod_key] = dataclasses.replace(pods[pod_key], labels=relabelled)
        for i, pod_key in enumerate(self.sequence(step.get("pods_removed"), (*path, "pods_removed"))):
            if self.known_pod(pod_key, pods, (*path, "pods_removed", i)):
                del pods[pod_key]
        for pod_key in self.mapping(step.get("pods_added"), (*path, "pods_added")):
            pod_path = (*path, "pods_added", pod_key)
            if pod_key in pods:
                self.error(pod_path, f"pod {pod_key} already exists")
            elif pod_key in added:
                if pod_key.split("/")[0] not in namespaces:
                    self.error(pod_path, f"namespace {pod_key.split('/')[0]} is not in the model")
                pods[pod_key] = self.pod(added[pod_key], addresses)
        return Cluster(
            namespaces=tuple(namespaces[n] for n in sorted(namespaces)),
            pods=tuple(pods.values()),
            nodes=cluster.nodes,
            policies=tuple(policies[r] for r in sorted(policies)),
            cluster_policies=tuple(sorted(scoped.values(), key=lambda p: (p.tier.value, p.order))),
        )

    def known_pod(self, key: Any, pods: Mapping[str, Pod], path: PathT) -> bool:
        if key in pods:
            return True
        self.error(path, f"no pod {key!r} at this step{_close(key, pods)}")
        return False

    def policy(
        self,
        value: Any,
        path: PathT,
        *,
        cluster: Cluster,
        addresses: Mapping[str, Mapping[Family, IPAddress]],
    ) -> NetworkPolicy | ClusterNetworkPolicy | None:
        substituted, problems = substitute_addresses(value, addresses)
        for where, message in problems:
            self.error((*path, *where), message, code="unresolved-address")
        if problems or not isinstance(substituted, Mapping):
            if not problems:
                self.error(path, f"must be a NetworkPolicy mapping, not {kind_of(value)}")
            return None
        kind = substituted.get("kind")
        if isinstance(kind, str) and kind in CLUSTER_POLICY_KINDS:
            scoped, found = parse_cluster_policy(substituted, kind=kind, site=Site(self.document, path, kind))
            self._add_diagnostics(found, path)
            return scoped
        policy, diagnostics = parse_network_policy(
            substituted, document=self.document, path=path, default_namespace="default"
        )
        self._add_diagnostics(diagnostics, path)
        if policy is not None and policy.namespace not in cluster.namespace_by_name:
            self.error(
                (*path, "metadata", "namespace"),
                f"namespace {policy.namespace!r} is not in the model",
            )
            return None
        return policy

    def _add_diagnostics(self, diagnostics: Sequence[Diagnostic], path: PathT) -> None:
        prefix = format_path(path)
        self.diagnostics.extend(
            d
            if d.field.startswith(prefix)
            else dataclasses.replace(d, field=f"{prefix}.{d.field}" if d.field else prefix)
            for d in diagnostics
        )

    def probes(
        self, value: Any, path: PathT, *, cluster: Cluster, families: tuple[Family, ...]
    ) -> tuple[CaseProbe, ...]:
        result = []
        for i, raw in enumerate(self.sequence(value, path)):
            probe_path = (*path, i)
            item = self.mapping(raw, probe_path, keys=_PROBE_KEYS)
            port = item.get("port")
            if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
                self.error((*probe_path, "port"), f"must be a port number 1-65535, not {port!r}")
                continue
            protocol = self.enum(item.get("protocol"), (*probe_path, "protocol"), Protocol, Protocol.TCP)
            family = self.enum(item.get("family"), (*probe_path, "family"), Family, families[0])
            if family not in families:
                self.error(
                    (*probe_path, "family"),
                    f"the cluster has no {family.value} (ip_families: "
                    f"{', '.join(f.value for f in families)})",
                )
            via = item.get("via", "pod")
            if via not in ("pod", "service"):
                self.error((*probe_path, "via"), f"must be pod or service, not {via!r}")
            expected = self.expected(item.get("expected"), (*probe_path, "expected"), cluster=cluster)
            result.append(
                CaseProbe(
                    Probe(port, protocol, family, via_service=via == "service"),
                    expected,
                    self.provenance(probe_path),
                )
            )
        return tuple(result)

    def expected(self, value: Any, path: PathT, *, cluster: Cluster) -> tuple[Expectation, ...]:
        pods = cluster.pod_by_key
        cells = []
        for source, row in self.mapping(value, path).items():
            if not self.known_pod(source, pods, (*path, source)):
                continue
            for destination, allowed in self.mapping(row, (*path, source)).items():
                cell_path = (*path, source, destination)
                if not self.known_pod(destination, pods, cell_path):
                    continue
                if not isinstance(allowed, bool):
                    self.error(cell_path, f"must be true or false, not {allowed!r}")
                    continue
                cells.append(Expectation(source, destination, allowed))
        return tuple(sorted(cells, key=lambda c: (c.source, c.destination)))


def _close(key: Any, known: Mapping[str, Any]) -> str:
    return did_you_mean(str(key), known)
