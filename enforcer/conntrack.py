"""Revoked connections stop: after a change, forget the tracked connections the new ruleset
would no longer let start.

A NetworkPolicy allows *connections*, and the ruleset accepts every packet of a connection
that conntrack already tracks (``ct state established,related accept``: "reply traffic for
those connections will also be allowed"). Without this step a connection allowed yesterday
keeps flowing after its policy is removed. So each tracked flow that involves a local pod is
re-judged as if its original direction were a new connection; the entries of flows that are
now denied are deleted, and the next packet of such a flow meets the ruleset as a new
connection and is dropped.

``flow_of_entry``, ``parse_listing`` and ``flows_to_revoke`` are pure; the side effects are
behind :class:`ConntrackTable`. :class:`ConntrackTool` lists the table with the ``conntrack``
command of conntrack-tools (its C decoder is some 15 times faster than pyroute2's) and cuts
flows through ctnetlink with pyroute2 (one socket, one message per cut flow); either serves
alone where the other is unavailable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import functools
import ipaddress
import shutil
import socket
import subprocess
import weakref
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, Union

from policyctl.enforcer.errors import ConntrackError

if TYPE_CHECKING:
    from policyctl.compiler.evaluator import Evaluator

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
#: Transport protocols whose flows NetworkPolicy decides (by port).
PORTED = ("tcp", "udp", "sctp")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Flow:
    """The original-direction tuple of a tracked connection (who opened it, to what)."""

    protocol: str
    source: IPAddress
    destination: IPAddress
    source_port: int | None = None
    destination_port: int | None = None
    state: str = ""

    @property
    def family(self) -> str:
        return "ipv4" if self.source.version == 4 else "ipv6"

    def sort_key(self) -> tuple[int, str, int, int, int, int]:
        """IPv4 before IPv6 (addresses of different versions do not compare)."""
        return (
            self.source.version,
            self.protocol,
            int(self.source),
            int(self.destination),
            self.destination_port or 0,
            self.source_port or 0,
        )

    def __str__(self) -> str:
        sport = f":{self.source_port}" if self.source_port is not None else ""
        dport = f":{self.destination_port}" if self.destination_port is not None else ""
        return f"{self.protocol} {self.source}{sport} -> {self.destination}{dport}"


FlowJudge = Callable[[Flow], bool]
"""True when the ruleset would let this flow's original direction start as a new connection."""


def parse_listing(text: str) -> tuple[Flow, ...]:
    """Flows from ``conntrack -L -o extended`` lines (``ipv4 2 tcp 6 431999 ESTABLISHED
    src=.. dst=.. sport=.. dport=.. src=.. ...``); the first ``src/dst/sport/dport`` group is
    the original direction. Lines that are not flows (the summary) are skipped; sorted."""
    flows: set[Flow] = set()
    for line in text.splitlines():
        words = line.split()
        if len(words) < 5 or words[0] not in ("ipv4", "ipv6"):
            continue
        protocol = words[2]
        fields: dict[str, str] = {}
        state = ""
        for word in words[5:]:
            key, sep, value = word.partition("=")
            if not sep:
                if not fields and word.replace("_", "").isalpha() and word.isupper():
                    state = word
                continue
            if key in fields:
                break
            fields[key] = value
        if "src" not in fields or "dst" not in fields:
            continue
        try:
            flows.add(
                Flow(
                    protocol=protocol,
                    source=ipaddress.ip_address(fields["src"]),
                    destination=ipaddress.ip_address(fields["dst"]),
                    source_port=int(fields["sport"]) if "sport" in fields else None,
                    destination_port=int(fields["dport"]) if "dport" in fields else None,
                    state=state,
                )
            )
        except ValueError:
            continue
    return tuple(sorted(flows, key=Flow.sort_key))


class ConntrackTable(Protocol):
    def flows(self) -> tuple[Flow, ...]: ...

    def delete(self, flow: Flow) -> bool: ...


_FAMILIES = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}
_PROTOCOL_NAMES = {socket.IPPROTO_TCP: "tcp", socket.IPPROTO_UDP: "udp", 132: "sctp"}


