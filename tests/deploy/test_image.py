"""The node agent image that scripts/image builds runs: its layout is a valid OCI image whose
configuration matches deploy/daemonset.yaml's assumptions, and its entrypoint, unpacked and run
in a chroot on a read-only root in a fresh network namespace, prints its version, its help, and
removes its own nftables table through the image's libnftables binding while another table stays.

The image is built once per session (about 1.5 to 6 minutes, mostly mmdebstrap), or read from
POLICYCTL_IMAGE_LAYOUT (an OCI layout directory scripts/image wrote). The tests are skipped only
when a build tool is missing or the user is not root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("mmdebstrap", "umoci", "skopeo", "unshare", "chroot")
TAG = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

pytestmark = pytest.mark.kernel


@dataclass(frozen=True)
class Image:
    """An unpacked image: its OCI configuration and its root file system on disk."""

    config: dict[str, Any]
    manifest: dict[str, Any]
    rootfs: Path


def _blob(layout: Path, digest: str) -> Path:
    algorithm, hexdigest = digest.split(":", 1)
    return layout / "blobs" / algorithm / hexdigest


def _built_layout(tmp: Path) -> Path:
    given = os.environ.get("POLICYCTL_IMAGE_LAYOUT")
    if given:
        return Path(given)
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"scripts/image needs {', '.join(missing)} (apt-get install mmdebstrap umoci skopeo)")
    if os.geteuid() != 0:
        pytest.skip("scripts/image needs root (mmdebstrap's root mode, chroot)")
    out = tmp / "image"
    built = subprocess.run([str(ROOT / "scripts" / "image"), str(out)], capture_output=True, text=True, timeout=1800)
    assert built.returncode == 0, f"scripts/image failed:\n{built.stdout[-2000:]}\n{built.stderr[-4000:]}"
    archive = f"oci-archive:{out / f'policyctl-{TAG}.oci.tar'}"
    inspected = subprocess.run(["skopeo", "inspect", "--config", archive], capture_output=True, text=True, timeout=120)
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["config"]["Entrypoint"] == ["policyctl"], "the archive holds the same image"
    return out / "oci"


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    """Built and unpacked once; removed afterwards (an unpacked root is about 350 MB)."""
    if os.geteuid() != 0:
        pytest.skip("running the image needs root (chroot, network namespaces)")
    build = tmp_path_factory.mktemp("build")
    layout = _built_layout(build)
    index = json.loads((layout / "index.json").read_text())
    (entry,) = [m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == TAG]
    manifest = json.loads(_blob(layout, entry["digest"]).read_text())
    config = json.loads(_blob(layout, manifest["config"]["digest"]).read_text())
    rootfs = tmp_path_factory.mktemp("rootfs")
    for layer in manifest["layers"]:
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
        blob = _blob(layout, layer["digest"])
        subprocess.run(["tar", "-xzf", str(blob), "-C", str(rootfs), "--numeric-owner"], check=True, timeout=300)
    try:
        yield Image(config=config, manifest=manifest, rootfs=rootfs)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
        shutil.rmtree(build, ignore_errors=True)


def run_in_image(image: Image, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` (sh) in a fresh network, mount and PID namespace, where ``$IMAGE`` runs a
    command in the image: chroot into its root mounted read-only (as readOnlyRootFilesystem
    does), with a tmpfs on /tmp, and only the environment its configuration sets."""
    assert not any(" " in pair or "'" in pair for pair in image.config["config"]["Env"])
    env = " ".join(image.config["config"]["Env"])
    root = image.rootfs
    prelude = (
        f"set -e; R={root}; mount --bind $R $R; mount -o remount,bind,ro $R $R; mount -t proc proc $R/proc; "
        f'mount --bind /dev $R/dev; mount -t tmpfs tmpfs $R/tmp; IMAGE="chroot $R /usr/bin/env -i {env}"; set +e; '
    )
    return subprocess.run(
        ["unshare", "--net", "--mount", "--pid", "--fork", "--kill-child", "sh", "-c", prelude + script],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def entrypoint(image: Image, *args: str) -> str:
    return " ".join([*image.config["config"]["Entrypoint"], *args])


def test_the_image_configuration_is_what_the_daemonset_expects(image: Image) -> None:
    """deploy/daemonset.yaml passes only ``args``: the entrypoint must be policyctl, uid 0 (the
    added capability reaches uid 0 only), and bytecode never written on the read-only root."""
    config = image.config["config"]
    assert config["Entrypoint"] == ["policyctl"]
    assert config["Cmd"] == ["agent"]
    assert config["User"] == "0:0"
    assert "PYTHONDONTWRITEBYTECODE=1" in config["Env"]
    assert image.config["os"] == "linux"
    assert config["Labels"]["org.opencontainers.image.version"] == TAG
    assert len(image.manifest["layers"]) == 1


def test_the_image_holds_debians_python_the_binding_and_the_tools(image: Image) -> None:
    root = image.rootfs
    for path in ("usr/bin/python3", "usr/sbin/nft", "usr/sbin/conntrack", "opt/policyctl/bin/policyctl"):
        assert (root / path).exists(), path
    packages = (root / "var/lib/dpkg/status").read_text()
    for package in ("python3", "python3-nftables", "nftables", "conntrack"):
        assert f"Package: {package}\nStatus: install ok installed" in packages, package
    assert "Package: apt\n" not in packages, "the image carries no package manager"
    assert not list((root / "opt/policyctl").glob("lib/python3*/site-packages/pip")), "pip is removed"
    assert not (root / "tmp/wheels").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(("--version",), TAG, id="version"),
        pytest.param(("agent", "--help"), "--cleanup", id="agent-help"),
    ],
)
def test_the_entrypoint_runs_on_a_read_only_root(image: Image, args: tuple[str, ...], expected: str) -> None:
    result = run_in_image(image, f"$IMAGE {entrypoint(image, *args)}")
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
    assert "Traceback" not in result.stderr


