"""Namespaces, pods, workload templates and nodes read from manifests into the model.

Only the fields NetworkPolicy semantics needs are read, and those are checked as the API
server checks them (``pkg/apis/core/validation``): object names (``ValidatePodName`` and
``ValidateNodeName`` are DNS-1123 subdomains, ``ValidateNamespaceName`` a DNS-1123 label),
labels (``ValidateLabels``), container ports (``containerPort`` ``IsValidPortNum``, ``name``
``IsValidPortName``, ``protocol`` TCP/UDP/SCTP, defaulted to TCP) and pod IPs (each a valid
IP, "may specify no more than one IP for each IP family"). Other fields of these kinds are not
looked at, so their unknown fields are not reported, except in a container port, which is read
whole: a misspelt ``containerport`` is named with the field it likely means.

A workload (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob) stands for one pod
named like the workload, with its template's labels and container ports and no addresses:
enough to ask what its pods may reach.
"""

from __future__ import annotations

from collections.abc import Mapping

from policyctl.policy.addresses import parse_cidr_sloppy, parse_ip_sloppy
from policyctl.policy.diagnostics import Diagnostic
from policyctl.manifests.fields import FieldReader, Site, is_mapping
from policyctl.policy.model import (
    NAMESPACE_NAME_LABEL,
    ContainerPort,
    Family,
    IPAddress,
    IPNetwork,
    Labels,
    Namespace,
    Node,
    Pod,
    Protocol,
    Provenance,
)
from policyctl.manifests.names import port_name_errors, port_number_errors
from policyctl.manifests.selectors_parsing import memoized
from policyctl.manifests.selectors_parsing import read_labels
from policyctl.manifests.validation import check_namespace_name, check_object_name
from policyctl.manifests.yamlsource import Path

#: Workload kind -> (prefix of ``Pod.workload``, path of its pod template).
WORKLOAD_TEMPLATES: Mapping[str, tuple[str, Path]] = {
    "Deployment": ("deploy", ("spec", "template")),
    "StatefulSet": ("sts", ("spec", "template")),
    "DaemonSet": ("ds", ("spec", "template")),
    "ReplicaSet": ("rs", ("spec", "template")),
    "Job": ("job", ("spec", "template")),
    "CronJob": ("cronjob", ("spec", "jobTemplate", "spec", "template")),
}
#: ``ContainerPort``'s fields; under strict field validation any other key is refused, and the
#: misspelling is named (``containerport``) rather than left to look like a missing port.
CONTAINER_PORT_FIELDS = frozenset({"name", "hostPort", "containerPort", "protocol", "hostIP"})
_PROTOCOLS = {p.value: p for p in Protocol}
_port_number_errors = memoized(port_number_errors)
_port_name_errors = memoized(port_name_errors)
_NODE_ADDRESS_TYPES = ("InternalIP", "ExternalIP")


def provenance_of(site: Site) -> Provenance:
    return Provenance(site.document.source, site.line_of(()), site.document.index)


def _field(raw: object, path: Path, reader: FieldReader) -> Mapping[str, object]:
    """The mapping at ``path`` under ``raw``; absent or ``null`` is empty."""
    current: object = raw
    for depth, key in enumerate(path):
        if not is_mapping(current):
            return {}
        current = current.get(key)
        if current is None:
            return {}
        if not is_mapping(current):
            reader.wrong_type(current, path[: depth + 1], "a map")
            return {}
    return current if is_mapping(current) else {}


def _container_port(reader: FieldReader, raw: object, path: Path) -> ContainerPort | None:
    start = len(reader.diagnostics)
    port = reader.mapping(raw, path, known=CONTAINER_PORT_FIELDS)
    if port is None:
        return None
    if port.get("containerPort") is None:
        if len(reader.diagnostics) == start:
            reader.error((*path, "containerPort"), "missing-container-port", "containerPort is required")
        return None
    number = reader.integer(port["containerPort"], (*path, "containerPort"))
    if number is not None:
        for message in _port_number_errors(number):
            reader.error((*path, "containerPort"), "invalid-port", f"{number}: {message}")
    name = None
    if port.get("name") is not None:
        name = reader.string(port["name"], (*path, "name"))
        for message in _port_name_errors(name or "") if name is not None else []:
            reader.error((*path, "name"), "invalid-port-name", f'"{name}": {message}')
    protocol = Protocol.TCP
    if port.get("protocol") is not None:
        text = reader.string(port["protocol"], (*path, "protocol"))
        if text is not None and text not in _PROTOCOLS:
            reader.error((*path, "protocol"), "invalid-protocol",
                         f'"{text}": supported values: "SCTP", "TCP", "UDP"')  # fmt: skip
        protocol = _PROTOCOLS.get(text or "", Protocol.TCP)
    if len(reader.diagnostics) != start or number is None:
        return None
    return ContainerPort(number, protocol, name or None)


