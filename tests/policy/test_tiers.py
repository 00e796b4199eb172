"""The cluster-scoped tiers of the reference semantics, one row per rule of the API.

Each row quotes the ClusterNetworkPolicy API (kubernetes-sigs/network-policy-api,
``apis/v1alpha2/clusternetworkpolicy_types.go``) or the v1alpha1 AdminNetworkPolicy /
BaselineAdminNetworkPolicy types it implements; expected values come from those sentences.
Policies are written as manifests and read with the loader, so the rows also pin how each field
is read. Standard model: tests.builders.standard_cluster (x/a on node-1 at 10.244.1.10, y/b on
node-1 at 10.244.1.14, x/b on node-2, ...).
"""

from __future__ import annotations

import textwrap
from dataclasses import replace

import pytest

from policyctl.policy.clustermodel import Action, ClusterNetworkPolicy, Tier
from policyctl.manifests.loader import load_documents
from policyctl.policy.model import Labels, NetworkPolicy
from policyctl.policy.cluster import Cluster
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import DecidedBy
from policyctl.manifests.yamlsource import read_documents
from tests.builders import connect, pod_peer, policy, rule, standard_cluster

CNP = "apiVersion: policy.networking.k8s.io/v1alpha2\nkind: ClusterNetworkPolicy\n"


def cluster_policies(text: str) -> tuple[ClusterNetworkPolicy, ...]:
    documents, problems = read_documents(textwrap.dedent(text), source="t.yaml")
    result = load_documents(documents)
    assert not problems and result.ok, [str(d) for d in result.diagnostics]
    return result.cluster.cluster_policies


def tiered(text: str, *network_policies: NetworkPolicy) -> Cluster:
    base = standard_cluster(*network_policies)
    ordered = sorted(cluster_policies(text), key=lambda p: (p.tier is not Tier.ADMIN, p.order))
    return replace(base, cluster_policies=tuple(ordered))


def cnp(name: str, tier: str, priority: int, subject: str, rules: str) -> str:
    return CNP + textwrap.dedent(f"""\
        metadata: {{name: {name}}}
        spec:
          tier: {tier}
          priority: {priority}
          subject: {subject}
        """) + textwrap.indent(textwrap.dedent(rules), "  ") + "---\n"


X = "{namespaces: {matchLabels: {ns: x}}}"
ALL = "{namespaces: {}}"
FROM_Y = "from: [{namespaces: {matchLabels: {ns: 'y'}}}]"
TO_Y = "to: [{namespaces: {matchLabels: {ns: 'y'}}}]"
DENY_ALL_INGRESS_X = policy("x/deny-all", ingress=[])
ALLOW_Y_INTO_X = policy("x/allow-y", ingress=[rule(pod_peer(namespaces={"ns": "y"}))])


