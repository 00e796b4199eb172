"""``policyctl diff REV:PATH``: what a user types never reaches git as an option.

Run as the real process inside a throwaway repository, so that a file git would write (``git
archive --output``) or a command it would run (``--exec``, ``--remote``) would show up.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import WEBSHOP

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    shutil.copytree(WEBSHOP, repo / "shop")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*GIT, "-C", str(repo), "add", "."], check=True)
    subprocess.run([*GIT, "-C", str(repo), "commit", "-qm", "one"], check=True)
    return repo


def _diff(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "policyctl", "diff", "--", *args],
        cwd=repo, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if ".git" not in p.parts}


@pytest.mark.parametrize(
    "old",
    [
        pytest.param("--output=out.tar:HEAD", id="archive-output-option"),
        pytest.param("--output=out.tar:shop", id="archive-output-with-path"),
        pytest.param("-oout.tar:shop", id="short-option"),
        pytest.param("--remote=ext::touch pwned:shop", id="remote-command"),
        pytest.param("--exec=touch pwned:shop", id="exec-option"),
        pytest.param("HEAD --output=out.tar:shop", id="option-after-space"),
        pytest.param("HEAD\n--output=out.tar:shop", id="option-after-newline"),
        pytest.param("HEAD..HEAD:shop", id="range"),
        pytest.param("HEAD:../outside", id="path-leaving-the-repository"),
    ],
)
def test_an_option_shaped_revision_is_refused_with_exit_2_and_writes_nothing(repository: Path, old: str) -> None:
    before = _files(repository)
    done = _diff(repository, old, "shop")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    assert _files(repository) == before
    assert not (repository.parent / "outside").exists()


def test_a_path_that_begins_with_a_dash_is_a_path_not_an_option(repository: Path) -> None:
    (repository / "-o").mkdir()
    shutil.copy(repository / "shop" / "policies.yaml", repository / "-o" / "policies.yaml")
    subprocess.run([*GIT, "-C", str(repository), "add", "."], check=True)
    subprocess.run([*GIT, "-C", str(repository), "commit", "-qm", "two"], check=True)
    before = _files(repository)
    done = _diff(repository, "HEAD:-o", "-o")
    assert done.returncode == 0, done.stderr
    assert _files(repository) == before


def test_ordinary_revisions_still_resolve(repository: Path) -> None:
    head = subprocess.run(
        ["git", "-C", str(repository), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    )
    for old in ("HEAD:shop", "HEAD~0:shop", f"{head.stdout.strip()}:shop", "HEAD^{commit}:shop"):
        done = _diff(repository, old, "shop")
        assert done.returncode == 0, (old, done.stderr)
    assert _diff(repository, "nosuchrev:shop", "shop").returncode == 2