def flow_of_entry(entry: Any) -> Flow | None:
    """The :class:`Flow` of a pyroute2 ``ConntrackEntry`` or alike (``tuple_orig`` is the original
    direction; ``protoinfo`` carries the TCP state), or None for protocols NetworkPolicy does
    not decide by port (ICMP and others are never judged). Pure."""
    orig = entry.tuple_orig
    protocol = _PROTOCOL_NAMES.get(orig.proto)
    if protocol is None or orig.saddr is None or orig.daddr is None:
        return None
    protoinfo = getattr(entry, "protoinfo", None)
    try:
        return Flow(
            protocol=protocol,
            source=ipaddress.ip_address(orig.saddr),
            destination=ipaddress.ip_address(orig.daddr),
            source_port=orig.sport,
            destination_port=orig.dport,
            state=protoinfo.state_name() if protoinfo is not None else "",
        )
    except ValueError:
        return None


class ConntrackNetlink:
    """The conntrack table through ctnetlink (pyroute2), optionally inside a named namespace.

    One netlink socket per address family serves every dump and delete, so cutting thousands
    of flows costs thousands of netlink messages, not thousands of processes. A network
    namespace is per thread and a socket keeps the namespace it was created in, so the
    sockets are created, and every call runs, in one worker thread that joined ``netns``.
    The sockets and the thread are released by :meth:`close`, or when the table is
    garbage-collected (callers that make one per change need not close it); at exit the
    process's end releases them (the worker may already be stopped then)."""

    def __init__(self, *, netns: str | None = None) -> None:
        try:
            from pyroute2 import Conntrack
        except ImportError as exc:
            raise ConntrackError(f"pyroute2's conntrack (ctnetlink) is unavailable: {exc}") from exc
        from policyctl.enforcer.backend import _join_netns

        self.netns = netns
        executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, initializer=functools.partial(_join_netns, netns) if netns is not None else None
        )
        self._executor = executor
        try:
            self._sockets: dict[str, Any] = executor.submit(
                lambda: {name: Conntrack(nfgen_family=number) for name, number in _FAMILIES.items()}
            ).result()
        except (OSError, concurrent.futures.BrokenExecutor) as exc:
            executor.shutdown(wait=False)
            raise ConntrackError(f"cannot open ctnetlink{' in ' + netns if netns else ''}: {exc}") from exc
        self._finalizer = weakref.finalize(self, _release, executor, self._sockets)
        self._finalizer.atexit = False

    def _call(self, fn: Callable[[], T]) -> T:
        return self._executor.submit(fn).result()

    def flows(self) -> tuple[Flow, ...]:
        """Every tracked flow of a ported protocol. Only the original tuple (and a TCP
        entry's state) is decoded: decoding whole entries costs several times the dump."""
        from pyroute2.netlink.exceptions import NetlinkError

        def dump() -> list[Flow]:
            found: list[Flow] = []
            for name, sock in self._sockets.items():
                try:
                    flows = (flow_of_entry(_entry_of_message(message)) for message in sock.dump())
                    found.extend(f for f in flows if f is not None)
                except (OSError, NetlinkError) as exc:
                    raise ConntrackError(f"conntrack dump ({name}): {exc}") from exc
            return found

        return tuple(sorted(set(self._call(dump)), key=Flow.sort_key))

    def delete(self, flow: Flow) -> bool:
        """Delete the entry whose original tuple is this flow's; False when it was already
        gone (the kernel answers ENOENT: the flow ended or another agent cut it)."""
        return bool(self.delete_all((flow,)))

    def delete_all(self, flows: Iterable[Flow]) -> tuple[Flow, ...]:
        """Delete the entries of ``flows``; those that were still there, in order. Requests
        are pipelined (up to ``_IN_FLIGHT`` awaiting their acknowledgement on one socket),
        since a round trip per flow would dominate revoking thousands of them."""
        from pyroute2.netlink.exceptions import NetlinkError

        wanted = tuple(flows)

        async def delete_part(sock: Any, part: tuple[Flow, ...]) -> list[Any]:
            requests = (sock.asyncore.entry("del", tuple_orig=_tuple_of(f)) for f in part)
            return list(await asyncio.gather(*requests, return_exceptions=True))

        def delete_in_worker() -> set[Flow]:
            deleted: set[Flow] = set()
            for name, sock in self._sockets.items():
                mine = tuple(f for f in wanted if f.family == name)
                for start in range(0, len(mine), _IN_FLIGHT):
                    part = mine[start : start + _IN_FLIGHT]
                    for flow, result in zip(part, sock._run_with_cleanup(delete_part, sock, part)):
                        if isinstance(result, NetlinkError) and result.code == errno.ENOENT:
                            continue
                        if isinstance(result, BaseException):
                            raise ConntrackError(f"conntrack delete {flow}: {result}") from result
                        deleted.add(flow)
            return deleted

        deleted = self._call(delete_in_worker)
        return tuple(f for f in wanted if f in deleted)

    def close(self) -> None:
        self._finalizer()


