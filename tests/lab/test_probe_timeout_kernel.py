"""``lab probe``: ``--timeout`` is the whole wait of a denied pair, retries included; a mistyped
pod or lab is answered with the closest name rather than every name; ``--port NAME`` is the
destination's own port of that name in the manifests the lab was built from."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from policyctl.lab.probes import RETRY_FACTOR, round_waits
from tests.lab.test_lab_kernel import MANIFEST, POLICYCTL, cli

WEBSHOP = Path(__file__).resolve().parents[2] / "examples" / "webshop"

STARTUP = 3.0
"""Starting policyctl and the destination's server, on a loaded machine; before the timeout
was the whole wait, a denied pair took 13 times ``--timeout``."""


@pytest.mark.parametrize(
    ("total", "retries", "waits"),
    [
        pytest.param(13.0, 2, (1.0, 3.0, 9.0), id="rounds-keep-the-retry-factor"),
        pytest.param(1.0, 2, (1 / 13, 3 / 13, 9 / 13), id="one-second-in-all"),
        pytest.param(0.5, 0, (0.5,), id="no-retry-waits-it-all-at-once"),
    ],
)
def test_round_waits_add_up_to_the_timeout(total: float, retries: int, waits: tuple[float, ...]) -> None:
    found = round_waits(total, retries)
    assert found == pytest.approx(waits)
    assert sum(found) == pytest.approx(total)
    assert all(b == pytest.approx(a * RETRY_FACTOR) for a, b in zip(found, found[1:]))


@pytest.fixture
def lab(tmp_path: Path, lab_namespaces: set[str]):
    env = {"POLICYCTL_LAB_STATE": str(tmp_path / "labs")}
    manifest = tmp_path / "lab.yaml"
    manifest.write_text(MANIFEST)
    name = f"t{os.getpid()}"
    cli("up", "-f", str(manifest), "--name", name, env=env)
    try:
        yield name, env
    finally:
        cli("down", "--name", name, env=env)


@pytest.mark.kernel
@pytest.mark.parametrize(("source", "destination", "port"), [("x/a", "x/b", "80/TCP"), ("w/c", "x/b", "80/SCTP"),
                                                              ("w/c", "x/b", "53/UDP")])  # fmt: skip
def test_a_denied_pair_is_answered_within_its_timeout(lab, source: str, destination: str, port: str) -> None:
    name, env = lab
    started = time.monotonic()
    done = cli("probe", "--name", name, source, destination, "--port", port, "--timeout", "0.5", env=env, check=1)
    assert time.monotonic() - started < 0.5 + STARTUP
    assert "denied" in done.stdout


@pytest.mark.kernel
@pytest.mark.parametrize(
    ("typed", "suggested"),
    [("x/aa", "'x/a'"), ("w/cc", "'w/c'"), ("c", "'w/c'")],
)
def test_a_mistyped_pod_gets_the_closest_name_not_the_list(lab, typed: str, suggested: str) -> None:
    name, env = lab
    done = cli("probe", "--name", name, typed, "x/b", "--port", "80", env=env, check=2)
    assert f"did you mean {suggested}" in done.stderr
    assert "x/b," not in done.stderr


@pytest.mark.kernel
def test_a_mistyped_lab_gets_the_closest_lab_that_is_up(lab) -> None:
    name, env = lab
    done = cli("probe", "--name", name + "x", "x/a", "x/b", "--port", "80", env=env, check=2)
    assert f"did you mean {name!r}?" in done.stderr


@pytest.fixture
def webshop_lab(tmp_path: Path, lab_namespaces: set[str]):
    env = {"POLICYCTL_LAB_STATE": str(tmp_path / "labs")}
    name = f"w{os.getpid()}"
    up = subprocess.run([POLICYCTL, "lab", "up", "-f", "examples/webshop", "--name", name], capture_output=True,
                        text=True, env={**os.environ, **env}, cwd=WEBSHOP.parents[1], timeout=120)  # fmt: skip
    assert up.returncode == 0, up.stderr
    try:
        yield name, env
    finally:
        cli("down", "--name", name, env=env)


@pytest.mark.kernel
@pytest.mark.parametrize(
    ("source", "destination", "port", "code", "said"),
    [
        pytest.param("shop/checkout", "shop/payments", "https", 0, "8443/TCP IPv4: allowed", id="https-is-8443"),
        pytest.param("shop/frontend", "shop/postgres", "postgres", 1, "5432/TCP IPv4: denied", id="postgres-is-5432"),
        pytest.param("shop/checkout", "shop/postgres", "postgress", 2, "did you mean 'postgres'?", id="typo"),
        pytest.param("shop/checkout", "shop/redis", "http", 2, "shop/redis declares no port named 'http'",
                     id="not-on-the-destination"),
    ],
)  # fmt: skip
def test_a_named_port_is_resolved_on_the_destination_in_the_labs_manifests_wherever_it_is_asked(
    webshop_lab, tmp_path: Path, source: str, destination: str, port: str, code: int, said: str
) -> None:
    name, env = webshop_lab
    done = subprocess.run([POLICYCTL, "lab", "probe", "--name", name, source, destination, "--port", port,
                           "--timeout", "0.5"], capture_output=True, text=True, env={**os.environ, **env},
                          cwd=tmp_path, timeout=60)  # fmt: skip
    assert done.returncode == code, done.stderr
    assert said in done.stdout + done.stderr
