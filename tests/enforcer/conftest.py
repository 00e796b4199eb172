"""Fixtures for enforcer tests: a routed node with two pods (kernel tests only)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from policyctl.enforcer.backend import LibnftablesBackend
from tests.enforcer.netns import Node, netns_supported


@pytest.fixture
def node() -> Iterator[Node]:
    reason = netns_supported()
    if reason is not None:
        pytest.skip(reason)
    lab = Node()
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def backend(node: Node) -> Iterator[LibnftablesBackend]:
    nft = LibnftablesBackend(netns=node.node.name)
    try:
        yield nft
    finally:
        nft.close()
