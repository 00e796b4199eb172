"""The API server's NetworkPolicy defaults, and the normalisation into the model's variants.

Defaults, as ``SetDefaults_NetworkPolicy`` and ``SetDefaults_NetworkPolicyPort`` in
kubernetes/kubernetes ``pkg/apis/networking/v1/defaults.go`` apply them before validation:

* ``spec.policyTypes`` empty or absent: "Any policy that does not specify policyTypes implies at
  least Ingress", and ``Egress`` is added only when ``spec.egress`` has at least one rule
  (``len(obj.Spec.Egress) != 0``), so ``egress: []`` alone does not isolate egress;
* a port without ``protocol`` is ``TCP`` (an explicit ``""`` is not defaulted: validation
  rejects it).

Each default applied is recorded in words with its field path
(:attr:`NetworkPolicy.defaults_applied`) so explanations can say why a pod is isolated.

Normalisation (API field docs paraphrased in :mod:`policy.model`): a peer without
``namespaceSelector`` selects pods of the policy's own namespace (:class:`OwnNamespace`); with
one, of the selected namespaces (:class:`SelectedNamespaces`), all of their pods when
``podSelector`` is absent; missing or empty ``from``/``to``/``ports`` are empty tuples ("matches
all"); an ipBlock CIDR with host bits set is its network, as ``ParseCIDRSloppy`` reads it,
keeping what was written and warning about it, as the API server does (``GetWarningsForCIDR``).

Everything here expects a policy that :func:`manifests.validation.validate_network_policy`
accepted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from policyctl.policy.addresses import ParsedCIDR, parse_cidr_sloppy
from policyctl.policy.diagnostics import Diagnostic, Severity, format_path
from policyctl.manifests.fields import FieldReader, Site
from policyctl.policy.model import (
    Direction,
    IPBlockPeer,
    LabelSelector,
    NetworkPolicy,
    OwnNamespace,
    Peer,
    PodPeer,
    PortMatch,
    Protocol,
    Provenance,
    Rule,
    SelectedNamespaces,
)
from policyctl.manifests.selectors_parsing import read_label_selector
from policyctl.manifests.yamlsource import Path

_RULE_KEYS = {Direction.INGRESS: ("ingress", "from"), Direction.EGRESS: ("egress", "to")}


class InvalidPolicyError(ValueError):
    """A policy reached the defaulting step without passing validation: a programming error,
    never a user-input error."""


def default_policy_types(spec: Mapping[str, object]) -> tuple[frozenset[Direction], str | None]:
    """The policy types and, when defaulted, the sentence saying so."""
    written = spec.get("policyTypes") or []
    if not isinstance(written, list):
        raise InvalidPolicyError("spec.policyTypes")
    if written:
        return frozenset(Direction(str(t)) for t in written), None
    if spec.get("egress"):
        return (
            frozenset({Direction.INGRESS, Direction.EGRESS}),
            "spec.policyTypes defaulted to [Ingress, Egress] (spec.egress has rules)",
        )
    return (
        frozenset({Direction.INGRESS}),
        "spec.policyTypes defaulted to [Ingress] (spec.egress has no rules)",
    )


def default_protocol(port: Mapping[str, object], path: Path) -> tuple[Protocol, str | None]:
    """A port's protocol and, when defaulted to TCP, the sentence saying so."""
    protocol = port.get("protocol")
    if protocol is None:
        return Protocol.TCP, f"{format_path((*path, 'protocol'))} defaulted to TCP"
    return Protocol(protocol), None


