"""The seam between the enforcer and nftables: send a JSON payload, list a table, dry-run.

Everything the enforcer does to the kernel goes through :class:`NftBackend`, so the diff and
apply logic can be tested against any backend and the choice of transport is made once, here.

* :class:`LibnftablesBackend` uses Debian's ``python3-nftables`` binding (libnftables, JSON in
  and out, one netlink batch per payload). It imports only under Debian's ``/usr/bin/python3``
  (our venv is made from it).
* :class:`NftCommandBackend` pipes the same JSON through ``nft -j -f -``; it exists for
  interpreters where the binding does not load.

A payload is one libnftables JSON document (``{"nftables": [commands...]}``); libnftables
sends all of its commands in one batch, which the kernel commits atomically or not at all.

Both backends can work inside a named network namespace (``/run/netns/NAME``), which is how
tests and the lab drive a "node" without touching the host's ruleset: the binding runs in a
worker thread that has joined the namespace (network namespaces are per thread), the command
runs under ``ip netns exec``.

``table_handle`` answers the one question the enforcer asks before every apply (is our table
still the one we committed to?) and must cost far less than the change itself. libnftables
fills its whole cache for any listing, so even ``list tables`` costs tens of milliseconds
beside a table of ~10k elements; :class:`LibnftablesBackend` therefore asks the kernel for
that one table over netlink (one ``NFT_MSG_GETTABLE`` built with pyroute2, well under a
millisecond) and falls back to the listing when pyroute2 is missing or netlink fails.

``list_table_giving_way`` is the listing of the periodic read-back: ``nft -j list table`` in a
child process, so that an event arriving meanwhile stops it at once instead of waiting for
a C call that takes a second at 100k pods (:func:`listing_giving_way`).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import errno
import functools
import itertools
import json
import os
import shutil
import socket
import struct
import subprocess
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from policyctl.enforcer.errors import BackendUnavailable, NftCommandError
from policyctl.enforcer.givingway import listing_giving_way

Payload = dict[str, Any]
T = TypeVar("T")

_CLONE_NEWNET = 0x40000000
_NO_SUCH_OBJECT = "No such file or directory"
#: nftables families as netlink numbers them (``NFPROTO_*``).
_NFPROTO = {"inet": 1, "ip": 2, "arp": 3, "netdev": 5, "bridge": 7, "ip6": 10}
#: ``struct nlmsghdr``: length, type, flags, sequence number, port id.
_NLMSG_HEADER = struct.Struct("=IHHII")
_NETLINK_TIMEOUT_SECONDS = 2.0


class NftBackend(Protocol):
    """What the enforcer needs from nftables. ``run`` raises :class:`NftCommandError` with
    nft's text when the kernel refuses; ``list_table`` returns the ``nft -j list table``
    document, or None when the table does not exist; ``check`` validates a payload against
    the kernel without committing it (nft's dry-run), raising like ``run``."""

    def run(self, payload: Payload) -> Payload: ...

    def list_table(self, family: str, name: str) -> Payload | None: ...

    def check(self, payload: Payload) -> None: ...

    def table_handle(self, family: str, name: str) -> int | None: ...


class GivingWayListing(Protocol):
    """What a backend offers when its listing can be abandoned half-way (see
    :func:`listing_giving_way`): ``list_table``'s answer, or :class:`GaveWay` as soon as
    ``interrupted()`` is true while the kernel is being listed."""

    def list_table_giving_way(
        self, family: str, name: str, interrupted: Callable[[], bool]
    ) -> Payload | None: ...


def handle_from_listing(listing: Payload, family: str, name: str) -> int | None:
    """The handle of table ``family``/``name`` in a ``list tables`` listing, None when it is
    not listed."""
    for item in listing.get("nftables", ()):
        table = item.get("table") if isinstance(item, dict) else None
        if isinstance(table, dict) and (table.get("family"), table.get("name")) == (family, name):
            handle = table.get("handle")
            return handle if isinstance(handle, int) else None
    return None


_LIST_TABLES: Payload = {"nftables": [{"list": {"tables": None}}]}


class _NetlinkTables:
    """Asks the kernel for one table's handle over nfnetlink: one ``NFT_MSG_GETTABLE`` for
    that table alone, encoded and decoded with pyroute2's nftables message classes, on a
    plain netlink socket. The socket is created by the caller's thread (so in its network
    namespace) and keeps that namespace, so any thread may use it afterwards; a lock keeps
    one request and its reply together. A plain socket, not pyroute2's asyncio one, so that
    a backend that is dropped without ``close`` releases it quietly."""

    def __init__(self) -> None:
        from pyroute2.netlink import NETLINK_NETFILTER

        self._socket = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self._socket.settimeout(_NETLINK_TIMEOUT_SECONDS)
        self._socket.bind((0, 0))
        self._lock = threading.Lock()
        self._sequence = itertools.count(1)

    def handle(self, family: str, name: str) -> int | None:
        from pyroute2.netlink import NLM_F_REQUEST, NLMSG_ERROR
        from pyroute2.netlink.nfnetlink import NFNL_SUBSYS_NFTABLES
        from pyroute2.netlink.nfnetlink.nftsocket import NFT_MSG_GETTABLE, nft_table_msg

        with self._lock:
            sequence = next(self._sequence) & 0xFFFFFFFF
            request = nft_table_msg()
            request["header"]["type"] = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE
            request["header"]["flags"] = NLM_F_REQUEST
            request["header"]["sequence_number"] = sequence
            request["nfgen_family"] = _NFPROTO[family]
            request["attrs"] = [("NFTA_TABLE_NAME", name)]
            request.encode()
            self._socket.send(request.data)
            while True:
                data = self._socket.recv(1 << 16)
                offset = 0
                while offset + _NLMSG_HEADER.size <= len(data):
                    length, kind, _, seen, _ = _NLMSG_HEADER.unpack_from(data, offset)
                    if length < _NLMSG_HEADER.size:
                        raise OSError("malformed netlink reply")
                    if seen == sequence:
                        if kind == NLMSG_ERROR:
                            (code,) = struct.unpack_from("=i", data, offset + _NLMSG_HEADER.size)
                            if -code == errno.ENOENT:
                                return None
                            raise OSError(-code, f"GETTABLE {family} {name}: {os.strerror(-code)}")
                        reply = nft_table_msg(data[offset : offset + length])
                        reply.decode()
                        if reply.get_attr("NFTA_TABLE_NAME") != name:
                            raise OSError(f"GETTABLE {family} {name} answered for another table")
                        handle = reply.get_attr("NFTA_TABLE_HANDLE")
                        return int(handle) if handle is not None else None
                    offset += (length + 3) & ~3

    def close(self) -> None:
        self._socket.close()


def _list_payload(family: str, name: str) -> Payload:
    return {"nftables": [{"list": {"table": {"family": family, "name": name}}}]}


def _is_missing(error: str) -> bool:
    return _NO_SUCH_OBJECT in error


def _decoded_listing(rc: int, out: bytes | str, err: str) -> Payload | None:
    if rc != 0:
        if _is_missing(err):
            return None
        raise NftCommandError(err)
    loaded: Payload = json.loads(out)
    return loaded


def _join_netns(name: str) -> None:
    """Move the calling thread into the named network namespace (what ``ip netns exec``
    does for a process)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = os.open(os.path.join("/run/netns", name), os.O_RDONLY)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into network namespace {name}: {os.strerror(errno)}")
    finally:
        os.close(fd)


_LIBNFTABLES = threading.Lock()
"""libnftables keeps process-wide state (its parser and cache code are not thread-safe across
contexts): two contexts running commands at once in one process can abort it. Every context
of this process (one per node namespace in the lab, one per agent in the tests) takes turns."""


class LibnftablesBackend:
    """libnftables through the official binding. With ``netns``, every call runs in one
    worker thread that joined that namespace before creating the libnftables context."""

    def __init__(self, *, netns: str | None = None) -> None:
        try:
            import nftables  # noqa: F401  (probe that the binding loads here)
        except ImportError as exc:
            raise BackendUnavailable(
                "the libnftables binding (python3-nftables) does not import under this "
                "interpreter; use Debian's /usr/bin/python3 or the nft command backend"
            ) from exc
        self.netns = netns
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        if netns is not None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, initializer=_join_netns, initargs=(netns,)
            )
        self._ctx: Any = self._call(self._new_context)
        self._netlink: _NetlinkTables | None = None
        self._netlink_broken = False
        self._netlink_lock = threading.Lock()

    @staticmethod
    def _new_context() -> Any:
        import nftables

        with _LIBNFTABLES:
            ctx = nftables.Nftables()
        ctx.set_json_output(True)
        return ctx

    @classmethod
    def _listing(cls, payload: Payload) -> tuple[int, Any, str]:
        """Run a listing in a context of its own, freed at once. A context keeps what it listed
        in its cache, and its next command pays for dropping it: after a read-back of a table
        of 85,000 elements the next one-element transaction took ~100 ms instead of 3, and that
        transaction is the next event's."""
        ctx = cls._new_context()
        try:
            with _LIBNFTABLES:
                rc, out, err = ctx.json_cmd(payload)
        finally:
            with _LIBNFTABLES:
                ctx = None
        return rc, out, err

    def _call(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            return fn()
        return self._executor.submit(fn).result()

    def _json_cmd(self, payload: Payload, *, dry_run: bool = False) -> tuple[int, Any, str]:
        def go() -> tuple[int, Any, str]:
            with _LIBNFTABLES:
                self._ctx.set_dry_run(dry_run)
                try:
                    rc, out, err = self._ctx.json_cmd(payload)
                finally:
                    self._ctx.set_dry_run(False)
            return rc, out, err

        return self._call(go)

    def run(self, payload: Payload) -> Payload:
        rc, out, err = self._json_cmd(payload)
        if rc != 0:
            raise NftCommandError(err)
        return out if isinstance(out, dict) else {"nftables": []}

    def list_table(self, family: str, name: str) -> Payload | None:
        rc, out, err = self._call(functools.partial(self._listing, _list_payload(family, name)))
        if rc != 0:
            if _is_missing(err):
                return None
            raise NftCommandError(err)
        table: Payload = out
        return table

    def list_table_giving_way(self, family: str, name: str, interrupted: Callable[[], bool]) -> Payload | None:
        """``list_table`` through the ``nft`` command in a child process (in this backend's
        namespace), abandoned as soon as ``interrupted()`` is true; in process, whole, where
        the command is not installed."""
        nft = shutil.which("nft")
        if nft is None:
            return self.list_table(family, name)
        prefix = ["ip", "netns", "exec", self.netns] if self.netns is not None else []
        return _decoded_listing(*listing_giving_way([*prefix, nft, "-j", "list", "table", family, name], interrupted))

    def check(self, payload: Payload) -> None:
        rc, _, err = self._json_cmd(payload, dry_run=True)
        if rc != 0:
            raise NftCommandError(err)

    def table_handle(self, family: str, name: str) -> int | None:
        """The kernel's handle of table ``family``/``name``, None when there is none: over
        netlink when pyroute2 works here, else from libnftables' ``list tables`` (for good
        when pyroute2 does not import; for this call when netlink failed, with a fresh
        socket next time)."""
        if not self._netlink_broken and family in _NFPROTO:
            try:
                return self._netlink_tables().handle(family, name)
            except ImportError:
                self._netlink_broken = True
            except Exception:
                self._close_netlink()
        return handle_from_listing(self.run(_LIST_TABLES), family, name)

    def _netlink_tables(self) -> _NetlinkTables:
        with self._netlink_lock:
            if self._netlink is None:
                netlink = self._call(_NetlinkTables)
                weakref.finalize(self, netlink.close)
                self._netlink = netlink
            return self._netlink

    def _close_netlink(self) -> None:
        with self._netlink_lock:
            netlink, self._netlink = self._netlink, None
        if netlink is not None:
            netlink.close()

    def release_cache(self) -> None:
        """Start over with a fresh context. libnftables keeps in its cache what a transaction
        added, and its next command pays for dropping it: after a whole table of 85,000
        elements, ~100 ms, on what is the next event's transaction. Called after whole
        applies, so that cost lands there."""
        def renew() -> None:
            self._free_context()
            self._ctx = self._new_context()

        self._call(renew)

    def close(self) -> None:
        self._close_netlink()
        if self._ctx is not None:
            self._call(self._free_context)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _free_context(self) -> None:
        """Drop the last reference to the context (the binding frees it then) while no other
        context runs a command."""
        with _LIBNFTABLES:
            self._ctx = None


class NftCommandBackend:
    """The ``nft`` command with JSON in and out (``nft -j -f -``)."""

    def __init__(self, *, nft: str = "nft", netns: str | None = None) -> None:
        found = shutil.which(nft)
        if found is None:
            raise BackendUnavailable(f"the {nft} command is not installed")
        self.netns = netns
        self._prefix = (["ip", "netns", "exec", netns] if netns else []) + [found]

    def _nft(self, args: list[str], stdin: str | None = None) -> tuple[int, str, str]:
        done = subprocess.run(
            self._prefix + args, input=stdin, capture_output=True, text=True, check=False
        )
        return done.returncode, done.stdout, done.stderr

    def run(self, payload: Payload) -> Payload:
        rc, out, err = self._nft(["-j", "-f", "-"], json.dumps(payload))
        if rc != 0:
            raise NftCommandError(err)
        return json.loads(out) if out.strip() else {"nftables": []}

    def list_table(self, family: str, name: str) -> Payload | None:
        return _decoded_listing(*self._nft(["-j", "list", "table", family, name]))

    def list_table_giving_way(self, family: str, name: str, interrupted: Callable[[], bool]) -> Payload | None:
        return _decoded_listing(*listing_giving_way([*self._prefix, "-j", "list", "table", family, name], interrupted))

    def check(self, payload: Payload) -> None:
        rc, _, err = self._nft(["-c", "-j", "-f", "-"], json.dumps(payload))
        if rc != 0:
            raise NftCommandError(err)

    def table_handle(self, family: str, name: str) -> int | None:
        """From ``nft -j list tables`` (a process start dominates its cost anyway)."""
        return handle_from_listing(self.run(_LIST_TABLES), family, name)

    def close(self) -> None:
        """Nothing to release; present so both backends close the same way."""


def default_backend(*, netns: str | None = None) -> LibnftablesBackend | NftCommandBackend:
    """The binding where it loads, else the ``nft`` command."""
    try:
        return LibnftablesBackend(netns=netns)
    except BackendUnavailable:
        return NftCommandBackend(netns=netns)


if TYPE_CHECKING:
    _conforms_libnftables: type[NftBackend] = LibnftablesBackend
    _conforms_command: type[NftBackend] = NftCommandBackend