_IN_FLIGHT = 256


@dataclass(frozen=True, slots=True)
class _Entry:
    tuple_orig: Any
    protoinfo: Any


def _entry_of_message(message: Any) -> _Entry:
    from pyroute2.conntrack import NFCTATcpProtoInfo, NFCTAttrTuple

    orig = NFCTAttrTuple.from_netlink(message["nfgen_family"], message.get_attr("CTA_TUPLE_ORIG"))
    protoinfo = message.get_attr("CTA_PROTOINFO") if orig.proto == socket.IPPROTO_TCP else None
    return _Entry(orig, NFCTATcpProtoInfo.from_netlink(protoinfo) if protoinfo is not None else None)


def _tuple_of(flow: Flow) -> Any:
    from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

    return NFCTAttrTuple(
        family=_FAMILIES[flow.family],
        saddr=str(flow.source),
        daddr=str(flow.destination),
        proto=_PROTOCOL_NUMBERS[flow.protocol],
        sport=flow.source_port,
        dport=flow.destination_port,
    )


def _release(executor: concurrent.futures.ThreadPoolExecutor, sockets: Mapping[str, Any]) -> None:
    def close_all() -> None:
        for sock in sockets.values():
            sock.close()

    try:
        executor.submit(close_all).result()
    except RuntimeError:
        close_all()  # the interpreter is exiting and has stopped the worker already
    finally:
        executor.shutdown(wait=False)


class ConntrackCommand:
    """The ``conntrack`` command (conntrack-tools), optionally inside a named namespace.

    Fast at listing (one process per family, C decoding), slow at cutting: it starts one
    process per deleted flow, so revoking thousands of flows takes minutes
    (:class:`ConntrackTool` cuts through :class:`ConntrackNetlink` instead)."""

    def __init__(self, *, binary: str = "conntrack", netns: str | None = None) -> None:
        found = shutil.which(binary)
        if found is None:
            raise ConntrackError(f"the {binary} command (conntrack-tools) is not installed")
        self._prefix = (["ip", "netns", "exec", netns] if netns else []) + [found]

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self._prefix + args, capture_output=True, text=True, check=False)

    def flows(self) -> tuple[Flow, ...]:
        found: list[Flow] = []
        for family in ("ipv4", "ipv6"):
            done = self._run(["-L", "-f", family, "-o", "extended"])
            if done.returncode != 0:
                raise ConntrackError(f"conntrack -L -f {family}: {done.stderr.strip()}")
            found.extend(parse_listing(done.stdout))
        return tuple(sorted(set(found), key=Flow.sort_key))

    def delete(self, flow: Flow) -> bool:
        """Delete the entry of this flow; False when it was already gone (conntrack exits 1
        and reports 0 deleted entries)."""
        args = ["-D", "-f", flow.family, "-p", flow.protocol, "-s", str(flow.source), "-d", str(flow.destination)]
        if flow.source_port is not None:
            args += ["--sport", str(flow.source_port)]
        if flow.destination_port is not None:
            args += ["--dport", str(flow.destination_port)]
        done = self._run(args)
        if done.returncode == 0:
            return True
        if "0 flow entries" in done.stderr:
            return False
        raise ConntrackError(f"conntrack {' '.join(args)}: {done.stderr.strip()}")


@dataclass(frozen=True, slots=True)
class RevokeReport:
    """Flows judged (those involving a local address) and those whose entries were deleted."""

    judged: tuple[Flow, ...]
    revoked: tuple[Flow, ...]


def flows_to_revoke(
    flows: Iterable[Flow], allows: FlowJudge, *, local: Collection[IPAddress] | None = None
) -> tuple[tuple[Flow, ...], tuple[Flow, ...]]:
    """(judged, denied): flows of ported protocols with a local address at either end (all
    of them when ``local`` is None), and those of them the judge no longer allows. Pure."""
    judged = tuple(
        sorted(
            (
                f
                for f in flows
                if f.protocol in PORTED
                and f.destination_port is not None
                and (local is None or f.source in local or f.destination in local)
            ),
            key=Flow.sort_key,
        )
    )
    return judged, tuple(f for f in judged if not allows(f))


