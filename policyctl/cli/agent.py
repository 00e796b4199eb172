"""``policyctl agent``: the node agent the DaemonSet runs (deploy/base/daemonset.yaml).

Watches Pods, Namespaces, Nodes and NetworkPolicies and keeps this node's nftables table equal
to the node's compiled ruleset (:mod:`policyctl.agent.main`). The node comes from ``--node``
or ``$NODE_NAME`` (the downward API's ``spec.nodeName``); without one the agent refuses to
start (exit 2) rather than guess. ``--cleanup`` deletes the table and exits: the uninstall
path, since stopping the agent deliberately leaves the rules in force.

Exit status: 0 after SIGTERM/SIGINT (or a cleanup), 2 unusable settings or client
configuration. Nothing the API server answers ends the process: the agent logs, backs off,
relists, and says on /readyz when it is out of sync (docs/agent.md).
"""

from __future__ import annotations

import click

from policyctl.cli.inputs import fail, identity_mark_option, input_errors


@click.command()
@click.option(
    "--node", envvar="NODE_NAME", default="", help="This node's name (default: $NODE_NAME, from the downward API)."
)
@click.option("--pod-name", envvar="POD_NAME", default="",
              help="This agent's pod (default: $POD_NAME); with --pod-namespace, a cluster view without it "
                   "is never applied.")
@click.option("--pod-namespace", envvar="POD_NAMESPACE", default="",
              help="This agent's namespace (default: $POD_NAMESPACE).")
@click.option(
    "--kubeconfig",
    default=None,
    metavar="FILE",
    help="Kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, or the pod's service account).",
)
@click.option("--context", default=None, help="Kubeconfig context.")
@click.option("--table", default="policyctl", show_default=True, help="The inet nftables table the agent owns.")
@click.option("--mode", type=click.Choice(["enforce", "audit"]), default="enforce", show_default=True,
              help="enforce: drop what policy denies; audit: count and log it, let it through.")
@click.option(
    "--min-interval",
    type=float,
    default=1.0,
    show_default=True,
    help="Seconds between syncs at least (bursts of events coalesce).",
)
@click.option(
    "--max-interval",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds between syncs at most (periodic resync repairs drift).",
)
@click.option(
    "--retry-interval", type=float, default=5.0, show_default=True, help="Seconds before retrying a failed sync."
)
@click.option("--metrics-address", default="127.0.0.1", show_default=True,
              help="IP address to serve /metrics on (the DaemonSet gives the node's own, $(HOST_IP)).")
@click.option("--metrics-port", type=int, default=9180, show_default=True, help="Port for /metrics (-1: off).")
@click.option("--health-address", default="127.0.0.1", show_default=True,
              help="IP address to serve /healthz and /readyz on.")
@click.option(
    "--health-port", type=int, default=9181, show_default=True, help="Port for /healthz and /readyz (-1: off)."
)
@click.option("--http-connections", type=int, default=16, show_default=True,
              help="Connections the metrics and the health server each serve at once; more are closed.")
@click.option("--http-timeout", type=float, default=5.0, show_default=True,
              help="Seconds a metrics or health connection may wait for bytes (twice this: its whole life).")
@click.option(
    "--read-timeout",
    type=float,
    default=90.0,
    show_default=True,
    help="Seconds of silence after which a watch or list is taken for dead; also the most a list page may take.",
)
@click.option("--stale-after", type=float, default=120.0, show_default=True,
              help="Seconds a cache may be out of sync with the API server (or syncs may fail) before /readyz fails.")
@click.option("--page-size", type=int, default=500, show_default=True, help="Objects per list page.")
@click.option("--keep-established", is_flag=True, help="Do not cut tracked connections a new ruleset denies.")
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info", show_default=True
)
@click.option(
    "--netns",
    default=None,
    metavar="NAME",
    help="Apply rules inside this named network namespace; the API is reached from this one (the lab's nodes).",
)
@click.option("--drop-log-group", type=int, default=-1, show_default=True, metavar="N",
              help="Log denied packets to NFLOG group N and explain each one on /drops and in "
                   "policyctl_dropped_packets_total (-1: the kernel log, no explanations).")
