"""The marked peer layout's pieces: the mark bits it is given, the numbers of identities, and
the ruleset it writes. That its rulesets decide as the semantics does, step by step as a whole
compile does, and in the kernel, is shown by the differential, incremental and kernel tests."""

from __future__ import annotations

import ipaddress
import random

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from policyctl.agent.config import AgentConfig
from policyctl.cli.main import main as cli
from policyctl.compiler.compile import compile_node
from policyctl.compiler.evaluator import Evaluator, Packet
from policyctl.compiler.layout import foreign_chain_name
from policyctl.compiler.markedpeers import (
    IdentityMark,
    IdentityMarkFull,
    MarkedPeers,
    _hash,
    light_weight,
    number_at,
    numbering,
)
from policyctl.compiler.render_json import to_document
from policyctl.compiler.render_text import render_text
from policyctl.compiler.ruleset import Chain, Hook, Jump, Log, MarkSet, Mode, Rule, Ruleset, Verdict
from policyctl.policy.model import Direction, Family
from tests.builders import cluster, node, pod, pod_peer, policy, port, rule


@pytest.mark.parametrize(
    ("text", "mask"),
    [("0x00ff0000", 0x00FF0000), ("0x3", 0x3), ("196608", 0x00030000), ("0xffffffff", 0xFFFFFFFF)],
)
def test_a_mask_of_two_or_more_bits_is_read_in_any_integer_notation(text: str, mask: int) -> None:
    assert IdentityMark.parse(text).mask == mask


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "non-zero 32-bit mask"),
        ("0x100000000", "non-zero 32-bit mask"),
        ("-1", "non-zero 32-bit mask"),
        ("0x4000", "has one bit"),
        ("ff0000", "such as 0x00ff0000"),
        ("", "such as 0x00ff0000"),
    ],
)
def test_a_mask_that_cannot_number_identities_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IdentityMark.parse(text)


@pytest.mark.parametrize(
    ("mask", "number", "value"),
    [
        (0x00050000, 1, 0x00010000), (0x00050000, 2, 0x00040000), (0x00050000, 3, 0x00050000), (0x3, 2, 0x2),
        (0xFFFF0000, 1, 0x00010000), (0xFFFF0000, 0xFFFF, 0xFFFF0000), (0x00FF0000, 0xA5, 0x00A50000),
        (0x80000001, 3, 0x80000001), (0x80000001, 2, 0x80000000),
    ],
)
def test_a_number_is_spread_over_the_mask_bits_lowest_first(mask: int, number: int, value: int) -> None:
    assert IdentityMark(mask).value(number) == value


def test_setting_and_clearing_the_bits_keeps_every_other_bit() -> None:
    mark = IdentityMark(0x00070000)
    foreign = 0xA5A0A5A5
    assert mark.clear.apply(foreign | 0x00070000) == foreign
    assert MarkSet(bits=0x00020000).apply(foreign) == foreign | 0x00020000
    with pytest.raises(ValueError):
        MarkSet()


NAME = st.text("0123456789abcdef", min_size=12, max_size=12).map(lambda h: f"in-from-{h}")
SIZES = st.dictionaries(NAME, st.integers(0, 5000), max_size=7)


@given(SIZES, st.randoms(use_true_random=False))
def test_numbers_are_distinct_in_range_and_a_function_of_the_names_and_sizes_alone(
    sizes: dict[str, int], rng: random.Random
) -> None:
    mark = IdentityMark(0x00070000)
    numbers = numbering(sizes, mark)
    shuffled = list(sizes.items())
    rng.shuffle(shuffled)
    assert numbering(dict(shuffled), mark) == numbers
    assert len(set(numbers.values())) == len(sizes)
    assert all(1 <= n <= mark.capacity for n in numbers.values())


