"""Every example in every ``--help`` runs, and ends as documented.

The examples are read from the help text itself (:mod:`tests.cli.helpexamples`) and run with
bash, in order, in a working directory holding a copy of ``examples/`` committed to a fresh git
repository (for ``REV:PATH``), with ``policyctl`` on PATH. Each one is listed in
:data:`EXPECTED` with its exit status and where it can run: an example added to a help without
a line here fails :func:`test_every_example_is_listed`, so none escapes being run.

* ``here``: as is;
* ``cluster``: against a test API server serving the same objects, as context ``prod`` of
  ``~/.kube/config``;
* ``netns``: as root in a network namespace of its own (``unshare --net``), since it applies
  nftables rules;
* ``lab``: as root, building a lab of network namespaces (removed at the end);
* ``serves``: as root in its own network namespace with the test API server; it must still
  be running after a few seconds, and end on Ctrl-C with 0 (the agent) or 130, "interrupted"
  (``tests.cli.daemonexample``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.apiserver.server import FakeApiServer
from tests.cli.conftest import REPO
from tests.cli.helpexamples import command_paths, examples, help_text, stray_commands

BIN = Path(sys.executable).parent
STILL_RUNNING = -1


@dataclass(frozen=True, slots=True)
class Example:
    code: int = 0
    where: str = "here"


EXPECTED: dict[str, Example] = {
    # policyctl
    "policyctl explain -f examples/webshop shop/frontend shop/payments --port 8443/TCP": Example(),
    "policyctl matrix -f examples/webshop --port 8080/TCP": Example(),
    "policyctl matrix -f examples/webshop --port http    # each pod's own port named http": Example(),
    "policyctl check -f examples/webshop          # exit 1: the example's planted mistake": Example(1),
    # agent
    "NODE_NAME=node-1 policyctl agent --kubeconfig ~/.kube/config": Example(STILL_RUNNING, "serves"),
    "policyctl agent --node node-1 --metrics-port 9180 --health-port 9181": Example(STILL_RUNNING, "serves"),
    "policyctl agent --cleanup": Example(0, "netns"),
    "policyctl agent --node node-1 --drop-log-group 100   # then: policyctl drops --agent":
        Example(STILL_RUNNING, "serves"),
    # check: findings (the planted mistake; the generated cluster's unknown named port) exit 1
    "policyctl check -f examples/webshop": Example(1),
    "policyctl check -f examples/webshop --assert examples/assertions/webshop.yaml -o sarif > policyctl.sarif":
        Example(1),
    "policyctl gen --scale tiny | policyctl check -f - -o github": Example(1),
    "policyctl check --context prod -A          # the policies live in a cluster": Example(1, "cluster"),
    # convert
    "policyctl convert -f examples/admin-policies -f examples/webshop -o cnp.yaml": Example(),
    # diff
    "policyctl diff HEAD:examples/webshop examples/webshop     # what the uncommitted edits change": Example(),
    "policyctl diff examples/webshop examples/webshop -o json": Example(),
    # drops
    "policyctl drops -f examples/webshop --group 100": Example(STILL_RUNNING, "serves"),
    # it reads the drops of the agent started with --drop-log-group; with none listening: exit 2, naming the URL
    "policyctl drops --agent http://127.0.0.1:9182 -o json": Example(2, "netns"),
    # status: policies and their Programmed Events, read from the cluster
    "policyctl status": Example(0, "cluster"),
    "policyctl status shop/payments-ingress -o json": Example(1, "cluster"),  # no agent has programmed it
    # enforce
    "policyctl gen --scale tiny > cluster.yaml": Example(),
    "policyctl enforce --node node-1 -f cluster.yaml": Example(0, "netns"),
    "policyctl compile --node node-1 -f cluster.yaml -o json > node-1.json": Example(),
    "policyctl enforce --node node-1 --ruleset node-1.json": Example(0, "netns"),
    "policyctl enforce --node node-1 -f cluster.yaml --dry-run": Example(0, "netns"),
    "policyctl enforce --node node-1 --cleanup": Example(0, "netns"),
    "policyctl enforce --node node-1 -f /dev/null --allow-empty   # empty the node's ruleset": Example(0, "netns"),
    # gen
    "policyctl gen --scale small > cluster.yaml": Example(),
    "policyctl gen --pods 500 --nodes 3 --policies 40 --dual-stack -o json | policyctl matrix -f - --port 8080/TCP":
        Example(),
    # graph
    "policyctl graph -f examples/webshop -o html > flows.html": Example(),
    "policyctl graph -f examples/webshop -o svg --port 8080/TCP > flows.svg": Example(),
    "policyctl graph -f examples/webshop --objects -o json": Example(),
    # lab
    "policyctl lab up -f examples/webshop --name shop": Example(0, "lab"),
    "policyctl lab probe --name shop shop/checkout shop/payments --port https": Example(0, "lab"),
    "policyctl lab probe --name shop shop/frontend shop/postgres --port 5432 --timeout 0.5   # denied: exit 1":
        Example(1, "lab"),
    "policyctl lab exec --name shop shop/frontend -- ip -brief address": Example(0, "lab"),
    "policyctl lab status": Example(0, "lab"),
    "policyctl lab down --name shop": Example(0, "lab"),
}  # fmt: skip

ROOT = ("netns", "lab", "serves")
HELPS = {path: help_text(path) for path in command_paths()}
ALL = {path: examples(text) for path, text in HELPS.items()}
PLAIN = sorted(p for p, found in ALL.items() if found and all(EXPECTED.get(e, Example()).where not in ROOT
                                                           for e in found))
AS_ROOT = sorted(p for p, found in ALL.items() if found and p not in PLAIN)


def _name(path: tuple[str, ...]) -> str:
    return " ".join(path) or "policyctl"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A copy of examples/ committed to a new repository, a HOME, and the test cluster's
    manifests as ``cluster.yaml`` (the objects the test API server serves)."""
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    (tmp_path / "home").mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"]
    for args in (["init", "-q"], ["add", "examples"], ["commit", "-qm", "examples"]):
        subprocess.run([*git, *args], cwd=tmp_path, check=True, capture_output=True)
    generated = subprocess.run([str(BIN / "policyctl"), "gen", "--scale", "tiny"], capture_output=True, text=True,
                               check=True)  # fmt: skip
    (tmp_path / "cluster.yaml").write_text(generated.stdout, encoding="utf-8")
    return tmp_path


