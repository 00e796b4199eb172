"""Lint: what the API server accepts but a reader most likely did not mean.

:func:`lint` runs every rule of :data:`RULES` on a cluster and the documents it was loaded
from and returns their findings as :class:`~policy.diagnostics.Diagnostic` values (file, line,
field path, stable ``code``, ``hint``), sorted. Rules live by family in ``lint_peers``,
``lint_ports`` and ``lint_policies``; a rule's code never changes once released, because CI
configurations and SARIF baselines key on it.

Pure: no I/O; the same cluster and documents give the same findings in the same order.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from policyctl.policy.diagnostics import Diagnostic
from policyctl.policy.cluster import Cluster
from policyctl.verifier import lint_peers, lint_policies, lint_ports, lint_tiers
from policyctl.verifier.lint_context import Check, LintContext, LintRule
from policyctl.verifier.lint_sources import Manifests

CHECKS: tuple[tuple[LintRule, Check], ...] = (
    *lint_ports.CHECKS,
    *lint_peers.CHECKS,
    *lint_policies.CHECKS,
    *lint_tiers.CHECKS,
)

#: Every lint rule by code, in code order.
RULES: Mapping[str, LintRule] = {rule.code: rule for rule, _ in sorted(CHECKS, key=lambda check: check[0].code)}


def lint(
    cluster: Cluster,
    manifests: Manifests | None = None,
    *,
    skip: Collection[str] = (),
) -> tuple[Diagnostic, ...]:
    """Every finding of every rule whose code is not in ``skip``, sorted by file and line.
    Without ``manifests`` findings point at the policy's provenance line."""
    context = LintContext(cluster, manifests or Manifests())
    found: set[Diagnostic] = set()
    for rule, check in CHECKS:
        if rule.code not in skip:
            found.update(check(context))
    return tuple(sorted(found))
