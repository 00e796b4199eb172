"""``policyctl explain``: verdicts with reasons, port summaries, CIDR splits, errors."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.cli.conftest import WEBSHOP, write

SHOP = str(WEBSHOP)

SMALL = """\
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: app, labels: {role: client}}
spec: {containers: [{name: c, image: i}]}
status: {podIPs: [{ip: 10.0.0.1}]}
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: app, labels: {role: server}}
spec: {containers: [{name: s, image: i, ports: [{name: http, containerPort: 8080}]}]}
status: {podIPs: [{ip: 10.0.0.2}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: server-in, namespace: app}
spec:
  podSelector: {matchLabels: {role: server}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
    ports: [{port: http}, {port: 9000, endPort: 9010}]
"""


def test_readme_command_reveals_the_or_mistake(run) -> None:
    result = run("explain", "-f", SHOP, "shop/frontend", "shop/payments", "--port", "8443/TCP")
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "verdict: ALLOWED" in out
    assert "✔ peer namespaceSelector team=shop AND podSelector {} (all pods)" in out
    assert "✘ peer namespace shop (the policy's own) AND podSelector app=checkout" in out
    assert "examples/webshop/policies.yaml" in out
    assert "\x1b[" not in out


def test_json_names_every_policy_rule_peer_and_port(run) -> None:
    result = run("explain", "-f", SHOP, "shop/frontend", "shop/payments", "--port", "8443/TCP", "-o", "json")
    document = json.loads(result.stdout)
    assert document["schema_version"] == 1
    assert document["port"] == {"port": 8443, "protocol": "TCP"}
    verdict = document["results"][0]["verdict"]
    assert verdict["allowed"] is True
    ingress = {p["policy"]: p for p in verdict["ingress"]["policies"]}
    assert set(ingress) == {"shop/default-deny", "shop/payments-ingress"}
    rule = ingress["shop/payments-ingress"]["rules"][0]
    assert [p["matched"] for p in rule["peers"]] == [True, False]
    assert [(p["port"], p["matched"]) for p in rule["ports"]] == [("8443/TCP", True)]
    assert ingress["shop/payments-ingress"]["source"].startswith(f"{SHOP}/policies.yaml:")
    assert verdict["egress"]["isolated"] is True and verdict["ingress"]["isolated"] is True


@pytest.mark.parametrize(
    ("source", "destination", "port", "code"),
    [
        pytest.param("app/client", "app/server", "8080/TCP", 0, id="named-port-allowed"),
        pytest.param("app/client", "app/server", "8081/TCP", 1, id="next-port-denied"),
        pytest.param("app/client", "app/server", "9010/TCP", 0, id="endPort-inclusive"),
        pytest.param("app/client", "app/server", "9000/UDP", 1, id="range-is-tcp-only"),
        pytest.param("app/server", "app/client", "8080/TCP", 0, id="unselected-destination"),
        pytest.param("203.0.113.9", "app/server", "8080/TCP", 1, id="outside-address-denied"),
    ],
)
def test_exit_code_says_allowed_or_denied(run, tmp_path, source, destination, port, code) -> None:
    path = write(tmp_path, "small.yaml", SMALL)
    result = run("explain", "-f", path, source, destination, "--port", port, "--exit-code")
    assert result.exit_code == code, result.stdout + result.stderr


def test_without_exit_code_a_denial_exits_0(run, tmp_path) -> None:
    path = write(tmp_path, "small.yaml", SMALL)
    assert run("explain", "-f", path, "app/client", "app/server", "--port", "1/TCP").exit_code == 0


def test_without_port_every_port_is_summarised(run, tmp_path) -> None:
    path = write(tmp_path, "small.yaml", SMALL)
    result = run("explain", "-f", path, "client", "server", "-n", "app")
    assert "ports: TCP 8080, 9000-9010 allowed, everything else denied" in result.stdout
    document = json.loads(run("explain", "-f", path, "client", "server", "-n", "app", "-o", "json").stdout)
    ports = document["results"][0]["ports"]
    assert ports["allowed"] == [
        {"protocol": "TCP", "first": 8080, "last": 8080},
        {"protocol": "TCP", "first": 9000, "last": 9010},
    ]
    assert ports["egress"]["allowed_ports"] == [
        {"protocol": p, "first": 1, "last": 65535} for p in ("TCP", "UDP", "SCTP")
    ]


def test_a_cidr_destination_is_split_where_the_verdict_differs(run) -> None:
    result = run("explain", "-f", SHOP, "shop/payments", "198.51.100.0/24", "--port", "443/TCP", "-o", "json")
    results = json.loads(result.stdout)["results"]
    assert [(r["destination_addresses"], r["allowed"]) for r in results] == [
        (["198.51.100.0/28"], False),
        (["198.51.100.16/28", "198.51.100.32/27", "198.51.100.64/26", "198.51.100.128/25"], True),
    ]


def test_yaml_output_is_the_same_document(run) -> None:
    args = ("explain", "-f", SHOP, "shop/checkout", "shop/postgres", "--port", "5432/TCP")
    assert yaml.safe_load(run(*args, "-o", "yaml").stdout) == json.loads(run(*args, "-o", "json").stdout)


def test_manifests_from_stdin(run) -> None:
    result = run("explain", "-f", "-", "app/client", "app/server", "--port", "8080", "--exit-code", input=SMALL)
    assert result.exit_code == 0, result.stderr


def test_unknown_pod_exits_2_with_close_matches(run) -> None:
    result = run("explain", "-f", SHOP, "shop/fronted", "shop/payments")
    assert result.exit_code == 2
    assert "no pod or workload 'shop/fronted'" in result.stderr and "shop/frontend" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_manifest_exits_2_with_file_line_and_field(run, tmp_path) -> None:
    path = write(tmp_path, "bad.yaml", SMALL.replace("{port: http}", "{port: http, protocol: ICMP}"))
    result = run("explain", "-f", path, "app/client", "app/server")
    assert result.exit_code == 2
    assert f"{path}:20: error: spec.ingress[0].ports[0].protocol:" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_port_flag_is_a_usage_error(run, tmp_path) -> None:
    result = run("explain", "-f", write(tmp_path, "s.yaml", SMALL), "app/client", "app/server", "--port", "80/ICMP")
    assert result.exit_code == 2
    assert "the protocol must be TCP, UDP or SCTP" in result.stderr


def test_family_must_match_a_written_address(run, tmp_path) -> None:
    result = run("explain", "-f", write(tmp_path, "s.yaml", SMALL), "2001:db8::1", "app/server", "--family", "IPv4")
    assert result.exit_code == 2
    assert "--family IPv4 does not match" in result.stderr


def test_no_colour_with_no_color_set(run, monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    result = run("explain", "-f", SHOP, "shop/frontend", "shop/payments", "--port", "8443")
    assert "\x1b[" not in result.stdout


def test_json_is_byte_stable(run) -> None:
    args = ("explain", "-f", SHOP, "shop/frontend", "shop/cart", "-o", "json")
    assert run(*args).stdout == run(*args).stdout


def test_warnings_go_to_stderr_and_do_not_fail(run, tmp_path) -> None:
    host_bits = (
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: wide, namespace: app}\n"
        "spec:\n  podSelector: {}\n  ingress: [{from: [{ipBlock: {cidr: 10.0.0.7/8}}]}]\n"
    )
    path = write(tmp_path, "w.yaml", SMALL + host_bits)
    result = run("explain", "-f", path, "app/client", "app/server", "--port", "8080")
    assert result.exit_code == 0, result.stderr
    assert f"{path}:27: warning: spec.ingress[0].from[0].ipBlock.cidr" in result.stderr
    assert ": warning:" not in result.stdout


NODE = """\
---
apiVersion: v1
kind: Node
metadata: {name: n1}
status: {addresses: [{type: InternalIP, address: 10.0.0.100}]}
"""


def test_a_cidr_source_splits_out_the_destinations_own_node(run, tmp_path) -> None:
    """A node may always reach its pods: its address gets its own explanation inside a range."""
    text = SMALL.replace("spec: {containers: [{name: s,", "spec: {nodeName: n1, containers: [{name: s,") + NODE
    path = write(tmp_path, "node.yaml", text)
    result = run("explain", "-f", path, "10.0.0.0/24", "app/server", "--port", "8080", "-o", "json")
    results = json.loads(result.stdout)["results"]
    assert [(r["source_addresses"], r["allowed"]) for r in results] == [
        (["10.0.0.0/26", "10.0.0.64/27", "10.0.0.96/30", "10.0.0.101/32", "10.0.0.102/31", "10.0.0.104/29",
          "10.0.0.112/28", "10.0.0.128/25"], False),
        (["10.0.0.100/32"], True),
    ]  # fmt: skip
    assert results[1]["verdict"]["ingress"]["bypass"] == "from-own-node"


HOLES = """\
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-out, namespace: app}
spec:
  podSelector: {matchLabels: {role: client}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 203.0.113.0/24, except: [203.0.113.8/29, 203.0.113.32/29]}}]
