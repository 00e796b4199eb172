"""The agent's settings: one value with defaults, and a check that reports every problem.

CLI flags map to fields one to one (``--min-interval`` -> ``min_interval``). Defaults follow
the conventions the DaemonSet relies on: health and metrics on 127.0.0.1 (hostNetwork: nothing
else may see them; the DaemonSet binds metrics to the node's own address), a watch read timeout
above the API server's bookmark interval (about a minute) so a quiet stream is not taken for a
dead one, readiness lost after two minutes out of sync (more than a read timeout and the
reconnect after it), and a resync every minute to repair drift.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from policyctl.agent.httpserver import Limits
from policyctl.agent.runner import Intervals
from policyctl.compiler.markedpeers import DEFAULT_MASK, IdentityMark
from policyctl.compiler.newpods import NewPodWindow
from policyctl.compiler.ruleset import Mode

MODES = tuple(m.value for m in Mode)
NEW_POD_WINDOWS = tuple(w.value for w in NewPodWindow)


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """Everything ``policyctl agent`` can be told. Times in seconds; port 0 picks a free port
    (tests), a negative port turns that server off."""

    node: str
    table: str = "policyctl"
    mode: str = "enforce"
    min_interval: float = 1.0
    max_interval: float = 60.0
    retry_interval: float = 5.0
    metrics_address: str = "127.0.0.1"
    metrics_port: int = 9180
    health_address: str = "127.0.0.1"
    health_port: int = 9181
    read_timeout: float = 90.0
    stale_after: float = 120.0
    """Readiness fails when a cache has been out of sync with the API server, or syncs have
    been failing, for longer than this."""
    http_connections: int = 16
    """Connections each of the health and metrics servers serves at once."""
    http_timeout: float = 5.0
    """Seconds a health or metrics connection may wait for bytes; twice this is its whole life."""
    page_size: int = 500
    keep_established: bool = False
    log_level: str = "info"
    pod_name: str = ""
    pod_namespace: str = ""
    """This agent's own pod (the downward API's ``metadata.name``/``metadata.namespace``): a
    cluster view without it, or without its namespace, is never applied."""
    netns: str | None = None
    """Apply rules inside this named network namespace (``/run/netns/NAME``) while the API is
    reached from the agent's own: how the lab runs one agent per node namespace."""
    heartbeat_timeout: float = 60.0
    """Liveness fails when the sync loop has not turned for this long."""
    attempt_grace: float = 120.0
    """Liveness fails when no sync was attempted for ``max_interval`` plus this long."""
    drop_log_group: int = -1
    """Log denied packets to this NFLOG group and explain them (``agent.drops``); negative: the
    kernel log, as before, and no drop monitor."""
    drops_address: str = "127.0.0.1"
    drops_port: int = 9182
    """``/drops`` (recent drops, explained) while the drop monitor runs; negative: off."""
    drops_buffer: int = 1000
    """Drops kept for ``/drops``."""
    publish_events: bool = False
    """Publish a ``Programmed`` Event on each policy when its change reached this node's kernel
    (``agent.programmed``; needs RBAC create and patch on events)."""
    new_pod_window: str = "deny"
    """``deny``: an address of this node's ``spec.podCIDRs`` that no known pod holds is denied
    until the pod is known and its rules programmed, when any policy exists (``compiler.newpods``);
    a node without pod CIDRs is unaffected. ``allow``: such a pod is non-isolated until then."""
    identity_mark: int | None = DEFAULT_MASK
    """The packet-mark bits of the marked peer layout (``compiler.markedpeers``); None: peer
    maps that jump (``--identity-mark none``)."""

    @property
    def log_group(self) -> int | None:
        return self.drop_log_group if self.drop_log_group >= 0 else None

    @property
    def intervals(self) -> Intervals:
        return Intervals(self.min_interval, self.max_interval, self.retry_interval)

    @property
    def own_pod(self) -> str | None:
        """``namespace/name`` of this agent's pod, when both are known."""
        return f"{self.pod_namespace}/{self.pod_name}" if self.pod_name and self.pod_namespace else None

    @property
    def http_limits(self) -> Limits:
        return Limits(self.http_connections, self.http_timeout, 2 * self.http_timeout)

    @property
    def ruleset_mode(self) -> Mode:
        return Mode(self.mode)

    @property
    def new_pods(self) -> NewPodWindow:
        return NewPodWindow(self.new_pod_window)

    @property
    def mark(self) -> IdentityMark | None:
        return IdentityMark(self.identity_mark) if self.identity_mark is not None else None

    def validate(self) -> tuple[str, ...]:
        """Every problem, in words naming the flag; empty when the settings can be used."""
        problems: list[str] = []
        if not self.node:
            problems.append("--node (or the NODE_NAME variable, from the downward API) is required")
        if not self.table or len(self.table) > 64:
            problems.append(f"--table must be 1-64 characters (got {self.table!r})")
        if self.mode not in MODES:
            problems.append(f"--mode must be one of {', '.join(MODES)} (got {self.mode!r})")
        if self.new_pod_window not in NEW_POD_WINDOWS:
            choices = ", ".join(NEW_POD_WINDOWS)
            problems.append(f"--new-pod-window must be one of {choices} (got {self.new_pod_window!r})")
        if self.identity_mark is not None:
            try:
                IdentityMark(self.identity_mark)
            except ValueError as error:
                problems.append(f"--identity-mark: {error}")
        problems.extend(f"--{p}" for p in _interval_problems(self.intervals))
        for flag, port in (("--metrics-port", self.metrics_port), ("--health-port", self.health_port)):
            if port > 65535:
                problems.append(f"{flag} must be at most 65535 (got {port})")
        if self.metrics_port > 0 and self.metrics_port == self.health_port:
            problems.append(f"--metrics-port and --health-port must differ (both {self.metrics_port})")
        if self.read_timeout <= 0:
            problems.append(f"--read-timeout must be positive (got {self.read_timeout})")
        if bool(self.pod_name) != bool(self.pod_namespace):
            problems.append("--pod-name and --pod-namespace (POD_NAME, POD_NAMESPACE) go together "
                            f"(got {self.pod_name!r} and {self.pod_namespace!r})")
        if self.stale_after <= 0:
            problems.append(f"--stale-after must be positive (got {self.stale_after})")
        if self.http_connections < 1:
            problems.append(f"--http-connections must be at least 1 (got {self.http_connections})")
        if self.http_timeout <= 0:
            problems.append(f"--http-timeout must be positive (got {self.http_timeout})")
        for flag, address in (("--metrics-address", self.metrics_address), ("--health-address", self.health_address)):
            if not _is_address(address):
                problems.append(f"{flag} must be an IP address (got {address!r})")
        if self.drop_log_group > 65535:
            problems.append(f"--drop-log-group must be an NFLOG group, 0-65535 (got {self.drop_log_group})")
        if self.drops_port > 65535:
            problems.append(f"--drops-port must be at most 65535 (got {self.drops_port})")
        others = (self.metrics_port, self.health_port)
        if self.log_group is not None and self.drops_port > 0 and self.drops_port in others:
            problems.append(f"--drops-port must differ from the metrics and health ports (got {self.drops_port})")
        if not _is_address(self.drops_address):
            problems.append(f"--drops-address must be an IP address (got {self.drops_address!r})")
        if self.drops_buffer < 1:
            problems.append(f"--drops-buffer must be at least 1 (got {self.drops_buffer})")
        if self.page_size <= 0:
            problems.append(f"--page-size must be positive (got {self.page_size})")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            problems.append(f"--log-level must be debug, info, warning or error (got {self.log_level!r})")
        return tuple(problems)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _interval_problems(intervals: Intervals) -> list[str]:
    """The runner's own problems, with its words turned into flag names."""
    return [p.replace(" interval", "-interval", 1) for p in intervals.validate()]