def test_the_images_cleanup_deletes_its_table_and_leaves_other_tables(image: Image) -> None:
    """The uninstall path end to end inside the image: Debian's nft and the libnftables binding
    the agent uses, against this kernel, in a network namespace that exists for this test only."""
    script = (
        "$IMAGE nft -f - <<'EOF' || exit 10\n"
        "table inet policyctl { chain forward { type filter hook forward priority 0; policy accept; }; }\n"
        "table inet cni { chain input { type filter hook input priority 0; tcp dport 22 accept; }; }\n"
        "EOF\n"
        "before=$($IMAGE nft list table inet cni) || exit 14\n"
        f"$IMAGE {entrypoint(image, 'agent', '--cleanup')} || exit 11\n"
        '[ "$($IMAGE nft list table inet cni)" = "$before" ] || exit 15  # the other table changed\n'
        "echo '--- ruleset'; $IMAGE nft list ruleset || exit 12\n"
        f"echo '--- again'; $IMAGE {entrypoint(image, 'agent', '--cleanup')} || exit 13\n"
    )
    result = run_in_image(image, script)
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    cleaned, rest = result.stdout.split("--- ruleset", 1)
    ruleset, again = rest.split("--- again", 1)
    assert cleaned.strip() == "table inet policyctl deleted"
    assert "table inet policyctl" not in ruleset
    assert "table inet cni" in ruleset and "tcp dport 22 accept" in ruleset
    assert again.strip() == "table inet policyctl was not there"


def test_scripts_image_and_the_dockerfile_install_the_same_debian_packages() -> None:
    """Two ways to build one image: the package lists must not drift apart."""
    script = (ROOT / "scripts" / "image").read_text()
    (line,) = [x for x in script.splitlines() if x.startswith("PACKAGES=")]
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text().replace("\\\n", " ")
    (install,) = [x for x in dockerfile.splitlines() if "apt-get install" in x]
    listed = install.split("--no-install-recommends", 1)[1].split("&&", 1)[0].split()
    assert sorted(line.split("=", 1)[1].split(",")) == sorted(listed)