ROWS = [
    # "If Admin tier has made a final decision (Accept or Deny) on a connection, then no
    # further evaluation is done": an Admin Accept admits what NetworkPolicy isolates.
    pytest.param(
        cnp("accept-y", "Admin", 10, X, f"ingress:\n- action: Accept\n  {FROM_Y}\n"),
        (DENY_ALL_INGRESS_X,), "y/a", "x/a", 80, "TCP", True, DecidedBy.ADMIN,
        id="admin-accept-overrides-network-policy",
    ),
    # "Deny: Drops the selected traffic. No further ClusterNetworkPolicy or NetworkPolicy
    # rules will be processed."
    pytest.param(
        cnp("deny-y", "Admin", 10, X, f"ingress:\n- action: Deny\n  {FROM_Y}\n"),
        (ALLOW_Y_INTO_X,), "y/a", "x/a", 80, "TCP", False, DecidedBy.ADMIN,
        id="admin-deny-overrides-network-policy-allow",
    ),
    # "Pass: Skips all further ClusterNetworkPolicy rules in the current tier ... and passes
    # evaluation to the next tier": the NetworkPolicy that isolates x/a decides.
    pytest.param(
        cnp("pass-y", "Admin", 10, X, f"ingress:\n- action: Pass\n  {FROM_Y}\n- action: Deny\n  {FROM_Y}\n"),
        (ALLOW_Y_INTO_X,), "y/a", "x/a", 80, "TCP", True, DecidedBy.NETWORK_POLICY,
        id="admin-pass-skips-the-rest-of-the-tier",
    ),
    # "Policies with lower priority values have higher precedence".
    pytest.param(
        cnp("deny-first", "Admin", 1, X, f"ingress:\n- action: Deny\n  {FROM_Y}\n")
        + cnp("accept-later", "Admin", 2, X, f"ingress:\n- action: Accept\n  {FROM_Y}\n"),
        (), "y/a", "x/a", 80, "TCP", False, DecidedBy.ADMIN,
        id="lower-priority-value-first",
    ),
    # "a rule that appears at the top of the ingress rules would take the highest precedence".
    pytest.param(
        cnp("ordered", "Admin", 1, X, f"ingress:\n- action: Accept\n  {FROM_Y}\n- action: Deny\n  {FROM_Y}\n"),
        (), "y/a", "x/a", 80, "TCP", True, DecidedBy.ADMIN,
        id="first-matching-rule-in-written-order",
    ),
    # "v1.NetworkPolicy always makes a final decision for selected pods. Further evaluation
    # only happens for Pods not selected by a v1.NetworkPolicy."
    pytest.param(
        cnp("baseline-deny-y", "Baseline", 1, X, f"ingress:\n- action: Deny\n  {FROM_Y}\n"),
        (ALLOW_Y_INTO_X,), "y/a", "x/a", 80, "TCP", True, DecidedBy.NETWORK_POLICY,
        id="network-policy-decides-before-baseline",
    ),
    pytest.param(
        cnp("baseline-deny-y", "Baseline", 1, X, f"ingress:\n- action: Deny\n  {FROM_Y}\n"),
        (), "y/a", "x/a", 80, "TCP", False, DecidedBy.BASELINE,
        id="baseline-decides-pods-no-network-policy-isolates",
    ),
    # "If a given connection wasn't allowed or denied by any of the tiers, the default
    # kubernetes policy is applied, which says that all pods can communicate with each other."
    pytest.param(
        cnp("baseline-pass", "Baseline", 1, X, f"ingress:\n- action: Pass\n  {FROM_Y}\n"),
        (), "y/a", "x/a", 80, "TCP", True, DecidedBy.DEFAULT,
        id="baseline-pass-reaches-the-default-allow",
    ),
    # Egress "Accept: ... No further egress ClusterNetworkPolicy or NetworkPolicy rules will be
    # processed but any ingress rules at the destination do apply."
    pytest.param(
        cnp("egress-accept", "Admin", 1, "{namespaces: {matchLabels: {ns: 'y'}}}",
            "egress:\n- action: Accept\n  to: [{namespaces: {matchLabels: {ns: x}}}]\n"),
        (DENY_ALL_INGRESS_X,), "y/a", "x/a", 80, "TCP", False, DecidedBy.NETWORK_POLICY,
        id="egress-accept-leaves-the-destination-ingress-to-decide",
    ),
    # Networks: "cluster-internal traffic will be checked against the rule as well".
    pytest.param(
        cnp("deny-pod-cidr", "Admin", 1, ALL, "egress:\n- action: Deny\n  to: [{networks: [10.244.1.0/24]}]\n"),
        (), "x/b", "x/a", 80, "TCP", False, DecidedBy.ADMIN,
        id="networks-match-pod-addresses",
    ),
    # "CNPs with no ingress rules do not affect ingress traffic."
    pytest.param(
        cnp("egress-only", "Admin", 1, X, "egress:\n- action: Deny\n  to: [{networks: [0.0.0.0/0]}]\n"),
        (), "y/a", "x/a", 80, "TCP", True, DecidedBy.DEFAULT,
        id="no-ingress-rules-no-effect-on-ingress",
    ),
    # Protocols: "If unspecified, protocol-specific attributes will not be used to match".
    pytest.param(
        cnp("deny-80", "Admin", 1, X,
            f"ingress:\n- action: Deny\n  {FROM_Y}\n  protocols: [{{tcp: {{destinationPort: {{number: 80}}}}}}]\n"),
        (), "y/a", "x/a", 81, "TCP", True, DecidedBy.DEFAULT,
        id="port-outside-the-rule-does-not-match",
    ),
    pytest.param(
        cnp("deny-range", "Admin", 1, X,
            f"ingress:\n- action: Deny\n  {FROM_Y}\n"
            "  protocols: [{udp: {destinationPort: {range: {start: 79, end: 81}}}}]\n"),
        (), "y/a", "x/a", 81, "UDP", False, DecidedBy.ADMIN,
        id="range-is-inclusive",
    ),
    # destinationNamedPort "selects a destination port on a pod based on the ContainerPort name".
    pytest.param(
        cnp("deny-named", "Admin", 1, X,
            f"ingress:\n- action: Deny\n  {FROM_Y}\n  protocols: [{{destinationNamedPort: serve-80-udp}}]\n"),
        (), "y/a", "x/a", 80, "UDP", False, DecidedBy.ADMIN,
        id="named-port-matches-its-container-port",
    ),
    pytest.param(
        cnp("deny-named", "Admin", 1, X,
            f"ingress:\n- action: Deny\n  {FROM_Y}\n  protocols: [{{destinationNamedPort: serve-80-udp}}]\n"),
        (), "y/a", "x/a", 80, "TCP", True, DecidedBy.DEFAULT,
        id="named-port-keeps-its-protocol",
    ),
    # AdminNetworkPolicy "Allow" is the Admin tier's Accept (v1alpha1).
    pytest.param(
        "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: AdminNetworkPolicy\nmetadata: {name: anp}\n"
        f"spec:\n  priority: 3\n  subject: {X}\n  ingress:\n  - action: Allow\n    {FROM_Y}\n---\n",
        (DENY_ALL_INGRESS_X,), "y/a", "x/a", 80, "TCP", True, DecidedBy.ADMIN,
        id="admin-network-policy-allow-is-admin-accept",
    ),
    # BaselineAdminNetworkPolicy is the Baseline tier.
    pytest.param(
        "apiVersion: policy.networking.k8s.io/v1alpha1\nkind: BaselineAdminNetworkPolicy\n"
        f"metadata: {{name: default}}\nspec:\n  subject: {X}\n  ingress:\n  - action: Deny\n    {FROM_Y}\n---\n",
        (), "y/a", "x/a", 80, "TCP", False, DecidedBy.BASELINE,
        id="baseline-admin-network-policy-is-the-baseline-tier",
    ),
]