def read_container_ports(
    reader: FieldReader, pod_spec: Mapping[str, object], path: Path
) -> tuple[ContainerPort, ...]:
    """Ports of the containers, and of init containers with ``restartPolicy: Always``
    (sidecars, which keep running and serve like any container)."""
    found: dict[tuple[int, str, str], ContainerPort] = {}
    for group in ("containers", "initContainers"):
        if pod_spec.get(group) is None:
            continue
        containers = reader.sequence(pod_spec[group], (*path, group))
        for i, container in enumerate(containers or []):
            if not is_mapping(container):
                reader.wrong_type(container, (*path, group, i), "a map")
                continue
            if group == "initContainers" and container.get("restartPolicy") != "Always":
                continue
            if container.get("ports") is None:
                continue
            ports = reader.sequence(container["ports"], (*path, group, i, "ports"))
            for j, raw in enumerate(ports or []):
                port = _container_port(reader, raw, (*path, group, i, "ports", j))
                if port is not None:
                    found.setdefault((port.port, port.protocol.value, port.name or ""), port)
    return tuple(found[k] for k in sorted(found))


def _pod_ips(reader: FieldReader, status: Mapping[str, object]) -> tuple[IPAddress, ...]:
    """``status.podIPs`` (``status.podIP`` when there is no list), one address per family."""
    written: list[tuple[object, Path]] = []
    if status.get("podIPs") is not None:
        items = reader.sequence(status["podIPs"], ("status", "podIPs"))
        for i, item in enumerate(items or []):
            entry = reader.mapping(item, ("status", "podIPs", i))
            if entry is not None:
                written.append((entry.get("ip"), ("status", "podIPs", i, "ip")))
    elif status.get("podIP"):
        written.append((status["podIP"], ("status", "podIP")))
    addresses: dict[Family, IPAddress] = {}
    for value, path in written:
        text = reader.string(value, path)
        parsed = parse_ip_sloppy(text) if text else None
        if text is not None and parsed is None:
            reader.error(path, "invalid-ip",
                         f'"{text}": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)')
            continue
        if parsed is None:
            continue
        family = Family.of(parsed.address)
        if family in addresses:
            reader.error(path, "duplicate-ip-family",
                         "may specify no more than one IP for each IP family")  # fmt: skip
            continue
        addresses[family] = parsed.address
    return tuple(addresses.values())


def _pod_meta(
    reader: FieldReader, meta: Mapping[str, object], *, default_namespace: str, path: Path = ()
) -> tuple[str, dict[str, str] | None]:
    namespace = meta.get("namespace") or default_namespace
    check_namespace_name(reader, namespace, ("metadata", "namespace"))
    labels = read_labels(reader, meta.get("labels"), (*path, "metadata", "labels"))
    return str(namespace), labels


def parse_pod(
    value: Mapping[str, object], *, site: Site, default_namespace: str = "default"
) -> tuple[Pod | None, list[Diagnostic]]:
    """A ``v1`` Pod: labels, node, host network, container ports and addresses."""
    reader = FieldReader(site)
    meta = _field(value, ("metadata",), reader)
    name = check_object_name(reader, meta.get("name"), ("metadata", "name"))
    namespace, labels = _pod_meta(reader, meta, default_namespace=default_namespace)
    spec = _field(value, ("spec",), reader)
    node = reader.string(spec["nodeName"], ("spec", "nodeName")) if spec.get("nodeName") else None
    host_network = spec.get("hostNetwork") is not None and reader.boolean(
        spec["hostNetwork"], ("spec", "hostNetwork")
    )
    ports = read_container_ports(reader, spec, ("spec",))
    ips = _pod_ips(reader, _field(value, ("status",), reader))
    if reader.failed or name is None or labels is None:
        return None, reader.diagnostics
    pod = Pod(namespace, name, Labels(labels), node=node or None, ips=ips,
              host_network=bool(host_network), ports=ports, provenance=provenance_of(site))  # fmt: skip
    return pod, reader.diagnostics


def parse_workload(
    value: Mapping[str, object], *, kind: str, site: Site, default_namespace: str = "default"
) -> tuple[Pod | None, list[Diagnostic]]:
    """The one pod a workload's template stands for, named like the workload, with
    ``workload="deploy/web"`` (``sts/``, ``ds/``, ``rs/``, ``job/``, ``cronjob/``)."""
    prefix, template_path = WORKLOAD_TEMPLATES[kind]
    reader = FieldReader(site)
    meta = _field(value, ("metadata",), reader)
    name = check_object_name(reader, meta.get("name"), ("metadata", "name"))
    namespace = meta.get("namespace") or default_namespace
    check_namespace_name(reader, namespace, ("metadata", "namespace"))
    template_meta = _field(value, (*template_path, "metadata"), reader)
    labels = read_labels(reader, template_meta.get("labels"), (*template_path, "metadata", "labels"))
    spec_path = (*template_path, "spec")
    spec = _field(value, spec_path, reader)
    host_network = spec.get("hostNetwork") is not None and reader.boolean(
        spec["hostNetwork"], (*spec_path, "hostNetwork")
    )
    ports = read_container_ports(reader, spec, spec_path)
    if reader.failed or name is None or labels is None:
        return None, reader.diagnostics
    pod = Pod(str(namespace), name, Labels(labels), host_network=bool(host_network), ports=ports,
              workload=f"{prefix}/{name}", provenance=provenance_of(site))  # fmt: skip
    return pod, reader.diagnostics


