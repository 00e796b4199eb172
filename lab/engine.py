"""``LabEngine``: the probe-case engine whose answers are real packets.

For every probe the engine first brings its lab to the cluster it is shown (``lifecycle.sync``:
pods added or removed become namespaces created or deleted, and every node whose compiled
ruleset changed gets it re-applied through the enforcer), makes every pod serve the probe's
port and protocol (the spec: "every pod serves every port and protocol that any probe of the
case uses"), then tries every ordered pair of pods at once (``lab.probes``).

A pair whose ends lack an address in the probe's family is reported not allowed: there is no
connection to make. A ``via: service`` probe goes to the destination's ClusterIP, which every
node DNATs to the pod as kube-proxy would (``lab.services``): the node's enforcer then sees
the pod's address, and a pod reaching itself hairpins through its node.

Probes are short and retried (``lab.probes``): a denied pair costs about
``timeout * (1 + RETRY_FACTOR)``, an allowed one a round trip.

The CNI style comes from the ``cni`` argument, or ``$POLICYCTL_LAB_CNI`` (``bridged`` by
default) for engines made without arguments (``policyctl probe --engine lab``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Hashable

from policyctl.compiler.ruleset import Mode
from policyctl.lab import netns
from policyctl.lab.lifecycle import LabError, sync
from policyctl.lab.probes import DEFAULT_RETRIES, DEFAULT_TIMEOUT, Attempt, method, pairs_matrix, run_probes
from policyctl.compiler.markedpeers import DEFAULT_IDENTITY_MARK, IdentityMark
from policyctl.lab.rulesets import Applier, Compiler, apply_with_enforcer, compiler_for
from policyctl.lab.servers import PodServers, own_addresses, pod_families
from policyctl.lab.services import cluster_ips
from policyctl.lab.state import LabState, drop_lease, new_prefix, remove_state, save_state, take_lease
from policyctl.lab.topology import Cni, PlanError, cluster_families, plan_lab
from policyctl.probecases.engines import EngineUnavailable, Observation, Probe
from policyctl.policy.model import Family
from policyctl.policy.cluster import Cluster


class LabEngine:
    """Decides probes with real packets between network namespaces. Call :meth:`close`
    (or use it as a context manager) to remove the lab; ``lab down --all`` also removes it
    once this process is gone. ``mode`` is the nodes' enforcement mode (audit lets denied
    connections through and counts them)."""

    name = "lab"

    def __init__(
        self,
        *,
        cni: Cni | str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        mode: Mode = Mode.ENFORCE,
        compiler: Compiler | None = None,
        applier: Applier | None = None,
        families: tuple[Family, ...] | None = None,
        identity_mark: IdentityMark | None = DEFAULT_IDENTITY_MARK,
    ) -> None:
        """``identity_mark``: the nodes' peer layout (``compiler.markedpeers``), by default
        the agent's; None for the peer maps that jump."""
        reason = netns.available()
        if reason:
            raise EngineUnavailable(reason)
        try:
            self.cni = Cni(cni or os.environ.get("POLICYCTL_LAB_CNI", Cni.BRIDGED.value))
        except ValueError:
            raise EngineUnavailable(f"unknown CNI style {cni!r}: bridged or routed") from None
        prefix = new_prefix()
        self._compiler = compiler or compiler_for(prefix, mode=mode, identity_mark=identity_mark)
        self._applier = applier or apply_with_enforcer
        self._timeout = timeout
        self._retries = retries
        self._families = families
        self._applied: dict[str, str] = {}
        self._state = LabState(name=f"engine-{prefix[4:-1]}-{secrets.token_hex(2)}", prefix=prefix,
                               kind="engine", owner_pid=os.getpid())
        save_state(self._state)
        take_lease(prefix, os.getpid())
        self._servers = PodServers()
        self._closed = False

    @property
    def state(self) -> LabState:
        return self._state

    def __enter__(self) -> LabEngine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def reconcile(self, cluster: Cluster) -> LabState:
        """Bring the lab to ``cluster`` (namespaces, routes, rulesets) without probing."""
        previous = self._state.plan
        families = self._families or (previous.families if previous else cluster_families(cluster))
        try:
            if previous is not None:
                # A server's sockets keep a deleted namespace (and its veth and address)
                # alive: close them before the pod is deleted or moved.
                upcoming = plan_lab(cluster, prefix=self._state.prefix, cni=self.cni, families=families).pod_by_key
                for pod in previous.pods:
                    if upcoming.get(pod.key) != pod:
                        self._servers.forget(pod.netns)
            self._state = sync(self._state, cluster, cni=self.cni, families=families,
                               compiler=self._compiler, applier=self._applier, applied=self._applied)
        except (LabError, PlanError) as error:
            raise EngineUnavailable(f"the lab cannot build this cluster: {error}") from None
        return self._state

    def observe(self, cluster: Cluster, probe: Probe) -> Observation:
        state = self.reconcile(cluster)
        plan = state.plan
        if plan is None:
            raise EngineUnavailable("the lab has no plan after reconciling")
        for pod in plan.pods:
            self._servers.serve(pod.netns, families=pod_families(pod.addresses),
                                endpoints=[(probe.protocol, probe.port)], addresses=own_addresses(pod))
        services = cluster_ips(plan)
        attempts = [
            Attempt((src.key, dst.key), src.netns, address)
            for src in plan.pods
            if src.address(probe.family) is not None
            for dst in plan.pods
            if (address := (services[dst.key].get(probe.family) if probe.via_service
                            else dst.address(probe.family))) is not None
        ]
        result: dict[Hashable, bool] = run_probes(attempts, protocol=probe.protocol, port=probe.port,
                                                  timeout=self._timeout, retries=self._retries)
        keys = sorted(p.key for p in cluster.pods)
        return Observation(pairs_matrix(result, keys), method(probe.protocol))

    def close(self) -> None:
        """Stop the servers, remove every namespace of the lab and its description."""
        if self._closed:
            return
        self._closed = True
        self._servers.close()
        netns.teardown(self._state.prefix)
        remove_state(self._state.name)
        drop_lease(self._state.prefix)