class _Builder:
    def __init__(self, site: Site, *, namespace: str) -> None:
        self.site = site
        self.namespace = namespace
        self.defaults: list[str] = []
        self.warnings: list[Diagnostic] = []
        self._reader = FieldReader(site)

    def selector(self, value: object, path: Path) -> LabelSelector:
        selector = read_label_selector(self._reader, value, path)
        if selector is None:
            raise InvalidPolicyError(format_path(path))
        return selector

    def warn(self, path: Path, code: str, message: str) -> None:
        self.warnings.append(self.site.diagnostic(path, code, message, severity=Severity.WARNING))

    def cidr(self, text: str, path: Path) -> ParsedCIDR:
        parsed = parse_cidr_sloppy(text)
        if parsed is None:
            raise InvalidPolicyError(format_path(path))
        if parsed.has_host_bits:
            single = f"{parsed.address}/{parsed.network.max_prefixlen}"
            self.warn(path, "cidr-host-bits",
                      f'"{text}" has bits set beyond the prefix length; the API server reads it '
                      f'as "{parsed.network}" (did you mean "{single}"?)')  # fmt: skip
        if parsed.non_standard:
            self.warn(path, "cidr-non-standard",
                      f'non-standard CIDR value "{text}" will be considered invalid in a future '
                      f'Kubernetes release: use "{parsed.network}"')  # fmt: skip
        return parsed

    def peer(self, raw: Mapping[str, object], path: Path) -> Peer:
        block = raw.get("ipBlock")
        if isinstance(block, Mapping):
            cidr = self.cidr(str(block["cidr"]), (*path, "ipBlock", "cidr"))
            written = block.get("except") or []
            if not isinstance(written, list):
                raise InvalidPolicyError(format_path((*path, "ipBlock", "except")))
            excepts = {
                self.cidr(str(e), (*path, "ipBlock", "except", i)).network
                for i, e in enumerate(written)
            }
            ordered = tuple(sorted(excepts, key=lambda n: (n.network_address, n.prefixlen)))
            return IPBlockPeer(cidr.network, ordered, written=str(block["cidr"]))
        pods = self.selector(raw.get("podSelector"), (*path, "podSelector"))
        if raw.get("namespaceSelector") is None:
            return PodPeer(OwnNamespace(self.namespace), pods)
        namespaces = self.selector(raw["namespaceSelector"], (*path, "namespaceSelector"))
        return PodPeer(SelectedNamespaces(namespaces), pods)

    def port(self, raw: Mapping[str, object], path: Path) -> PortMatch:
        protocol, note = default_protocol(raw, path)
        if note:
            self.defaults.append(note)
        port = raw.get("port")
        if isinstance(port, float):
            port = int(port)
        end = raw.get("endPort")
        end_port = int(end) if isinstance(end, (int, float)) else None
        if not (port is None or isinstance(port, (int, str))):
            raise InvalidPolicyError(format_path((*path, "port")))
        return PortMatch(protocol, port, end_port)

    def rules(self, spec: Mapping[str, object], direction: Direction) -> tuple[Rule, ...]:
        key, peers_key = _RULE_KEYS[direction]
        written = spec.get(key) or []
        if not isinstance(written, Sequence):
            raise InvalidPolicyError(key)
        rules = []
        for i, item in enumerate(written):
            raw = item if isinstance(item, Mapping) else {}
            path: Path = ("spec", key, i)
            peers = [
                self.peer(p if isinstance(p, Mapping) else {}, (*path, peers_key, j))
                for j, p in enumerate(raw.get(peers_key) or [])
            ]
            ports = [
                self.port(p if isinstance(p, Mapping) else {}, (*path, "ports", j))
                for j, p in enumerate(raw.get("ports") or [])
            ]
            provenance = Provenance(
                self.site.document.source, self.site.line_of(path), self.site.document.index
            )
            rules.append(Rule(direction, i, tuple(peers), tuple(ports), provenance))
        return tuple(rules)


def build_network_policy(
    value: Mapping[str, object],
    *,
    site: Site,
    namespace: str,
    provenance: Provenance | None = None,
) -> tuple[NetworkPolicy, list[Diagnostic]]:
    """A validated NetworkPolicy manifest -> the model value with every API default applied,
    and the warnings the API server would return with it."""
    metadata = value.get("metadata")
    if not isinstance(metadata, Mapping):
        raise InvalidPolicyError("metadata")
    spec = value.get("spec") or {}
    if not isinstance(spec, Mapping):
        raise InvalidPolicyError("spec")
    builder = _Builder(site, namespace=namespace)
    policy_types, note = default_policy_types(spec)
    pod_selector = builder.selector(spec.get("podSelector"), ("spec", "podSelector"))
    ingress = builder.rules(spec, Direction.INGRESS)
    egress = builder.rules(spec, Direction.EGRESS)
    defaults = ([note] if note else []) + builder.defaults
    policy = NetworkPolicy(
        namespace=namespace,
        name=str(metadata["name"]),
        pod_selector=pod_selector,
        policy_types=policy_types,
        ingress=ingress,
        egress=egress,
        provenance=provenance,
        defaults_applied=tuple(defaults),
        warnings=tuple(f"{d.field}: {d.message}" for d in builder.warnings),
    )
    return policy, builder.warnings
