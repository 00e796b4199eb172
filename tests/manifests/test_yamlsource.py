"""Reading YAML and JSON with positions, typed the way kubectl's go-yaml v2 types scalars."""

from __future__ import annotations

import json
import math
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policyctl.policy.diagnostics import Severity
from policyctl.manifests.inputlimits import InputLimits
from policyctl.manifests.yamlsource import read_documents


def read(text: str):
    return read_documents(textwrap.dedent(text), source="m.yaml")


def one_value(text: str) -> object:
    documents, diagnostics = read(text)
    assert diagnostics == []
    return documents[0].value


SCALARS = [
    # go-yaml v2 (kubectl's YAML reader) resolves YAML 1.1 booleans, including y/n.
    ("yes-is-true", "yes", True),
    ("y-is-true", "y", True),
    ("on-is-true", "On", True),
    ("off-is-false", "off", False),
    ("n-is-false", "N", False),
    ("quoted-yes-is-text", "'yes'", "yes"),
    ("tagged-str-is-text", "!!str yes", "yes"),
    ("tilde-is-null", "~", None),
    ("decimal", "8080", 8080),
    ("hex", "0x1F", 31),
    ("leading-zero-is-octal", "010", 8),
    ("underscores", "1_000", 1000),
    # strconv.ParseInt fails on 08, then the float pattern takes it.
    ("leading-zero-non-octal-is-float", "08", 8.0),
    ("float-with-dot", "1.0", 1.0),
    ("float-exponent-without-dot", "1e3", 1000.0),
    ("infinity", ".inf", math.inf),
    # Not YAML 1.1 sexagesimal in go-yaml v2, and timestamps stay text.
    ("colon-number-is-text", "1:30", "1:30"),
    ("date-is-text", "2024-01-31", "2024-01-31"),
    ("version-string", "v1.2.3", "v1.2.3"),
]


@pytest.mark.parametrize(("raw", "expected"), [c[1:] for c in SCALARS], ids=[c[0] for c in SCALARS])
def test_unquoted_scalars_are_typed_as_kubectl_types_them(raw, expected):
    assert one_value(f"key: {raw}\n") == {"key": expected}


def test_line_of_points_at_keys_items_and_the_deepest_existing_node():
    documents, _ = read(
        """\
        # a comment
        metadata:
          name: web
        spec:
          ingress:
          - from:
            - podSelector: {}
            - ipBlock:
                cidr: 10.0.0.0/8
        """
    )
    document = documents[0]
    assert document.line_of(()) == 2
    assert document.line_of(("metadata",)) == 2
    assert document.line_of(("metadata", "name")) == 3
    assert document.line_of(("spec", "ingress", 0)) == 6
    assert document.line_of(("spec", "ingress", 0, "from", 1, "ipBlock", "cidr")) == 9
    assert document.line_of(("spec", "ingress", 0, "from", 1, "ipBlock", "except", 0)) == 8
    assert document.line_of(("spec", "egress", 3)) == 4


def test_duplicate_key_is_an_error_at_the_second_key():
    documents, diagnostics = read(
        """\
        metadata:
          name: first
          labels: {}
          name: second
        """
    )
    (diagnostic,) = diagnostics
    assert (diagnostic.line, diagnostic.code, diagnostic.field) == (4, "duplicate-key", "metadata.name")
    assert diagnostic.severity is Severity.ERROR
    assert "line 2" in diagnostic.message
    assert documents[0].has_defect_under(("metadata",))
    assert documents[0].has_defect_under(())
    assert not documents[0].has_defect_under(("spec",))


def test_malformed_yaml_is_a_diagnostic_with_its_line_and_keeps_earlier_documents():
    documents, diagnostics = read(
        """\
        kind: Namespace
        ---
        kind: Pod
        metadata:
          name: [unclosed
        """
    )
    assert [d.value for d in documents] == [{"kind": "Namespace"}]
    (diagnostic,) = diagnostics
    assert diagnostic.code == "yaml-syntax" and diagnostic.severity is Severity.ERROR
    # The parser stops at the end of the text; the line is the file's last, never past it.
    assert (diagnostic.line, diagnostic.field) == (5, "metadata.name")
    assert str(diagnostic).startswith("m.yaml:5: error: metadata.name: malformed YAML")


def test_bad_indentation_is_a_diagnostic_not_a_traceback():
    _, diagnostics = read("a:\n  b: 1\n c: 2\n")
    assert [(d.code, d.line) for d in diagnostics] == [("yaml-syntax", 3)]


