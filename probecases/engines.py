"""The seam between probe cases and the three engines that decide them.

A probe case (``../shared/spec/probe-cases.md``) is run step by step; after each step every
engine is shown the cluster as it now is and asked, for one probe (port, protocol, family,
via), which ordered pairs of pods can open a connection. ``model`` answers from the reference
semantics, ``compiled`` from the nftables ruleset the compiler emits for each node evaluated
packet by packet, ``lab`` from real packets between network namespaces.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol as TypingProtocol

from policyctl.policy.diagnostics import PolicyctlError
from policyctl.policy.model import Family, Protocol
from policyctl.policy.cluster import Cluster


@dataclass(frozen=True, slots=True)
class Probe:
    """One probe of a step: every ordered pair of pods, on this port/protocol/family."""

    port: int
    protocol: Protocol
    family: Family
    via_service: bool = False


@dataclass(frozen=True, slots=True)
class Observation:
    """What an engine observed for one probe: ``allowed[source][destination]`` over every
    ordered pair of pod keys (``namespace/name``), a pod to itself included; ``method`` says
    how it was decided (``model``, ``compiled``, ``tcp-connect``, ``udp-echo``,
    ``sctp-raw-init``, ...)."""

    allowed: Mapping[str, Mapping[str, bool]]
    method: str


class Engine(TypingProtocol):
    """An engine that can decide probes. ``observe`` is called after every step with the
    whole cluster as it now is; an engine that keeps state (the lab) reconciles to it."""

    name: str

    def observe(self, cluster: Cluster, probe: Probe) -> Observation: ...

    def close(self) -> None: ...


class EngineUnavailable(PolicyctlError):
    """The engine cannot run here (e.g. the lab without root or network namespaces); the
    message says why. ``policyctl probe`` reports it and exits 2."""
