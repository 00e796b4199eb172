"""Parsing probe cases (``../shared/spec/probe-cases.md``) into cluster snapshots per step."""

from __future__ import annotations

import ipaddress
import textwrap

import pytest

from policyctl.policy.diagnostics import InputError
from policyctl.policy.model import NAMESPACE_NAME_LABEL, Family, PolicyRef, Protocol
from policyctl.probecases.cases import ProbeCase, parse_probe_case


def parse(text: str) -> ProbeCase:
    return parse_probe_case(textwrap.dedent(text), source="case.yaml")


def errors_of(text: str) -> list[str]:
    with pytest.raises(InputError) as caught:
        parse(text)
    return [str(d) for d in caught.value.diagnostics]


def test_standard_model_has_nine_pods_alternating_over_two_nodes() -> None:
    case = parse("""\
        name: standard
        steps:
        - probes: [{port: 80}]
        """)
    cluster = case.steps[0].cluster
    assert [p.key for p in cluster.pods] == [f"{n}/{p}" for n in "xyz" for p in "abc"]
    assert [p.node for p in cluster.pods][:4] == ["node-1", "node-2", "node-1", "node-2"]
    assert [n.name for n in cluster.nodes] == ["node-1", "node-2"]
    y = cluster.namespace_by_name["y"]
    assert dict(y.labels) == {"ns": "y", NAMESPACE_NAME_LABEL: "y"}
    z_c = cluster.pod_by_key["z/c"]
    assert dict(z_c.labels) == {"pod": "c"}
    assert {(p.port, p.protocol, p.name) for p in z_c.ports} == {
        (n, proto, f"serve-{n}-{proto.value.lower()}") for n in (80, 81) for proto in Protocol
    }
    assert case.families == (Family.IPV4,)


def test_unpinned_addresses_come_from_the_node_pod_cidr_in_pod_order() -> None:
    case = parse("""\
        steps: [{probes: [{port: 80}]}]
        """)
    addresses = dict(case.addresses)
    # x/a, x/c, y/b, z/a, z/c on node-1; x/b, y/a, y/c, z/b on node-2; hosts from .2 up
    assert addresses["x/a"] == (ipaddress.ip_address("10.244.1.2"),)
    assert addresses["x/c"] == (ipaddress.ip_address("10.244.1.3"),)
    assert addresses["x/b"] == (ipaddress.ip_address("10.244.2.2"),)
    assert addresses["z/b"] == (ipaddress.ip_address("10.244.2.5"),)
    assert len({a for ips in addresses.values() for a in ips}) == 9


def test_inline_model_pins_addresses_and_skips_them_when_assigning() -> None:
    case = parse("""\
        model:
          ip_families: [IPv6, IPv4]
          nodes: [n1]
          namespaces: {app: {team: shop}}
          pods:
            app/a: {labels: {role: a}, ips: ["10.244.1.2", "fd00::1"]}
            app/b: {labels: {role: b}, ports: [{name: http, port: 8080}]}
            app/h: {host_network: true}
        steps: [{probes: [{port: 80}]}]
        """)
    addresses = dict(case.addresses)
    assert case.families == (Family.IPV6, Family.IPV4)
    assert addresses["app/a"] == (ipaddress.ip_address("fd00::1"), ipaddress.ip_address("10.244.1.2"))
    assert addresses["app/b"] == (ipaddress.ip_address("fd00:10:244:1::2"), ipaddress.ip_address("10.244.1.3"))
    host = case.steps[0].cluster.pod_by_key["app/h"]
    node = case.steps[0].cluster.node_by_name["n1"]
    assert host.host_network and set(host.ips) == set(node.addresses)
    b = case.steps[0].cluster.pod_by_key["app/b"]
    assert [(p.name, p.port, p.protocol) for p in b.ports] == [("http", 8080, Protocol.TCP)]
    assert dict(case.steps[0].cluster.namespace_by_name["app"].labels) == {"team": "shop", NAMESPACE_NAME_LABEL: "app"}
    assert case.steps[0].probes[0].probe.family is Family.IPV6


def test_steps_apply_in_the_spec_order_and_carry_over() -> None:
    case = parse("""\
        steps:
        - policies:
          - {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: deny, namespace: x},
             spec: {podSelector: {}}}
        - remove_policies: [x/deny]
          policies:
          - {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: deny, namespace: y},
             spec: {podSelector: {}}}
          namespace_labels: {y: {env: prod}}
          pod_labels: {x/a: {role: web}}
          pods_removed: [z/c]
          pods_added: {z/d: {labels: {pod: d}}}
        - {}
        """)
    first, second, third = (s.cluster for s in case.steps)
    assert [p.ref for p in first.policies] == [PolicyRef("x", "deny")]
    assert [p.ref for p in second.policies] == [PolicyRef("y", "deny")]
    assert dict(second.namespace_by_name["y"].labels) == {"env": "prod", NAMESPACE_NAME_LABEL: "y"}
    assert dict(second.pod_by_key["x/a"].labels) == {"role": "web"}
    assert "z/c" not in second.pod_by_key and "z/d" in second.pod_by_key
    assert third == second
    assert "z/d" in dict(case.addresses) and "z/c" in dict(case.addresses)


def test_a_policy_of_the_same_name_replaces_the_old_one() -> None:
    case = parse("""\
        steps:
        - policies:
          - {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p, namespace: x},
             spec: {podSelector: {}}}
        - policies:
          - {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: p, namespace: x},
             spec: {podSelector: {matchLabels: {pod: a}}}}
        """)
    assert len(case.steps[1].cluster.policies) == 1
    assert str(case.steps[1].cluster.policies[0].pod_selector) == "pod=a"


