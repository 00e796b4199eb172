"""Every probe case of the project, the upstream conformance corpus included, on real packets.

The truth tables are the cases' own (the upstream ones transcribed from the Kubernetes e2e
suite), never the lab's output: each case runs through the compiler, the enforcer CLI in every
node's namespace, the lab's kube-proxy-like Services and real TCP, UDP and SCTP probes. Every
case runs on the bridged CNI; the routed CNI, which differs only in how packets reach the
node, gets a selection that covers every protocol, both families, pod changes and Services.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from policyctl.lab.engine import LabEngine
from policyctl.lab.topology import Cni
from policyctl.probecases.cases import load_probe_case
from policyctl.probecases.runner import run_case

pytestmark = pytest.mark.kernel

CASES = Path(__file__).resolve().parents[1] / "cases"
ALL = sorted(p.relative_to(CASES).as_posix() for p in [*CASES.glob("*.yaml"), *CASES.glob("upstream/*.yaml")])
ROUTED = (
    "01-namespace-and-pod-selector-and-vs-or.yaml",
    "02-named-port-and-end-port.yaml",
    "05-sctp.yaml",
    "06-dual-stack-ip-blocks-per-family.yaml",
    "08-pods-added-and-removed.yaml",
    "09-via-service-to-self.yaml",
    "upstream/allow-egress-access-to-server-in-cidr-block-ipv6.yaml",
    "upstream/allow-ingress-access-from-updated-pod.yaml",
    "upstream/udp-enforce-policy-based-on-ports.yaml",
    "upstream/sctp-enforce-policy-based-on-ports.yaml",
)


#: ClusterNetworkPolicy cases: the upstream conformance suite transcribed (``cnp-conformance/``) and
#: the shared tiers case; pinned node addresses and labels, ``nodes`` peers, hostNetwork pods. About
#: a minute each on the lab, so the default run takes a selection covering every tier, action, peer
#: kind and protocol and named ports; the rest are marked ``slow`` (run them with ``-m slow``).
CLUSTER_CASES = (
    *sorted(p.relative_to(CASES).as_posix() for p in CASES.glob("cnp-conformance/*.yaml")),
    "examples/04-cluster-network-policy-tiers.yaml",
)
CLUSTER_SELECTION = (
    "examples/04-cluster-network-policy-tiers.yaml",
    "cnp-conformance/CNPAdminTierEgressInlineCIDRPeers.yaml",
    "cnp-conformance/CNPAdminTierEgressNodePeers.yaml",
    "cnp-conformance/CNPAdminTierIntegration.yaml",
    "cnp-conformance/CNPAdminTierPriorityField.yaml",
    "cnp-conformance/CNPAdminTierEgressSCTP.yaml",
    "cnp-conformance/CNPBaselineTierIngressNamedPort.yaml",
    "cnp-conformance/CNPBaselineTierEgressUDP.yaml",
)
CLUSTER_ROUTED = (
    "cnp-conformance/CNPAdminTierEgressNodePeers.yaml",
    "cnp-conformance/CNPAdminTierIntegration.yaml",
)


def run_on_lab(case: str, cni: Cni) -> dict[str, object]:
    with LabEngine(cni=cni) as engine:
        return run_case(load_probe_case(CASES / case), engine).to_json()


def failures(result: dict[str, object]) -> list[object]:
    steps = result["steps"]
    assert isinstance(steps, list)
    return [(i, p.get("via", "pod"), p["family"], p["protocol"], p["port"], p["mismatches"])
            for i, step in enumerate(steps) for p in step["probes"] if p["mismatches"]]


def test_the_routed_selection_names_existing_cases() -> None:
    assert set(ROUTED) <= set(ALL) and len(ALL) >= 60


@pytest.mark.parametrize("case", ALL)
def test_every_case_passes_on_the_bridged_lab(case: str, state_root: Path, lab_namespaces: set[str]) -> None:
    result = run_on_lab(case, Cni.BRIDGED)
    assert result["passed"], failures(result)


@pytest.mark.parametrize("case", ROUTED)
def test_selected_cases_pass_on_the_routed_lab(case: str, state_root: Path, lab_namespaces: set[str]) -> None:
    result = run_on_lab(case, Cni.ROUTED)
    assert result["passed"], failures(result)


def test_the_cluster_policy_cases_exist() -> None:
    assert all((CASES / case).is_file() for case in (*CLUSTER_CASES, *CLUSTER_SELECTION, *CLUSTER_ROUTED))
    assert set(CLUSTER_SELECTION) <= set(CLUSTER_CASES) and len(CLUSTER_CASES) >= 20


@pytest.mark.parametrize(
    "case", [c if c in CLUSTER_SELECTION else pytest.param(c, marks=pytest.mark.slow) for c in CLUSTER_CASES]
)
def test_every_cluster_policy_case_passes_on_the_bridged_lab(case: str, state_root: Path,
                                                             lab_namespaces: set[str]) -> None:
    result = run_on_lab(case, Cni.BRIDGED)
    assert result["passed"], failures(result)


@pytest.mark.parametrize("case", CLUSTER_ROUTED)
def test_selected_cluster_policy_cases_pass_on_the_routed_lab(case: str, state_root: Path,
                                                              lab_namespaces: set[str]) -> None:
    result = run_on_lab(case, Cni.ROUTED)
    assert result["passed"], failures(result)
