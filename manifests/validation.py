"""NetworkPolicy validation, as the API server does it on create.

Follows ``ValidateNetworkPolicy`` in kubernetes/kubernetes
``pkg/apis/networking/validation/validation.go`` (and the helpers it calls), run on the
already-defaulted object, plus the checks that happen earlier in the API server: decoding into
the Go types (wrong JSON types) and strict field validation (unknown fields), which kubectl
requests by default. Every problem is reported, never only the first.

Rules, each paraphrasing the upstream code:

* ``metadata.name`` is required and a DNS-1123 subdomain (``ValidateNetworkPolicyName`` ->
  ``NameIsDNSSubdomain``), ``generateName`` too with a trailing '-' allowed;
  ``metadata.namespace``, when given, a DNS-1123 label (``ValidateObjectMeta`` ->
  ``ValidateNamespaceName``); labels as ``ValidateLabels``; ``ValidateAnnotations``: keys are
  qualified names once lower-cased, and keys and values together at most 256 KiB
  (``TotalAnnotationSizeLimitB``, counted in bytes); ``ValidateFinalizers``: qualified names,
  not both ``orphan`` and ``foregroundDeletion``; ``ValidateOwnerReferences``; ``generation``
  not negative (``ValidateNonnegativeField``). ``managedFields`` are not checked.
* ``spec.podSelector`` and every peer selector: ``ValidateLabelSelector``.
* ``ValidateNetworkPolicyPort``: protocol, if set, ``TCP``, ``UDP`` or ``SCTP``; a numeric
  port ``IsValidPortNum`` (1-65535); a named port ``IsValidPortName``; ``endPort`` "must be
  greater than or equal to `port`" and a valid port number, "may not be specified when `port`
  is non-numeric" nor "when `port` is not specified".
* ``ValidateNetworkPolicyPeer``: a peer "must specify a peer" (one of podSelector,
  namespaceSelector, ipBlock) and "may not specify both ipBlock and another peer".
* ``ValidateIPBlock``: ``cidr`` is required and a valid CIDR for a legacy field (sloppy
  parsing, see :mod:`policy.addresses`); when it parses, each ``except`` is a valid CIDR and
  "must be a strict subset of `cidr`": Go's ``cidrIPNet.Contains(exceptCIDR.IP)`` and a
  shorter written mask on ``cidr`` (:meth:`ParsedCIDR.strict_superset_of`, which carries the
  IPv4-mapped IPv6 consequences). When ``cidr`` does not parse, the excepts are not looked
  at, as upstream.
* ``policyTypes``: "may not specify more than two policyTypes" (and then nothing more is
  checked there), each ``Ingress`` or ``Egress``.
"""

from __future__ import annotations

from collections.abc import Mapping

from policyctl.policy.addresses import ParsedCIDR, parse_cidr_sloppy
from policyctl.policy.diagnostics import Diagnostic, Severity
from policyctl.manifests.fields import FieldReader, Site
from policyctl.policy.model import Direction, Protocol
from policyctl.manifests.names import (
    byte_length,
    dns1123_label_errors,
    dns1123_subdomain_errors,
    generated_name_prefix_errors,
    port_name_errors,
    port_number_errors,
    qualified_name_errors,
)
from policyctl.manifests.selectors_parsing import read_label_selector, read_labels
from policyctl.manifests.yamlsource import Path

NETWORK_POLICY_API_VERSION = "networking.k8s.io/v1"
NETWORK_POLICY_FIELDS = frozenset({"apiVersion", "kind", "metadata", "spec"})
OBJECT_META_FIELDS = frozenset({
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields",
})  # fmt: skip
SPEC_FIELDS = frozenset({"podSelector", "ingress", "egress", "policyTypes"})
PEER_FIELDS = frozenset({"podSelector", "namespaceSelector", "ipBlock"})
PORT_FIELDS = frozenset({"protocol", "port", "endPort"})
IPBLOCK_FIELDS = frozenset({"cidr", "except"})
OWNER_REFERENCE_FIELDS = frozenset({"apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion"})
_RULE_FIELDS = {
    Direction.INGRESS: ("ingress", "from", frozenset({"ports", "from"})),
    Direction.EGRESS: ("egress", "to", frozenset({"ports", "to"})),
}
TOTAL_ANNOTATION_SIZE_LIMIT_BYTES = 256 * (1 << 10)
INT64_MAX = 2**63 - 1
_CONFLICTING_FINALIZERS = frozenset({"orphan", "foregroundDeletion"})
_PROTOCOLS = frozenset(p.value for p in Protocol)
_POLICY_TYPES = frozenset(d.value for d in Direction)


