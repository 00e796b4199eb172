"""A compiler delta through the kernel: it leaves the table as a full apply of the new ruleset
would, a rejected one changes nothing and the next call applies in full, a table changed
behind the enforcer's back is noticed by the handle check, and that check over netlink agrees
with libnftables' listing."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import Any, NoReturn

import pytest

from policyctl.compiler.compile import compile_node
from policyctl.compiler.delta import RulesetDelta, diff
from policyctl.compiler.incremental import NodeCompiler
from policyctl.compiler.render_json import to_document
from policyctl.compiler.ruleset import Chain, Key, Lookup, Rule, Ruleset, Verdict
from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.backend import LibnftablesBackend, NftCommandBackend, handle_from_listing
from policyctl.enforcer.errors import NftApplyError
from policyctl.enforcer.tables import TableState
from tests import builders
from tests.builders import cluster, ip_block, pod, pod_peer, policy, port, rule
from tests.enforcer import test_delta as hand
from tests.enforcer.netns import CLUSTER_OBJECTS, Node
from tests.enforcer.test_trusted_state_kernel import CountingBackend

pytestmark = pytest.mark.kernel

PODS = CLUSTER_OBJECTS
ALLOW_80 = policy("x/allow", {"pod": "b"}, ingress=[rule(pod_peer({"pod": "a"}), ports=[port(80)])])
ALLOW_80_81 = policy("x/allow", {"pod": "b"}, ingress=[rule(pod_peer({"pod": "a"}), ports=[port(80), port(81)])])
ALLOW_BLOCK = policy("x/allow", {"pod": "b"}, ingress=[rule(ip_block("10.77.0.0/16"), ports=[port(80)])])
NODE_2 = builders.node("node-2", "10.77.1.2")
EGRESS_A = policy("x/out", {"pod": "a"}, egress=[rule(pod_peer({"pod": "b"}), ports=[port(443)])])


def compiled(*objects: Any) -> Ruleset:
    return compile_node(cluster(*objects), "node-1")


BEFORE = compiled(*PODS, ALLOW_80)


def never() -> NoReturn:
    raise AssertionError("the delta was not applied from the trusted state")


def kernel_state(backend: LibnftablesBackend) -> TableState | None:
    return Enforcer(backend).current()


def after_full_apply(backend: LibnftablesBackend, ruleset: Ruleset) -> TableState | None:
    Enforcer(backend).cleanup()
    Enforcer(backend).apply(to_document(ruleset))
    return kernel_state(backend)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param(BEFORE, compiled(*PODS, ALLOW_80_81), id="a-port-more"),
        pytest.param(BEFORE, compiled(*PODS), id="policy-gone-chains-and-entries-go"),
        pytest.param(BEFORE, compiled(*PODS, ALLOW_80, EGRESS_A), id="egress-policy-added"),
        pytest.param(BEFORE, compiled(*PODS, ALLOW_BLOCK), id="peer-pods-become-a-block"),
        pytest.param(
            BEFORE,
            compiled(*PODS[:2], pod("x/b", {"pod": "b"}, node="node-1", ips=["10.77.2.3"]), ALLOW_80),
            id="pod-renumbered",
        ),
        pytest.param(
            hand.BASE,
            hand.changed(
                sets=(
                    hand.ALLOW,
                    dataclasses.replace(
                        hand.PEERS, elements=(hand.address("10.0.0.1"), hand.cidr("10.1.0.0/16")), interval=True
                    ),
                )
            ),
            id="set-recreated",
        ),
        pytest.param(
            hand.BASE,
            hand.changed(
                maps=(
                    dataclasses.replace(
                        hand.IDENTITIES, elements=(hand.entry("10.0.0.1", "id-x"), hand.entry("10.0.0.2", "id-y"))
                    ),
                    hand.INGRESS,
                ),
                chains=(hand.INPUT, hand.GUARD, hand.ID_X, hand.ID_Y, hand.POD_A),
            ),
            id="map-entry-retargeted",
        ),
    ],
)
def test_a_delta_leaves_the_table_a_full_apply_would(
    backend: LibnftablesBackend, before: Ruleset, after: Ruleset
) -> None:
    enforcer = Enforcer(backend)
    enforcer.apply(to_document(before))
    report = enforcer.apply_delta(diff(before, after), desired=never)
    assert report.applied and not report.transaction.created_table
    by_delta = kernel_state(backend)
    assert by_delta is not None
    assert by_delta == after_full_apply(backend, after)


def test_after_a_delta_a_full_apply_of_the_same_ruleset_changes_nothing_and_lists_nothing(
    backend: LibnftablesBackend,
) -> None:
    counting = CountingBackend(backend)
    enforcer = Enforcer(counting)
    after = compiled(*PODS, ALLOW_80_81)
    enforcer.apply(to_document(BEFORE))
    enforcer.apply_delta(diff(BEFORE, after), desired=never)
    listed = counting.listings
    assert enforcer.apply(to_document(after)).transaction.empty
    assert counting.listings == listed


def test_settling_folds_what_deltas_left_pending_and_the_table_stays_what_the_enforcer_trusts(
    backend: LibnftablesBackend,
) -> None:
    peers = [pod(f"x/a{i}", {"pod": "a"}, node="node-2", ips=[f"10.77.3.{i}"]) for i in range(1, 41)]
    grown = compiled(NODE_2, *PODS, *peers, ALLOW_80)
    enforcer = Enforcer(backend)
    enforcer.apply(to_document(BEFORE))
    enforcer.apply_delta(diff(BEFORE, grown), desired=never)
    patched = enforcer.committed
    enforcer.settle()
    settled = enforcer.committed
    assert patched is not None and settled is not None and settled is not patched
    assert settled == patched == enforcer.desired_state(to_document(grown))
    enforcer.apply_delta(diff(grown, BEFORE), desired=never)
    assert enforcer.committed == enforcer.desired_state(to_document(BEFORE))
    assert kernel_state(backend) == after_full_apply(backend, BEFORE)


def test_an_empty_delta_costs_the_handle_check_only(backend: LibnftablesBackend) -> None:
    counting = CountingBackend(backend)
    enforcer = Enforcer(counting)
    enforcer.apply(to_document(BEFORE))
    runs, listed, handles = len(counting.runs), counting.listings, counting.handles
    report = enforcer.apply_delta(RulesetDelta(), desired=never)
    assert report.transaction.empty and not report.applied
    assert (len(counting.runs), counting.listings, counting.handles) == (runs, listed, handles + 1)


def test_a_rejected_delta_changes_nothing_and_the_next_one_applies_in_full(backend: LibnftablesBackend) -> None:
    counting = CountingBackend(backend)
    enforcer = Enforcer(counting)
    enforcer.apply(to_document(BEFORE))
    before = kernel_state(backend)
    after = compiled(*PODS, ALLOW_80_81)
    ghost = Chain("looks-up-a-ghost", (Rule((Lookup((Key.IP_SADDR,), "ghost"), Verdict.ACCEPT)),))
    bad = diff(BEFORE, after)
    bad = dataclasses.replace(bad, chains=(*bad.chains, ghost))
    with pytest.raises(NftApplyError):
        enforcer.apply_delta(bad, desired=never)
    assert kernel_state(backend) == before
    listed = counting.listings
    enforcer.apply_delta(diff(BEFORE, after), desired=lambda: to_document(after))
    assert counting.listings == listed + 1, "the call after a rejection did not read the kernel"
    assert Enforcer(backend).plan(to_document(after)).empty


def test_a_table_deleted_behind_our_back_makes_the_delta_fall_back(backend: LibnftablesBackend) -> None:
    enforcer = Enforcer(backend)
    enforcer.apply(to_document(BEFORE))
    backend.run({"nftables": [{"delete": {"table": {"family": "inet", "name": "policyctl"}}}]})
    after = compiled(*PODS, ALLOW_80_81)
    report = enforcer.apply_delta(diff(BEFORE, after), desired=lambda: to_document(after))
    assert report.transaction.created_table
    assert Enforcer(backend).plan(to_document(after)).empty


def test_a_delta_that_does_not_fit_the_last_commit_falls_back_to_a_full_apply(backend: LibnftablesBackend) -> None:
    enforcer = Enforcer(backend)
    enforcer.apply(to_document(BEFORE))
    after = compiled(*PODS, ALLOW_80_81)
    unrelated = RulesetDelta(removed_chains=("no-such-chain",))
    enforcer.apply_delta(unrelated, desired=lambda: to_document(after))
    assert Enforcer(backend).plan(to_document(after)).empty


def listed_handle(backend: LibnftablesBackend, family: str, name: str) -> int | None:
    return handle_from_listing(backend.run({"nftables": [{"list": {"tables": None}}]}), family, name)


def test_the_netlink_handle_agrees_with_the_libnftables_listing(backend: LibnftablesBackend, node: Node) -> None:
    command = NftCommandBackend(netns=node.node.name)
    assert backend.table_handle("inet", "policyctl") is None
    Enforcer(backend).apply(to_document(BEFORE))
    backend.run({"nftables": [{"add": {"table": {"family": "ip", "name": "policyctl"}}}]})
    first = backend.table_handle("inet", "policyctl")
    assert first is not None
    assert first == listed_handle(backend, "inet", "policyctl") == command.table_handle("inet", "policyctl")
    assert backend.table_handle("ip", "policyctl") == listed_handle(backend, "ip", "policyctl") != first
    backend.run({"nftables": [{"delete": {"table": {"family": "inet", "name": "policyctl"}}}]})
    assert backend.table_handle("inet", "policyctl") is None
    backend.run({"nftables": [{"add": {"table": {"family": "inet", "name": "policyctl"}}}]})
    second = backend.table_handle("inet", "policyctl")
    assert second is not None and second != first
    assert second == listed_handle(backend, "inet", "policyctl")


def test_a_failing_netlink_query_falls_back_to_the_listing(
    backend: LibnftablesBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    Enforcer(backend).apply(to_document(BEFORE))

    def refuse(self: object, family: str, name: str) -> NoReturn:
        raise OSError("netlink refused")

    monkeypatch.setattr("policyctl.enforcer.backend._Nfnetlink.handle", refuse)
    handle = backend.table_handle("inet", "policyctl")
    assert handle is not None and handle == listed_handle(backend, "inet", "policyctl")


def _comments(state: TableState | None, chains: Collection[str] | None = None) -> set[str]:
    """The rule comments of ``state``'s chains (of those named in ``chains`` only)."""
    assert state is not None
    return {str(r.body.get("comment")) for name, c in state.chains.items() if chains is None or name in chains
            for r in c.rules if r.body.get("comment")}


