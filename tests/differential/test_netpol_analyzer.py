"""policyctl's verdicts on AdminNetworkPolicy/BaselineAdminNetworkPolicy against netpol-analyzer's.

netpol-analyzer (np-guard) ships test directories of manifests with the connectivity it expects
(``tests/<name>/`` and ``test_outputs/connlist/<name>_connlist_output.txt``). Its data is not
ours to copy, so this test reads a checkout named by ``NETPOL_ANALYZER_REPO`` and is skipped
without one. For every ANP/BANP test directory, every workload pair's allowed ports (the oracle,
:func:`policy.portsummary.summarize_ports`) must equal netpol-analyzer's line, except where the API
has moved since its data was written (``docs/semantics.md``, "A second opinion"): a directory
the API server would refuse is listed in :data:`REFUSED` with the rule that refuses it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from policyctl.manifests.loader import load
from policyctl.policy.model import Pod, Protocol
from policyctl.policy.cluster import Cluster
from policyctl.policy.portsummary import summarize_ports

REPO = os.environ.get("NETPOL_ANALYZER_REPO", "")
#: Directories the API server refuses, with the refusing rule.
REFUSED = {
    "anp_test_named_ports_multiple_peers": "named-port-without-pods",
}
_KINDS = {"deploy": "Deployment", "sts": "StatefulSet", "ds": "DaemonSet", "rs": "ReplicaSet", "job": "Job",
          "cronjob": "CronJob"}  # fmt: skip
_LINE = re.compile(r"(\S+) => (\S+) : (.*)$")


def _directories() -> list[str]:
    tests = Path(REPO, "tests")
    if not REPO or not tests.is_dir():
        return []
    return sorted(d.name for d in tests.iterdir() if re.match(r"b?anp_", d.name) and "bad_path" not in d.name)


def _name(pod: Pod) -> str:
    if pod.workload:
        kind, _, name = pod.workload.partition("/")
        return f"{pod.namespace}/{name}[{_KINDS.get(kind, kind)}]"
    return f"{pod.key}[Pod]"


def _ports(cluster: Cluster, source: Pod, destination: Pod) -> str | None:
    """netpol-analyzer's spelling: ``All Connections`` or ``SCTP 1-9002,9004-65535,TCP 80``."""
    allowed = [r for r in summarize_ports(cluster, source, destination).ranges() if r.allowed]
    spans: dict[str, list[str]] = {}
    for found in allowed:
        spans.setdefault(found.protocol.value, []).append(found.span)
    if not spans:
        return None
    if all(spans.get(p.value) == ["1-65535"] for p in Protocol):
        return "All Connections"
    return ",".join(f"{protocol} {','.join(spans[protocol])}" for protocol in sorted(spans))


@pytest.mark.skipif(not _directories(), reason="set NETPOL_ANALYZER_REPO to a netpol-analyzer checkout")
@pytest.mark.parametrize("directory", _directories())
def test_workload_connectivity_equals_netpol_analyzers(directory: str) -> None:
    expected_file = Path(REPO, "test_outputs", "connlist", f"{directory}_connlist_output.txt")
    if not expected_file.exists():
        pytest.skip(f"netpol-analyzer has no connlist output for {directory}")
    result = load([str(Path(REPO, "tests", directory))])
    if directory in REFUSED:
        assert REFUSED[directory] in {d.code for d in result.diagnostics}
        return
    assert result.ok, [str(d) for d in result.diagnostics]
    expected = {}
    for line in expected_file.read_text().splitlines():
        found = _LINE.match(line.strip())
        if found and "[External]" not in line:
            expected[(found.group(1), found.group(2))] = found.group(3)
    ours = {}
    for source in result.cluster.pods:
        for destination in result.cluster.pods:
            ports = None if source.key == destination.key else _ports(result.cluster, source, destination)
            if ports:
                ours[(_name(source), _name(destination))] = ports
    assert ours == expected