def revoke(
    table: ConntrackTable, allows: FlowJudge, *, local: Collection[IPAddress] | None = None
) -> RevokeReport:
    """Delete the tracked entries of every local flow ``allows`` now denies (in one batch
    when the table offers ``delete_all``, as :class:`ConntrackNetlink` does)."""
    judged, denied = flows_to_revoke(table.flows(), allows, local=local)
    delete_all: Callable[[Iterable[Flow]], tuple[Flow, ...]] | None = getattr(table, "delete_all", None)
    revoked = delete_all(denied) if delete_all is not None else tuple(f for f in denied if table.delete(f))
    return RevokeReport(judged=judged, revoked=revoked)


class ConntrackTool:
    """The node's conntrack table, each half by the faster of the two ways: listed by the
    ``conntrack`` command (conntrack-tools) and cut through ctnetlink (:class:`ConntrackNetlink`).

    Every change lists the whole table, and pyroute2 decodes a dumped entry in about 0.4 ms of
    Python where ``conntrack -L`` prints one in about 25 us (5,000 tracked flows: 2.0 s against
    0.13 s; ``bench/conntrack.py``), so a node with a busy conntrack table would spend seconds of
    every sync listing it. Cutting is the other way round: one ctnetlink socket deletes
    thousands of entries, where the command starts a process for each. Where only one of the
    two is available it does both; with neither it raises :class:`ConntrackError`."""

    def __init__(self, *, binary: str = "conntrack", netns: str | None = None) -> None:
        netlink: ConntrackNetlink | None = None
        try:
            import pyroute2.conntrack  # noqa: F401  (probe that the binding loads here)
        except ImportError:
            pass
        else:
            netlink = ConntrackNetlink(netns=netns)
        self.lister: ConntrackNetlink | ConntrackCommand
        self.cutter: ConntrackNetlink | ConntrackCommand
        if netlink is None:
            self.lister = self.cutter = ConntrackCommand(binary=binary, netns=netns)
        elif shutil.which(binary) is None:
            self.lister = self.cutter = netlink
        else:
            self.lister, self.cutter = ConntrackCommand(binary=binary, netns=netns), netlink

    def flows(self) -> tuple[Flow, ...]:
        return self.lister.flows()

    def delete(self, flow: Flow) -> bool:
        return self.cutter.delete(flow)

    def delete_all(self, flows: Iterable[Flow]) -> tuple[Flow, ...]:
        if isinstance(self.cutter, ConntrackNetlink):
            return self.cutter.delete_all(flows)
        return tuple(f for f in flows if self.cutter.delete(f))

    def close(self) -> None:
        if isinstance(self.cutter, ConntrackNetlink):
            self.cutter.close()


if TYPE_CHECKING:
    _conforms: tuple[type[ConntrackTable], ...] = (ConntrackTool, ConntrackNetlink, ConntrackCommand)


_PROTOCOL_NUMBERS = {"tcp": 6, "udp": 17, "sctp": 132}
#: Hooks a new connection of a local pod meets on its node: postrouting for traffic the node
#: forwards, input for traffic to the node itself. A flow is allowed when neither drops it.
_HOOKS = ("postrouting", "input")


def ruleset_judge(document: Mapping[str, Any] | Callable[[], Mapping[str, Any]]) -> FlowJudge:
    """Judge flows with the compiler's evaluator of the very JSON the kernel was given.
    ``document`` may be a function returning it, called only when a first flow is judged."""
    from policyctl.compiler.evaluator import Evaluator

    return evaluator_judge(lambda: Evaluator(document() if callable(document) else document))


def evaluator_judge(evaluator: Callable[[], Evaluator]) -> FlowJudge:
    """Judge flows with the evaluator of the table the kernel was given: the flow's original
    direction, as a packet of a new connection. The evaluator is built only when a first
    flow is judged (once), so a node without local flows never pays for it."""
    from policyctl.compiler.evaluator import Packet

    built = functools.cache(evaluator)

    def allows(flow: Flow) -> bool:
        packet = Packet(
            saddr=flow.source,
            daddr=flow.destination,
            protocol=_PROTOCOL_NUMBERS[flow.protocol],
            dport=flow.destination_port,
        )
        return all(built().evaluate(hook, packet).accepted for hook in _HOOKS)

    return allows