def probed(sizes: dict[str, int], mark: IdentityMark) -> dict[str, int]:
    """The numbering's rule, one index at a time: in order of size's power of two (larger
    first) then name, each name takes its light number's index or the next free one, wrapping."""
    light = sum(1 for i in range(mark.capacity) if number_at(len(mark.positions), i).bit_count()
                <= light_weight(len(mark.positions)))
    taken: set[int] = set()
    numbers = {}
    for name in sorted(sizes, key=lambda n: (-sizes[n].bit_length(), n)):
        at = _hash(name) % light
        while at in taken:
            at = (at + 1) % mark.capacity
        taken.add(at)
        numbers[name] = number_at(len(mark.positions), at)
    return numbers


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([0x00030000, 0x000F0000, 0x003F0000]), st.data())
def test_numbers_are_the_first_free_index_from_each_name_s_light_number_even_when_full(
    mask: int, data: st.DataObject
) -> None:
    """Masks of 2, 4 and 6 bits filled up to every number, so that runs of taken indexes
    wrap around the end."""
    mark = IdentityMark(mask)
    sizes = data.draw(st.dictionaries(NAME, st.integers(0, 70), max_size=mark.capacity))
    assert numbering(sizes, mark) == probed(sizes, mark)


def test_more_identities_than_light_numbers_are_numbered_by_the_same_rule() -> None:
    rng = random.Random(7)
    sizes = {f"in-from-{rng.getrandbits(48):012x}": rng.choice([1, 2, 3, 40, 1000]) for _ in range(1500)}
    assert numbering(sizes, IdentityMark(0xFFFF0000)) == probed(sizes, IdentityMark(0xFFFF0000))


@pytest.mark.parametrize(("bits", "weight"), [(2, 1), (4, 1), (8, 1), (10, 2), (16, 3), (24, 4), (32, 6)])
def test_a_light_number_sets_at_most_a_fifth_of_the_bits(bits: int, weight: int) -> None:
    assert light_weight(bits) == weight


@pytest.mark.parametrize("bits", [2, 3, 5, 8, 11])
def test_numbers_run_fewest_bits_first_then_by_value(bits: int) -> None:
    listed = sorted(range(1, 1 << bits), key=lambda n: (n.bit_count(), n))
    assert [number_at(bits, i) for i in range(len(listed))] == listed


def test_a_mask_of_all_32_bits_numbers_without_listing_its_numbers() -> None:
    numbers = numbering({f"in-from-{i:012x}": i for i in range(50)}, IdentityMark(0xFFFFFFFF))
    assert len(set(numbers.values())) == 50
    assert max(n.bit_count() for n in numbers.values()) <= light_weight(32)


def test_numbers_are_light_while_light_numbers_are_free_then_fewest_bits_first() -> None:
    names = [f"in-from-{i:012x}" for i in range(40)]
    assert max(n.bit_count() for n in numbering(dict.fromkeys(names, 1), IdentityMark(0xFFFF0000)).values()) == 3
    assert sorted(numbering(dict.fromkeys(names[:6], 1), IdentityMark(0x000F0000)).values()) == [1, 2, 3, 4, 5, 8]


FIRST, SECOND = "in-from-41cba67efa66", "in-from-dac034466389"
"""Two names whose hashes pick the same light number of three bits (2, the second of 1, 2, 4);
the loser takes the next number, 4."""


def test_two_names_whose_light_number_is_the_same_collide() -> None:
    light = [n for n in range(1, 8) if n.bit_count() <= light_weight(3)]
    assert light == [1, 2, 4]
    assert _hash(FIRST) % len(light) == _hash(SECOND) % len(light) == 1


@pytest.mark.parametrize(
    ("sizes", "winner"),
    [
        ({FIRST: 1, SECOND: 1}, FIRST),
        ({FIRST: 3, SECOND: 2}, FIRST),
        ({FIRST: 40, SECOND: 63}, FIRST),
        ({FIRST: 1, SECOND: 2}, SECOND),
        ({FIRST: 40, SECOND: 4800}, SECOND),
        ({FIRST: 0, SECOND: 1}, SECOND),
    ],
    ids=["equal sizes: name order", "same power of two: name order", "40 and 63: name order",
         "2 over 1", "4800 over 40", "1 over 0"],
)
def test_the_larger_identity_by_power_of_two_keeps_its_number_in_a_collision(
    sizes: dict[str, int], winner: str
) -> None:
    loser = SECOND if winner == FIRST else FIRST
    assert numbering(sizes, IdentityMark(0x00070000)) == {winner: 2, loser: 4}


