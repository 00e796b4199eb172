"""The incremental node compiler: every step equals a whole compile, its delta patches the
previous ruleset into the next, and an event changes only what it touches."""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyctl.compiler.compile import compile_node
from policyctl.compiler.delta import RulesetDelta, empty_ruleset, patch
from policyctl.compiler.incremental import NodeCompiler
from policyctl.compiler.intervals import Interval, address_interval
from policyctl.compiler.markedpeers import IdentityMark, canonical
from policyctl.compiler.ruleset import Jump, Mode, Ruleset
from policyctl.policy.model import Pod
from policyctl.policy.cluster import Cluster
from tests.builders import cluster, container_port, ip_block, namespace, node, pod, pod_peer, policy, port, rule
from tests.cluster_strategies import tiered_clusters
from tests.strategies import cluster_events, cluster_histories, node_with_pods

HISTORIES = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


#: Both peer layouts: maps that jump, and the marked one with four bits (15 numbers, so random
#: clusters' identities collide in their hashes and take the next free number).
LAYOUTS = pytest.mark.parametrize("mark", [None, IdentityMark(0x000F0000)], ids=["jumping", "marked"])


def _numbered_as_whole(ruleset: Ruleset, mark: IdentityMark | None) -> Ruleset:
    """The marked layout's numbers follow the steps (``markedpeers.MarkedPeers``); a whole
    compile numbers afresh, so the two are compared with the numbers a whole compile gives."""
    return ruleset if mark is None else canonical(ruleset, mark)


@LAYOUTS
@HISTORIES
@given(cluster_histories(steps=6))
def test_every_step_equals_a_whole_compile(mark: IdentityMark | None, history: list[Cluster]) -> None:
    name = node_with_pods(history)
    compiler = NodeCompiler(name, table="t", mode=Mode.AUDIT, identity_mark=mark)
    for snapshot in history:
        compiler.update(snapshot)
        expected = compile_node(snapshot, name, table="t", mode=Mode.AUDIT, identity_mark=mark)
        assert _numbered_as_whole(compiler.ruleset, mark) == expected
        assert [s.sources for s in compiler.ruleset.sets] == [s.sources for s in expected.sets]
        assert compiler.local_pods == tuple(
            sorted((p for p in snapshot.pods if p.node == name and not p.host_network), key=lambda p: p.key)
        )


def _steps(
    history: list[Cluster], mark: IdentityMark | None = None
) -> Iterator[tuple[Ruleset, RulesetDelta, Ruleset]]:
    """(previous ruleset, the compiler's delta, the compiler's ruleset) for each snapshot."""
    name = node_with_pods(history)
    compiler = NodeCompiler(name, identity_mark=mark)
    previous = empty_ruleset("policyctl", name, Mode.ENFORCE)
    for snapshot in history:
        delta = compiler.update(snapshot)
        current = compiler.ruleset
        yield previous, delta, current
        previous = current


@LAYOUTS
@HISTORIES
@given(cluster_histories(steps=6))
def test_a_delta_patches_the_previous_ruleset_into_the_next(mark: IdentityMark | None, history: list[Cluster]) -> None:
    for previous, delta, current in _steps(history, mark):
        assert patch(previous, delta) == current


@HISTORIES
@given(cluster_histories(steps=6))
def test_a_delta_is_empty_exactly_when_the_ruleset_did_not_change(history: list[Cluster]) -> None:
    for previous, delta, current in _steps(history):
        assert delta.empty == (previous == current)


# A small world: node-1 runs x/web-1; x/api-1 and x/db-1 run on node-2. x/allow-web lets
# api (port 80) and db (port 5432) reach web.
WEB_1 = pod("x/web-1", {"app": "web"}, node="node-1", ips=["10.0.1.10"])
API_1 = pod("x/api-1", {"app": "api"}, node="node-2", ips=["10.0.2.10"])
DB_1 = pod("x/db-1", {"app": "db"}, node="node-2", ips=["10.0.2.20"])
ALLOW_WEB = policy(
    "x/allow-web",
    {"app": "web"},
    ingress=[rule(pod_peer({"app": "api"}), ports=[port(80)]), rule(pod_peer({"app": "db"}), ports=[port(5432)])],
)