ALSO_80 = policy("x/allow-too", {"pod": "b"}, ingress=[rule(pod_peer({"pod": "a"}), ports=[port(80)])])
TWICE = compiled(*PODS, ALLOW_80, ALSO_80)
"""BEFORE with a second policy naming the same peers and port: the rules of the chains kept
change their comments only; pod b, whose drop comment names its isolating policies, moves to
another pod chain."""


def _renamed_unsent(backend: LibnftablesBackend) -> Enforcer:
    """An enforcer that applied BEFORE -> TWICE as a delta, its renames left for later."""
    enforcer = Enforcer(backend)
    enforcer.apply(to_document(BEFORE))
    report = enforcer.apply_delta(diff(BEFORE, TWICE), desired=never, renames_later=True)
    assert not report.transaction.chains_replaced
    return enforcer


def test_rules_renamed_by_a_second_source_wait_for_settle_then_equal_a_full_apply(
    backend: LibnftablesBackend,
) -> None:
    enforcer = _renamed_unsent(backend)
    kept = {c.name for c in BEFORE.chains} & {c.name for c in TWICE.chains}
    assert any("x/allow " in c for c in _comments(kernel_state(backend), kept))
    assert not any("x/allow-too" in c for c in _comments(kernel_state(backend), kept))
    enforcer.settle()
    settled = kernel_state(backend)
    assert any("x/allow-too" in c for c in _comments(settled))
    assert settled == enforcer.committed == after_full_apply(backend, TWICE)


