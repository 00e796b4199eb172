"""``policyctl drops``: the packets the ruleset drops, each with the reason policy gives.

Two sources, the same output:

* on a node (``-f`` or a live cluster): listens on the ruleset's NFLOG group itself (``--group``,
  as the agent's ``--drop-log-group``; root, in the node's network namespace or ``--netns``)
  and explains each drop on the cluster given, which must be the one the ruleset was compiled
  from (a drop the model does not deny is printed with the disagreement);
* through the agent (``--agent URL``): reads the drops the agent has explained on its own view
  from its ``/drops`` endpoint (only one listener can hold a group, and the agent does).

Exit status: 0 (also when interrupted after printing), 2 for unusable input: no cluster, a
group another listener holds, an agent that cannot be reached.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

import click

from policyctl.cli.inputs import fail, filename_option, input_errors, load_cluster, namespace_option, output_option
from policyctl.cli.render_drops import drop_json, drop_lines

#: The group ``policyctl drops`` listens on unless told otherwise (use the same in the agent).
DEFAULT_GROUP = 100
POLL_SECONDS = 1.0


@click.command()
@filename_option
@namespace_option
@click.option("--agent", "agent_url", default=None, metavar="URL",
              help="Read the drops the agent explained, from its /drops endpoint (e.g. http://127.0.0.1:9182).")
@click.option("--group", type=click.IntRange(0, 65535), default=DEFAULT_GROUP, show_default=True,
              help="The NFLOG group the ruleset logs drops to (the agent's --drop-log-group).")
@click.option("--netns", default=None, metavar="NAME", help="Listen in this named network namespace (a lab node).")
@click.option("--follow/--no-follow", default=True, show_default=True,
              help="Keep printing new drops; --no-follow prints what the agent holds and stops (agent mode).")
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after this many drops.")
@click.option("--duration", type=click.FloatRange(min=0), default=None, help="Stop after this many seconds.")
@output_option(("text", "json"))
def drops(
    filenames: tuple[str, ...],
    namespace: str,
    agent_url: str | None,
    group: int,
    netns: str | None,
    follow: bool,
    count: int | None,
    duration: float | None,
    output: str,
) -> None:
    """Print every packet the policy ruleset drops, with the policy reason.

    \b
    Each drop is a flow (time, source and destination pod or address, protocol, port, the
    direction that dropped it) and the deciding explanation, as `policyctl explain` gives it:
    the NetworkPolicies isolating the pod and why none of their rules matched, with hints; or
    the ClusterNetworkPolicy Deny rule with its tier and priority; file:line where known.
    -o json prints one JSON object per line (for log shippers).

    \b
    Examples:
      policyctl drops -f examples/webshop --group 100
      policyctl drops --agent http://127.0.0.1:9182 -o json
    """
    deadline = None if duration is None else time.monotonic() + duration
    if agent_url is not None:
        if filenames:
            raise fail("--agent reads the agent's explanations; -f is for reading the drop log here")
        documents = _from_agent(agent_url, follow=follow, deadline=deadline)
    else:
        cluster = load_cluster(filenames, namespace=namespace)
        documents = _from_kernel(cluster, group=group, netns=netns, deadline=deadline)
    printed = 0
    try:
        for document in documents:
            if output == "json":
                click.echo(drop_json(document))
            else:
                click.echo("\n".join(drop_lines(document)))
            sys.stdout.flush()
            printed += 1
            if count is not None and printed >= count:
                break
    except KeyboardInterrupt:
        pass


def _expired(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _wait(deadline: float | None) -> float:
    return POLL_SECONDS if deadline is None else max(0.0, min(POLL_SECONDS, deadline - time.monotonic()))


def _from_kernel(cluster: Any, *, group: int, netns: str | None, deadline: float | None) -> Iterator[Mapping[str, Any]]:
    from policyctl.enforcer.drops import AddressBook, attribute, drop_document
    from policyctl.enforcer.nflog import NflogReader
    from policyctl.enforcer.packetheaders import HeaderError

    book = AddressBook(cluster)
    with input_errors():
        reader = NflogReader(group, netns=netns)
    with reader:
        while not _expired(deadline):
            for packet in reader.read(_wait(deadline)):
                try:
                    drop = attribute(packet, book, now=time.time())
                except HeaderError as error:
                    click.echo(f"warning: {error}", err=True)
                    continue
                if drop is not None:
                    yield drop_document(drop)
            if reader.overruns:
                click.echo(f"warning: {reader.overruns} reads lost drops (the kernel's buffer was full)", err=True)
                reader.overruns = 0


def _from_agent(url: str, *, follow: bool, deadline: float | None) -> Iterator[Mapping[str, Any]]:
    since = 0
    while not _expired(deadline):
        header, documents = _fetch(url, since)
        if header.get("missed"):
            click.echo(f"warning: {header['missed']} drops left the agent's buffer before they were read", err=True)
        yield from documents
        since = int(header["next"])
        if not documents:
            if not follow:
                return
            time.sleep(_wait(deadline))


def _fetch(url: str, since: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    address = f"{url.rstrip('/')}/drops?since={since}"
    try:
        with urllib.request.urlopen(address, timeout=10) as answer:
            lines = answer.read().decode().splitlines()
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise fail(f"cannot read {address}: {getattr(error, 'reason', error)}") from None
    try:
        parsed = [json.loads(line) for line in lines if line.strip()]
    except json.JSONDecodeError as error:
        raise fail(f"{address}: not a drops answer ({error})") from None
    if not parsed or "next" not in parsed[0]:
        raise fail(f"{address}: not a drops answer (no header line)")
    return parsed[0], parsed[1:]