def parse_namespace(
    value: Mapping[str, object], *, site: Site
) -> tuple[Namespace | None, list[Diagnostic]]:
    """A Namespace and its labels, plus ``kubernetes.io/metadata.name: <name>``, which the API
    server always sets (overriding any value written)."""
    reader = FieldReader(site)
    meta = _field(value, ("metadata",), reader)
    if not meta.get("name"):
        reader.error(("metadata", "name"), "missing-name", "name is required")
        return None, reader.diagnostics
    name = check_namespace_name(reader, meta["name"], ("metadata", "name"))
    labels = read_labels(reader, meta.get("labels"), ("metadata", "labels"))
    if reader.failed or name is None or labels is None:
        return None, reader.diagnostics
    namespace = Namespace(name, Labels({**labels, NAMESPACE_NAME_LABEL: name}),
                          provenance=provenance_of(site))  # fmt: skip
    return namespace, reader.diagnostics


def parse_node(value: Mapping[str, object], *, site: Site) -> tuple[Node | None, list[Diagnostic]]:
    """A Node and the ``status.addresses`` of type InternalIP or ExternalIP that are IPs,
    InternalIPs first. Each entry is a ``NodeAddress`` of two strings: any other JSON type is
    the decoding error the API server gives; an address of another type or that is not an IP
    (a Hostname, a DNS name) is not a pod-network peer and is left out."""
    reader = FieldReader(site)
    meta = _field(value, ("metadata",), reader)
    name = check_object_name(reader, meta.get("name"), ("metadata", "name"))
    labels = read_labels(reader, meta.get("labels"), ("metadata", "labels"))
    status = _field(value, ("status",), reader)
    found: list[tuple[int, IPAddress]] = []
    if status.get("addresses") is not None:
        for i, raw in enumerate(reader.sequence(status["addresses"], ("status", "addresses")) or []):
            path = ("status", "addresses", i)
            entry = reader.mapping(raw, path) if raw is not None else None
            if entry is None:
                continue
            kind = reader.string(entry.get("type"), (*path, "type"))
            address = reader.string(entry.get("address"), (*path, "address"))
            if kind not in _NODE_ADDRESS_TYPES or not address:
                continue
            parsed = parse_ip_sloppy(address)
            if parsed is not None:
                found.append((_NODE_ADDRESS_TYPES.index(kind), parsed.address))
    pod_cidrs = read_pod_cidrs(reader, _field(value, ("spec",), reader))
    if reader.failed or name is None:
        return None, reader.diagnostics
    addresses = tuple(dict.fromkeys(a for _, a in sorted(found, key=lambda f: f[0])))
    node = Node(name, addresses, provenance=provenance_of(site), labels=Labels(labels or {}), pod_cidrs=pod_cidrs)
    return node, reader.diagnostics


def read_pod_cidrs(reader: FieldReader, spec: Mapping[str, object]) -> tuple[IPNetwork, ...]:
    """``spec.podCIDRs`` as the API server validates them: each "must be a valid CIDR"
    (``ParseCIDRSloppy``, host bits masked), "no more than one CIDR for each IP family", and
    ``spec.podCIDR``, the older single field, is ``podCIDRs[0]`` (alone it stands for the list
    of that one CIDR)."""
    listed: list[tuple[int, object]] = []
    if spec.get("podCIDRs") is not None:
        listed = list(enumerate(reader.sequence(spec["podCIDRs"], ("spec", "podCIDRs")) or []))
    single = spec.get("podCIDR")
    if single is not None and single != "":
        if not listed:
            listed = [(-1, single)]
        elif listed[0][1] != single:
            reader.error(("spec", "podCIDR"), "pod-cidr-mismatch", f"must be spec.podCIDRs[0] ({listed[0][1]!r})")
    found: list[IPNetwork] = []
    for index, raw in listed:
        path: Path = ("spec", "podCIDR") if index < 0 else ("spec", "podCIDRs", index)
        parsed = parse_cidr_sloppy(raw)
        if parsed is None:
            reader.error(path, "invalid-cidr", f"{raw!r} must be a valid CIDR")
        elif any(Family.of(f) is Family.of(parsed.network) for f in found):
            reader.error(path, "pod-cidr-family", "may specify no more than one CIDR for each IP family")
        else:
            found.append(parsed.network)
    return tuple(found)