def _world(*extra: object) -> Cluster:
    return cluster(
        namespace("x"),
        node("node-1", "192.168.0.1"),
        node("node-2", "192.168.0.2"),
        WEB_1,
        API_1,
        DB_1,
        ALLOW_WEB,
        *extra,
    )  # type: ignore[arg-type]


def _with_pods(base: Cluster, *, add: tuple[Pod, ...] = (), drop: tuple[Pod, ...] = ()) -> Cluster:
    pods = tuple(p for p in base.pods if p not in drop) + add
    return dataclasses.replace(base, pods=tuple(sorted(pods, key=lambda p: p.key)))


def _peer_chain_of(ruleset: Ruleset, address: str) -> str:
    """The identity chain the ingress peer map sends ``address`` to."""
    entries = dict(next(m for m in ruleset.maps if m.name == "in-peers-v4").elements)
    return entries[ipaddress.ip_address(address)].target


def _stepped(before: Cluster, after: Cluster) -> tuple[Ruleset, RulesetDelta, NodeCompiler]:
    compiler = NodeCompiler("node-1")
    compiler.update(before)
    first = compiler.ruleset
    return first, compiler.update(after), compiler


def test_a_remote_pod_joining_an_existing_peer_identity_adds_one_map_entry_and_nothing_else() -> None:
    before = _world()
    api_2 = pod("x/api-2", {"app": "api"}, node="node-2", ips=["10.0.2.11"])
    first, delta, _ = _stepped(before, _with_pods(before, add=(api_2,)))
    jump = Jump(_peer_chain_of(first, "10.0.2.10"))
    assert delta == RulesetDelta(added_entries=(("in-peers-v4", ((ipaddress.ip_address("10.0.2.11"), jump),)),))


def test_deleting_the_last_member_of_an_identity_removes_its_chain_its_sets_and_its_map_entries() -> None:
    before = _world()
    first, delta, compiler = _stepped(before, _with_pods(before, drop=(API_1,)))
    chain = _peer_chain_of(first, "10.0.2.10")
    assert delta == RulesetDelta(
        removed=(f"{chain}-ports-v4",),
        removed_entries=(("in-peers-v4", ((ipaddress.ip_address("10.0.2.10"), Jump(chain)),)),),
        removed_chains=(chain,),
    )
    assert compiler.ruleset == compile_node(_with_pods(before, drop=(API_1,)), "node-1")


def test_a_pod_taking_an_unshown_source_from_a_shared_identity_leaves_the_identity_chain_alone() -> None:
    """Eight policies admit app=api, each for its own local pod: the api identity's lookup rule
    names as many of the eight as fit in its comment and marks the rest. Deleting the pod of a
    policy it does not name takes that source away without touching the chain (a rewritten
    rule makes the kernel re-validate the table and restarts its counter)."""
    sites = [pod(f"x/site-{i}", {"app": f"site-{i}"}, node="node-1", ips=[f"10.0.1.{20 + i}"]) for i in range(8)]
    policies = [
        policy(f"x/allow-site-{i}", {"app": f"site-{i}"}, ingress=[rule(pod_peer({"app": "api"}), ports=[port(80)])])
        for i in range(8)
    ]
    before = _world(*sites, *policies)
    first = compile_node(before, "node-1")
    api = next(c for c in first.chains if c.name == _peer_chain_of(first, "10.0.2.10"))
    shown = api.rules[0].comment
    assert shown.endswith(" +more") and "x/allow-site-0 " in shown and "x/allow-site-7 " not in shown
    after = _with_pods(before, drop=(sites[7],))
    _, delta, compiler = _stepped(before, after)
    assert api.name not in {c.name for c in delta.chains}
    assert delta.removed_chains and delta.removed_elements
    assert compiler.ruleset == compile_node(after, "node-1")


