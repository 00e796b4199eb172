"""The agent's drop monitor: packets its ruleset drops, read from NFLOG and explained.

With ``--drop-log-group N`` the agent's ruleset logs every denied new connection (behind the
compiler's rate limit, on the log statement only) to NFLOG group ``N`` of the node's network
namespace, and this module reads the group from one thread:

* each logged packet is attributed by :func:`~policyctl.enforcer.drops.attribute` on the
  snapshot the kernel's ruleset was last compiled from (an address index is built once per
  snapshot), so a drop is explained exactly as ``policyctl explain`` explains that connection
  on that view;
* the drop counts in ``policyctl_dropped_packets_total{policy,direction,action}``;
* its JSON document (``enforcer.drops.drop_document``) goes into a bounded ring buffer
  (:class:`DropLog`) that ``GET /drops?since=SEQ`` serves as one JSON object per line, on a
  server bound to 127.0.0.1 by default: drops name pods and policies, which is not for the
  network to read. A client that falls behind by more than the buffer holds is told how many
  it missed (``missed``), never silently.

A group that cannot be bound (another listener has it) is logged and retried every few
seconds; it never stops enforcement.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from policyctl.agent.httpserver import Reply
from policyctl.agent.metrics import AgentMetrics
from policyctl.enforcer.drops import AddressBook, attribute, drop_document
from policyctl.enforcer.nflog import LoggedPacket, NflogError
from policyctl.enforcer.packetheaders import HeaderError
from policyctl.policy.cluster import Cluster

#: Drops the ring buffer keeps by default.
DEFAULT_CAPACITY = 1000
#: The most drops one ``/drops`` answer holds.
PAGE = 500
RETRY_SECONDS = 5.0


class PacketSource(Protocol):
    """What the monitor reads (:class:`~policyctl.enforcer.nflog.NflogReader`)."""

    def read(self, timeout: float | None) -> tuple[LoggedPacket, ...]: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Page:
    """Drops after a sequence number: ``drops`` are ``(seq, document)`` in order; ``next`` is
    the ``since`` of the next request; ``missed`` counts drops that left the buffer before
    this client read them."""

    drops: tuple[tuple[int, Mapping[str, Any]], ...]
    next: int
    missed: int


class DropLog:
    """The most recent ``capacity`` drop documents, numbered from 1; thread-safe."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"the drop buffer holds at least 1 drop (got {capacity})")
        self._entries: deque[tuple[int, Mapping[str, Any]]] = deque(maxlen=capacity)
        self._last = 0
        self._lock = threading.Lock()

    def add(self, document: Mapping[str, Any]) -> int:
        with self._lock:
            self._last += 1
            self._entries.append((self._last, document))
            return self._last

    def since(self, seq: int, *, limit: int = PAGE) -> Page:
        """Drops numbered after ``seq`` (0: everything held), at most ``limit``."""
        with self._lock:
            entries = [e for e in self._entries if e[0] > seq][:limit]
            oldest = self._entries[0][0] if self._entries else self._last + 1
            last = self._last
        missed = max(0, oldest - seq - 1) if seq < oldest else 0
        return Page(tuple(entries), entries[-1][0] if entries else max(seq, last), missed)

    def route(self, query: Mapping[str, str]) -> Reply:
        """``GET /drops?since=SEQ``: a first line ``{"next": N, "missed": M}``, then one drop
        document per line (each with its ``seq``)."""
        try:
            since = int(query.get("since", "0"))
        except ValueError:
            return Reply(400, "text/plain; charset=utf-8", b"since must be a whole number\n")
        page = self.since(since)
        lines = [json.dumps({"next": page.next, "missed": page.missed}, sort_keys=True)]
        lines += [json.dumps({"seq": seq, **document}, sort_keys=True) for seq, document in page.drops]
        return Reply(200, "application/x-ndjson", ("\n".join(lines) + "\n").encode())


class DropMonitor:
    """Reads ``open_source()`` until stopped, attributing each drop on ``snapshot()``."""

    def __init__(
        self,
        open_source: Callable[[], PacketSource],
        snapshot: Callable[[], Cluster],
        *,
        log: DropLog,
        metrics: AgentMetrics | None = None,
        logger: logging.Logger | None = None,
        wall_clock: Callable[[], float] = time.time,
        tick: float = 1.0,
    ) -> None:
        self._open = open_source
        self._snapshot = snapshot
        self.log = log
        self.metrics = metrics
        self._logger = logger or logging.getLogger("policyctl.agent.drops")
        self._wall_clock = wall_clock
        self._tick = tick
        self._book: AddressBook | None = None
        self.unreadable = 0
        """Logged packets whose bytes could not be read as an IP packet."""
        self.lost_reads = 0
        """Reads of the drop log the kernel reported lost (its buffer was full)."""

    def _address_book(self) -> AddressBook:
        self._book = AddressBook.following(self._book, self._snapshot())
        return self._book

    def handle(self, packets: tuple[LoggedPacket, ...]) -> int:
        """Attribute, count and keep ``packets``; returns how many were drops of ours."""
        if not packets:
            return 0
        book = self._address_book()
        kept = 0
        for packet in packets:
            try:
                drop = attribute(packet, book, now=self._wall_clock())
            except HeaderError as error:
                self.unreadable += 1
                self._logger.warning("logged packet unreadable", extra={"fields": {"error": str(error)}})
                continue
            if drop is None:
                continue
            kept += 1
            self.log.add(drop_document(drop))
            if self.metrics is not None:
                self.metrics.dropped_packets.labels(policy=drop.policy_label,
                                                    direction=drop.prefix.direction.value.lower(),
                                                    action=drop.prefix.action).inc()
        return kept

    def _report_overruns(self, source: PacketSource) -> None:
        """Drops the kernel could not hand over (the socket's buffer was full) are logged and
        counted in :attr:`lost_reads`, never silent."""
        lost = getattr(source, "overruns", 0)
        if lost:
            self.lost_reads += lost
            source.overruns = 0  # type: ignore[attr-defined]
            self._logger.warning("drop log overrun: some drops were not read", extra={"fields": {
                "reads_lost": lost, "total": self.lost_reads}})

    def run(self, stop: threading.Event) -> None:
        """The thread body: open the source (retrying while it cannot be), read, handle."""
        while not stop.is_set():
            try:
                source = self._open()
            except NflogError as error:
                self._logger.warning("drop log not readable; retrying", extra={"fields": {"error": str(error)}})
                stop.wait(RETRY_SECONDS)
                continue
            try:
                while not stop.is_set():
                    self.handle(source.read(self._tick))
                    self._report_overruns(source)
            except NflogError as error:
                self._logger.warning("drop log read failed; reopening", extra={"fields": {"error": str(error)}})
            finally:
                source.close()