@pytest.mark.parametrize(("manifests", "network_policies", "source", "destination", "number", "protocol", "allowed",
                          "decided"), ROWS)  # fmt: skip
def test_tier_order_priority_and_actions(manifests, network_policies, source, destination, number, protocol, allowed,
                                         decided):  # fmt: skip
    base = tiered(manifests, *network_policies)
    verdict = evaluate(base, connect(base, source, destination, number, protocol=protocol))
    deciding = verdict.egress if not verdict.egress.allowed else verdict.ingress
    assert verdict.allowed is allowed
    assert deciding.decided_by is decided


def test_a_pod_reaching_its_own_address_is_not_subject_but_through_a_service_it_is():
    # Issue text and the API's hairpin note: "A pod reaching its own pod IP is not subject to
    # ClusterNetworkPolicy; reaching itself through a Service IP is."
    base = tiered(cnp("deny-all", "Admin", 1, X, "ingress:\n- action: Deny\n  from: [{namespaces: {}}]\n"))
    assert evaluate(base, connect(base, "x/a", "x/a")).allowed
    assert not evaluate(base, connect(base, "x/a", "x/a", via_service=True)).allowed


def test_nodes_peers_match_the_addresses_of_labelled_nodes_only():
    # Nodes "selects the nodeIPs as the peer type by matching on the IPs present in the
    # node.Status.Addresses field of the node", by the node's labels.
    base = tiered(cnp("deny-workers", "Admin", 1, X,
                      "egress:\n- action: Deny\n  to: [{nodes: {matchLabels: {role: worker}}}]\n"))
    nodes = tuple(replace(n, labels=Labels({"role": "worker"})) if n.name == "node-1" else n for n in base.nodes)
    base = replace(base, nodes=nodes)
    assert not evaluate(base, connect(base, "x/a", "node:node-1")).allowed
    assert not evaluate(base, connect(base, "x/a", "192.168.0.1")).allowed
    assert evaluate(base, connect(base, "x/a", "node:node-2")).allowed