def test_a_local_replica_adds_its_dispatch_entry_to_its_replicas_chain_and_its_set_elements_only() -> None:
    before = _world()
    web_2 = pod("x/web-2", {"app": "web"}, node="node-1", ips=["10.0.1.11"])
    first, delta, _ = _stepped(before, _with_pods(before, add=(web_2,)))
    api, db = _peer_chain_of(first, "10.0.2.10"), _peer_chain_of(first, "10.0.2.20")
    local = address_interval(ipaddress.ip_address("10.0.1.11"))
    tcp = Interval(6, 6)
    assert len(delta.added_entries) == 1
    name, ((address, jump),) = delta.added_entries[0]
    assert (name, address) == ("ingress-v4", ipaddress.ip_address("10.0.1.11"))
    web_1_chain = dict(next(m for m in first.maps if m.name == "ingress-v4").elements)[
        ipaddress.ip_address("10.0.1.10")]
    assert jump == web_1_chain
    assert delta.added_elements == (
        (f"{api}-ports-v4", ((local, tcp, Interval(80, 80)),)),
        (f"{db}-ports-v4", ((local, tcp, Interval(5432, 5432)),)),
        ("ingress-policed-v4", ((local,),)),
    )
    assert delta == RulesetDelta(added_elements=delta.added_elements, added_entries=delta.added_entries)


def _chain_of(ruleset: Ruleset, address: str) -> str:
    """The pod chain the ingress dispatch map sends local ``address`` to."""
    return dict(next(m for m in ruleset.maps if m.name == "ingress-v4").elements)[ipaddress.ip_address(address)].target


def test_replicas_share_one_chain_which_goes_with_the_last_of_them_and_only_then() -> None:
    web_2 = pod("x/web-2", {"app": "web"}, node="node-1", ips=["10.0.1.11"])
    compiler = NodeCompiler("node-1")
    compiler.update(_with_pods(_world(), add=(web_2,)))
    shared = _chain_of(compiler.ruleset, "10.0.1.10")
    assert _chain_of(compiler.ruleset, "10.0.1.11") == shared
    one_left = compiler.update(_with_pods(_world(), add=(web_2,), drop=(WEB_1,)))
    assert (one_left.chains, one_left.removed_chains) == ((), ())
    assert _chain_of(compiler.ruleset, "10.0.1.11") == shared
    none_left = compiler.update(_with_pods(_world(), drop=(WEB_1,)))
    assert shared in none_left.removed_chains
    assert shared not in {c.name for c in compiler.ruleset.chains}


def test_replicas_at_one_address_hold_one_dispatch_entry_while_either_is_left() -> None:
    """A pod that takes its replica's address (a reused IP whose old pod is not gone yet) goes
    to the same shared chain: one entry, as in a whole compile, removed with the last holder."""
    moved = dataclasses.replace(WEB_1, name="web-2", ips=(ipaddress.ip_address("10.0.1.10"),))
    elsewhere = dataclasses.replace(moved, ips=(ipaddress.ip_address("10.0.1.11"),))
    compiler = NodeCompiler("node-1")
    compiler.update(_with_pods(_world(), add=(elsewhere,)))
    both = _with_pods(_world(), add=(moved,))
    joined = compiler.update(both)
    ingress = [m for m in compiler.ruleset.maps if m.name == "ingress-v4"]
    assert [str(ip) for ip, _ in ingress[0].elements] == ["10.0.1.10"]
    assert compiler.ruleset == compile_node(both, "node-1")
    assert [(n, [str(ip) for ip, _ in e]) for n, e in joined.added_entries if n == "ingress-v4"] == []
    one_left = compiler.update(_with_pods(_world(), add=(moved,), drop=(WEB_1,)))
    assert not [n for n, _ in one_left.removed_entries if n == "ingress-v4"]
    none_left = compiler.update(_with_pods(_world(), drop=(WEB_1,)))
    assert [(n, [str(ip) for ip, _ in e]) for n, e in none_left.removed_entries if n == "ingress-v4"] == [
        ("ingress-v4", ["10.0.1.10"])
    ]


def test_a_replica_selected_by_one_more_policy_moves_to_a_chain_of_its_own_and_back() -> None:
    web_2 = pod("x/web-2", {"app": "web", "tier": "front"}, node="node-1", ips=["10.0.1.11"])
    front = policy("x/deny-front", {"tier": "front"}, ingress=[])
    compiler = NodeCompiler("node-1")
    compiler.update(_with_pods(_world(), add=(web_2,)))
    shared = _chain_of(compiler.ruleset, "10.0.1.10")
    apart = compiler.update(_with_pods(_world(front), add=(web_2,)))
    own = _chain_of(compiler.ruleset, "10.0.1.11")
    assert own != shared and [c.name for c in apart.chains] == [own] and apart.removed_chains == ()
    assert _chain_of(compiler.ruleset, "10.0.1.10") == shared
    back = compiler.update(_with_pods(_world(), add=(web_2,)))
    assert back.removed_chains == (own,) and back.chains == ()
    assert _chain_of(compiler.ruleset, "10.0.1.11") == shared


