"""Reading conntrack's listing and choosing which flows to cut (no kernel needed)."""

from __future__ import annotations

import ipaddress

import pytest

from policyctl.enforcer.conntrack import Flow, flows_to_revoke, parse_listing, ruleset_judge
from policyctl.enforcer.stats import policies_named

LISTING = """\
ipv4     2 tcp      6 431999 ESTABLISHED src=10.77.1.2 dst=10.77.2.2 sport=40000 dport=81 src=10.77.2.2 dst=10.77.1.2 sport=81 dport=40000 [ASSURED] mark=0 use=1
ipv4     2 udp      17 29 src=10.77.1.2 dst=10.77.9.9 sport=5353 dport=53 [UNREPLIED] src=10.77.9.9 dst=10.77.1.2 sport=53 dport=5353 mark=0 use=1
ipv4     2 icmp     1 29 src=10.77.1.2 dst=10.77.2.2 type=8 code=0 id=7 src=10.77.2.2 dst=10.77.1.2 type=0 code=0 id=7 mark=0 use=1
ipv6     10 tcp      6 60 SYN_SENT src=fd00::1 dst=fd00::2 sport=1 dport=443 [UNREPLIED] src=fd00::2 dst=fd00::1 sport=443 dport=1 mark=0 use=1
conntrack v1.4.7 (conntrack-tools): 4 flow entries have been shown.
"""  # noqa: E501 (conntrack -L prints one flow per line)
ip = ipaddress.ip_address


def test_the_original_direction_is_the_first_tuple() -> None:
    flows = {
        (f.protocol, str(f.source), str(f.destination), f.destination_port, f.state) for f in parse_listing(LISTING)
    }
    assert flows == {
        ("tcp", "10.77.1.2", "10.77.2.2", 81, "ESTABLISHED"),
        ("udp", "10.77.1.2", "10.77.9.9", 53, ""),
        ("icmp", "10.77.1.2", "10.77.2.2", None, ""),
        ("tcp", "fd00::1", "fd00::2", 443, "SYN_SENT"),
    }


def test_only_denied_ported_flows_of_local_pods_are_cut() -> None:
    flows = parse_listing(LISTING)
    judged, denied = flows_to_revoke(
        flows, lambda f: f.destination_port == 53, local={ip("10.77.2.2"), ip("10.77.9.9")}
    )
    assert [(f.protocol, f.destination_port) for f in judged] == [("tcp", 81), ("udp", 53)]
    assert [(f.protocol, f.destination_port) for f in denied] == [("tcp", 81)]


def test_without_local_addresses_every_ported_flow_is_judged() -> None:
    judged, _ = flows_to_revoke(parse_listing(LISTING), lambda f: True)
    assert all(f.protocol in ("tcp", "udp") for f in judged) and len(judged) == 3
    assert str(Flow("tcp", ip("10.0.0.1"), ip("10.0.0.2"), 1, 80)) == "tcp 10.0.0.1:1 -> 10.0.0.2:80"


@pytest.mark.parametrize(
    ("comment", "policies"),
    [
        pytest.param("x/allow-a ingress[0] a.yaml:12", ("x/allow-a",), id="one-source"),
        pytest.param("y/b egress[1]; x/a ingress[0] +more", ("x/a", "y/b"), id="several-sources-and-overflow"),
        pytest.param("x/deny isolates ingress x.yaml:3", ("x/deny",), id="isolating-policy"),
        pytest.param("replies of allowed connections", (), id="not-a-policy"),
    ],
)
def test_a_rule_comment_names_its_policies(comment: str, policies: tuple[str, ...]) -> None:
    assert policies_named(comment) == policies


def test_a_lazy_judge_renders_the_ruleset_only_when_a_local_flow_is_judged() -> None:
    from policyctl.compiler.compile import compile_node
    from policyctl.compiler.render_json import to_document
    from tests import builders as b

    cluster = b.cluster(b.node("n1", "192.168.0.1"), b.pod("x/a", {"app": "a"}, node="n1", ips=["10.77.2.2"]),
                        b.policy("x/deny", {"app": "a"}, ingress=[]))
    rendered: list[int] = []

    def document() -> dict[str, object]:
        rendered.append(1)
        return to_document(compile_node(cluster, "n1"))

    judge = ruleset_judge(document)
    assert flows_to_revoke(parse_listing(LISTING), judge, local={ip("10.99.0.1")}) == ((), ())
    assert rendered == []
    _, denied = flows_to_revoke(parse_listing(LISTING), judge, local={ip("10.77.2.2")})
    assert [(str(f.destination), f.destination_port) for f in denied] == [("10.77.2.2", 81)]
    assert rendered == [1]


def test_without_pyroute2_conntrack_the_command_both_lists_and_cuts(monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    import sys

    from policyctl.enforcer.conntrack import ConntrackCommand, ConntrackTool

    if shutil.which("conntrack") is None:
        pytest.skip("conntrack-tools is not installed")
    monkeypatch.setitem(sys.modules, "pyroute2.conntrack", None)
    tool = ConntrackTool()
    assert isinstance(tool.lister, ConntrackCommand) and isinstance(tool.cutter, ConntrackCommand)


def test_without_the_conntrack_command_netlink_both_lists_and_cuts() -> None:
    from policyctl.enforcer.conntrack import ConntrackNetlink, ConntrackTool

    tool = ConntrackTool(binary="policyctl-no-such-conntrack")
    try:
        assert isinstance(tool.lister, ConntrackNetlink) and tool.cutter is tool.lister
    finally:
        tool.close()


def test_with_neither_way_the_tool_is_a_conntrack_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from policyctl.enforcer.conntrack import ConntrackTool
    from policyctl.enforcer.errors import ConntrackError

    monkeypatch.setitem(sys.modules, "pyroute2.conntrack", None)
    with pytest.raises(ConntrackError, match="policyctl-no-such-conntrack command"):
        ConntrackTool(binary="policyctl-no-such-conntrack")


def test_a_missing_namespace_is_a_conntrack_error_not_a_hang() -> None:
    from policyctl.enforcer.conntrack import ConntrackNetlink
    from policyctl.enforcer.errors import ConntrackError

    with pytest.raises(ConntrackError, match="cannot open ctnetlink in policyctl-no-such-namespace"):
        ConntrackNetlink(netns="policyctl-no-such-namespace")