def test_domain_names_match_nothing_and_say_so():
    # domainNames need DNS answers an nftables data path does not see: the Accept does not
    # apply, the Deny after it does, and the reason names it.
    base = tiered(cnp("dns", "Admin", 1, X,
                      "egress:\n- action: Accept\n  to: [{domainNames: [example.com]}]\n"
                      "- action: Deny\n  to: [{networks: [0.0.0.0/0]}]\n"))
    verdict = evaluate(base, connect(base, "x/a", "203.0.113.9"))
    assert not verdict.allowed
    assert verdict.egress.admin is not None
    reasons = [r for p in verdict.egress.admin.policies for rr in p.rules for peer in rr.peers for r in peer.reasons]
    assert any("not enforced: names are not resolved" in r for r in reasons)


def test_subjects_never_select_host_network_pods():
    # "Note that host-networked pods are not included in subject selection."
    base = tiered(cnp("deny-all", "Admin", 1, ALL, "ingress:\n- action: Deny\n  from: [{namespaces: {}}]\n"))
    host = replace(base.pod_by_key["x/a"], host_network=True, ips=(base.node_by_name["node-1"].addresses[0],))
    base = replace(base, pods=tuple(host if p.key == "x/a" else p for p in base.pods))
    assert evaluate(base, connect(base, "y/a", "x/a")).allowed


def test_ingress_from_the_pods_own_node_is_allowed_whatever_the_tiers_say():
    # Ingress peers are namespaces and pods only, so no cluster rule can match a node, and
    # "agents on a node ... can communicate with all pods on that node".
    base = tiered(cnp("deny-all", "Admin", 1, X, "ingress:\n- action: Deny\n  from: [{namespaces: {}}]\n"))
    assert evaluate(base, connect(base, "node:node-1", "x/a")).allowed


def test_equal_priorities_that_decide_differently_are_reported_and_broken_by_name():
    # "If two (or more) policies in the same tier with the same priority could match a
    # connection, then the implementation can apply any of the matching policies": policyctl
    # applies the first by kind and name, and says the order was undefined.
    base = tiered(cnp("a-accept", "Admin", 5, X, f"ingress:\n- action: Accept\n  {FROM_Y}\n")
                  + cnp("b-deny", "Admin", 5, X, f"ingress:\n- action: Deny\n  {FROM_Y}\n"))
    verdict = evaluate(base, connect(base, "y/a", "x/a"))
    admin = verdict.ingress.admin
    assert verdict.allowed
    assert admin is not None and admin.action is Action.ACCEPT
    assert len(admin.ambiguous) == 1 and "b-deny" in admin.ambiguous[0]
    assert "ambiguous" in verdict.ingress.note


def test_a_deny_names_the_deciding_rule_and_a_hint_that_flips_it():
    base = tiered(cnp("deny-y", "Admin", 7, X, f"ingress:\n- name: no-y\n  action: Deny\n  {FROM_Y}\n"))
    verdict = evaluate(base, connect(base, "y/a", "x/a"))
    assert 'ClusterNetworkPolicy/deny-y ingress[0] "no-y"' in verdict.ingress.note
    assert "priority 7" in verdict.ingress.note
    assert verdict.ingress.hints and "priority below 7" in verdict.ingress.hints[0].text