def test_a_policy_left_out_of_a_full_drop_comment_moves_no_pod_to_another_chain() -> None:
    many = tuple(policy(f"x/deny-web-{i:02}-with-a-long-name", {"app": "web"}, ingress=[]) for i in range(8))
    compiler = NodeCompiler("node-1")
    compiler.update(_world(*many))
    chain = _chain_of(compiler.ruleset, "10.0.1.10")
    last = policy("x/zz-deny-web", {"app": "web"}, ingress=[])
    delta = compiler.update(_world(*many, last))
    assert _chain_of(compiler.ruleset, "10.0.1.10") == chain
    assert (delta.chains, delta.removed_chains, delta.added_entries) == ((), (), ())
    first = policy("x/a-deny-web", {"app": "web"}, ingress=[])
    compiler.update(_world(*many, last, first))
    assert _chain_of(compiler.ruleset, "10.0.1.10") != chain


@pytest.mark.parametrize(
    "selecting_nothing_here",
    [
        pytest.param(policy("x/deny-api", {"app": "api"}), id="selects-only-remote-pods"),
        pytest.param(policy("x/deny-ghost", {"app": "ghost"}), id="selects-no-pod-at-all"),
        pytest.param(policy("y/deny-all", {}), id="another-namespace"),
    ],
)
def test_a_policy_that_selects_no_local_pod_yields_an_empty_delta(selecting_nothing_here: object) -> None:
    before = _world()
    after = dataclasses.replace(before, policies=(*before.policies, selecting_nothing_here))
    _, delta, _ = _stepped(before, after)
    assert delta.empty


def test_relabelling_a_pod_within_the_same_selectors_changes_nothing() -> None:
    before = _world()
    relabelled = dataclasses.replace(API_1, labels=API_1.labels.with_label("version", "v2"))
    after = dataclasses.replace(before, pods=tuple(relabelled if p is API_1 else p for p in before.pods))
    _, delta, _ = _stepped(before, after)
    assert delta.empty


@pytest.mark.parametrize(
    ("labels_before", "labels_after"),
    [
        pytest.param({"team": "a"}, {"team": "b"}, id="namespace-leaves-the-selector"),
        pytest.param({"team": "b"}, {"team": "a"}, id="namespace-enters-the-selector"),
    ],
)
def test_a_namespace_relabel_gives_what_a_whole_compile_gives(
    labels_before: dict[str, str], labels_after: dict[str, str]
) -> None:
    from_team_a = policy(
        "x/from-team-a", {"app": "web"}, ingress=[rule(pod_peer({}, {"team": "a"}), ports=[port(443)])]
    )
    before = cluster(
        namespace("x"), namespace("y", labels_before), node("node-1", "192.168.0.1"), WEB_1,
        pod("y/client", {"app": "client"}, node="node-2", ips=["10.0.2.30"]), from_team_a,
    )
    after = dataclasses.replace(
        before, namespaces=tuple(namespace("y", labels_after) if n.name == "y" else n for n in before.namespaces)
    )
    first, delta, compiler = _stepped(before, after)
    expected = compile_node(after, "node-1")
    assert compiler.ruleset == expected
    assert patch(first, delta) == expected
    assert not delta.empty


def test_a_port_range_entering_a_set_recreates_it_whole() -> None:
    before = _world()
    ranged = policy(
        "x/api-range", {"app": "web"}, ingress=[rule(pod_peer({"app": "api"}), ports=[port(8000, end_port=8010)])]
    )
    first, delta, _ = _stepped(before, dataclasses.replace(before, policies=(*before.policies, ranged)))
    name = f"{_peer_chain_of(first, '10.0.2.10')}-ports-v4"
    recreated = [s for s in delta.sets if s.name == name]
    assert len(recreated) == 1 and recreated[0].interval
    assert name not in dict(delta.added_elements)
    assert _peer_chain_of(first, "10.0.2.10") in {c.name for c in delta.chains}