"""


@pytest.mark.parametrize("output", ["json", "table"])
def test_each_distinct_explanation_is_printed_once_with_every_range_it_covers(run, tmp_path, output) -> None:
    path = write(tmp_path, "holes.yaml", SMALL + HOLES)
    result = run("explain", "-f", path, "app/client", "203.0.113.0/24", "--port", "443", "-o", output)
    if output == "table":
        assert result.stdout.count("verdict: ") == 2
        assert "to 203.0.113.8/29, 203.0.113.32/29" in result.stdout
        return
    results = json.loads(result.stdout)["results"]
    assert [(r["destination_addresses"], r["allowed"]) for r in results] == [
        (["203.0.113.0/29", "203.0.113.16/28", "203.0.113.40/29", "203.0.113.48/28", "203.0.113.64/26",
          "203.0.113.128/25"], True),
        (["203.0.113.8/29", "203.0.113.32/29"], False),
    ]  # fmt: skip


def _single_addresses(count: int) -> str:
    peers = "".join(f"    - ipBlock: {{cidr: 198.18.0.{2 * i}/32}}\n" for i in range(count))
    return (
        "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: out, namespace: app}\n"
        f"spec:\n  podSelector: {{}}\n  policyTypes: [Egress]\n  egress:\n  - to:\n{peers}    ports: [{{port: 443}}]\n"
    )


@pytest.mark.parametrize("port", [("--port", "443"), ()])
def test_one_address_per_peer_is_one_explanation_not_one_per_address(run, tmp_path, port) -> None:
    """Twenty single-address ipBlocks of one rule: allowed by that rule, denied elsewhere; each
    peer says which addresses of its explanation it matches."""
    path = write(tmp_path, "many.yaml", SMALL + _single_addresses(20))
    document = json.loads(run("explain", "-f", path, "app/client", "198.18.0.0/24", *port, "-o", "json").stdout)
    results = document["results"]
    assert len(results) == 2
    allowed = next(r for r in results if r["allowed"])
    assert allowed["destination_addresses"] == [f"198.18.0.{2 * i}/32" for i in range(20)]
    egress = allowed["verdict"]["egress"] if port else allowed["ports"]["egress"]
    peers = egress["policies"][0]["rules"][0]["peers"]
    assert all(p["matched"] for p in peers)
    assert peers[5]["reasons"] == ["matches 198.18.0.10/32 of these addresses"]