def check_object_name(reader: FieldReader, name: object, path: Path) -> str | None:
    """``metadata.name`` of a namespaced object: required, a DNS-1123 subdomain."""
    if name is None or name == "":
        reader.error(path, "missing-name", "name is required")
        return None
    text = reader.string(name, path)
    if text is None:
        return None
    for message in dns1123_subdomain_errors(text):
        reader.error(path, "invalid-name", f'"{text}": {message}')
    return text


def check_namespace_name(reader: FieldReader, namespace: object, path: Path) -> str | None:
    """``metadata.namespace`` (or a Namespace's name): a DNS-1123 label."""
    text = reader.string(namespace, path)
    if text is None:
        return None
    for message in dns1123_label_errors(text):
        reader.error(path, "invalid-namespace", f'"{text}": {message}')
    return text


def check_annotations(reader: FieldReader, value: object, path: Path) -> None:
    """``ValidateAnnotations``: "the rule is QualifiedName except that case doesn't matter",
    and ``ValidateAnnotationsSize``: the byte lengths of all keys and values together at most
    ``TotalAnnotationSizeLimitB`` (256 KiB), else "Too long"."""
    annotations = reader.string_map(value, path)
    if annotations is None:
        return
    for key in sorted(annotations):
        for message in qualified_name_errors(key.lower()):
            reader.error((*path, key), "invalid-annotation-key", f'"{key}": {message}')
    total = sum(byte_length(k) + byte_length(v) for k, v in annotations.items())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_BYTES:
        reader.error(path, "annotations-too-long",
                     f"Too long: may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT_BYTES} bytes "
                     f"(keys and values together are {total} bytes)")  # fmt: skip


def _check_finalizers(reader: FieldReader, value: object, path: Path) -> None:
    """``ValidateFinalizers``: each a qualified name (``ValidateFinalizerName``), and not both
    ``orphan`` and ``foregroundDeletion``."""
    finalizers = reader.strings(value, path)
    for i, finalizer in enumerate(finalizers or []):
        for message in qualified_name_errors(finalizer):
            reader.error((*path, i), "invalid-finalizer", f'"{finalizer}": {message}')
    if _CONFLICTING_FINALIZERS <= set(finalizers or []):
        reader.error(path, "conflicting-finalizers",
                     "finalizer orphan and foregroundDeletion cannot be both set")  # fmt: skip


def _group_version_errors(api_version: str) -> list[str]:
    """``validateOwnerReference``: ``schema.ParseGroupVersion`` must succeed (at most one '/')
    and leave a version."""
    if api_version.count("/") > 1 or not api_version.rpartition("/")[2]:
        return ["must be <group>/<version> or <version>"]
    return []


def _check_owner_references(reader: FieldReader, value: object, path: Path) -> None:
    """``ValidateOwnerReferences``: each reference has ``apiVersion`` (a group/version),
    ``kind``, ``name`` and ``uid`` ("must not be empty"), is not an ``Event`` of ``v1``, and
    "Only one reference can have Controller set to true"."""
    references = reader.sequence(value, path)
    controller: str | None = None
    for i, item in enumerate(references or []):
        item_path = (*path, i)
        reference = reader.mapping({} if item is None else item, item_path, known=OWNER_REFERENCE_FIELDS)
        if reference is None:
            continue
        texts = {k: reader.string(reference.get(k), (*item_path, k)) for k in ("apiVersion", "kind", "name", "uid")}
        for key, text in texts.items():
            if text == "":
                reader.error((*item_path, key), "missing-owner-field", "must not be empty")
        api_version = texts["apiVersion"]
        for message in _group_version_errors(api_version) if api_version else []:
            reader.error((*item_path, "apiVersion"), "invalid-owner-api-version", f'"{api_version}": {message}')
        if api_version == "v1" and texts["kind"] == "Event":
            reader.error(item_path, "banned-owner", "/v1, Kind=Event is disallowed from being an owner")
        for flag in ("controller", "blockOwnerDeletion"):
            if reference.get(flag) is not None:
                reader.boolean(reference[flag], (*item_path, flag))
        if reference.get("controller") is True:
            current = f"{texts['kind']}/{texts['name']}"
            if controller is not None:
                reader.error(path, "multiple-controllers",
                             f'Only one reference can have Controller set to true. Found "true" in references for '
                             f"{controller} and {current}")  # fmt: skip
            else:
                controller = current