def test_more_identities_than_numbers_is_an_error_that_asks_for_more_bits() -> None:
    with pytest.raises(IdentityMarkFull, match=r"4 peer identities .* 2 bits .* at most 3: give more bits"):
        numbering(dict.fromkeys((f"in-from-{i:012x}" for i in range(4)), 1), IdentityMark(0x00030000))


WORLD = cluster(
    node("node-1", "10.0.1.1"),
    node("node-2", "10.0.2.1"),
    pod("x/web", {"app": "web"}, node="node-1", ips=["10.0.1.10"]),
    pod("x/api", {"app": "api"}, node="node-2", ips=["10.0.2.10"]),
    policy("x/allow", {"app": "web"}, ingress=[rule(pod_peer({"app": "api"}), ports=[port(80)])]),
)


def test_the_marked_ruleset_has_bit_sets_an_identity_map_and_no_jumping_peer_map() -> None:
    text = render_text(compile_node(WORLD, "node-1", identity_mark=IdentityMark(0x00030000)))
    assert "in-peers-v4" not in text
    assert "meta mark & 0x00030000 == 0 jump in-marked-v4" in text
    assert "meta mark & 0x00030000 != 0 jump in-foreign-v4" in text
    assert "ip saddr @in-peers-b16-v4 meta mark set meta mark | 0x00010000" in text
    assert "meta mark & 0x00030000 vmap @in-identities-v4" in text
    assert "meta mark set meta mark & 0xfffcffff goto in-from-" in text
    assert "type mark : verdict" in text


@st.composite
def _held_numbers(draw: st.DrawFn) -> tuple[IdentityMark, dict[int, str | None]]:
    """Numbers of a mask, each with a chain or retired (None); drawn near one another, so
    that one number's bits often hold another's."""
    mark = IdentityMark(draw(st.sampled_from([0x00000003, 0x000F0000, 0x0F0F0000, 0x00FF0000])))
    seeds = draw(st.lists(st.integers(1, mark.capacity), min_size=1, max_size=6))
    numbers = {n for seed in seeds for n in (seed, *(seed | 1 << i for i in range(len(mark.positions))))}
    kept = draw(st.lists(st.sampled_from(sorted(numbers)), min_size=1, max_size=24, unique=True))
    return mark, {n: draw(st.sampled_from(["in-from-a", "in-from-b", "in-from-c", None])) for n in kept}


@settings(max_examples=300, deadline=None)
@given(_held_numbers())
def test_the_path_without_marks_sends_each_number_s_addresses_to_its_chain_and_retired_ones_nowhere(
    held: tuple[IdentityMark, dict[int, str | None]],
) -> None:
    """The tree's rules look at address membership only (the mark carries another
    component's bits), so the first rule whose bits all hold an address must be its own
    number's: more bits first, and a rule for every retired number that would otherwise fall
    to a number its bits hold."""
    mark, numbers = held
    half = (Direction.INGRESS, Family.IPV4)
    marker = MarkedPeers(mark)
    carried = {ipaddress.ip_address(f"10.0.0.{i + 1}"): n for i, n in enumerate(sorted(numbers))}
    identity = [Chain(c, (Rule((Log(c), Verdict.ACCEPT)),)) for c in ("in-from-a", "in-from-b", "in-from-c")]
    entry = Rule((Jump(foreign_chain_name(*half)),))
    base = Chain("base", (entry,), hook=Hook.INPUT, priority=0, policy=Verdict.ACCEPT)
    ruleset = Ruleset(
        "t", "node-1", Mode.ENFORCE, sets=tuple(marker.bit_sets(half, carried)), maps=(),
        chains=(base, *identity, *marker.foreign_chains(half, numbers).values()),
    )
    evaluator = Evaluator(to_document(ruleset))
    for ip, number in carried.items():
        outcome = evaluator.evaluate("input", Packet(ip, ipaddress.ip_address("10.9.9.9"), 6, 80, mark=mark.mask))
        chain = numbers[number]
        assert outcome.logs == ((chain,) if chain else ()), (f"{number:#b}", sorted(map(bin, numbers)))
        assert outcome.mark == mark.mask


