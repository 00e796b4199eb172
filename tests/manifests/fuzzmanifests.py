"""Manifests and the mutations a fuzzer applies to them, shared by the property tests.

The seeds are small valid clusters that exercise every kind the loader reads; a mutation
changes one place of a seed's value tree (a wrong type, a missing or unknown field, unicode,
deep nesting, a huge number, a shared subtree that YAML writes as an anchor and alias) or its
text (a cut, stray bytes, a duplicate key, a bad encoding).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass

import yaml

SEEDS: tuple[str, ...] = (
    """\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {team: web}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-0
  namespace: shop
  labels: {app: web, tier: front}
spec:
  nodeName: node-1
  containers:
  - name: main
    ports:
    - {name: http, containerPort: 8080, protocol: TCP}
  initContainers:
  - name: side
    restartPolicy: Always
    ports:
    - {containerPort: 9090}
status:
  podIPs:
  - {ip: 10.0.0.5}
  - {ip: "fd00::5"}
---
apiVersion: v1
kind: Node
metadata:
  name: node-1
status:
  addresses:
  - {type: InternalIP, address: 172.16.0.1}
  - {type: Hostname, address: node-1}
""",
    """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: allow-web
  namespace: shop
spec:
  podSelector:
    matchLabels: {app: web}
    matchExpressions:
    - {key: tier, operator: In, values: [front, back]}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: web}}
      podSelector: {}
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
    ports:
    - {port: 8080, protocol: TCP}
    - {port: http, endPort: 9000}
  egress:
  - to:
    - ipBlock: {cidr: "::/0"}
    ports:
    - {port: 53, protocol: UDP}
""",
    """\
apiVersion: v1
kind: List
items:
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: api, namespace: shop}
  spec:
    template:
      metadata:
        labels: {app: api}
      spec:
        containers:
        - name: api
          ports: [{containerPort: 8443, name: https}]
- apiVersion: batch/v1
  kind: CronJob
  metadata: {name: nightly, namespace: shop}
  spec:
    jobTemplate:
      spec:
        template:
          metadata:
            labels: {app: nightly}
          spec:
            hostNetwork: false
            containers: [{name: job}]
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: deny, namespace: shop}
  spec:
    podSelector: {}
""",
)

#: Values a mutation puts somewhere: every JSON type, YAML 1.1 surprises, sizes and unicode.
ODD_VALUES: tuple[object, ...] = (
    None, True, False, 0, -1, 5, 2**31, 2**63, 2**64, -(2**63) - 1, 10**30, 1.5, -0.0, float("inf"),
    "", " ", "yes", "08", "0x1F", "1e999", "10.0.0.0/8\n", "::ffff:10.0.0.1", "é", "名前", "\U0001f600",
    "a" * 300, [], {}, [1, "x", None], {"a": {"b": [1]}}, ["10.0.0.1"], {"matchLabels": 5},
)


@dataclass(frozen=True)
class Manifest:
    """A fuzzed file: its bytes and how it was made (for the failure report)."""

    data: bytes
    story: str


def places(value: object, path: tuple = ()) -> list[tuple]:
    """Every path in a value tree, the root included."""
    found = [path]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(places(item, (*path, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(places(item, (*path, index)))
    return found


def _parent(root: object, path: tuple) -> object:
    for part in path[:-1]:
        root = root[part]  # type: ignore[index]
    return root


def replace(root: object, path: tuple, new: object) -> object:
    if not path:
        return new
    _parent(root, path)[path[-1]] = new  # type: ignore[index]
    return root


def delete(root: object, path: tuple) -> object:
    if path:
        del _parent(root, path)[path[-1]]  # type: ignore[attr-defined]
    return root


_NEST_RE = re.compile(r"'?@@nest:(\d+):(list|map)@@'?")


def nest(depth: int, *, in_lists: bool) -> str:
    """A placeholder for ``depth`` nested lists or maps, written out by :func:`dump` (PyYAML's
    own writer recurses, so it cannot write what is being tested)."""
    return f"@@nest:{depth}:{'list' if in_lists else 'map'}@@"


def _nested_text(match: re.Match[str]) -> str:
    depth = int(match.group(1))
    if match.group(2) == "list":
        return "[" * depth + "1" + "]" * depth
    return "{a: " * depth + "1" + "}" * depth


def dump(documents: list[object]) -> str:
    """YAML as a user would write it; objects shared between places become anchors."""
    text = yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True, width=10**6)
    return _NEST_RE.sub(_nested_text, text)


TextMutation = Callable[[str, int], bytes]


def text_mutations() -> dict[str, TextMutation]:
    """Changes to the written text, each given a position from the fuzzer."""

    def at(text: str, position: int) -> int:
        return position % (len(text) + 1)

    return {
        "cut": lambda text, p: text[: at(text, p)].encode(),
        "nul": lambda text, p: (text[: at(text, p)] + "\0" + text[at(text, p) :]).encode(),
        "control": lambda text, p: (text[: at(text, p)] + "\x07\x1b" + text[at(text, p) :]).encode(),
        "bad-utf8": lambda text, p: text[: at(text, p)].encode() + b"\xff\xfe\xc3" + text[at(text, p) :].encode(),
        "utf16": lambda text, p: text.encode("utf-16"),
        "bom": lambda text, p: b"\xef\xbb\xbf" + text.encode(),
        "crlf": lambda text, p: text.replace("\n", "\r\n").encode(),
        "lone-cr": lambda text, p: text.replace("\n", "\r", 3).encode(),
        "line-separators": lambda text, p: (text[: at(text, p)] + "\u2028\x85" + text[at(text, p) :]).encode(),
        "duplicate-line": lambda text, p: _duplicate_line(text, p).encode(),
        "tab": lambda text, p: (text[: at(text, p)] + "\t" + text[at(text, p) :]).encode(),
        "bracket": lambda text, p: (text[: at(text, p)] + "[{" + text[at(text, p) :]).encode(),
        "huge-number": lambda text, p: _replace_number(text, "9" * 5000).encode(),
        "anchor-bomb": lambda text, p: (text + _BOMB).encode(),
        "merge": lambda text, p: (text + _MERGE).encode(),
        "tags": lambda text, p: text.replace(": ", ": !!str ", 2).replace("- ", "- !custom ", 1).encode(),
        "recursive-alias": lambda text, p: (text + "---\na: &x [1, *x]\nb: *nope\n").encode(),
    }


def _duplicate_line(text: str, position: int) -> str:
    lines = text.split("\n")
    index = position % len(lines)
    return "\n".join(lines[: index + 1] + [lines[index]] + lines[index + 1 :])


def _replace_number(text: str, number: str) -> str:
    for candidate in ("8080", "5", "53"):
        if candidate in text:
            return text.replace(candidate, number, 1)
    pod = f"kind: Pod\nmetadata: {{name: n}}\nspec: {{containers: [{{ports: [{{containerPort: {number}}}]}}]}}\n"
    return f"{text}---\n{pod}"


_BOMB = (
    "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\ndata:\n"
    + "  a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"  {chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))
)
_MERGE = (
    "---\nbase: &base {app: web, tier: front}\nmore: &more {tier: x, zone: a}\n"
    "kind: Pod\nmetadata:\n  name: merged\n  labels:\n    <<: [*base, *more]\n    tier: back\n"
)


def deep_copy(value: object) -> object:
    return copy.deepcopy(value)