@pytest.mark.parametrize("then", ["read-back", "whole-apply", "next-delta"])
def test_renames_left_unsent_reach_the_kernel_with_whatever_the_enforcer_does_next(
    backend: LibnftablesBackend, then: str
) -> None:
    enforcer = _renamed_unsent(backend)
    if then == "read-back":
        assert enforcer.verify(never) is not None
    elif then == "whole-apply":
        enforcer.apply(to_document(TWICE))
    else:
        enforcer.apply_delta(RulesetDelta(), desired=never, renames_later=True)
    assert any("x/allow-too" in c for c in _comments(kernel_state(backend)))
    assert kernel_state(backend) == enforcer.committed == after_full_apply(backend, TWICE)


B_TWIN = pod("x/b-twin", {"pod": "b"}, node="node-1", ips=["10.77.2.9"])
"""A second local pod that ALLOW_80 isolates: deleting it leaves its allow elements for later."""


def _removals_unsent(backend: LibnftablesBackend) -> tuple[Enforcer, NodeCompiler, RulesetDelta]:
    """An enforcer that applied the step deleting B_TWIN as a delta, the removals that no
    packet reaches any more left for later; with the compiler and what it left."""
    compiler = NodeCompiler("node-1")
    compiler.update(cluster(*PODS, B_TWIN, ALLOW_80))
    enforcer = Enforcer(backend)
    enforcer.apply(to_document(compiler.ruleset))
    now, later = compiler.split_unreachable(compiler.update(cluster(*PODS, ALLOW_80)))
    assert later.removed_elements
    report = enforcer.apply_delta(now, desired=never, later=later)
    assert report.transaction.elements_removed == sum(len(e) for _, e in now.removed_elements + now.removed_entries)
    return enforcer, compiler, later