def test_compile_takes_the_mask_by_default_or_none_and_refuses_a_bad_one_naming_the_option(tmp_path: object) -> None:
    from pathlib import Path

    manifest = Path(str(tmp_path)) / "world.yaml"
    manifest.write_text(
        """apiVersion: v1
kind: Pod
metadata: {name: web, namespace: x, labels: {app: web}}
spec: {nodeName: node-1, containers: [{name: c, image: i}]}
status: {podIPs: [{ip: 10.0.1.10}]}
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: x, labels: {app: api}}
spec: {nodeName: node-2, containers: [{name: c, image: i}]}
status: {podIPs: [{ip: 10.0.2.10}]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow, namespace: x}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: api}}}]}]
"""
    )
    runner = CliRunner()
    good = runner.invoke(cli, ["compile", "-f", str(manifest), "--node", "node-1", "--identity-mark", "0x00ff0000"])
    assert good.exit_code == 0, good.output
    assert "meta mark & 0x00ff0000 vmap @in-identities-v4" in good.output
    bad = runner.invoke(cli, ["compile", "-f", str(manifest), "--node", "node-1", "--identity-mark", "0x4000"])
    assert bad.exit_code == 2
    assert "--identity-mark" in bad.output and "has one bit" in bad.output
    default = runner.invoke(cli, ["compile", "-f", str(manifest), "--node", "node-1"])
    assert default.exit_code == 0, default.output
    assert "meta mark & 0xffff0000 vmap @in-identities-v4" in default.output
    jumping = runner.invoke(cli, ["compile", "-f", str(manifest), "--node", "node-1", "--identity-mark", "none"])
    assert jumping.exit_code == 0, jumping.output
    assert "ip saddr vmap @in-peers-v4" in jumping.output and "meta mark" not in jumping.output


def test_compile_with_too_few_bits_for_the_identities_exits_2_asking_for_more(tmp_path: object) -> None:
    from pathlib import Path

    pods = "".join(
        f"""---
apiVersion: v1
kind: Pod
metadata: {{name: p{i}, namespace: x, labels: {{role: r{i}}}}}
spec: {{nodeName: node-{1 if i == 0 else 2}, containers: [{{name: c, image: i}}]}}
status: {{podIPs: [{{ip: 10.0.{1 if i == 0 else 2}.{10 + i}}}]}}
"""
        for i in range(5)
    )
    rules = "".join(f"\n    - from: [{{podSelector: {{matchLabels: {{role: r{i}}}}}}}]" for i in range(1, 5))
    manifest = Path(str(tmp_path)) / "world.yaml"
    manifest.write_text(
        pods
        + f"""---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: allow, namespace: x}}
spec:
  podSelector: {{matchLabels: {{role: r0}}}}
  ingress:{rules}
"""
    )
    result = CliRunner().invoke(cli, ["compile", "-f", str(manifest), "--node", "node-1", "--identity-mark", "0x3"])
    assert result.exit_code == 2, result.output
    assert "4 peer identities" in result.output and "give more bits" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("mask", "problem"), [(None, None), (0x00FF0000, None), (0x4000, "has one bit")])
def test_the_agent_settings_check_the_mask(mask: int | None, problem: str | None) -> None:
    found = [p for p in AgentConfig(node="node-1", identity_mark=mask).validate() if "--identity-mark" in p]
    assert [problem is not None and problem in p for p in found] == ([True] if problem else [])