def test_documents_keep_their_index_and_helm_source_comment():
    documents, _ = read(
        """\
        ---
        # Source: shop/templates/namespace.yaml
        kind: Namespace
        ---
        ---
        # Source: shop/templates/policy.yaml
        kind: NetworkPolicy
        """
    )
    assert [(d.index, d.value, d.source_comment) for d in documents] == [
        (0, {"kind": "Namespace"}, "shop/templates/namespace.yaml"),
        (1, None, None),
        (2, {"kind": "NetworkPolicy"}, "shop/templates/policy.yaml"),
    ]


def test_json_with_tabs_reads_with_lines():
    text = '{\n\t"kind": "Pod",\n\t"metadata": {\n\t\t"name": "a"\n\t}\n}\n'
    documents, diagnostics = read_documents(text, source="p.json")
    assert diagnostics == []
    assert documents[0].value == {"kind": "Pod", "metadata": {"name": "a"}}
    assert documents[0].line_of(("metadata", "name")) == 4


def test_merge_keys_merge_and_explicit_keys_after_them_win():
    value = one_value(
        """\
        base: &base {app: web, tier: front}
        labels:
          <<: *base
          tier: back
        """
    )
    assert value["labels"] == {"app": "web", "tier": "back"}


def test_recursive_alias_is_a_diagnostic():
    documents, diagnostics = read("a: &x [1, *x]\n")
    assert [d.code for d in diagnostics] == ["yaml-recursive-alias"]
    assert documents[0].value == {"a": [1, None]}


def test_boolean_key_becomes_true_with_a_warning():
    """kubectl's YAML-to-JSON step writes a boolean key as "true"/"false"."""
    documents, diagnostics = read("labels:\n  on: x\n")
    assert documents[0].value == {"labels": {"true": "x"}}
    assert [(d.severity, d.code, d.line) for d in diagnostics] == [
        (Severity.WARNING, "yaml-boolean-key", 2)
    ]


def test_scalar_keeps_raw_text_and_style():
    documents, _ = read("a: yes\nb: 'yes'\n")
    assert documents[0].scalar_at(("a",)).raw == "yes"
    assert documents[0].scalar_at(("a",)).plain
    assert not documents[0].scalar_at(("b",)).plain


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(max_codepoint=0xFFFF, exclude_categories=("Cs",)), max_size=12),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@given(JSON_VALUES)
@settings(max_examples=150)
def test_any_json_document_reads_back_unchanged(value):
    """JSON is read as YAML; every JSON value must come back exactly."""
    documents, diagnostics = read_documents(json.dumps({"v": value}), source="v.json")
    assert diagnostics == []
    assert documents[0].value == {"v": value}


# -- go-yaml v2 numbers: never an unbounded integer ------------------------------------------

NUMBERS = [
    ("int64-max-is-an-integer", "9223372036854775807", 2**63 - 1),
    ("uint64-max-is-an-integer", "18446744073709551615", 2**64 - 1),
    ("past-uint64-is-a-float", "18446744073709551616", 18446744073709551616.0),
    ("signed-past-int64-is-a-float", "+9223372036854775808", 9223372036854775808.0),
    ("overflowing-float-is-text", "1" * 400, "1" * 400),
    ("huge-hex-is-text", "0x" + "f" * 40, "0x" + "f" * 40),
    ("long-octal-of-zeros-is-small", "0" * 50 + "7", 7),
    ("dot-float", ".5", 0.5),
]


@pytest.mark.parametrize(("raw", "expected"), [c[1:] for c in NUMBERS], ids=[c[0] for c in NUMBERS])
def test_unquoted_numbers_are_read_as_go_yaml_reads_them(raw, expected):
    assert one_value(f"key: {raw}\n") == {"key": expected}


def test_a_number_longer_than_the_limit_is_an_error_at_its_field():
    documents, diagnostics = read_documents(
        "spec:\n  port: " + "9" * 5000 + "\n", source="m.yaml", limits=InputLimits(max_number_digits=100)
    )
    assert [(d.code, d.line, d.field) for d in diagnostics] == [("number-too-long", 2, "spec.port")]
    assert documents[0].value == {"spec": {"port": "9" * 5000}}


# -- limits -----------------------------------------------------------------------------------

