"""Property: no manifest, however broken, makes ``check`` or ``matrix`` crash or misreport.

Mutated manifests (wrong types, missing and unknown fields, unicode, deep nesting, huge
numbers, anchors and aliases, merge keys, cut or corrupted text, other encodings) are run
through the real CLI entry point, and each run must end with exit 0, 1 or 2 (never 3, an
internal error), print no traceback, and give every error as ``file:line: error: field:
message`` with a line that exists in the file.

A few hundred examples run with the suite; ``pytest -m slow`` runs 10,000.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyctl.cli.main import main
from tests.manifests.fuzzmanifests import (
    ODD_VALUES,
    SEEDS,
    Manifest,
    deep_copy,
    delete,
    dump,
    nest,
    places,
    replace,
    text_mutations,
)

ERROR_LINE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): error:(?P<rest>.*)$")
FIELD = re.compile(r"^ (?P<field>\S[^:]*): \S")
TEXT_MUTATIONS = text_mutations()
ODD_KEYS = ("zz", "名前", "on", "1", "<<", "")

#: Each draw of an odd value is a copy: a later step of the same story may change what it put in
#: place (a key added, an item replaced), and a change to ``ODD_VALUES`` itself would make later
#: examples differ from what their choices drew (hypothesis: FlakyStrategyDefinition).
odd_values = st.sampled_from(ODD_VALUES).map(deep_copy)
values = (
    odd_values
    | st.integers()
    | st.floats()
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
)


@st.composite
def manifests(draw: st.DrawFn) -> Manifest:
    documents = [deep_copy(d) for d in yaml.safe_load_all(draw(st.sampled_from(SEEDS)))]
    story: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, len(documents) - 1))
        spots = places(documents[index])
        path = draw(st.sampled_from(spots))
        operation = draw(st.sampled_from(("replace", "delete", "unknown", "nest", "share")))
        if operation == "replace":
            value = draw(values)
            documents[index] = replace(documents[index], path, value)
        elif operation == "delete":
            documents[index] = delete(documents[index], path)
        elif operation == "unknown":
            target = documents[index]
            for part in path:
                target = target[part]
            if isinstance(target, dict):
                target[draw(st.sampled_from(ODD_KEYS))] = draw(values)
        elif operation == "nest":
            depth = draw(st.sampled_from((2, 40, 199, 200, 201, 600, 1500)))
            documents[index] = replace(documents[index], path, nest(depth, in_lists=draw(st.booleans())))
        else:
            other = draw(st.sampled_from(spots))
            source = documents[index]
            for part in other:
                source = source[part]
            if path and not _would_cycle(documents[index], path, source):
                documents[index] = replace(documents[index], path, source)
        story.append(f"{operation} {path}")
    text = dump(documents)
    mutation = draw(st.sampled_from((None, None, *TEXT_MUTATIONS)))
    if mutation is None:
        return Manifest(text.encode(), "; ".join(story))
    data = TEXT_MUTATIONS[mutation](text, draw(st.integers(0, 10**6)))
    return Manifest(data, "; ".join([*story, f"text {mutation}"]))


@given(value=odd_values)
def test_odd_values_are_drawn_as_copies(value: object) -> None:
    assert not any(value is odd for odd in ODD_VALUES if isinstance(odd, (dict, list)))


def _would_cycle(root: object, path: tuple, source: object) -> bool:
    """Whether putting ``source`` at ``path`` makes the tree contain itself: after earlier
    shares, two paths can reach one object, so comparing paths is not enough."""
    ancestors = {id(root)}
    for part in path[:-1]:
        root = root[part]  # type: ignore[index]
        ancestors.add(id(root))
    stack, inside = [source], set()
    while stack:
        value = stack.pop()
        if isinstance(value, (dict, list)) and id(value) not in inside:
            inside.add(id(value))
            stack.extend(value.values() if isinstance(value, dict) else value)
    return bool(ancestors & inside)


def line_count(data: bytes) -> int:
    """Lines as an editor shows them ('\\n'), a last line without one included."""
    utf16 = data.startswith((b"\xff\xfe", b"\xfe\xff"))
    text = data.decode("utf-16" if utf16 else "utf-8", "replace")
    return max(1, text.count("\n") + (0 if text.endswith("\n") else 1))


def assert_clean(output: str, exit_code: int, *, path: str, lines: int) -> None:
    assert exit_code in (0, 1, 2), output
    assert "Traceback" not in output, output
    for line in output.splitlines():
        match = ERROR_LINE.match(line)
        if match is None:
            continue
        assert match["file"] == path, line
        assert FIELD.match(match["rest"]), f"no field: {line}"
        assert 1 <= int(match["line"]) <= lines, f"line outside the file ({lines} lines): {line}"


def run_commands(directory: Path, manifest: Manifest) -> None:
    path = directory / "manifest.yaml"
    path.write_bytes(manifest.data)
    for command in (["check", "-f", str(path)], ["matrix", "-f", str(path)]):
        result = CliRunner().invoke(main, command)
        output = result.stdout + result.stderr
        assert result.exception is None or isinstance(result.exception, SystemExit), (manifest.story, output)
        try:
            assert_clean(output, result.exit_code, path=str(path), lines=line_count(manifest.data))
        except AssertionError as failure:
            raise AssertionError(f"{command[0]} on [{manifest.story}]: {failure}") from None


_SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}


@settings(max_examples=200, **_SETTINGS)
@given(manifest=manifests())
def test_mutated_manifests_end_in_an_answer_or_a_located_error(tmp_path_factory, manifest):
    run_commands(tmp_path_factory.mktemp("fuzz"), manifest)


@pytest.mark.slow
@settings(max_examples=10_000, **_SETTINGS)
@given(manifest=manifests())
def test_ten_thousand_mutated_manifests_end_in_an_answer_or_a_located_error(tmp_path_factory, manifest):
    run_commands(tmp_path_factory.mktemp("fuzz"), manifest)
