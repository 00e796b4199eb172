"""The update storm's convergence check (``bench.storm.programmed``) in the marked layout: a
table holds a whole compile when every peer reaches the chain the compile sends it to and the
rest equals the compile renumbered with the table's own numbers (an agent keeps numbers as
state, a whole compile numbers afresh). Read from our own documents here, as the kernel lists
them in the storm's lab tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, assume, given, reject, settings
from hypothesis import strategies as st

from policyctl.bench.storm import marked_numbers, marked_reach, programmed
from policyctl.compiler.compile import compile_node
from policyctl.compiler.incremental import NodeCompiler
from policyctl.compiler.markedpeers import IdentityMark, numbered_as
from policyctl.compiler.render_json import to_document
from policyctl.compiler.ruleset import Goto, Ruleset
from policyctl.enforcer.apply import Enforcer
from policyctl.enforcer.errors import RulesetError
from policyctl.enforcer.tables import TableState, read_table
from policyctl.policy.cluster import Cluster
from tests.builders import cluster, namespace, node, pod, pod_peer, policy, port, rule
from tests.strategies import cluster_events, clusters, node_with_pods

MARK = IdentityMark(0x000F0000)


class _Listed:
    """A backend whose table lists as ``ruleset``'s document (our documents are written in
    the listing's format)."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.document = to_document(ruleset)

    def list_table(self, family: str, table: str) -> Mapping[str, Any]:
        return self.document


def _listed(ruleset: Ruleset) -> TableState:
    """The table as the kernel would list it. A ruleset the enforcer refuses (two local pods
    at one address with different chains: a dispatch map with that address twice) is never
    in a kernel, so there is nothing to check."""
    try:
        return read_table(to_document(ruleset), family="inet", table="policyctl")
    except RulesetError:
        reject()


def _programmed(held: Ruleset, expected: Ruleset) -> bool:
    return programmed(Enforcer(_Listed(held)), expected, MARK)  # type: ignore[arg-type]


@st.composite
def _histories(draw: st.DrawFn) -> list[Cluster]:
    current = draw(clusters(max_pods=8, min_pods=3, max_nodes=2, min_policies=1))
    history = [current]
    for _ in range(draw(st.integers(1, 5))):
        current = draw(cluster_events(current))
        history.append(current)
    return history


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=_histories())
def test_a_table_built_by_deltas_holds_the_whole_compile_renumbered_with_its_own_numbers(
    history: list[Cluster],
) -> None:
    """Only histories in which some peer reaches an identity chain through its number count:
    without one the table has no numbers to read and the check is the plain equality."""
    name = node_with_pods(history)
    compiler = NodeCompiler(name, identity_mark=MARK)
    numbered = False
    for snapshot in history:
        compiler.update(snapshot)
        whole = compile_node(snapshot, name, identity_mark=MARK)
        carried, targets = marked_numbers(_listed(compiler.ruleset), MARK)
        numbered = numbered or any(marked_reach(carried, targets).values())
        assert numbered_as(whole, MARK, carried, targets) == compiler.ruleset
        assert _programmed(compiler.ruleset, whole)
    assume(numbered)


WORLD = cluster(
    namespace("x"), node("node-1", "192.168.0.1"), node("node-2", "192.168.0.2"),
    pod("x/web", {"app": "web"}, node="node-1", ips=["10.0.1.10"]),
    pod("x/api-1", {"app": "api"}, node="node-2", ips=["10.0.2.10"]),
    pod("x/admin-1", {"role": "admin"}, node="node-2", ips=["10.0.2.20"]),
    policy("x/web", {"app": "web"}, ingress=[rule(pod_peer({"app": "api"}), ports=[port(80)]),
                                             rule(pod_peer({"role": "admin"}), ports=[port(8080)])]),
)  # fmt: skip
WHOLE = compile_node(WORLD, "node-1", identity_mark=MARK)


def _swapped(ruleset: Ruleset) -> Ruleset:
    """The identity map's two entries jump to each other's chain."""
    (identities,) = [m for m in ruleset.maps if m.name == "in-identities-v4"]
    (a, to_a), (b, to_b) = identities.elements
    swapped = dataclasses.replace(identities, elements=((a, to_b), (b, to_a)))
    return dataclasses.replace(ruleset, maps=tuple(swapped if m is identities else m for m in ruleset.maps))


def _pruned(ruleset: Ruleset) -> Ruleset:
    """The tree without marks has lost the rule of one number."""
    leaf = next(c for c in ruleset.chains if c.name.startswith("in-foreign-b") and any(
        isinstance(s, Goto) and s.target.startswith("in-from-") for r in c.rules for s in r.statements))
    pruned = dataclasses.replace(leaf, rules=leaf.rules[1:])
    return dataclasses.replace(ruleset, chains=tuple(pruned if c is leaf else c for c in ruleset.chains))


def test_the_whole_compile_itself_is_programmed() -> None:
    assert _programmed(WHOLE, WHOLE)


def test_peers_sent_to_each_other_s_chain_are_not_programmed() -> None:
    held = _swapped(WHOLE)
    assert marked_reach(*marked_numbers(read_table(to_document(held), family="inet", table="policyctl"), MARK)) != (
        marked_reach(*marked_numbers(read_table(to_document(WHOLE), family="inet", table="policyctl"), MARK)))
    assert not _programmed(held, WHOLE)


def test_a_tree_without_a_number_s_rule_is_not_programmed() -> None:
    assert not _programmed(_pruned(WHOLE), WHOLE)