LIMITS = [
    # (name, text, limits, (code, line, field))
    ("nesting", "a:\n  b:\n    c:\n      d: [[1]]\n", InputLimits(max_depth=3), ("yaml-too-deep", 4, "a.b.c")),
    ("flow-nesting", "x: " + "[" * 300 + "]" * 300 + "\n", InputLimits(),
     ("yaml-too-deep", 1, "x[0][0][0][0][0][0][0].…187 more…[0][0][0][0]")),
    ("documents", "a: 1\n---\nb: 2\n---\nc: 3\n", InputLimits(max_documents=2),
     ("too-many-documents", 4, "(document)")),
    ("aliases", "a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b]\n", InputLimits(max_alias_nodes=30),
     ("yaml-too-large", 3, "c")),
]  # fmt: skip


@pytest.mark.parametrize(("text", "limits", "expected"), [c[1:] for c in LIMITS], ids=[c[0] for c in LIMITS])
def test_a_crossed_limit_is_one_error_with_line_and_field_and_stops_the_file(text, limits, expected):
    _, diagnostics = read_documents(text, source="m.yaml", limits=limits)
    assert [(d.code, d.line, d.field) for d in diagnostics] == [expected]


def test_billion_laughs_is_refused_quickly():
    text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(9)
    )
    _, diagnostics = read_documents(text, source="m.yaml")
    assert [d.code for d in diagnostics] == ["yaml-too-large"]


# -- positions --------------------------------------------------------------------------------

MIXED = """\
# Source: chart/templates/a.yaml
kind: Pod
metadata:
  name: a
  labels: {app: web, "on": x}
spec:
  containers:
  - name: c
    ports:
    - containerPort: 80
---
kind: List
items:
- kind: Pod
  metadata: {name: b}
- kind: Pod
  metadata:
    name: c
"""


def test_lines_recorded_on_first_use_equal_the_lines_of_a_full_recording():
    lazy, _ = read_documents(MIXED, source="m.yaml")
    # An anchor sends every document through the recording reader, which keeps every line.
    recorded, _ = read_documents(MIXED.replace("name: c\n", "name: &n c\n"), source="m.yaml")
    for fast, full in zip(lazy, recorded, strict=True):
        assert dict(fast.lines) == dict(full.lines)
        assert {p: s.raw for p, s in fast.scalars.items()} == {p: s.raw for p, s in full.scalars.items()}
    assert lazy[0].line_of(("spec", "containers", 0, "ports", 0, "containerPort")) == 10
    assert lazy[1].line_of(("items", 1, "metadata", "name")) == 18
    assert lazy[0].source_comment == "chart/templates/a.yaml"


def test_aliased_values_keep_the_lines_of_their_anchor():
    documents, diagnostics = read("a: &x\n  b: 1\n  c: [2]\nd: *x\n")
    assert diagnostics == []
    assert documents[0].value == {"a": {"b": 1, "c": [2]}, "d": {"b": 1, "c": [2]}}
    assert documents[0].line_of(("d",)) == 4
    assert documents[0].line_of(("d", "c", 0)) == 3


def test_merge_of_a_list_gives_earlier_mappings_precedence_as_go_yaml_v2():
    value = one_value(
        """\
        a: &a {p: 1, q: 1}
        b: &b {q: 2, r: 2}
        c:
          <<: [*a, *b]
          r: 3
        """
    )
    assert value["c"] == {"p": 1, "q": 1, "r": 3}


ODD_BREAKS = [
    ("lone-cr", "a: 1\rb: 2\n  c: [\n"),
    ("line-separator", 'a: "x\u2028y"\nb: 2\n  c: [\n'),
    ("next-line", "a: 1\x85\nb: 2\n  c: [\n"),
]


@pytest.mark.parametrize("text", [c[1] for c in ODD_BREAKS], ids=[c[0] for c in ODD_BREAKS])
def test_lines_are_counted_as_editors_count_them_not_as_libyaml_does(text):
    _, diagnostics = read_documents(text, source="m.yaml")
    (diagnostic,) = diagnostics
    assert 1 <= diagnostic.line <= text.count("\n")


def test_a_forbidden_character_is_an_error_at_its_line_and_field():
    _, diagnostics = read_documents("a: 1\nmetadata:\n  name: x\x07y\n", source="m.yaml")
    assert [(d.code, d.line, d.field) for d in diagnostics] == [("yaml-syntax", 3, "metadata.name")]
    assert "U+0007" in diagnostics[0].message


def test_nesting_past_libyamls_own_limit_is_no_recursion_error():
    text = "a: " + "{b: " * 1200 + "1" + "}" * 1200 + "\n"
    _, diagnostics = read_documents(text, source="m.yaml", limits=InputLimits(max_depth=1000))
    assert [d.code for d in diagnostics] == ["yaml-syntax"]  # libyaml's own limit
    assert "nesting depth" in diagnostics[0].message
