"""The compiled ruleset: layout, what enters which set, sharing, growth and determinism."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace

import pytest

from policyctl.compiler.compile import compile_node
from policyctl.compiler.engine import CompiledCluster
from policyctl.compiler.render_json import render_json
from policyctl.compiler.render_text import render_text
from policyctl.compiler.ruleset import CtStateIn, Hook, Lookup, Mode, Ruleset, Verdict, VmapLookup
from policyctl.policy.cluster import Cluster
from tests.builders import (
    cluster,
    connect,
    container_port,
    ip_block,
    namespace,
    node,
    pod,
    pod_peer,
    policy,
    port,
    rule,
    standard_cluster,
)


def elements(ruleset: Ruleset, name: str) -> list[object]:
    doc = json.loads(render_json(ruleset))
    for item in doc["nftables"]:
        body = item.get("set") or item.get("map")
        if body and body["name"] == name:
            return body.get("elem", [])
    raise KeyError(name)


def lookup_sets(ruleset: Ruleset) -> set[str]:
    return {s.set for c in ruleset.chains for r in c.rules for s in r.statements if isinstance(s, Lookup)}


def test_base_chains_hook_at_postrouting_around_srcnat_and_at_input() -> None:
    rs = compile_node(standard_cluster(), "node-1")
    base = {c.name: (c.hook, c.priority) for c in rs.chains if c.is_base}
    assert base == {"egress": (Hook.POSTROUTING, 95), "ingress": (Hook.POSTROUTING, 96), "input": (Hook.INPUT, 101)}


def test_every_base_chain_accepts_established_first() -> None:
    rs = compile_node(standard_cluster(policy("x/deny", {})), "node-1")
    base = [c for c in rs.chains if c.is_base]
    assert len(base) == 3
    for chain in base:
        assert chain.rules[0].statements == (CtStateIn(("established", "related")), Verdict.ACCEPT)


def test_only_isolated_local_pods_enter_dispatch_maps() -> None:
    rs = compile_node(standard_cluster(policy("x/deny", {"pod": "a"})), "node-1")
    # x/a is on node-1 (10.244.1.10) and isolated for ingress only.
    assert [e[0] for e in elements(rs, "ingress-v4")] == ["10.244.1.10"]
    assert elements(rs, "egress-v4") == []
    assert elements(compile_node(standard_cluster(policy("x/deny", {"pod": "a"})), "node-2"), "ingress-v4") == []


def test_host_network_pods_never_enter_pod_sets_and_count_as_their_node() -> None:
    c = cluster(
        node("n1", "192.168.0.1"),
        node("n2", "192.168.0.2"),
        pod("x/a", {"app": "a"}, node="n1", ips=["10.0.1.1"]),
        pod("x/h", {"app": "a"}, node="n2", ips=["192.168.0.2"], host_network=True),
        pod("x/b", {"app": "a"}, node="n2", ips=["10.0.2.1"]),
        policy("x/from-a", {}, ingress=[rule(pod_peer({"app": "a"}))]),
    )
    rs = compile_node(c, "n2")
    maps = elements(rs, "ingress-v4")
    assert [m[0] for m in maps] == ["10.0.2.1"]
    assert [m[0] for m in elements(rs, "in-peers-v4")] == ["10.0.1.1", "10.0.2.1"]
    assert elements(rs, "node-v4") == ["192.168.0.2"]


@pytest.mark.parametrize(
    ("destination", "port_number", "allowed"),
    [
        pytest.param("y/web", 8080, True, id="web-http-is-8080"),
        pytest.param("y/web", 9090, False, id="web-not-9090"),
        pytest.param("y/alt", 9090, True, id="alt-http-is-9090"),
        pytest.param("y/alt", 8080, False, id="alt-not-8080"),
        pytest.param("y/udp", 8080, False, id="name-with-other-protocol-never-matches"),
    ],
)
def test_egress_named_ports_resolve_on_each_destination_pod(destination: str, port_number: int, allowed: bool) -> None:
    c = cluster(
        node("n1", "192.168.0.1"),
        pod("x/client", {"app": "client"}, node="n1", ips=["10.0.1.1"]),
        pod("y/web", {"app": "web"}, node="n1", ips=["10.0.1.2"], ports=[container_port(8080, "TCP", "http")]),
        pod("y/alt", {"app": "web"}, node="n1", ips=["10.0.1.3"], ports=[container_port(9090, "TCP", "http")]),
        pod("y/udp", {"app": "web"}, node="n1", ips=["10.0.1.4"], ports=[container_port(8080, "UDP", "http")]),
        policy("x/out", {"app": "client"}, egress=[rule(pod_peer({"app": "web"}, {}), ports=[port("http")])]),
    )
    assert CompiledCluster(c).allowed(connect(c, "x/client", destination, port_number)) is allowed


def test_ingress_named_port_resolves_on_the_local_destination_pod() -> None:
    c = cluster(
        node("n1", "192.168.0.1"),
        pod("x/a", {"app": "a"}, node="n1", ips=["10.0.1.1"], ports=[container_port(8443, "TCP", "https")]),
        pod("x/b", {"app": "b"}, node="n1", ips=["10.0.1.2"]),
        policy("x/in", {"app": "a"}, ingress=[rule(ports=[port("https")])]),
    )
    rs = compile_node(c, "n1")
    assert elements(rs, "in-any-ports-v4") == [{"concat": ["10.0.1.1", "tcp", 8443]}]


def test_ipblock_except_becomes_disjoint_address_ranges() -> None:
    c = cluster(
        node("n1", "192.168.0.1"),
        pod("x/a", {"app": "a"}, node="n1", ips=["10.0.1.1"]),
        policy("x/in", {"app": "a"}, ingress=[rule(ip_block("172.16.0.0/24", "172.16.0.128/26"))]),
    )
    rs = compile_node(c, "n1")
    block = next(s for s in rs.sets if s.name == "in-blocks-any-v4")
    assert block.interval
    assert elements(rs, block.name) == [
        {"concat": [{"prefix": {"addr": "172.16.0.0", "len": 25}}, "10.0.1.1"]},
        {"concat": [{"prefix": {"addr": "172.16.0.192", "len": 26}}, "10.0.1.1"]},
    ]


def test_rule_without_ports_uses_an_address_only_set_so_icmp_passes() -> None:
    c = cluster(
        node("n1", "192.168.0.1"),
        pod("x/a", {"app": "a"}, node="n1", ips=["10.0.1.1"]),
        pod("x/b", {"app": "b"}, node="n1", ips=["10.0.1.2"]),
        policy("x/in", {"app": "a"}, ingress=[rule(pod_peer({"app": "b"}))]),
    )
    rs = compile_node(c, "n1")
    pod_lookups = {n for n in lookup_sets(rs) if not n.startswith("node-") and "-policed-" not in n}
    assert len(pod_lookups) == 1 and all(n.startswith("in-from-") and n.endswith("-any-v4") for n in pod_lookups)
    from policyctl.compiler.evaluator import Evaluator, Packet

    icmp = Packet(ipaddress.ip_address("10.0.1.2"), ipaddress.ip_address("10.0.1.1"), 1, icmp_type=8)
    assert Evaluator(json.loads(render_json(rs))).evaluate("postrouting", icmp).accepted
    other = replace(icmp, saddr=ipaddress.ip_address("10.0.9.9"))
    assert not Evaluator(json.loads(render_json(rs))).evaluate("postrouting", other).accepted


def test_pods_of_one_identity_share_one_identity_chain_and_set() -> None:
    pods = [pod(f"x/w{i}", {"app": "web"}, node="n1", ips=[f"10.0.1.{i + 1}"]) for i in range(5)]
    c = cluster(
        node("n1", "192.168.0.1"),
        *pods,
        policy("x/in", {"app": "web"}, ingress=[rule(pod_peer({"app": "web"}), ports=[port(80)])]),
    )
    rs = compile_node(c, "n1")
    assert [ch.name for ch in rs.chains if ch.name.startswith("in-allow-")] == ["in-allow-v4"]
    identity_chains = [ch.name for ch in rs.chains if ch.name.startswith("in-from-")]
    assert len(identity_chains) == 1
    identity_sets = [s for s in rs.sets if s.name.startswith("in-from-")]
    assert [s.name for s in identity_sets] == [f"{identity_chains[0]}-ports-v4"]
    assert not identity_sets[0].interval
    assert elements(rs, identity_sets[0].name) == [{"concat": [f"10.0.1.{i + 1}", "tcp", 80]} for i in range(5)]
    assert elements(rs, "in-peers-v4") == [
        [f"10.0.1.{i + 1}", {"jump": {"target": identity_chains[0]}}] for i in range(5)
    ]
    assert len(elements(rs, "ingress-v4")) == 5


def test_pod_churn_within_an_identity_changes_only_elements() -> None:
    def build(count: int) -> Cluster:
        pods = [pod(f"y/c{i}", {"app": "client"}, node="n2", ips=[f"10.0.2.{i + 1}"]) for i in range(count)]
        target = pod("x/a", {"app": "a"}, node="n1", ips=["10.0.1.1"])
        rules = [rule(pod_peer({"app": "client"}, {}), ports=[port(80)])]
        return cluster(
            node("n1", "192.168.0.1"),
            node("n2", "192.168.0.2"),
            target,
            *pods,
            policy("x/in", {"app": "a"}, ingress=rules),
        )

    before, after = compile_node(build(2), "n1"), compile_node(build(3), "n1")
    assert before.chains == after.chains
    assert [s.name for s in before.sets] == [s.name for s in after.sets]
    assert before.element_count + 1 == after.element_count


def test_no_chain_grows_with_pods_or_policies() -> None:
    def build(n: int) -> Cluster:
        pods = [
            pod(f"x/p{i}", {"app": f"a{i % 3}"}, node="n1", ips=[f"10.0.{i // 200}.{i % 200 + 1}"]) for i in range(n)
        ]
        policies = [
            policy(
                f"x/p{i}",
                {"app": f"a{i % 3}"},
                ingress=[rule(pod_peer({"app": f"a{(i + 1) % 3}"}), ports=[port(1000 + i)])],
                egress=[rule(ip_block(f"172.{i}.0.0/16"))],
            )
            for i in range(n // 4)
        ]
        return cluster(node("n1", "192.168.0.1"), *pods, *policies)

    longest = [max(len(ch.rules) for ch in compile_node(build(n), "n1").chains) for n in (8, 40, 120)]
    assert longest[0] == longest[1] == longest[2] <= 10  # the ingress base chain: 2 + 2x2 mid-stream + 2 + 2


def _growth_cluster(per_identity: int) -> Cluster:
    objects = [node("n1", "192.168.0.1"), node("n2", "192.168.0.2"), namespace("x", ns="x"), namespace("y", ns="y")]
    for role in ("web", "db", "client"):
        for i in range(per_identity):
            host = ("x", "y")[i % 2]
            objects.append(
                pod(
                    f"{host}/{role}-{i}",
                    {"role": role},
                    node=f"n{1 + i % 2}",
                    ips=[
                        f"10.{1 + i % 2}.{('web', 'db', 'client').index(role)}.{i + 1}",
                        f"fd00:{1 + i % 2}:{('web', 'db', 'client').index(role)}::{i + 1}",
                    ],
                    ports=[container_port(8080, "TCP", "http")],
                )
            )
    objects += [
        policy(
            "x/web",
            {"role": "web"},
            ingress=[rule(pod_peer({"role": "client"}, {}), ports=[port("http"), port(9000, "TCP", 9100)])],
        ),
        policy(
            "x/db",
            {"role": "db"},
            ingress=[rule(pod_peer({"role": "web"}, {}), ports=[port(5432)])],
            egress=[
                rule(pod_peer({"role": "web"}, {}), ports=[port("http")]),
                rule(ip_block("10.0.0.0/8", "10.1.0.0/16")),
            ],
        ),
        policy("y/all", {}, ingress=[rule(pod_peer({}, {"ns": "x"}))], egress=[rule(ports=[port(53, "UDP")])]),
    ]
    return cluster(*objects)


@pytest.mark.parametrize("pods_per_identity", [4, 8, 16])
def test_doubling_pods_at_most_doubles_a_nodes_elements(pods_per_identity: int) -> None:
    small = compile_node(_growth_cluster(pods_per_identity), "n1")
    large = compile_node(_growth_cluster(2 * pods_per_identity), "n1")
    assert small.element_count < large.element_count <= 2 * small.element_count


@pytest.mark.parametrize("mode", [Mode.ENFORCE, Mode.AUDIT])
def test_compiling_twice_and_in_any_input_order_gives_identical_bytes(mode: Mode) -> None:
    c = _growth_cluster(3)
    shuffled = replace(
        c, pods=tuple(reversed(c.pods)), policies=tuple(reversed(c.policies)), namespaces=tuple(reversed(c.namespaces))
    )
    first, second, third = (compile_node(x, "n1", mode=mode) for x in (c, c, shuffled))
    assert render_json(first) == render_json(second) == render_json(third)
    assert render_text(first) == render_text(second) == render_text(third)


@pytest.mark.parametrize(
    ("mode", "final", "prefix"),
    [
        pytest.param(Mode.ENFORCE, {"drop": None}, "policyctl drop isolated ingress ", id="enforce-drops"),
        pytest.param(Mode.AUDIT, {"return": None}, "policyctl audit isolated ingress ", id="audit-returns"),
    ],
)
def test_denied_connections_are_logged_then_dropped_or_returned(
    mode: Mode, final: dict[str, None], prefix: str
) -> None:
    c = standard_cluster(policy("x/deny", {"pod": "a"}))
    doc = json.loads(render_json(compile_node(c, "node-1", mode=mode)))
    rules = [i["rule"] for i in doc["nftables"] if "rule" in i and i["rule"]["chain"].startswith("in-")]
    assert rules[0]["expr"][0]["limit"]["per"] == "second" and rules[0]["expr"][1] == {"log": {"prefix": prefix}}
    assert rules[1]["expr"] == [{"counter": {"packets": 0, "bytes": 0}}, final]
    verdict = CompiledCluster(c, mode=mode).allowed(connect(c, "x/b", "x/a"))
    assert verdict is (mode is Mode.AUDIT)


def test_comments_and_log_prefixes_fit_nft_limits() -> None:
    long_ns = "n" * 60
    pods = [pod(f"{long_ns}/{'p' * 60}{i}", {"app": "a"}, node="n1", ips=[f"10.0.1.{i + 1}"]) for i in range(3)]
    policies = [
        policy(f"{long_ns}/{'q' * 50}{i}", {"app": "a"}, ingress=[rule(pod_peer({"app": "a"}), ports=[port(80)])])
        for i in range(12)
    ]
    doc = json.loads(render_json(compile_node(cluster(node("n1", "192.168.0.1"), *pods, *policies), "n1")))
    comments = [
        body["comment"]
        for item in doc["nftables"]
        for body in item.values()
        if isinstance(body, dict) and "comment" in body
    ]
    prefixes = [
        e["log"]["prefix"] for item in doc["nftables"] if "rule" in item for e in item["rule"]["expr"] if "log" in e
    ]
    assert comments and all(len(c.encode()) <= 128 for c in comments)
    assert any(c.endswith("~ +more") for c in comments)
    assert prefixes and all(len(p) <= 127 for p in prefixes)


def test_comments_name_policy_rule_file_and_line() -> None:
    c = standard_cluster(policy("x/allow-a", {"pod": "a"}, ingress=[rule(pod_peer({"pod": "b"}), ports=[port(80)])]))
    text = render_text(compile_node(c, "node-1"))
    assert 'comment "x/allow-a ingress[0] x-allow-a.yaml:10"' in text


def test_vmaps_dispatch_on_the_address_of_the_enforced_side() -> None:
    rs = compile_node(standard_cluster(), "node-1")
    keys = {
        (c.name, s.key.value) for c in rs.chains for r in c.rules for s in r.statements if isinstance(s, VmapLookup)
    }
    assert keys == {
        ("egress", "ip saddr"), ("egress", "ip6 saddr"),
        ("input", "ip saddr"), ("input", "ip6 saddr"),
        ("ingress", "ip daddr"), ("ingress", "ip6 daddr"),
    }


ROLES = ("web", "db", "client")


def _two_node_cluster(*, local_per_role: int, remote_per_role: int) -> Cluster:
    """Pods of three roles in two namespaces, dual-stack, all with the same named port:
    ``local_per_role`` of each role on n1 (the node compiled) and ``remote_per_role`` on n2."""
    objects = [node("n1", "192.168.0.1"), node("n2", "192.168.0.2"), namespace("x", ns="x"), namespace("y", ns="y")]
    for r, role in enumerate(ROLES):
        for where, count in (("n1", local_per_role), ("n2", remote_per_role)):
            n = int(where[1])
            for i in range(count):
                objects.append(
                    pod(
                        f"{('x', 'y')[i % 2]}/{role}-{where}-{i}",
                        {"role": role},
                        node=where,
                        ips=[f"10.{n}.{r}.{i + 1}", f"fd00:{n}:{r}::{i + 1}"],
                        ports=[container_port(8080, "TCP", "http")],
                    )
                )
    objects += [
        policy(
            "x/web",
            {"role": "web"},
            ingress=[rule(pod_peer({"role": "client"}, {}), ports=[port("http"), port(9000, "TCP", 9100)])],
        ),
        policy(
            "x/db",
            {"role": "db"},
            ingress=[rule(pod_peer({"role": "web"}, {}), ports=[port(5432)])],
            egress=[
                rule(pod_peer({"role": "web"}, {}), ports=[port("http")]),
                rule(ip_block("10.0.0.0/8", "10.1.0.0/16")),
            ],
        ),
        policy("y/all", {}, ingress=[rule(pod_peer({}, {"ns": "x"}))], egress=[rule(ports=[port(53, "UDP")])]),
    ]
    return cluster(*objects)


def _identity_elements(rs: Ruleset) -> int:
    return sum(len(s.elements) for s in rs.sets if "-from-" in s.name or "-to-" in s.name)


def _peer_map_elements(rs: Ruleset) -> int:
    return sum(len(m.elements) for m in rs.maps if "-peers-" in m.name)


@pytest.mark.parametrize("remote_per_role", [4, 8, 16])
def test_doubling_remote_pods_grows_only_the_peer_maps(remote_per_role: int) -> None:
    small = compile_node(_two_node_cluster(local_per_role=2, remote_per_role=remote_per_role), "n1")
    large = compile_node(_two_node_cluster(local_per_role=2, remote_per_role=2 * remote_per_role), "n1")
    assert _identity_elements(large) == _identity_elements(small)
    assert {s.name for s in large.sets} == {s.name for s in small.sets}
    # Admitted on n1: ingress from every client (x/web), every web (x/db) and every pod of
    # namespace x (y/all; the x half of the db pods is not counted yet); egress to every web
    # (x/db). Per added pod of each role and per family: 3.5 map elements, once each.
    added = _peer_map_elements(large) - _peer_map_elements(small)
    assert added == 2 * 7 * remote_per_role // 2
    assert large.element_count - small.element_count == added


@pytest.mark.parametrize("remote_per_role", [4, 32])
def test_a_nodes_elements_are_bounded_by_the_growth_law(remote_per_role: int) -> None:
    """Peer addresses once per direction and family, plus local pods x distinct peer
    identities x port ranges, plus local pods x ipBlock intervals x port ranges."""
    c = _two_node_cluster(local_per_role=2, remote_per_role=remote_per_role)
    rs = compile_node(c, "n1")
    peer_addresses = sum(len(p.ips) for p in c.pods)
    local_addresses = sum(len(p.ips) for p in c.pods if p.node == "n1")
    identities = len(ROLES) * 2  # three roles in two namespaces, one named-port shape
    port_ranges = 5 + 1  # every port entry of the policies, plus "any port"
    block_intervals = 2  # 10.0.0.0/8 except 10.1.0.0/16
    bound = (
        2 * peer_addresses
        + local_addresses * identities * port_ranges
        + local_addresses * block_intervals * port_ranges
    )
    node_elements = sum(len(s.elements) for s in rs.sets if s.name.startswith("node-"))
    dispatch = sum(len(m.elements) for m in rs.maps if m.name.startswith(("ingress-", "egress-")))
    assert rs.element_count - node_elements - dispatch <= bound
    assert _identity_elements(rs) <= local_addresses * identities * port_ranges


def _callers(*versions: str) -> Cluster:
    callers = [
        pod(f"y/c{i}", {"app": "client", "version": v}, node="n2", ips=[f"10.0.2.{i + 1}"])
        for i, v in enumerate(versions)
    ]
    return cluster(
        node("n1", "192.168.0.1"), node("n2", "192.168.0.2"),
        pod("x/a", {"app": "a"}, node="n1", ips=["10.0.1.1"]), *callers,
        policy("x/in", {"app": "a"}, ingress=[rule(pod_peer({"app": "client"}, {}), ports=[port(80)])]),
    )


def test_label_identities_no_local_rule_tells_apart_share_one_chain() -> None:
    rs = compile_node(_callers("v1", "v2", "v1"), "n1")
    assert len([ch for ch in rs.chains if ch.name.startswith("in-from-")]) == 1
    assert len({jump["jump"]["target"] for _, jump in elements(rs, "in-peers-v4")}) == 1
    assert len(elements(rs, "in-peers-v4")) == 3


def test_relabelling_a_peer_within_the_same_selectors_changes_nothing() -> None:
    assert render_json(compile_node(_callers("v1", "v1"), "n1")) == render_json(
        compile_node(_callers("v1", "v2"), "n1")
    )


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        pytest.param([], "", id="no-sources"),
        pytest.param(["b", "a", "a"], "a; b", id="sorted-and-deduplicated"),
        pytest.param([f"x/policy-{i:02d} ingress[0] manifests/file.yaml:{i}" for i in range(3)],
                     "x/policy-00 ingress[0] manifests/file.yaml:0; x/policy-01 ingress[0] manifests/file.yaml:1 +more",
                     id="what-does-not-fit-is-marked"),
        pytest.param(["é" * 100], "é" * 63 + "~", id="one-long-source-cut-at-a-character-boundary"),
        pytest.param(["é" * 100, "ê"], "é" * 60 + "~ +more", id="a-cut-source-marks-the-rest"),
    ],
)
def test_comments_fit_nfts_128_bytes_and_mark_what_they_leave_out(sources: list[str], expected: str) -> None:
    from policyctl.compiler.layout import terse_comment

    comment = terse_comment(sources)
    assert comment == expected
    assert len(comment.encode()) <= 128