def check_metadata(reader: FieldReader, value: object) -> None:
    """The parts of ``ValidateObjectMeta`` a manifest can get wrong: name, generateName,
    namespace, labels, annotations, finalizers, owner references, generation; unknown
    ``metadata`` fields are strict-decoding errors."""
    path: Path = ("metadata",)
    if value is None:
        reader.error(path, "missing-name", "metadata.name is required")
        return
    meta = reader.mapping(value, path, known=OBJECT_META_FIELDS)
    if meta is None:
        return
    if meta.get("generateName"):
        prefix = reader.string(meta["generateName"], (*path, "generateName"))
        for message in generated_name_prefix_errors(prefix) if prefix is not None else []:
            reader.error((*path, "generateName"), "invalid-generate-name", f'"{prefix}": {message}')
    check_object_name(reader, meta.get("name"), (*path, "name"))
    if meta.get("namespace"):
        check_namespace_name(reader, meta["namespace"], (*path, "namespace"))
    if meta.get("generation") is not None:
        generation = reader.integer(meta["generation"], (*path, "generation"), maximum=INT64_MAX)
        if generation is not None and generation < 0:
            reader.error((*path, "generation"), "invalid-generation",
                         f"{generation}: must be greater than or equal to 0")  # fmt: skip
    read_labels(reader, meta.get("labels"), (*path, "labels"))
    if meta.get("annotations") is not None:
        check_annotations(reader, meta["annotations"], (*path, "annotations"))
    if meta.get("finalizers") is not None:
        _check_finalizers(reader, meta["finalizers"], (*path, "finalizers"))
    if meta.get("ownerReferences") is not None:
        _check_owner_references(reader, meta["ownerReferences"], (*path, "ownerReferences"))


def _check_port(reader: FieldReader, value: object, path: Path) -> None:
    raw = reader.mapping(value, path, known=PORT_FIELDS)
    if raw is None:
        return
    protocol = raw.get("protocol")
    if protocol is not None:
        text = reader.string(protocol, (*path, "protocol"))
        if text is not None and text not in _PROTOCOLS:
            reader.error((*path, "protocol"), "invalid-protocol",
                         f'"{text}": supported values: "SCTP", "TCP", "UDP"')  # fmt: skip
    port, end_port = raw.get("port"), raw.get("endPort")
    end = None
    if end_port is not None:
        end = reader.integer(end_port, (*path, "endPort"))
    if port is None:
        if end_port is not None:
            reader.error((*path, "endPort"), "invalid-end-port",
                         "may not be specified when `port` is not specified")  # fmt: skip
        return
    if isinstance(port, str):
        if end_port is not None:
            reader.error((*path, "endPort"), "invalid-end-port",
                         "may not be specified when `port` is non-numeric")  # fmt: skip
        for message in port_name_errors(port):
            hint = " (a port number is written without quotes)" if port.isdigit() else ""
            reader.error((*path, "port"), "invalid-port-name", f'"{port}": {message}{hint}')
        return
    number = reader.integer(port, (*path, "port"), expected="a port number or name")
    if number is None:
        return
    for message in port_number_errors(number):
        reader.error((*path, "port"), "invalid-port", f"{number}: {message}")
    if end is not None:
        if end < number:
            reader.error((*path, "endPort"), "invalid-end-port",
                         f"{end}: must be greater than or equal to `port` ({number})")  # fmt: skip
        for message in port_number_errors(end):
            reader.error((*path, "endPort"), "invalid-end-port", f"{end}: {message}")


def _check_cidr(reader: FieldReader, value: object, path: Path) -> ParsedCIDR | None:
    text = reader.string(value, path)
    if text is None:
        return None
    parsed = parse_cidr_sloppy(text)
    if parsed is None:
        reader.error(path, "invalid-cidr",
                     f'"{text}": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)')
    return parsed


def _check_ip_block(reader: FieldReader, value: object, path: Path) -> None:
    raw = reader.mapping(value, path, known=IPBLOCK_FIELDS)
    if raw is None:
        return
    if raw.get("cidr") is None or raw.get("cidr") == "":
        reader.error((*path, "cidr"), "missing-cidr", "cidr is required")
        return
    cidr = _check_cidr(reader, raw["cidr"], (*path, "cidr"))
    if cidr is None:
        return
    excepts = raw.get("except")
    items = [] if excepts is None else reader.sequence(excepts, (*path, "except"))
    for i, item in enumerate(items or []):
        item_path = (*path, "except", i)
        parsed = _check_cidr(reader, item, item_path)
        if parsed is None:
            continue
        if not cidr.strict_superset_of(parsed):
            reader.error(item_path, "except-not-subset",
                         f'"{item}": must be a strict subset of `cidr` ({raw["cidr"]})')  # fmt: skip


