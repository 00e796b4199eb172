"""The agent's metrics as a Prometheus server scrapes them: names, types and labels, parsed
from the text exposition served over HTTP."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from policyctl import __version__
from policyctl.agent.metrics import AgentMetrics, ReflectorState

EXPECTED_TYPES = {
    "policyctl_sync_duration_seconds": "histogram",
    "policyctl_sync_stage_seconds": "histogram",
    "policyctl_syncs": "counter",
    "policyctl_compiles": "counter",
    "policyctl_kernel_readbacks": "counter",
    "policyctl_kernel_readback_duration_seconds": "histogram",
    "policyctl_last_successful_sync_timestamp_seconds": "gauge",
    "policyctl_local_pods": "gauge",
    "policyctl_active_local_policies": "gauge",
    "policyctl_nft_set_elements": "gauge",
    "policyctl_watch_restarts": "counter",
    "policyctl_cache_synced": "gauge",
    "policyctl_watch_stale_seconds": "gauge",
    "policyctl_objects": "gauge",
    "policyctl_resource_served": "gauge",
    "policyctl_thread_restarts": "counter",
    "policyctl_http_rejected_connections": "counter",
    "policyctl_build_info": "gauge",
    "policyctl_dropped_packets": "counter",
    "policyctl_policy_programmed_seconds": "histogram",
}


@pytest.fixture
def scraped() -> dict[str, object]:
    metrics = AgentMetrics()
    metrics.watch(lambda: [
        ReflectorState("pods", True, {"410": 2, "timeout": 0}),
        ReflectorState("namespaces", False, {"dropped": 1}, 12.5),
    ])
    metrics.syncs.labels(result="applied").inc()
    metrics.sync_duration.observe(0.02)
    server = metrics.serve(port=0, address="127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        server.close()
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_every_metric_is_exposed_with_its_type(scraped: dict[str, object]) -> None:
    types = {name: family.type for name, family in scraped.items() if name.startswith("policyctl_")}  # type: ignore[attr-defined]
    assert types == EXPECTED_TYPES


def _samples(scraped: dict[str, object], family: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in scraped[family].samples}  # type: ignore[attr-defined]


def test_counters_end_in_total_and_carry_their_labels(scraped: dict[str, object]) -> None:
    syncs = _samples(scraped, "policyctl_syncs")
    assert syncs[("policyctl_syncs_total", (("result", "applied"),))] == 1
    assert syncs[("policyctl_syncs_total", (("result", "failed"),))] == 0
    restarts = _samples(scraped, "policyctl_watch_restarts")
    assert restarts[("policyctl_watch_restarts_total", (("reason", "410"), ("resource", "pods")))] == 2
    assert restarts[("policyctl_watch_restarts_total", (("reason", "dropped"), ("resource", "namespaces")))] == 1


def test_cache_synced_staleness_and_build_info(scraped: dict[str, object]) -> None:
    synced = _samples(scraped, "policyctl_cache_synced")
    assert synced == {("policyctl_cache_synced", (("resource", "namespaces"),)): 0.0,
                      ("policyctl_cache_synced", (("resource", "pods"),)): 1.0}
    stale = _samples(scraped, "policyctl_watch_stale_seconds")
    assert stale == {("policyctl_watch_stale_seconds", (("resource", "namespaces"),)): 12.5,
                     ("policyctl_watch_stale_seconds", (("resource", "pods"),)): 0.0}
    assert _samples(scraped, "policyctl_build_info") == {("policyctl_build_info", (("version", __version__),)): 1.0}


def test_sync_duration_is_a_histogram_in_seconds(scraped: dict[str, object]) -> None:
    samples = _samples(scraped, "policyctl_sync_duration_seconds")
    assert samples[("policyctl_sync_duration_seconds_count", ())] == 1
    assert samples[("policyctl_sync_duration_seconds_bucket", (("le", "0.025"),))] == 1
    assert samples[("policyctl_sync_duration_seconds_bucket", (("le", "0.01"),))] == 0


def test_every_sync_stage_is_exported_before_its_first_observation(scraped: dict[str, object]) -> None:
    counts = {labels: value for (name, labels), value in _samples(scraped, "policyctl_sync_stage_seconds").items()
              if name.endswith("_count")}
    assert counts == {(("stage", stage),): 0.0 for stage in ("after", "compile", "kernel", "plan", "snapshot")}


def test_objects_are_counted_by_kind_and_served_resources_flagged() -> None:
    metrics = AgentMetrics()
    metrics.watch(lambda: [
        ReflectorState("pods", True, {}, 0.0, "Pod", 7, True),
        ReflectorState("clusternetworkpolicies", True, {}, 0.0, "ClusterNetworkPolicy", 3, True),
        ReflectorState("adminnetworkpolicies", True, {}, 0.0, "AdminNetworkPolicy", 0, False),
    ])
    scraped = {f.name: f for f in text_string_to_metric_families(metrics.exposition().body.decode())}
    assert _samples(scraped, "policyctl_objects") == {
        ("policyctl_objects", (("kind", "Pod"),)): 7.0,
        ("policyctl_objects", (("kind", "AdminNetworkPolicy"),)): 0.0,
        ("policyctl_objects", (("kind", "ClusterNetworkPolicy"),)): 3.0,
    }
    served = _samples(scraped, "policyctl_resource_served")
    assert served[("policyctl_resource_served", (("resource", "adminnetworkpolicies"),))] == 0.0
    assert served[("policyctl_resource_served", (("resource", "clusternetworkpolicies"),))] == 1.0
    assert served[("policyctl_resource_served", (("resource", "pods"),))] == 1.0
