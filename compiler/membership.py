"""Which identities each peer selector selects, kept current as pods and selectors come and go.

A pod peer (``podSelector`` within the namespaces its scope names) selects a pod when the
scope matches the pod's namespace (its own namespace, or a ``namespaceSelector`` matching the
namespace's labels) and the pod selector matches the pod's labels. Both depend only on the
pod's :class:`Identity`, so membership is kept per identity, and only identities that appear,
disappear or meet a new selector are ever matched: a new identity against the selectors whose
scope includes its namespace, a new selector against the identities of the namespaces in its
scope.

Selectors carry the names the selector graph gives them (``graph.selector_node``), so peer
identities built from these names equal those of a whole compile.

Invariants: ``selected[s]`` is exactly the set of current identities (those with at least one
member pod on the pod network) that ``s`` selects, and ``selectors_of`` is its inverse.
Namespace labels are fixed for the life of a :class:`Membership`: a change of them changes the
scope of every selector, and its owner builds a new one.
"""

from __future__ import annotations

from collections.abc import Mapping

from policyctl.policy.matchers import scope_matches
from policyctl.policy.model import (
    Labels,
    LabelSelector,
    NamespaceScope,
    OwnNamespace,
    Pod,
    undefined_namespace_labels,
)

from .identities import Identity


class Membership:
    """Identities with their member pods, and the identities each registered selector selects."""

    def __init__(self, namespace_labels: Mapping[str, Labels]) -> None:
        self._namespace_labels = dict(namespace_labels)
        self.members: dict[Identity, dict[str, Pod]] = {}
        self.selected: dict[str, set[Identity]] = {}
        self.selectors_of: dict[Identity, set[str]] = {}
        self._by_namespace: dict[str, set[Identity]] = {}
        self._definitions: dict[str, tuple[NamespaceScope, LabelSelector]] = {}
        self._own: dict[str, set[str]] = {}
        self._wide: dict[str, NamespaceScope] = {}
        self._wide_in: dict[str, set[str]] = {}

    def labels_of(self, namespace: str) -> Labels:
        """A namespace's labels (:func:`policy.model.undefined_namespace_labels` when it is not defined)."""
        found = self._namespace_labels.get(namespace)
        return found if found is not None else undefined_namespace_labels(namespace)

    def add(self, identity: Identity, pod: Pod) -> bool:
        """Add a member; True when its identity is new (and has been matched)."""
        members = self.members.get(identity)
        if members is not None:
            members[pod.key] = pod
            return False
        self.members[identity] = {pod.key: pod}
        self._by_namespace.setdefault(identity.namespace, set()).add(identity)
        chosen = {
            name
            for name in self._own.get(identity.namespace, set()) | self._wide_scopes(identity.namespace)
            if self._definitions[name][1].matches(identity.labels)
        }
        self.selectors_of[identity] = chosen
        for name in chosen:
            self.selected[name].add(identity)
        return True

    def remove(self, identity: Identity, pod: Pod) -> bool:
        """Remove a member (if it is the one held); True when its identity has none left."""
        members = self.members.get(identity)
        if members is None or members.get(pod.key) is not pod:
            return False
        del members[pod.key]
        if members:
            return False
        del self.members[identity]
        self._by_namespace[identity.namespace].discard(identity)
        for name in self.selectors_of.pop(identity, set()):
            self.selected[name].discard(identity)
        return True

    def register(self, name: str, scope: NamespaceScope, pods: LabelSelector) -> set[Identity]:
        """Start tracking a selector; returns the identities it selects."""
        if name in self._definitions:
            return self.selected[name]
        self._definitions[name] = (scope, pods)
        if isinstance(scope, OwnNamespace):
            self._own.setdefault(scope.name, set()).add(name)
            namespaces = [scope.name]
        else:
            self._wide[name] = scope
            for namespace, cached in self._wide_in.items():
                if scope_matches(scope, namespace, self.labels_of(namespace)):
                    cached.add(name)
            namespaces = [n for n in self._by_namespace if scope_matches(scope, n, self.labels_of(n))]
        chosen = {i for n in namespaces for i in self._by_namespace.get(n, ()) if pods.matches(i.labels)}
        self.selected[name] = chosen
        for identity in chosen:
            self.selectors_of[identity].add(name)
        return chosen

    def unregister(self, name: str) -> None:
        scope, _ = self._definitions.pop(name)
        if isinstance(scope, OwnNamespace):
            self._own[scope.name].discard(name)
        else:
            del self._wide[name]
            for cached in self._wide_in.values():
                cached.discard(name)
        for identity in self.selected.pop(name):
            self.selectors_of[identity].discard(name)

    def _wide_scopes(self, namespace: str) -> set[str]:
        """Registered selectors with a ``namespaceSelector`` that matches ``namespace``."""
        cached = self._wide_in.get(namespace)
        if cached is None:
            labels = self.labels_of(namespace)
            cached = self._wide_in[namespace] = {
                n for n, s in self._wide.items() if scope_matches(s, namespace, labels)
            }
        return cached
