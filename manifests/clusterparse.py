"""Reading and validating cluster-scoped policies as the API server's CRD schema does.

The three kinds are read with their own field names and turned into one model
(:mod:`policy.clustermodel`). Validation follows the CRDs of kubernetes-sigs/network-policy-api
(``config/crd/*/policy.networking.k8s.io_clusternetworkpolicies.yaml`` and the v1alpha1 CRDs
generated from ``apis/v1alpha1``): the OpenAPI schema (types, enums, minimum/maximum, minItems/
maxItems, maxLength, ``MinProperties=1``/``MaxProperties=1`` "exactly one field", strict
unknown fields) and the CEL rules:

* ``PortRange``: "Start port must be less than End port" (``self.start < self.end``);
* ``CIDR``: ``isCIDR(self)`` (Go's ``netip.ParsePrefix``: a prefix length is required, no
  leading zeros, no zone, no IPv4-mapped IPv6), at most 43 characters;
* egress rules: "networks/nodes/domainNames peer cannot be set with namedPorts";
* ``DomainName``: the CRD's pattern; BaselineAdminNetworkPolicy: "Only one baseline admin
  network policy with metadata.name="default" can be created".

``domainNames`` is accepted (the API server would) with a warning that policyctl does not
resolve names, so such a peer never matches.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

from policyctl.policy.clustermodel import (
    BASELINE_ADMIN_PRIORITY,
    Action,
    ClusterNetworkPolicy,
    ClusterPeer,
    ClusterRule,
    DomainNamesPeer,
    NodesPeer,
    SourceKind,
    Tier,
)
from policyctl.policy.diagnostics import Diagnostic
from policyctl.manifests.fields import FieldReader, Site
from policyctl.policy.model import (
    Direction,
    IPBlockPeer,
    IPNetwork,
    LabelSelector,
    PodPeer,
    PortMatch,
    Protocol,
    Provenance,
    SelectedNamespaces,
)
from policyctl.manifests.names import port_name_errors
from policyctl.manifests.selectors_parsing import read_label_selector
from policyctl.manifests.validation import check_metadata
from policyctl.manifests.yamlsource import Path

GROUP = "policy.networking.k8s.io"
CLUSTER_NETWORK_POLICY_VERSIONS = (f"{GROUP}/v1alpha2", f"{GROUP}/v1beta1")
ADMIN_POLICY_VERSIONS = (f"{GROUP}/v1alpha1",)
#: kind -> the apiVersions that serve it.
CLUSTER_POLICY_KINDS: Mapping[str, tuple[str, ...]] = {
    SourceKind.CLUSTER_NETWORK_POLICY.value: CLUSTER_NETWORK_POLICY_VERSIONS,
    SourceKind.ADMIN_NETWORK_POLICY.value: ADMIN_POLICY_VERSIONS,
    SourceKind.BASELINE_ADMIN_NETWORK_POLICY.value: ADMIN_POLICY_VERSIONS,
}

_TOP_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec", "status"})
_SELECTOR_PAIR = frozenset({"namespaceSelector", "podSelector"})
_DOMAIN_RE = re.compile(
    r"(\*\.)?([a-zA-z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.)+[a-zA-z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.?"
)
_PREFIX_RE = re.compile(r"(0|[1-9][0-9]{0,2})")
_MAX_RULES = {SourceKind.CLUSTER_NETWORK_POLICY: 25}
_MAX_ADMIN_ITEMS = 100
_PROTOCOL_KEYS = {"tcp": Protocol.TCP, "udp": Protocol.UDP, "sctp": Protocol.SCTP}


@dataclass(frozen=True, slots=True)
class _Schema:
    """The field names and limits that differ between the kinds."""

    kind: SourceKind
    spec_fields: frozenset[str]
    ports_field: str
    actions: Mapping[str, Action]
    max_items: int
    egress_peers: frozenset[str]


_CNP_ACTIONS = {"Accept": Action.ACCEPT, "Deny": Action.DENY, "Pass": Action.PASS}
_SCHEMAS = {
    SourceKind.CLUSTER_NETWORK_POLICY: _Schema(
        SourceKind.CLUSTER_NETWORK_POLICY,
        frozenset({"tier", "priority", "subject", "ingress", "egress"}),
        "protocols",
        _CNP_ACTIONS,
        25,
        frozenset({"namespaces", "pods", "nodes", "networks", "domainNames"}),
    ),
    SourceKind.ADMIN_NETWORK_POLICY: _Schema(
        SourceKind.ADMIN_NETWORK_POLICY,
        frozenset({"priority", "subject", "ingress", "egress"}),
        "ports",
        {"Allow": Action.ACCEPT, "Deny": Action.DENY, "Pass": Action.PASS},
        _MAX_ADMIN_ITEMS,
        frozenset({"namespaces", "pods", "nodes", "networks", "domainNames"}),
    ),
    SourceKind.BASELINE_ADMIN_NETWORK_POLICY: _Schema(
        SourceKind.BASELINE_ADMIN_NETWORK_POLICY,
        frozenset({"subject", "ingress", "egress"}),
        "ports",
        {"Allow": Action.ACCEPT, "Deny": Action.DENY},
        _MAX_ADMIN_ITEMS,
        frozenset({"namespaces", "pods", "nodes", "networks"}),
    ),
}
_RULE_KEYS = {Direction.INGRESS: ("ingress", "from"), Direction.EGRESS: ("egress", "to")}


def parse_cidr_strict(text: str) -> IPNetwork | None:
    """``isCIDR`` as the API server's CEL library decides it (``netip.ParsePrefix`` without
    zones or IPv4-mapped IPv6): the network, host bits masked, or None."""
    address, slash, bits = text.partition("/")
    if not slash or not _PREFIX_RE.fullmatch(bits) or "%" in address:
        return None
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return None
    if int(bits) > parsed.max_prefixlen:
        return None
    return ipaddress.ip_network(f"{parsed}/{bits}", strict=False)


class _Reader:
    """One policy's fields, read and checked with every problem kept."""

    def __init__(self, site: Site, schema: _Schema) -> None:
        self.fields = FieldReader(site)
        self.schema = schema
        self.warnings: list[str] = []

    def one_of(self, value: object, path: Path, allowed: frozenset[str]) -> tuple[str, object] | None:
        """A map with exactly one of ``allowed`` (``MinProperties=1``, ``MaxProperties=1``)."""
        raw = self.fields.mapping(value, path, known=allowed)
        if raw is None:
            return None
        present = sorted(k for k in raw if k in allowed and raw[k] is not None)
        if len(present) != 1:
            choices = ", ".join(sorted(allowed))
            found = f"{len(present)} are set ({', '.join(present)})" if present else "none is set"
            self.fields.error(path, "exactly-one-field", f"exactly one of {choices} must be set; {found}")
            return None
        return present[0], raw[present[0]]

    def items(self, value: object, path: Path, *, minimum: int, maximum: int) -> list[object] | None:
        items = self.fields.sequence(value, path)
        if items is None:
            return None
        if len(items) < minimum:
            self.fields.error(path, "too-few-items", f"must have at least {minimum} item(s)")
        if len(items) > maximum:
            self.fields.error(path, "too-many-items", f"must have at most {maximum} items, has {len(items)}")
        return items

    def selector(self, value: object, path: Path) -> LabelSelector | None:
        return read_label_selector(self.fields, value, path)

    def pods_selector(self, value: object, path: Path) -> PodPeer | None:
        """A ``NamespacedPod``: ``podSelector`` is required; ``namespaceSelector`` empty or
        absent "selects all Namespaces". The v1alpha1 CRD requires both; a v1alpha1 manifest
        missing one is read as ``{}`` with a warning, since the kinds are read mostly to be
        converted and analysed, and the intent of an omitted selector is unambiguous."""
        raw = self.fields.mapping(value, path, known=_SELECTOR_PAIR)
        if raw is None:
            return None
        legacy = self.schema.kind is not SourceKind.CLUSTER_NETWORK_POLICY
        for key in ("podSelector", "namespaceSelector") if legacy else ("podSelector",):
            if key in raw:
                continue
            if not legacy:
                self.fields.error((*path, key), "required-field", f"{key} is required")
                return None
            self.fields.warn((*path, key), "required-field-missing",
                             f"{key} is required by the v1alpha1 CRD; read as {{}} (selects all), as analysers "
                             "of v1alpha1 manifests do")  # fmt: skip
        namespaces = self.selector(raw.get("namespaceSelector"), (*path, "namespaceSelector"))
        pods = self.selector(raw.get("podSelector"), (*path, "podSelector"))
        if namespaces is None or pods is None:
            return None
        return PodPeer(SelectedNamespaces(namespaces), pods)

    def subject(self, value: object, path: Path) -> PodPeer | None:
        if value is None:
            self.fields.error(path, "required-field", "subject is required")
            return None
        chosen = self.one_of(value, path, frozenset({"namespaces", "pods"}))
        if chosen is None:
            return None
        key, raw = chosen
        if key == "namespaces":
            selector = self.selector(raw, (*path, key))
            return None if selector is None else PodPeer(SelectedNamespaces(selector), LabelSelector())
        return self.pods_selector(raw, (*path, key))

    def cidrs(self, value: object, path: Path) -> tuple[IPBlockPeer, ...] | None:
        items = self.items(value, path, minimum=1, maximum=25)
        if items is None:
            return None
        found: dict[IPNetwork, IPBlockPeer] = {}
        for i, item in enumerate(items):
            text = self.fields.string(item, (*path, i))
            if text is None:
                continue
            network = parse_cidr_strict(text) if len(text) <= 43 else None
            if network is None:
                self.fields.error((*path, i), "invalid-cidr", f'"{text}": Invalid CIDR format provided')
                continue
            if str(network) != text:
                self.fields.warn((*path, i), "cidr-host-bits", f'"{text}" has host bits set; it means {network}')
            if network in found:
                self.fields.error((*path, i), "duplicate-item", f'"{text}" is listed twice (listType=set)')
            found[network] = IPBlockPeer(network, (), text)
        return tuple(found.values())

    def domain_names(self, value: object, path: Path) -> DomainNamesPeer | None:
        items = self.items(value, path, minimum=1, maximum=25)
        if items is None:
            return None
        names: list[str] = []
        for i, item in enumerate(items):
            text = self.fields.string(item, (*path, i))
            if text is None:
                continue
            if not _DOMAIN_RE.fullmatch(text):
                self.fields.error((*path, i), "invalid-domain-name",
                                  f'"{text}": must be a domain name, optionally prefixed by "*."')  # fmt: skip
            elif text in names:
                self.fields.error((*path, i), "duplicate-item", f'"{text}" is listed twice (listType=set)')
            else:
                names.append(text)
        self.fields.warn(path, "domain-names-not-enforced",
                         "domainNames are not enforced by policyctl: names are not resolved, "
                         "so this peer matches no traffic")  # fmt: skip
        return DomainNamesPeer(tuple(names))

    def peer(self, value: object, path: Path, direction: Direction) -> tuple[ClusterPeer, ...] | None:
        allowed = frozenset({"namespaces", "pods"}) if direction is Direction.INGRESS else self.schema.egress_peers
        chosen = self.one_of(value, path, allowed)
        if chosen is None:
            return None
        key, raw = chosen
        at = (*path, key)
        if key == "namespaces":
            selector = self.selector(raw, at)
            return None if selector is None else (PodPeer(SelectedNamespaces(selector), LabelSelector()),)
        if key == "pods":
            pods = self.pods_selector(raw, at)
            return None if pods is None else (pods,)
        if key == "nodes":
            selector = self.selector(raw, at)
            return None if selector is None else (NodesPeer(selector),)
        if key == "networks":
            return self.cidrs(raw, at)
        domains = self.domain_names(raw, at)
        return None if domains is None else (domains,)

    def port_number(self, value: object, path: Path) -> int | None:
        number = self.fields.integer(value, path)
        if number is not None and not 1 <= number <= 65535:
            self.fields.error(path, "invalid-port", f"{number}: must be between 1 and 65535, inclusive")
            return None
        return number

    def port_range(self, raw: Mapping[str, object], path: Path) -> tuple[int, int] | None:
        for key in ("start", "end"):
            if key not in raw:
                self.fields.error((*path, key), "required-field", f"{key} is required")
                return None
        start = self.port_number(raw["start"], (*path, "start"))
        end = self.port_number(raw["end"], (*path, "end"))
        if start is None or end is None:
            return None
        if not start < end:
            self.fields.error(path, "invalid-port-range", f"Start port must be less than End port ({start} >= {end})")
            return None
        return start, end

    def named_port(self, value: object, path: Path) -> tuple[PortMatch, ...] | None:
        name = self.fields.string(value, path)
        if name is None:
            return None
        problems = port_name_errors(name)
        for message in problems:
            self.fields.error(path, "invalid-port-name", f'"{name}": {message}')
        if problems:
            return None
        return tuple(PortMatch(protocol, name) for protocol in Protocol)

    def cnp_protocol(self, value: object, path: Path) -> tuple[PortMatch, ...] | None:
        """A ``ClusterNetworkPolicyProtocol``: ``tcp``/``udp``/``sctp`` with a
        ``destinationPort`` (number or range), or a ``destinationNamedPort``."""
        chosen = self.one_of(value, path, frozenset({*_PROTOCOL_KEYS, "destinationNamedPort"}))
        if chosen is None:
            return None
        key, raw = chosen
        if key == "destinationNamedPort":
            return self.named_port(raw, (*path, key))
        protocol = _PROTOCOL_KEYS[key]
        attributes = self.fields.mapping(raw, (*path, key), known=frozenset({"destinationPort"}))
        if attributes is None:
            return None
        if attributes.get("destinationPort") is None:
            self.fields.error((*path, key), "exactly-one-field", "destinationPort must be set")
            return None
        at = (*path, key, "destinationPort")
        port = self.one_of(attributes["destinationPort"], at, frozenset({"number", "range"}))
        if port is None:
            return None
        which, detail = port
        if which == "number":
            number = self.port_number(detail, (*at, "number"))
            return None if number is None else (PortMatch(protocol, number),)
        bounds = self.fields.mapping(detail, (*at, "range"), known=frozenset({"start", "end"}))
        span = None if bounds is None else self.port_range(bounds, (*at, "range"))
        return None if span is None else (PortMatch(protocol, span[0], span[1]),)

    def anp_port(self, value: object, path: Path) -> tuple[PortMatch, ...] | None:
        """An ``AdminNetworkPolicyPort``: ``portNumber`` {protocol, port}, ``namedPort`` or
        ``portRange`` {protocol (default TCP), start, end}."""
        chosen = self.one_of(value, path, frozenset({"portNumber", "namedPort", "portRange"}))
        if chosen is None:
            return None
        key, raw = chosen
        at = (*path, key)
        if key == "namedPort":
            return self.named_port(raw, at)
        known = frozenset({"protocol", "port"}) if key == "portNumber" else frozenset({"protocol", "start", "end"})
        detail = self.fields.mapping(raw, at, known=known)
        if detail is None:
            return None
        written = detail.get("protocol")
        if written is None and key == "portNumber":
            self.fields.error((*at, "protocol"), "required-field", "protocol is required")
            return None
        text = self.fields.string(written, (*at, "protocol")) or "TCP"
        if text not in Protocol.__members__:
            self.fields.error((*at, "protocol"), "invalid-protocol", f'"{text}": must be TCP, UDP or SCTP')
            return None
        protocol = Protocol(text)
        if key == "portNumber":
            if "port" not in detail:
                self.fields.error((*at, "port"), "required-field", "port is required")
                return None
            number = self.port_number(detail["port"], (*at, "port"))
            return None if number is None else (PortMatch(protocol, number),)
        span = self.port_range(detail, at)
        return None if span is None else (PortMatch(protocol, span[0], span[1]),)

    def rule(self, value: object, path: Path, direction: Direction, index: int) -> ClusterRule | None:
        peers_key = _RULE_KEYS[direction][1]
        ports_key = self.schema.ports_field
        raw = self.fields.mapping(value, path, known=frozenset({"name", "action", peers_key, ports_key}))
        if raw is None:
            return None
        name = self.fields.string(raw.get("name"), (*path, "name")) or ""
        if len(name) > 100:
            self.fields.error((*path, "name"), "too-long", f"may not be more than 100 characters, has {len(name)}")
        action = self._action(raw.get("action"), (*path, "action"))
        peers: list[ClusterPeer] = []
        kinds: set[str] = set()
        listed = self.items(raw.get(peers_key), (*path, peers_key), minimum=1, maximum=self.schema.max_items) \
            if peers_key in raw and raw[peers_key] is not None else None
        if listed is None and (peers_key not in raw or raw[peers_key] is None):
            self.fields.error((*path, peers_key), "required-field", f"{peers_key} is required")
        for i, item in enumerate(listed or []):
            if isinstance(item, Mapping):
                kinds.update(k for k in item if item[k] is not None)
            found = self.peer(item, (*path, peers_key, i), direction)
            peers.extend(found or ())
        ports: list[PortMatch] = []
        named = False
        if raw.get(ports_key) is not None:
            items = self.items(raw[ports_key], (*path, ports_key), minimum=1, maximum=self.schema.max_items)
            for i, item in enumerate(items or []):
                reader = self.cnp_protocol if self.schema.kind is SourceKind.CLUSTER_NETWORK_POLICY else self.anp_port
                found_ports = reader(item, (*path, ports_key, i))
                named = named or any(isinstance(p.port, str) for p in found_ports or ())
                ports.extend(found_ports or ())
        if named and kinds & {"networks", "nodes", "domainNames"}:
            self.fields.error((*path, ports_key), "named-port-without-pods",
                              "networks/nodes/domainNames peer cannot be set with namedPorts since there are "
                              "no namedPorts for networks/nodes/domainNames")  # fmt: skip
        if "domainNames" in kinds and action is not None and action is not Action.ACCEPT:
            self.fields.error((*path, "action"), "domain-names-accept-only",
                              "domainNames peers are only supported in Accept rules")  # fmt: skip
        if action is None:
            return None
        provenance = Provenance(self.fields.site.document.source, self.fields.site.line_of(path),
                                self.fields.site.document.index)  # fmt: skip
        return ClusterRule(direction, index, action, tuple(dict.fromkeys(peers)), tuple(dict.fromkeys(ports)), name,
                           provenance)  # fmt: skip

    def _action(self, value: object, path: Path) -> Action | None:
        if value is None:
            self.fields.error(path, "required-field", "action is required")
            return None
        text = self.fields.string(value, path)
        if text is None:
            return None
        if text not in self.schema.actions:
            allowed = ", ".join(f'"{a}"' for a in self.schema.actions)
            self.fields.error(path, "invalid-action", f'"{text}": supported values: {allowed}')
            return None
        return self.schema.actions[text]

    def rules(self, spec: Mapping[str, object], direction: Direction) -> tuple[ClusterRule, ...]:
        key = _RULE_KEYS[direction][0]
        if spec.get(key) is None:
            return ()
        items = self.items(spec[key], ("spec", key), minimum=0, maximum=self.schema.max_items)
        found = (self.rule(item, ("spec", key, i), direction, i) for i, item in enumerate(items or []))
        return tuple(r for r in found if r is not None)


