"""Drops read from the kernel are attributed exactly as the oracle explains their flows.

The lab enforces ``tests/fixtures/drops/cluster.yaml`` with the drop log sent to an NFLOG
group; every pod probes every pod on TCP 80 with real packets (IPv4 over both CNI styles, and
IPv6). Then, for every logged drop:
the flow it names is a pair the oracle (``policy.semantics.evaluate``) denies, the half that
dropped it is the one the oracle denies first on the packet's way (egress on the source's node,
else ingress on the destination's), and the attribution equals the oracle's verdict on that
half, every reason and hint included. Every denied pair is seen dropping; no allowed pair is.
The fixture has the three kinds of denial: NetworkPolicy ingress (lab/a -> shop/b),
NetworkPolicy egress (lab/e -> shop/a) and an Admin-tier ClusterNetworkPolicy Deny
(lab/a -> shop/a).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import pytest

from policyctl.compiler.droplog import ISOLATED
from policyctl.compiler.ruleset import Mode
from policyctl.enforcer.drops import POD_CHAIN, AddressBook, Drop, drop_document, explanation_document
from policyctl.enforcer.nflog import GroupInUse, NflogReader
from policyctl.lab.engine import LabEngine
from policyctl.lab.probes import Attempt, run_probes
from policyctl.lab.rulesets import compiler_for
from policyctl.lab.topology import Cni, lab_cluster
from policyctl.manifests.loader import load
from policyctl.probecases.engines import Probe
from policyctl.policy.model import Direction, Family, Pod, Protocol
from policyctl.policy.cluster import Cluster
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection, DecidedBy, DirectionVerdict
from tests.enforcer.nflogdrain import drain

pytestmark = pytest.mark.kernel

FIXTURE = Path(__file__).parents[1] / "fixtures" / "drops" / "cluster.yaml"
GROUP = 4242
QUIET = 1.0


def oracle_denial(
    cluster: Cluster, source: Pod, destination: Pod, family: Family = Family.IPV4
) -> DirectionVerdict | None:
    """The half that drops the first packet of source -> destination:80, by the oracle alone:
    egress (checked on the source's node) before ingress; None when the pair is allowed."""
    verdict = evaluate(cluster, Connection(source, destination, Protocol.TCP, 80, family))
    if not verdict.egress.allowed:
        return verdict.egress
    if not verdict.ingress.allowed:
        return verdict.ingress
    return None


def line_of(text: str) -> int:
    return next(i for i, line in enumerate(FIXTURE.read_text().splitlines(), 1) if text in line)


@pytest.mark.parametrize(("cni", "family"), [(Cni.ROUTED, Family.IPV4), (Cni.BRIDGED, Family.IPV4),
                                             (Cni.ROUTED, Family.IPV6)])
def test_each_kernel_drop_is_attributed_as_the_oracle_explains_its_flow(
    cni: Cni, family: Family, state_root: Path, lab_namespaces: set[str]
) -> None:
    loaded = load([str(FIXTURE)])
    assert loaded.diagnostics == ()
    given = loaded.cluster
    if family is Family.IPV6:
        given = replace(given, pods=tuple(replace(p, ips=()) for p in given.pods))
    with LabEngine(cni=cni, families=(family,)) as engine:
        engine._compiler = compiler_for(engine.state.prefix, mode=Mode.ENFORCE, log_group=GROUP)
        plan = engine.reconcile(given).plan
        assert plan is not None
        running = lab_cluster(given, plan)
        readers = [NflogReader(GROUP, netns=node.netns) for node in plan.nodes]
        try:
            engine.observe(given, Probe(80, Protocol.TCP, family))
            drops = drain(readers, AddressBook(running), quiet=QUIET)
        finally:
            for reader in readers:
                reader.close()

    by_pair: dict[tuple[str, str], list[Drop]] = defaultdict(list)
    for drop in drops:
        assert isinstance(drop.source, Pod) and isinstance(drop.destination, Pod), drop
        assert drop.headers.family is family
        by_pair[(drop.source.key, drop.destination.key)].append(drop)
    denied: dict[tuple[str, str], DirectionVerdict] = {}
    for source in running.pods:
        for destination in running.pods:
            half = oracle_denial(running, source, destination, family)
            if half is not None:
                denied[(source.key, destination.key)] = half
    assert sorted(by_pair) == sorted(denied)
    for pair, pair_drops in by_pair.items():
        expected = denied[pair]
        for drop in pair_drops:
            assert drop.problem == ""
            assert drop.prefix.direction is expected.direction
            assert expected.pod is not None and drop.pod == expected.pod.key
            assert drop.half == expected
    assert {d.prefix.rule for d in by_pair[("lab/a", "shop/b")]} == {ISOLATED}
    assert {d.prefix.rule for d in by_pair[("lab/a", "shop/a")]} == {POD_CHAIN}
    stages = {(pair, half.direction, half.decided_by) for pair, half in denied.items()}
    assert {(("lab/a", "shop/b"), Direction.INGRESS, DecidedBy.NETWORK_POLICY),
            (("lab/e", "shop/a"), Direction.EGRESS, DecidedBy.NETWORK_POLICY),
            (("lab/a", "shop/a"), Direction.EGRESS, DecidedBy.ADMIN)} <= stages

    deny = drop_document(by_pair[("lab/a", "shop/a")][0])
    assert deny["policies"] == ["ClusterNetworkPolicy/lab-a-not-to-shop-a"]
    assert deny["explanation"]["rule"] == {
        "policy": "ClusterNetworkPolicy/lab-a-not-to-shop-a",
        "rule": 'egress[0] "deny-shop-a-web"',
        "action": "Deny",
        "tier": "Admin",
        "priority": 10,
        "source": f"{FIXTURE}:{line_of('- name: deny-shop-a-web')}",
        "policy_source": f"{FIXTURE}:{line_of('kind: ClusterNetworkPolicy') - 1}",
    }
    isolated = drop_document(by_pair[("lab/a", "shop/b")][0])
    assert isolated["policies"] == ["shop/b-from-a"]
    assert isolated["explanation"]["policies"][0]["source"] == f"{FIXTURE}:{line_of('name: b-from-a') - 2}"
    assert isolated["explanation"]["hints"]


def test_policyctl_drops_on_a_node_prints_a_drop_as_the_oracle_explains_it(
    state_root: Path, lab_namespaces: set[str]
) -> None:
    loaded = load([str(FIXTURE)])
    with LabEngine(cni=Cni.ROUTED) as engine:
        engine._compiler = compiler_for(engine.state.prefix, log_group=GROUP)
        plan = engine.reconcile(loaded.cluster).plan
        assert plan is not None
        source, destination = plan.pod_by_key["lab/a"], plan.pod_by_key["shop/b"]
        address = destination.address(Family.IPV4)
        assert address is not None
        argv = [str(Path(sys.executable).with_name("policyctl")), "drops", "-f", str(FIXTURE), "--netns",
                plan.node_by_name["node-2"].netns, "--group", str(GROUP), "-o", "json", "--count", "1",
                "--duration", "60"]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # Until the command has bound the group, a logged packet reaches nobody: keep trying.
            deadline = time.monotonic() + 60
            while process.poll() is None and time.monotonic() < deadline:
                run_probes([Attempt("denied", source.netns, address)], protocol=Protocol.TCP, port=80, timeout=0.2,
                           retries=0)
            out, err = process.communicate(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 0, err
    printed = json.loads(out.splitlines()[0])
    cluster = loaded.cluster
    expected = oracle_denial(cluster, cluster.pod_by_key["lab/a"], cluster.pod_by_key["shop/b"])
    assert expected is not None
    assert printed["explanation"] == explanation_document(expected)
    assert (printed["action"], printed["direction"], printed["pod"], printed["protocol"], printed["port"]) == (
        "drop", "ingress", "shop/b", "TCP", 80)
    assert (printed["source"]["name"], printed["destination"]["name"], printed["problem"]) == ("lab/a", "shop/b", None)


def test_a_group_another_listener_holds_is_refused_with_exit_2(prefix: str) -> None:
    name = f"{prefix}node"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    with NflogReader(GROUP, netns=name):
        with pytest.raises(GroupInUse, match=f"NFLOG group {GROUP} is already read"):
            NflogReader(GROUP, netns=name)
        argv = [str(Path(sys.executable).with_name("policyctl")), "drops", "-f", str(FIXTURE), "--netns", name,
                "--group", str(GROUP), "--duration", "5"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "already read" in done.stderr and "--agent" in done.stderr and not done.stdout
    with NflogReader(GROUP, netns=name):
        pass