@click.option("--drops-address", default="127.0.0.1", show_default=True, help="IP address to serve /drops on.")
@click.option("--drops-port", type=int, default=9182, show_default=True, help="Port for /drops (-1: off).")
@click.option("--drops-buffer", type=int, default=1000, show_default=True, help="Recent drops kept for /drops.")
@click.option("--new-pod-window", type=click.Choice(["deny", "allow"]), default="deny", show_default=True,
              help="deny: until a new pod's address is known and its rules programmed, an address of this node's "
              "spec.podCIDRs that no known pod holds is denied, when any policy exists (no pod CIDRs: no "
              "effect). allow: such a pod is non-isolated until then. See docs/agent.md.")
@identity_mark_option
@click.option("--publish-events", is_flag=True,
              help="Publish a Programmed Event on each policy when its change reached this node's kernel "
                   "(needs RBAC create/patch on events; read them with policyctl status).")
@click.option("--cleanup", is_flag=True, help="Delete the agent's table on this node and exit (uninstall).")
def agent(
    node: str,
    pod_name: str,
    pod_namespace: str,
    kubeconfig: str | None,
    context: str | None,
    table: str,
    mode: str,
    min_interval: float,
    max_interval: float,
    retry_interval: float,
    metrics_address: str,
    metrics_port: int,
    health_address: str,
    health_port: int,
    http_connections: int,
    http_timeout: float,
    read_timeout: float,
    stale_after: float,
    page_size: int,
    keep_established: bool,
    log_level: str,
    netns: str | None,
    drop_log_group: int,
    drops_address: str,
    drops_port: int,
    drops_buffer: int,
    new_pod_window: str,
    identity_mark: int | None,
    publish_events: bool,
    cleanup: bool,
) -> None:
    """Enforce NetworkPolicy on this node, following the API server, until stopped.

    \b
    Examples:
      NODE_NAME=node-1 policyctl agent --kubeconfig ~/.kube/config
      policyctl agent --node node-1 --metrics-port 9180 --health-port 9181
      policyctl agent --cleanup
      policyctl agent --node node-1 --drop-log-group 100   # then: policyctl drops --agent
    """
    from policyctl.agent.config import AgentConfig
    from policyctl.agent.main import cleanup as remove_table
    from policyctl.agent.main import run

    with input_errors():
        if cleanup:
            from policyctl.enforcer.backend import default_backend

            removed = remove_table(table=table, backend=default_backend(netns=netns))
            click.echo(f"table inet {table} {'deleted' if removed else 'was not there'}")
            return
        config = AgentConfig(
            node=node,
            pod_name=pod_name,
            pod_namespace=pod_namespace,
            table=table,
            mode=mode,
            min_interval=min_interval,
            max_interval=max_interval,
            retry_interval=retry_interval,
            metrics_address=metrics_address,
            metrics_port=metrics_port,
            health_address=health_address,
            health_port=health_port,
            http_connections=http_connections,
            http_timeout=http_timeout,
            read_timeout=read_timeout,
            stale_after=stale_after,
            page_size=page_size,
            keep_established=keep_established,
            log_level=log_level,
            netns=netns,
            drop_log_group=drop_log_group,
            drops_address=drops_address,
            drops_port=drops_port,
            drops_buffer=drops_buffer,
            publish_events=publish_events,
            new_pod_window=new_pod_window,
            identity_mark=identity_mark,
        )
        problems = config.validate()
        if problems:
            for problem in problems[:-1]:
                click.echo(f"error: {problem}", err=True)
            raise fail(problems[-1])
        raise click.exceptions.Exit(run(config, kubeconfig=kubeconfig, context=context))
