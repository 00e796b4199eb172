"""``check --assert`` with several assertion files: every file checked, one relation built."""

from __future__ import annotations

import json

import pytest

import policyctl.cli.check as check_command
from policyctl.policy.cluster import Cluster
from policyctl.verifier.relation import Relation, connectivity
from tests.cli.conftest import WEBSHOP, write

CAN = """\
assertions:
  - name: storefront reaches the cart
    expect: can
    from: {{namespace: shop, podSelector: {{matchLabels: {{app: frontend}}}}}}
    to: {{namespace: shop, podSelector: {{matchLabels: {{app: cart}}}}}}
    ports: [{port}/TCP]
"""


@pytest.mark.parametrize(
    ("ports", "failed"),
    [
        pytest.param((8080, 8080, 8080), [], id="three-passing-files"),
        pytest.param((8080, 9999, 9998), ["b.yaml", "c.yaml"], id="failures-reported-per-file"),
    ],
)
def test_assertion_files_share_one_relation(
    run, tmp_path, monkeypatch: pytest.MonkeyPatch, ports: tuple[int, ...], failed: list[str]
) -> None:
    built: list[Cluster] = []

    def counting(cluster: Cluster, **kwargs: object) -> Relation:
        built.append(cluster)
        return connectivity(cluster, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(check_command, "connectivity", counting)
    paths = [write(tmp_path, f"{name}.yaml", CAN.format(port=p)) for name, p in zip("abc", ports)]
    args = [a for p in paths for a in ("--assert", p)]
    result = run("check", "-f", str(WEBSHOP), *args, "--fail-level", "error", "-o", "json")
    findings = json.loads(result.output)["findings"]
    files = sorted({f["file"].rsplit("/", 1)[-1] for f in findings if f["file"] in paths})
    assert files == failed
    assert len(built) == 1
