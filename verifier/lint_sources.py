"""What lint reads beside the cluster model: where each policy was written, and Services.

The model keeps one line per policy and per rule; a lint finding should point at the exact
field (``spec.ingress[0].from[1]``), so lint keeps the parsed documents and finds each
NetworkPolicy in them again (as the loader does: top-level objects and the items of
``*List`` objects, the last definition of a namespace/name winning).

Services are not part of the model (policies never select them: the API applies policy to
the pod after the Service address is translated), but one lint rule compares policy ports
with Service ports, so their selector and ports are read here, leniently: a Service lint
cannot use is left out, never reported (validating Services is not policyctl's job).

Helm renders every template as a document preceded by ``# Source: chart/templates/x.yaml``.
:func:`through_source_comments` moves a diagnostic from the rendered stream (``<stdin>`` line
120) to that template and the line within its document, which is where a user edits.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

from policyctl.policy.diagnostics import Diagnostic, Severity, format_path
from policyctl.policy.model import Labels, NetworkPolicy, PolicyRef, Protocol
from policyctl.manifests.yamlsource import Document, Path


@dataclass(frozen=True, slots=True)
class Placed:
    """One object of a document: ``base`` is its path inside the document (``()`` or
    ``("items", 3)``), ``value`` its plain value."""

    document: Document
    base: Path
    value: Mapping[str, object]

    def line_of(self, path: Path) -> int:
        return self.document.line_of((*self.base, *path))

    def has(self, path: Path) -> bool:
        """Whether ``path`` was written (as opposed to defaulted)."""
        return (*self.base, *path) in self.document.lines


@dataclass(frozen=True, slots=True)
class ServicePort:
    """``spec.ports[i]``: traffic to ``port`` goes to ``target`` (a number or a container port
    name) on the selected pods; ``targetPort`` defaults to ``port``."""

    port: int
    protocol: Protocol
    target: int | str
    name: str = ""


@dataclass(frozen=True, slots=True)
class Service:
    """A Service with a selector (one without sends traffic to endpoints managed by hand,
    which lint cannot see)."""

    namespace: str
    name: str
    selector: Labels
    ports: tuple[ServicePort, ...]
    placed: Placed

    def selects(self, namespace: str, labels: Mapping[str, str]) -> bool:
        return namespace == self.namespace and all(labels.get(k) == v for k, v in self.selector.items())


def _objects(document: Document) -> Iterator[tuple[Path, str, Mapping[str, object]]]:
    value = document.value
    if not isinstance(value, Mapping):
        return
    kind = value.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(value.get("items"), list):
        item_kind = kind[: -len("List")]
        for i, item in enumerate(value["items"]):
            if isinstance(item, Mapping):
                written = item.get("kind")
                yield ("items", i), written if isinstance(written, str) else item_kind, item
    elif isinstance(kind, str):
        yield (), kind, value


def _name_and_namespace(value: Mapping[str, object], default_namespace: str) -> tuple[str, str] | None:
    meta = value.get("metadata")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str):
        return None
    namespace = meta.get("namespace")
    return str(meta["name"]), namespace if isinstance(namespace, str) and namespace else default_namespace


def _service_ports(raw: object) -> tuple[ServicePort, ...]:
    ports = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, Mapping) or not isinstance(item.get("port"), int):
            continue
        try:
            protocol = Protocol(item.get("protocol") or "TCP")
        except ValueError:
            continue
        target = item.get("targetPort", item["port"])
        if not isinstance(target, (int, str)) or isinstance(target, bool):
            continue
        name = item.get("name")
        ports.append(ServicePort(item["port"], protocol, target, name if isinstance(name, str) else ""))
    return tuple(sorted(ports, key=lambda p: (p.port, p.protocol.value, str(p.target))))


def _service(placed: Placed, name: str, namespace: str) -> Service | None:
    spec = placed.value.get("spec")
    if not isinstance(spec, Mapping):
        return None
    selector = spec.get("selector")
    if not isinstance(selector, Mapping) or not selector:
        return None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in selector.items()):
        return None
    return Service(namespace, name, Labels(selector), _service_ports(spec.get("ports")), placed)


@dataclass(frozen=True)
class Manifests:
    """The documents a cluster was loaded from, indexed for lint."""

    documents: tuple[Document, ...] = ()
    policies: Mapping[PolicyRef, Placed] = field(default_factory=dict)
    services: tuple[Service, ...] = ()

    @classmethod
    def index(cls, documents: Sequence[Document], *, default_namespace: str = "default") -> Manifests:
        policies: dict[PolicyRef, Placed] = {}
        services: dict[tuple[str, str], Service] = {}
        for document in documents:
            for base, kind, value in _objects(document):
                named = _name_and_namespace(value, default_namespace)
                if named is None:
                    continue
                name, namespace = named
                placed = Placed(document, base, value)
                if kind == "NetworkPolicy":
                    policies[PolicyRef(namespace, name)] = placed
                elif kind == "Service":
                    service = _service(placed, name, namespace)
                    if service is not None:
                        services[(namespace, name)] = service
        return cls(
            documents=tuple(documents),
            policies=dict(sorted(policies.items())),
            services=tuple(services[k] for k in sorted(services)),
        )

    def placed(self, policy: NetworkPolicy) -> Placed | None:
        return self.policies.get(policy.ref)

    def finding(
        self,
        policy: NetworkPolicy,
        path: Path,
        *,
        code: str,
        severity: Severity,
        message: str,
        hint: str,
    ) -> Diagnostic:
        """A diagnostic at ``path`` of the policy as written (its provenance line when the
        documents are not known, e.g. for a cluster built in code)."""
        placed = self.placed(policy)
        if placed is not None:
            file, line = placed.document.source, placed.line_of(path)
        elif policy.provenance is not None:
            file, line = policy.provenance.file, policy.provenance.line
        else:
            file, line = "", 0
        return Diagnostic(
            file, line, severity, code, message,
            field=format_path(path), object=f"NetworkPolicy {policy.ref}", hint=hint,
        )  # fmt: skip


def through_source_comments(
    diagnostics: Iterable[Diagnostic], documents: Sequence[Document]
) -> tuple[Diagnostic, ...]:
    """Each diagnostic that falls in a document with a Helm ``# Source:`` comment, moved to
    that template file and the line counted from the document's first line; others as they
    are. The line is exact for templates without directives above the reported field (Helm
    removes a ``{{- if }}`` line when it renders, shifting what follows by one)."""
    starts: dict[str, list[tuple[int, Document]]] = {}
    for document in documents:
        starts.setdefault(document.source, []).append((document.line_of(()), document))
    for entries in starts.values():
        entries.sort(key=lambda entry: (entry[0], entry[1].index))
    first_lines = {source: [line for line, _ in entries] for source, entries in starts.items()}
    mapped = []
    for diagnostic in diagnostics:
        entries = starts.get(diagnostic.file, [])
        at = bisect.bisect_right(first_lines.get(diagnostic.file, []), diagnostic.line) - 1
        holder = entries[at][1] if at >= 0 else None
        if holder is None or holder.source_comment is None:
            mapped.append(diagnostic)
            continue
        line = diagnostic.line - entries[at][0] + 1
        mapped.append(replace(diagnostic, file=holder.source_comment, line=line))
    return tuple(sorted(mapped))