def test_local_pods_and_the_policies_selecting_them_follow_the_snapshot() -> None:
    before = _world()
    web_2 = pod("x/web-2", {"app": "web", "tier": "edge"}, node="node-1", ips=["10.0.1.11"])
    edge = policy("x/edge", {"tier": "edge"})
    compiler = NodeCompiler("node-1")
    compiler.update(before)
    assert [p.key for p in compiler.local_pods] == ["x/web-1"]
    assert dict(compiler.selecting) == {"x/web-1": (ALLOW_WEB,)}
    after = dataclasses.replace(_with_pods(before, add=(web_2,)), policies=(ALLOW_WEB, edge))
    compiler.update(after)
    assert [p.key for p in compiler.local_pods] == ["x/web-1", "x/web-2"]
    assert dict(compiler.selecting) == {"x/web-1": (ALLOW_WEB,), "x/web-2": (ALLOW_WEB, edge)}
    compiler.update(_with_pods(after, drop=(WEB_1,)))
    assert dict(compiler.selecting) == {"x/web-2": (ALLOW_WEB, edge)}


def _follows_whole_compiles(history: list[Cluster], name: str = "node-1") -> None:
    compiler = NodeCompiler(name)
    previous = empty_ruleset("policyctl", name, Mode.ENFORCE)
    for step, snapshot in enumerate(history):
        delta = compiler.update(snapshot)
        expected = compile_node(snapshot, name)
        assert compiler.ruleset == expected, f"step {step}"
        assert patch(previous, delta) == expected, f"step {step}"
        previous = expected


def test_two_peers_sharing_an_address_map_it_as_a_whole_compile_does_as_each_leaves() -> None:
    shared = "10.0.2.50"
    api_2 = pod("x/api-2", {"app": "api"}, node="node-2", ips=[shared])
    db_2 = pod("x/db-2", {"app": "db"}, node="node-2", ips=[shared])
    both = _with_pods(_world(), add=(api_2, db_2))
    history = [_world(), both, _with_pods(both, drop=(db_2,)), both, _with_pods(both, drop=(api_2,)), _world()]
    _follows_whole_compiles(history)
    chains = {_peer_chain_of(compile_node(both, "node-1"), a) for a in ("10.0.2.10", "10.0.2.20")}
    assert _peer_chain_of(compile_node(both, "node-1"), shared) in chains


def test_an_egress_rule_to_anyone_on_a_named_port_reaches_every_identity_as_it_comes_and_goes() -> None:
    named = policy("x/out-http", {"app": "web"}, egress=[rule(ports=[port("http")])], types=["Egress"])
    http = [container_port(8080, "TCP", "http")]
    server = pod("y/server", {"app": "server"}, node="node-2", ips=["10.0.2.40"], ports=http)
    base = _with_pods(_world(), add=(server,))
    with_rule = dataclasses.replace(base, policies=(*base.policies, named))
    other = pod(
        "y/other", {"app": "other"}, node="node-2", ips=["10.0.2.41"], ports=[container_port(9090, "TCP", "http")]
    )
    history = [base, with_rule, _with_pods(with_rule, add=(other,)), _with_pods(with_rule, drop=(server,)), base]
    _follows_whole_compiles(history)


# A dual-stack local pod whose rules reach two peer selectors and also fill the shared sets
# (an ipBlock rule and a rule without peers): what an identity's coming and going may touch.
WEB_DS = pod("x/web-1", {"app": "web"}, node="node-1", ips=["10.0.1.10", "fd00::1:10"])
WEB_EXTRA = policy(
    "x/web-extra", {"app": "web"}, ingress=[rule(ip_block("172.16.0.0/16"), ports=[port(22)]), rule(ports=[port(9000)])]
)
API_METRICS = pod(
    "x/api-2", {"app": "api"}, node="node-2", ips=["10.0.2.11"], ports=[container_port(9100, "TCP", "metrics")]
)
API_DS = pod("x/api-3", {"app": "api"}, node="node-2", ips=["10.0.2.12", "fd00::2:12"])


def _shared_world(*extra: Pod) -> Cluster:
    base = cluster(
        namespace("x"),
        node("node-1", "192.168.0.1"),
        node("node-2", "192.168.0.2"),
        WEB_DS,
        API_1,
        DB_1,
        ALLOW_WEB,
        WEB_EXTRA,
    )
    return _with_pods(base, add=extra)


