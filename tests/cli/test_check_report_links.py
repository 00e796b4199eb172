"""Where a report points: SARIF rules to their documentation, GitHub annotations only to files."""

from __future__ import annotations

import json
import re

import pytest

from policyctl.verifier.lint import RULES
from tests.cli.conftest import REPO, WEBSHOP, write

LINT_DOC = REPO / "docs" / "lint.md"
ANCHORS = set(re.findall(r"^## ([a-z0-9-]+)$", LINT_DOC.read_text(encoding="utf-8"), flags=re.MULTILINE))
BROKEN = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  name: y\n"


def sarif_rules(run, *args: str, input: str | None = None) -> dict[str, dict]:
    result = run("check", *args, "-o", "sarif", input=input)
    assert result.exit_code in (0, 1, 2), result.output
    return {rule["id"]: rule for rule in json.loads(result.stdout)["runs"][0]["tool"]["driver"]["rules"]}


@pytest.mark.parametrize("code", sorted(RULES))
def test_every_lint_rule_has_its_section_in_docs_lint_md(code: str) -> None:
    assert code in ANCHORS
    assert RULES[code].help in LINT_DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "stdin", "code", "anchor"),
    [
        pytest.param(("-f", str(WEBSHOP)), None, "split-peer-selectors", "split-peer-selectors", id="lint-rule"),
        pytest.param(("-f", str(WEBSHOP)), None, "defaulted-policy-types", "defaulted-policy-types", id="info-rule"),
        pytest.param(("-f", "-"), BROKEN, "duplicate-key", "input-errors", id="input-error"),
    ],
)
def test_sarif_rules_link_to_their_documentation(run, args, stdin, code: str, anchor: str) -> None:
    rule = sarif_rules(run, *args, input=stdin)[code]
    assert rule["helpUri"].endswith(f"/docs/lint.md#{anchor}")
    assert anchor in ANCHORS


@pytest.mark.parametrize(
    ("source", "properties", "message_start"),
    [
        pytest.param("file", "file={path},line=5,", "key", id="a-file-is-annotated-at-its-line"),
        pytest.param("stdin", "title=", "<stdin> line 5: key", id="stdin-has-no-file-property-and-keeps-its-line"),
    ],
)
def test_github_annotations_point_only_at_files(
    run, tmp_path, source: str, properties: str, message_start: str
) -> None:
    path = write(tmp_path, "ns.yaml", BROKEN)
    result = run("check", "-f", path if source == "file" else "-", "-o", "github",
                 input=BROKEN if source == "stdin" else None)  # fmt: skip
    annotation = next(line for line in result.stdout.splitlines() if line.startswith("::error"))
    head, _, message = annotation.partition("::")[2].partition("::")
    assert result.exit_code == 2
    assert ("file=" in head) is (source == "file")
    assert head.split(" ", 1)[1].startswith(properties.format(path=path.replace(":", "%3A")))
    assert message.startswith(message_start)
