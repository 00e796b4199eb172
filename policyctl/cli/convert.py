"""``policyctl convert``: AdminNetworkPolicy and BaselineAdminNetworkPolicy to ClusterNetworkPolicy, proved.

network-policy-api v0.3.0 replaced the two v1alpha1 kinds with ClusterNetworkPolicy, and CNIs
follow. The conversion itself is a renaming (:mod:`manifests.clusterwrite`); what a user needs is
the assurance that nothing changed, so every conversion is checked by the verifier: the input
cluster with its original policies and the same cluster with the converted ones (the written
manifests read back with the loader) must allow exactly the same connections, every pod pair,
port, family, outside address and node address (:mod:`verifier.migration`). When they do not,
a counterexample is printed and nothing is written.

Exit status: 0 converted and proved equivalent (or nothing to convert), 1 not equivalent (a
counterexample on stderr) or not expressible as ClusterNetworkPolicy, 2 invalid input.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import click

from policyctl.cli.inputs import (
    EXIT_INPUT,
    EXIT_NO,
    EXIT_OK,
    filename_option,
    load_cluster,
    namespace_option,
    print_diagnostics,
)
from policyctl.policy.clustermodel import (
    ClusterNetworkPolicy,
    DomainNamesPeer,
    SourceKind,
    Tier,
)
from policyctl.policy.diagnostics import has_errors
from policyctl.policy.cluster import Cluster

if TYPE_CHECKING:
    from policyctl.manifests.clusterwrite import Converted

_CONVERTED_SOURCE = "<converted>"


def render(converted: tuple[Converted, ...]) -> str:
    """The manifests as one YAML stream, fields in the API's order."""
    from policyctl.manifests.clusterwrite import manifests_yaml

    return manifests_yaml(c.manifest for c in converted)


def _sorted(policies: list[ClusterNetworkPolicy]) -> tuple[ClusterNetworkPolicy, ...]:
    return tuple(sorted(policies, key=lambda p: (p.tier is not Tier.ADMIN, p.order)))


def _read_back(text: str, original: Cluster, converted: tuple[Converted, ...]) -> Cluster:
    """The input cluster with the converted policies as the loader reads the written text."""
    from policyctl.manifests.loader import load_documents
    from policyctl.manifests.yamlsource import read_documents

    documents, problems = read_documents(text, source=_CONVERTED_SOURCE)
    result = load_documents(documents)
    diagnostics = (*problems, *result.diagnostics)
    if has_errors(diagnostics):
        print_diagnostics(diagnostics)
        click.echo("error: the converted manifests would be refused (above); nothing written", err=True)
        raise click.exceptions.Exit(EXIT_NO)
    replaced = {c.original.ref for c in converted}
    kept = [p for p in original.cluster_policies if p.ref not in replaced]
    return replace(original, cluster_policies=_sorted(kept + list(result.cluster.cluster_policies)))


def _collisions(original: Cluster, converted: tuple[Converted, ...]) -> list[str]:
    existing = {p.name: p for p in original.cluster_policies if p.kind is SourceKind.CLUSTER_NETWORK_POLICY}
    found = []
    for c in converted:
        clash = existing.get(c.original.name)
        if clash is not None:
            where = f"{clash.provenance}: " if clash.provenance else ""
            found.append(f"{where}error: metadata.name: ClusterNetworkPolicy {clash.name} already exists; "
                         f"{c.original} would be converted to the same name")  # fmt: skip
    return found


def _tie_notes(original: Cluster, converted: tuple[Converted, ...]) -> list[str]:
    """Ties whose order conversion changes: at one priority of one tier, a v1alpha1 policy
    sorted before every ClusterNetworkPolicy (by kind); converted, the name decides."""
    existing = [p for p in original.cluster_policies if p.kind is SourceKind.CLUSTER_NETWORK_POLICY]
    found = []
    for c in converted:
        for other in existing:
            if other.tier is c.original.tier and other.priority == c.priority and other.name < c.original.name:
                found.append(
                    f"{c.original.provenance or c.original}: warning: {c.original} and {other} share "
                    f"{other.tier.value} priority {other.priority}: {c.original} was applied first (by kind); "
                    f"converted, {other} is (by name). Give one of them another priority if the order matters"
                )  # fmt: skip
    return found


def _domain_name_notes(converted: tuple[Converted, ...]) -> list[str]:
    return [
        f"{rule.provenance or c.original}: warning: {c.original} {rule.label}: domainNames kept as written, "
        "not enforced: names are not resolved (the proof treats the peer as matching nothing, in both sets)"
        for c in converted
        for rule in c.original.egress
        if any(isinstance(p, DomainNamesPeer) for p in rule.peers)
    ]


@click.command()
@filename_option
@namespace_option
@click.option("-o", "--output-file", "output_file", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the ClusterNetworkPolicy manifests to FILE instead of stdout (only when proved).")
def convert(filenames: tuple[str, ...], namespace: str, output_file: str | None) -> None:
    """Rewrite AdminNetworkPolicy and BaselineAdminNetworkPolicy objects as ClusterNetworkPolicy
    (policy.networking.k8s.io/v1alpha2), and prove with the verifier that the converted set
    allows exactly the same traffic as the original on the input cluster.

    \b
    Allow -> Accept; ports -> protocols (portNumber -> destinationPort.number, portRange ->
    destinationPort.range, namedPort -> destinationNamedPort); AdminNetworkPolicy -> tier Admin
    with its priority; BaselineAdminNetworkPolicy -> tier Baseline with a priority that keeps
    its place. Names and rule names are kept. Other objects are read as the cluster.

    \b
    Example:
      policyctl convert -f examples/admin-policies -f examples/webshop -o cnp.yaml

    Exit status: 0 converted and proved, 1 not equivalent (counterexample on stderr) or not
    expressible, 2 invalid input.
    """
    from policyctl.manifests.clusterwrite import UnwritableError, convert_policies
    from policyctl.verifier.migration import first_counterexample

    original = load_cluster(filenames, namespace=namespace)
    try:
        converted = convert_policies(original.cluster_policies)
    except UnwritableError as error:
        click.echo(f"error: cannot be written as ClusterNetworkPolicy: {error}", err=True)
        raise click.exceptions.Exit(EXIT_NO) from None
    if not converted:
        click.echo("no AdminNetworkPolicy or BaselineAdminNetworkPolicy to convert", err=True)
        raise click.exceptions.Exit(EXIT_OK)
    collisions = _collisions(original, converted)
    if collisions:
        click.echo("\n".join(collisions), err=True)
        raise click.exceptions.Exit(EXIT_INPUT)
    for note in (*_tie_notes(original, converted), *_domain_name_notes(converted)):
        click.echo(note, err=True)
    text = render(converted)
    counterexample = first_counterexample(original, _read_back(text, original, converted))
    if counterexample is not None:
        click.echo(f"not equivalent: {counterexample}; nothing written", err=True)
        raise click.exceptions.Exit(EXIT_NO)
    if output_file:
        with open(output_file, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        click.echo(text, nl=False)
    kinds = ", ".join(f"{c.original}" for c in converted)
    click.echo(f"converted {len(converted)} ({kinds}); proved: the same connections are allowed "
               f"({len(original.pods)} pods, {len(original.nodes)} nodes, every port, family and outside address)",
               err=True)  # fmt: skip
    raise click.exceptions.Exit(EXIT_OK)
