"""Every NetworkPolicy test directory of netpol-analyzer that the API server would accept loads as is.

netpol-analyzer (np-guard) keeps its test inputs as users write them: tool output beside the
manifests (``connlist_output.json``, a JSON array), NetworkPolicies with ``status: {}`` from Go
clients of Kubernetes 1.24-1.27, files that are not Kubernetes objects. Its data is not ours to
copy, so this test reads a checkout named by ``NETPOL_ANALYZER_REPO`` and is skipped without one.

A directory is a NetworkPolicy test when it holds a ``NetworkPolicy`` and none of the kinds of
other APIs (AdminNetworkPolicy, BaselineAdminNetworkPolicy, UserDefinedNetwork,
MultiNetworkPolicy, NetworkAttachmentDefinition). The directories the API server refuses are
listed in :data:`REFUSED` with the code of the rule that refuses them; they must fail with it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from policyctl.manifests.loader import load
from policyctl.policy.diagnostics import Severity

REPO = os.environ.get("NETPOL_ANALYZER_REPO", "")
_OTHER_APIS = re.compile(
    r"""kind["']?\s*:\s*["']?(Baseline)?AdminNetworkPolicy|kind["']?\s*:\s*["']?(Cluster)?UserDefinedNetwork"""
    r"""|kind["']?\s*:\s*["']?MultiNetworkPolicy|kind["']?\s*:\s*["']?NetworkAttachmentDefinition"""
)
_NETWORK_POLICY = re.compile(r"""kind["']?\s*:\s*["']?NetworkPolicy\b""")
_SUFFIXES = (".yaml", ".yml", ".json")
#: Directories the API server refuses, each with the code of the refusing rule.
REFUSED = {
    "bad_netpols": "invalid-cidr",
    "example_pods_w_same_owner_and_labels_gap_with_bad_match_expression": "invalid-name",
    "example_pods_w_same_owner_and_labels_gap_with_good_match_expression": "invalid-name",
    "example_pods_w_same_owner_and_labels_gap_with_good_match_expression2": "invalid-name",
    "example_pods_w_same_owner_and_labels_gap_with_policy_selector_not_in_gap": "invalid-name",
    "netpol_named_port_test": "unknown-field",
    "netpol_named_port_test_2": "unknown-field",
    "np_bad_path_test_2": "invalid-end-port",
    "np_test_with_empty_port_range": "invalid-end-port",
    "onlineboutique_with_pods_severe_error": "yaml-syntax",
}


def _text(directory: Path) -> str:
    return "\n".join(
        p.read_text(encoding="utf-8", errors="replace") for p in sorted(directory.rglob("*")) if p.suffix in _SUFFIXES
    )


def _directories() -> list[str]:
    tests = Path(REPO, "tests")
    if not REPO or not tests.is_dir():
        return []
    found = []
    for directory in sorted(d for d in tests.iterdir() if d.is_dir()):
        text = _text(directory)
        if _NETWORK_POLICY.search(text) and not _OTHER_APIS.search(text):
            found.append(directory.name)
    return found


@pytest.mark.skipif(not _directories(), reason="set NETPOL_ANALYZER_REPO to a netpol-analyzer checkout")
@pytest.mark.parametrize("directory", _directories())
def test_network_policy_test_directory_loads_as_the_api_server_would_take_it(directory: str) -> None:
    result = load([str(Path(REPO, "tests", directory))])
    errors = [d for d in result.diagnostics if d.severity is Severity.ERROR]
    if directory in REFUSED:
        assert REFUSED[directory] in {d.code for d in errors}, [str(d) for d in errors]
        return
    assert errors == [], [str(d) for d in errors]
    assert result.cluster.policies