def _holding(state: TableState | None, removals: RulesetDelta) -> set[str]:
    """The sets ``removals`` removes from that hold B_TWIN's address in ``state``."""
    assert state is not None
    listed = {name: repr(list(state.sets[name].elements.values())) for name, _ in removals.removed_elements}
    return {name for name, text in listed.items() if "10.77.2.9" in text}


def test_removals_left_for_later_stay_in_the_kernel_until_settle_then_the_table_equals_a_full_apply(
    backend: LibnftablesBackend,
) -> None:
    enforcer, compiler, later = _removals_unsent(backend)
    assert _holding(kernel_state(backend), later) == {name for name, _ in later.removed_elements}
    enforcer.settle()
    settled = kernel_state(backend)
    assert _holding(settled, later) == set()
    assert settled == enforcer.committed == after_full_apply(backend, compiler.ruleset)


@pytest.mark.parametrize("then", ["read-back", "whole-apply", "next-delta"])
def test_removals_left_unsent_reach_the_kernel_with_whatever_the_enforcer_does_next(
    backend: LibnftablesBackend, then: str
) -> None:
    enforcer, compiler, later = _removals_unsent(backend)
    if then == "read-back":
        assert enforcer.verify(never) is not None
    elif then == "whole-apply":
        enforcer.apply(to_document(compiler.ruleset))
    else:
        enforcer.apply_delta(RulesetDelta(), desired=never)
    enforcer.settle()  # nothing is left to send twice
    assert _holding(kernel_state(backend), later) == set()
    assert kernel_state(backend) == enforcer.committed == after_full_apply(backend, compiler.ruleset)