def _environment(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "POLICYCTL_DEBUG")}
    return {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "HOME": str(workdir / "home"), "COLUMNS": "120",
            "POLICYCTL_LAB_STATE": str(workdir / "labs")}


def _run(example: str, workdir: Path, server: FakeApiServer | None) -> int:
    expected = EXPECTED[example]
    env = _environment(workdir)
    command = ["bash", "-c", example]
    if expected.where == "cluster":
        assert server is not None
        env["KUBECONFIG"] = server.write_kubeconfig(workdir / "kubeconfig", context="prod")
    elif expected.where == "netns":
        command = ["unshare", "--net", "bash", "-c", example]
    elif expected.where == "serves":
        command = ["unshare", "--net", sys.executable, "-m", "tests.cli.daemonexample", example]
        env["PYTHONPATH"] = str(REPO)
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    if expected.where != "serves":
        return done.returncode
    assert done.returncode == 0, done.stderr[-3000:]
    outcome, _, code = done.stdout.strip().rpartition("\n")[2].partition(" ")
    assert outcome == "stopped", f"{example}: exited {code} at once: {done.stderr[-3000:]}"
    assert code in ("0", "130"), f"{example}: exit {code} on Ctrl-C: {done.stderr[-3000:]}"
    return STILL_RUNNING


def _serve(server: FakeApiServer, workdir: Path) -> None:
    """The generated cluster, and the web shop's namespaces and policies beside it."""
    texts = [(workdir / "cluster.yaml").read_text(encoding="utf-8")]
    texts += [path.read_text(encoding="utf-8") for path in sorted((workdir / "examples" / "webshop").glob("*.yaml"))]
    served: set[tuple[str, str, str]] = set()
    for text in texts:
        for document in yaml.safe_load_all(text):
            if not document or document.get("kind") not in ("Namespace", "Pod", "Node", "NetworkPolicy"):
                continue
            meta = document.get("metadata", {})
            key = (document["kind"], meta.get("namespace", ""), meta["name"])
            if key not in served:
                served.add(key)
                server.create(document)


def _run_all(path: tuple[str, ...], workdir: Path) -> None:
    with FakeApiServer() as server:
        _serve(server, workdir)
        for example in ALL[path]:
            assert _run(example, workdir, server) == EXPECTED[example].code, example


def test_every_example_is_listed() -> None:
    found = [e for found in ALL.values() for e in found]
    assert not [e for e in found if e not in EXPECTED], "add these examples to EXPECTED"
    assert not [e for e in EXPECTED if e not in found], "these examples are no longer in any help"


@pytest.mark.parametrize("path", list(HELPS), ids=_name)
def test_no_command_to_copy_outside_an_examples_block(path: tuple[str, ...]) -> None:
    assert stray_commands(HELPS[path]) == []


@pytest.mark.parametrize("path", PLAIN, ids=_name)
def test_help_examples_run_and_exit_as_documented(path: tuple[str, ...], workdir: Path) -> None:
    _run_all(path, workdir)


@pytest.mark.kernel
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare")
@pytest.mark.parametrize("path", AS_ROOT, ids=_name)
def test_help_examples_run_as_root_and_exit_as_documented(path: tuple[str, ...], workdir: Path) -> None:
    try:
        _run_all(path, workdir)
    finally:
        if path == ("lab",):
            subprocess.run([str(BIN / "policyctl"), "lab", "down", "--name", "shop"], env=_environment(workdir),
                           capture_output=True)  # fmt: skip
