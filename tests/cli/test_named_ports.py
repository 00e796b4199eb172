"""``--port NAME``: a container port's name, resolved on each destination pod as the semantics
resolve a policy's named port (``policy.ports.match_port``)."""

from __future__ import annotations

import json

import pytest

from policyctl.manifests.loader import load
from policyctl.policy.model import Pod, Protocol
from policyctl.policy.semantics import evaluate
from policyctl.policy.verdicts import Connection
from tests.cli.conftest import WEBSHOP

INGRESS = "ingress-nginx/ingress-nginx-controller"


def declared(pod: Pod, name: str, protocol: Protocol) -> list[int]:
    """The API's rule, written out: a container port of that name and protocol, on a pod of
    the pod network (a hostNetwork pod's ports are its node's)."""
    return [] if pod.host_network else [c.port for c in pod.ports if c.name == name and c.protocol is protocol]


@pytest.mark.parametrize(
    ("source", "destination", "port", "verdict", "resolved"),
    [
        pytest.param(INGRESS, "shop/frontend", "http", "ALLOWED", "8080/TCP", id="the-ingress-reaches-frontend-http"),
        pytest.param("kube-system/coredns", INGRESS, "http", "ALLOWED", "80/TCP", id="http-is-80-on-the-ingress"),
        pytest.param("shop/frontend", INGRESS, "http", "DENIED", "80/TCP", id="shop-egress-stays-in-the-namespace"),
        pytest.param(INGRESS, "shop/cart", "http/TCP", "DENIED", "8080/TCP", id="cart-http-is-denied-to-the-ingress"),
        pytest.param("shop/checkout", "shop/postgres", "postgres", "ALLOWED", "5432/TCP", id="postgres-by-name"),
    ],
)  # fmt: skip
def test_explain_decides_the_number_the_destination_gives_the_name(
    run, source: str, destination: str, port: str, verdict: str, resolved: str
) -> None:
    result = run("explain", "-f", str(WEBSHOP), source, destination, "--port", port, "-o", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    number, _, protocol = resolved.partition("/")
    assert document["port"] == {"port": int(number), "protocol": protocol}
    assert ("ALLOWED" if document["allowed"] else "DENIED") == verdict
    assert f"is {resolved} on {destination}" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("explain", INGRESS, "shop/frontend", "--port", "htp"),
                     "no pod declares a port named 'htp'; did you mean 'http'?", id="explain-typo"),
        pytest.param(("matrix", "--port", "postgress"),
                     "no pod declares a port named 'postgress'; did you mean 'postgres'?", id="matrix-typo"),
        pytest.param(("explain", INGRESS, "shop/frontend", "--port", "http/UDP"),
                     "no pod declares a UDP port named 'http' (it is declared for TCP: --port http/TCP)",
                     id="declared-for-another-protocol"),
        pytest.param(("explain", INGRESS, "shop/redis", "--port", "http"),
                     "shop/redis declares no port named 'http' (its named ports: redis 6379/TCP)",
                     id="the-destination-lacks-the-name"),
        pytest.param(("explain", "shop/frontend", "203.0.113.9", "--port", "http"),
                     "a named port is resolved on the destination pod; 203.0.113.9 is not a pod", id="not-a-pod"),
        pytest.param(("explain", "shop/frontend", "203.0.113.0/24", "--port", "http"),
                     "a named port is resolved on the destination pod; a range of addresses is not a pod",
                     id="not-a-pod-but-a-cidr"),
    ],
)  # fmt: skip
def test_a_name_that_resolves_to_nothing_is_bad_input(run, args: tuple[str, ...], message: str) -> None:
    result = run(*args[:1], "-f", str(WEBSHOP), *args[1:])
    assert result.exit_code == 2
    assert message in result.stderr


@pytest.mark.parametrize("port", ["Http", "-http", "http-", "a" * 16, "ht_tp/TCP", "http/ICMP"])
def test_a_malformed_name_is_a_usage_error(run, port: str) -> None:
    result = run("explain", "-f", str(WEBSHOP), INGRESS, "shop/frontend", "--port", port)
    assert result.exit_code == 2
    assert "--port" in result.stderr


@pytest.mark.parametrize(("name", "protocol"), [("http", Protocol.TCP), ("https", Protocol.TCP), ("dns", Protocol.UDP)])
def test_matrix_cells_are_the_oracle_on_each_destinations_own_number(run, name: str, protocol: Protocol) -> None:
    cluster = load([str(WEBSHOP)]).cluster
    pods = {p.key: p for p in cluster.pods}
    result = run("matrix", "-f", str(WEBSHOP), "--port", f"{name}/{protocol.value}", "-o", "json", "--expand")
    assert result.exit_code == 0, result.output
    cells = json.loads(result.stdout)["allowed"]
    assert set(cells) == set(pods)
    for source, row in cells.items():
        for destination in pods:
            allowed = row["cells"].get(destination, row["default"]) if "default" in row else row[destination]
            numbers = declared(pods[destination], name, protocol)
            if not numbers:
                expected = False
            elif source == destination:
                expected = True
            else:
                connection = Connection(pods[source], pods[destination], protocol, numbers[0])
                expected = evaluate(cluster, connection).allowed
            assert allowed is expected, (source, destination)


def test_matrix_says_what_the_name_means_and_which_columns_cannot_have_it(run) -> None:
    result = run("matrix", "-f", str(WEBSHOP), "--port", "http", "-o", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["port"] == {"port": "http", "protocol": "TCP"}
    note = "note: port 'http' is 80/TCP on 1 pod(s), 8080/TCP on 3 pod(s); 5 pod(s) declare no such port"
    assert note in result.stderr