def _check_peer(reader: FieldReader, value: object, path: Path) -> None:
    raw = reader.mapping(value, path, known=PEER_FIELDS)
    if raw is None:
        return
    present = [k for k in ("podSelector", "namespaceSelector", "ipBlock") if raw.get(k) is not None]
    for key in ("podSelector", "namespaceSelector"):
        if raw.get(key) is not None:
            read_label_selector(reader, raw[key], (*path, key))
    if raw.get("ipBlock") is not None:
        _check_ip_block(reader, raw["ipBlock"], (*path, "ipBlock"))
    if not present:
        reader.error(path, "empty-peer",
                     "must specify a peer: podSelector, namespaceSelector or ipBlock")  # fmt: skip
    elif len(present) > 1 and "ipBlock" in present:
        reader.error(path, "ipblock-with-selector",
                     "may not specify both ipBlock and another peer")  # fmt: skip


def _check_rules(reader: FieldReader, spec: Mapping[str, object], direction: Direction) -> None:
    key, peers_key, known = _RULE_FIELDS[direction]
    if spec.get(key) is None:
        return
    rules = reader.sequence(spec[key], ("spec", key))
    for i, item in enumerate(rules or []):
        rule_path: Path = ("spec", key, i)
        rule = reader.mapping({} if item is None else item, rule_path, known=known)
        if rule is None:
            continue
        if rule.get("ports") is not None:
            ports = reader.sequence(rule["ports"], (*rule_path, "ports"))
            for j, port in enumerate(ports or []):
                _check_port(reader, {} if port is None else port, (*rule_path, "ports", j))
        if rule.get(peers_key) is not None:
            peers = reader.sequence(rule[peers_key], (*rule_path, peers_key))
            for j, peer in enumerate(peers or []):
                _check_peer(reader, {} if peer is None else peer, (*rule_path, peers_key, j))


def _check_policy_types(reader: FieldReader, value: object) -> None:
    path: Path = ("spec", "policyTypes")
    items = reader.strings(value, path)
    if items is None:
        return
    if len(items) > len(_POLICY_TYPES):
        reader.error(path, "too-many-policy-types", "may not specify more than two policyTypes")
        return
    for i, item in enumerate(items):
        if item not in _POLICY_TYPES:
            reader.error((*path, i), "invalid-policy-type",
                         f'"{item}": supported values: "Egress", "Ingress"')  # fmt: skip


def _dropped_status(reader: FieldReader, status: object) -> None:
    """``status`` was part of NetworkPolicy from Kubernetes 1.24 to 1.27 (``NetworkPolicyStatus``,
    never used) and Go clients of those versions write ``status: {}`` into every manifest they
    emit; the API server keeps no status for a NetworkPolicy, so it is dropped: a note when it is
    empty, a warning when it holds something that will be lost."""
    if status is None or status == {}:
        reader.diagnostics.append(reader.site.diagnostic(
            ("status",), "dropped-field",
            "status is not stored for a NetworkPolicy (written by Go clients of Kubernetes 1.24-1.27): ignored",
            severity=Severity.INFO,
        ))  # fmt: skip
        return
    reader.warn(("status",), "dropped-field",
                "status is not stored for a NetworkPolicy (the API server drops it): its content is ignored")


def validate_network_policy(value: object, *, site: Site) -> list[Diagnostic]:
    """Every reason the API server would refuse this NetworkPolicy (empty when it would accept
    it). ``value`` is the decoded manifest, ``site`` where it sits."""
    reader = FieldReader(site)
    raw = reader.mapping(value, (), known=NETWORK_POLICY_FIELDS | {"status"})
    if raw is None:
        return reader.diagnostics
    if "status" in raw:
        _dropped_status(reader, raw["status"])
    api_version = raw.get("apiVersion")
    if api_version is not None and api_version != NETWORK_POLICY_API_VERSION:
        reader.error(("apiVersion",), "unsupported-api-version",
                     f"{api_version!r}: NetworkPolicy is served as {NETWORK_POLICY_API_VERSION}")
    if raw.get("kind") is not None and raw.get("kind") != "NetworkPolicy":
        reader.error(("kind",), "invalid-kind", f"{raw['kind']!r}: expected NetworkPolicy")
    check_metadata(reader, raw.get("metadata"))
    spec = reader.mapping({} if raw.get("spec") is None else raw["spec"], ("spec",),
                          known=SPEC_FIELDS)  # fmt: skip
    if spec is None:
        return reader.diagnostics
    read_label_selector(reader, spec.get("podSelector"), ("spec", "podSelector"))
    _check_rules(reader, spec, Direction.INGRESS)
    _check_rules(reader, spec, Direction.EGRESS)
    if spec.get("policyTypes") is not None:
        _check_policy_types(reader, spec["policyTypes"])
    return reader.diagnostics