def test_unquoted_y_is_the_namespace_name_not_a_boolean() -> None:
    case = parse("""\
        steps:
        - namespace_labels: {y: {ns: y}}
          probes:
          - port: 80
            expected: {x/a: {y/a: true}}
        """)
    assert dict(case.steps[0].cluster.namespace_by_name["y"].labels)["ns"] == "y"
    assert case.steps[0].probes[0].expected[0].destination == "y/a"


def test_pod_addresses_are_substituted_into_policies() -> None:
    case = parse("""\
        steps:
        - policies:
          - apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: from-b, namespace: x}
            spec:
              podSelector: {}
              ingress: [{from: [{ipBlock: {cidr: "{{ip4:x/b}}/32"}}]}]
        """)
    peer = case.steps[0].cluster.policies[0].ingress[0].peers[0]
    assert str(peer) == f"{dict(case.addresses)['x/b'][0]}/32"


def test_probe_fields_and_defaults() -> None:
    case = parse("""\
        steps:
        - probes:
          - {port: 81, protocol: SCTP, via: service, expected: {x/a: {x/b: false}, y/c: {y/c: true}}}
          - {port: 80}
        """)
    first, second = case.steps[0].probes
    assert (first.probe.port, first.probe.protocol, first.probe.via_service) == (81, Protocol.SCTP, True)
    assert [(e.source, e.destination, e.allowed) for e in first.expected] == [
        ("x/a", "x/b", False),
        ("y/c", "y/c", True),
    ]
    assert (second.probe.protocol, second.probe.family, second.probe.via_service, second.expected) == (
        Protocol.TCP, Family.IPV4, False, ()
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "steps:\n- probes:\n  - port: 80\n    expected: {x/a: {x/q: true}}\n",
            "case.yaml:4: error: steps[0].probes[0].expected.x/a.x/q: no pod 'x/q' at this step",
            id="unknown-pod-in-expected",
        ),
        pytest.param(
            "steps:\n- probes:\n  - {port: 80, family: IPv6}\n",
            "case.yaml:3: error: steps[0].probes[0].family: the cluster has no IPv6",
            id="family-not-in-cluster",
        ),
        pytest.param(
            "steps:\n- probes:\n  - {port: 80, protocol: ICMP}\n",
            "case.yaml:3: error: steps[0].probes[0].protocol: must be one of TCP | UDP | SCTP",
            id="unknown-protocol",
        ),
        pytest.param(
            "steps:\n- probes:\n  - {port: 70000}\n",
            "case.yaml:3: error: steps[0].probes[0].port: must be a port number 1-65535",
            id="port-out-of-range",
        ),
        pytest.param(
            "steps:\n- remove_policies: [x/nothing]\n",
            "case.yaml:2: error: steps[0].remove_policies[0]: no policy 'x/nothing' to remove",
            id="remove-unknown-policy",
        ),
        pytest.param(
            "steps:\n- pods_removed: [x/aa]\n",
            "case.yaml:2: error: steps[0].pods_removed[0]: no pod 'x/aa' at this step; did you mean 'x/a'?",
            id="remove-unknown-pod-suggests",
        ),
        pytest.param(
            "stepz: []\n",
            "case.yaml:1: error: stepz: unknown field; expected one of: name, model, steps",
            id="unknown-top-level-field",
        ),
        pytest.param(
            "steps:\n- policies:\n  - apiVersion: networking.k8s.io/v1\n    kind: NetworkPolicy\n"
            "    metadata: {name: p, namespace: x}\n    spec:\n      podSelector: {}\n"
            "      ingress: [{from: [{ipBlock: {cidr: \"{{ip4:x/nope}}/32\"}}]}]\n",
            "case.yaml:8: error: steps[0].policies[0].spec.ingress[0].from[0].ipBlock.cidr: "
            "{{ip4:x/nope}}: no pod 'x/nope' in this case",
            id="substitution-of-unknown-pod",
        ),
        pytest.param(
            "steps:\n- policies:\n  - apiVersion: networking.k8s.io/v1\n    kind: NetworkPolicy\n"
            "    metadata: {name: p, namespace: q}\n    spec: {podSelector: {}}\n",
            "case.yaml:5: error: steps[0].policies[0].metadata.namespace: namespace 'q' is not in the model",
            id="policy-in-unknown-namespace",
        ),
        pytest.param(
            "model:\n  namespaces: {a: {}}\n  pods:\n    b/p: {}\nsteps: []\n",
            "case.yaml:4: error: model.pods.b/p: namespace b is not in model.namespaces",
            id="pod-in-undeclared-namespace",
        ),
        pytest.param(
            "steps: [\n",
            "case.yaml:2: error: malformed YAML",
            id="malformed-yaml",
        ),
    ],
)
def test_bad_input_is_reported_with_file_line_and_field(text: str, expected: str) -> None:
    found = errors_of(text)
    assert any(line.startswith(expected) for line in found), found


def test_invalid_policy_is_reported_through_the_loader_with_the_case_line() -> None:
    found = errors_of("""\
        steps:
        - policies:
          - apiVersion: networking.k8s.io/v1
            kind: NetworkPolicy
            metadata: {name: p, namespace: x}
            spec:
              podSelector: {}
              ingress:
              - from:
                - ipBlock: {cidr: 10.0.0.0/99}
        """)
    assert any(
        line.startswith("case.yaml:10: error: steps[0].policies[0].spec.ingress[0].from[0].ipBlock.cidr")
        for line in found
    ), found


def test_every_problem_is_reported_at_once() -> None:
    found = errors_of("steps:\n- pods_removed: [x/q]\n  probes:\n  - {port: 0}\n")
    assert len(found) == 2, found