def _sets_in(delta: RulesetDelta) -> set[str]:
    """The sets a delta creates, removes or changes elements or comments of."""
    maps = {m.name for m in delta.maps} | {n for n, _ in delta.added_entries} | {n for n, _ in delta.removed_entries}
    return (
        {s.name for s in delta.sets}
        | (set(delta.removed) - maps - {"in-peers-v4", "in-peers-v6", "out-peers-v4", "out-peers-v6"})
        | {n for n, _ in delta.added_elements}
        | {n for n, _ in delta.removed_elements}
        | {n for n, _ in delta.set_comments}
    )


@pytest.mark.parametrize(
    ("before", "after", "address", "suffix"),
    [
        pytest.param(
            _shared_world(),
            _shared_world(API_METRICS),
            "10.0.2.11",
            "-ports-v4",
            id="an-identity-with-other-named-ports-appears",
        ),
        pytest.param(
            _shared_world(API_METRICS), _shared_world(), "10.0.2.11", "-ports-v4", id="that-identity-disappears"
        ),
        pytest.param(
            _shared_world(),
            _shared_world(API_DS),
            "10.0.2.10",
            "-ports-v6",
            id="a-dual-stack-member-brings-its-identity-a-family",
        ),
        pytest.param(
            _shared_world(API_DS), _shared_world(), "10.0.2.10", "-ports-v6", id="the-identity-loses-that-family"
        ),
    ],
)
def test_a_peer_identity_changing_reach_touches_only_its_own_sets(
    before: Cluster, after: Cluster, address: str, suffix: str
) -> None:
    first, delta, compiler = _stepped(before, after)
    expected = compile_node(after, "node-1")
    assert compiler.ruleset == expected
    assert patch(first, delta) == expected
    chain = next(
        _peer_chain_of(r, address)
        for r in (expected, first)
        if ipaddress.ip_address(address) in dict(next(m for m in r.maps if m.name == "in-peers-v4").elements)
    )
    assert _sets_in(delta) == {f"{chain}{suffix}"}


def test_identities_coming_and_going_leave_the_shared_sets_alone_and_follow_whole_compiles() -> None:
    history = [
        _shared_world(),
        _shared_world(API_METRICS),
        _shared_world(API_METRICS, API_DS),
        _shared_world(API_DS),
        _shared_world(),
    ]
    _follows_whole_compiles(history)
    compiler = NodeCompiler("node-1")
    compiler.update(history[0])
    shared = {"in-any-ports-v4", "in-any-ports-v6", "in-blocks-ports-v4"}
    assert shared <= {s.name for s in compiler.ruleset.sets}
    for snapshot in history[1:]:
        assert not _sets_in(compiler.update(snapshot)) & shared


@st.composite
def tiered_histories(draw: st.DrawFn, steps: int = 6) -> list[Cluster]:
    """A random cluster with cluster policies (``tiered_clusters``) followed by snapshots one
    event after the last, whose cluster policies are now and then all dropped or restored, so
    the compiler crosses between snapshots with and without them."""
    first = draw(tiered_clusters(max_pods=6, max_policies=4, max_nodes=2, addressless=True))
    policies = first.cluster_policies
    history = [first]
    current = first
    for _ in range(draw(st.integers(1, steps))):
        current = draw(cluster_events(current))
        if draw(st.integers(0, 3)) == 0:
            current = dataclasses.replace(current, cluster_policies=() if current.cluster_policies else policies)
        history.append(current)
    return history


@HISTORIES
@given(tiered_histories())
def test_histories_with_cluster_policies_follow_whole_compiles_and_patch(history: list[Cluster]) -> None:
    name = node_with_pods(history)
    compiler = NodeCompiler(name, table="t", mode=Mode.AUDIT)
    previous = empty_ruleset("t", name, Mode.AUDIT)
    for snapshot in history:
        delta = compiler.update(snapshot)
        expected = compile_node(snapshot, name, table="t", mode=Mode.AUDIT)
        assert compiler.ruleset == expected
        assert patch(previous, delta) == expected
        assert delta.empty == (previous == expected)
        local = (p for p in snapshot.pods if p.node == name and not p.host_network)
        assert compiler.local_pods == tuple(sorted(local, key=lambda p: p.key))
        previous = expected
