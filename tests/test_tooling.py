"""The checks that keep the tree's habits: mypy's view of the package and the import contracts.

mypy reads the package through ``.typecheck/policyctl`` (see ``scripts/typecheck-tree``) and
import-linter through ``.importlinter``; both are written by hand beside pyproject.toml's
package-dir, so a package added there and forgotten here would go unchecked without a failure.
"""

import configparser
import os
import runpy
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TREE_SCRIPT = runpy.run_path(str(REPO / "scripts" / "typecheck-tree"))


def _package_dir() -> dict[str, str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]


def test_the_typecheck_tree_links_every_package_where_package_dir_maps_it():
    expected = TREE_SCRIPT["expected_links"]()
    present = set((REPO / ".typecheck" / "policyctl").iterdir())
    assert present == set(expected), "run scripts/typecheck-tree and commit .typecheck"
    for link, target in expected.items():
        assert os.readlink(link) == target, link


def test_every_package_is_a_layer_of_the_import_contracts():
    contracts = configparser.ConfigParser()
    contracts.read(REPO / ".importlinter")
    layers = {
        name.strip()
        for line in contracts["importlinter:contract:layers"]["layers"].split("\n")
        for name in line.split("|")
        if name.strip()
    }
    packages = set(_package_dir()) - {"policyctl"} | {"policyctl.cli"}
    assert packages - layers == set()


def test_cycles_are_forbidden_at_every_depth_of_the_package():
    contracts = configparser.ConfigParser()
    contracts.read(REPO / ".importlinter")
    acyclic = [c for name, c in contracts.items() if name.startswith("importlinter:contract:")
               and c.get("type") == "acyclic_siblings"]
    assert [c["ancestors"].strip() for c in acyclic] == ["policyctl"]
    assert "exclude_type_checking_imports" not in contracts["importlinter"]