def _priority(reader: _Reader, spec: Mapping[str, object]) -> int | None:
    if "priority" not in spec or spec["priority"] is None:
        reader.fields.error(("spec", "priority"), "required-field", "priority is required")
        return None
    value = reader.fields.integer(spec["priority"], ("spec", "priority"))
    if value is not None and not 0 <= value <= 1000:
        reader.fields.error(("spec", "priority"), "invalid-priority", f"{value}: must be between 0 and 1000, inclusive")
        return None
    return value


def _tier(reader: _Reader, spec: Mapping[str, object]) -> Tier | None:
    if reader.schema.kind is SourceKind.ADMIN_NETWORK_POLICY:
        return Tier.ADMIN
    if reader.schema.kind is SourceKind.BASELINE_ADMIN_NETWORK_POLICY:
        return Tier.BASELINE
    text = reader.fields.string(spec.get("tier"), ("spec", "tier"))
    if not text:
        if text == "":
            reader.fields.error(("spec", "tier"), "required-field", 'tier is required: "Admin" or "Baseline"')
        return None
    if text not in {t.value for t in Tier}:
        reader.fields.error(("spec", "tier"), "invalid-tier", f'"{text}": supported values: "Admin", "Baseline"')
        return None
    return Tier(text)


def parse_cluster_policy(
    value: Mapping[str, object], *, kind: str, site: Site
) -> tuple[ClusterNetworkPolicy | None, list[Diagnostic]]:
    """One cluster-scoped policy of ``kind`` -> the model (None when the API server would
    refuse it) and every diagnostic."""
    schema = _SCHEMAS[SourceKind(kind)]
    reader = _Reader(site, schema)
    fields = reader.fields
    fields.mapping(value, (), known=_TOP_FIELDS)
    api_version = fields.string(value.get("apiVersion"), ("apiVersion",)) or ""
    versions = CLUSTER_POLICY_KINDS[kind]
    if api_version not in versions:
        fields.error(("apiVersion",), "unsupported-api-version",
                     f'{kind} "{api_version}" is not served; policyctl reads {", ".join(versions)}')  # fmt: skip
    check_metadata(fields, value.get("metadata"))
    meta = value.get("metadata") if isinstance(value.get("metadata"), Mapping) else {}
    assert isinstance(meta, Mapping)
    name = str(meta.get("name") or "")
    if meta.get("namespace"):
        fields.warn(
            ("metadata", "namespace"), "ignored-namespace", f"{kind} is cluster-scoped: the namespace is ignored"
        )
    if schema.kind is SourceKind.BASELINE_ADMIN_NETWORK_POLICY and name and name != "default":
        fields.error(
            ("metadata", "name"),
            "invalid-name",
            'Only one baseline admin network policy with metadata.name="default" can be created in the cluster',
        )
    spec = (
        fields.mapping(value.get("spec"), ("spec",), known=schema.spec_fields)
        if value.get("spec") is not None
        else None
    )
    if spec is None:
        if value.get("spec") is None:
            fields.error(("spec",), "required-field", "spec is required")
        return None, fields.diagnostics
    tier = _tier(reader, spec)
    priority = (
        BASELINE_ADMIN_PRIORITY if schema.kind is SourceKind.BASELINE_ADMIN_NETWORK_POLICY else _priority(reader, spec)
    )
    subject = reader.subject(spec.get("subject"), ("spec", "subject"))
    ingress = reader.rules(spec, Direction.INGRESS)
    egress = reader.rules(spec, Direction.EGRESS)
    if fields.failed or tier is None or priority is None or subject is None:
        return None, fields.diagnostics
    provenance = Provenance(site.document.source, site.line_of(()), site.document.index)
    policy = ClusterNetworkPolicy(
        name, tier, priority, subject, ingress, egress, schema.kind, api_version, provenance,
        tuple(d.message for d in fields.diagnostics),
    )
    return policy, fields.diagnostics
