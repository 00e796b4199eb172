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
that one table over netlink (one ``NFT_MSG_GETTABLE`` framed and read here, a tenth of a
millisecond or less) and falls back to the listing when pyroute2 (which opens the socket) is
missing or netlink fails.

``commit_batch`` sends a transaction of elements, sets, chains and rules of the compiler's
vocabulary as an nfnetlink batch of our own on that same socket (:mod:`policyctl.enforcer.batches`):
libnftables fetches its cache of the table before every command, ~1.1 ms at 10k pods, where
the kernel commits a few elements in a tenth of that.

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
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from policyctl.enforcer.nfmessages import NFPROTO, Batch, attributes_by_type, string
from policyctl.enforcer.errors import BackendUnavailable, NftCommandError
from policyctl.enforcer.givingway import listing_giving_way

Payload = dict[str, Any]
T = TypeVar("T")

_CLONE_NEWNET = 0x40000000
_NO_SUCH_OBJECT = "No such file or directory"
#: ``struct nlmsghdr``: length, type, flags, sequence number, port id.
_NLMSG_HEADER = struct.Struct("=IHHII")
_NETLINK_TIMEOUT_SECONDS = 2.0
_SOL_NETLINK = 270
#: Error replies carry the refused message's header only, not the message.
_NETLINK_CAP_ACK = 10
_NLM_F_REQUEST = 0x1
_NLM_F_ACK = 0x4
_NLMSG_ERROR = 0x2
_NFNL_SUBSYS_NFTABLES = 10
_NFNL_MSG_BATCH_BEGIN = 0x10
_NFNL_MSG_BATCH_END = 0x11
#: ``struct nfgenmsg``: family, version, resource id (big-endian).
_NFGENMSG = struct.Struct("=BBH")
#: ``NFT_MSG_GETTABLE`` and the ``NFTA_TABLE_*`` attributes it is asked and answered with
#: (``include/uapi/linux/netfilter/nf_tables.h``; the handle is a big-endian u64).
_NFT_MSG_GETTABLE = 1
_NFTA_TABLE_NAME = 1
_NFTA_TABLE_HANDLE = 4


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


class _Nfnetlink:
    """What the backend asks the kernel over nfnetlink itself: one table's handle (one
    ``NFT_MSG_GETTABLE`` for that table alone, framed and read here: it precedes every delta,
    and pyroute2's message classes made it 0.2-0.3 ms of an event instead of 0.06-0.13) and
    batches of our own (:meth:`commit`). A plain netlink socket, created by the caller's
    thread (so in its network namespace) and keeping that namespace, so any thread may use it
    afterwards; a lock keeps one request and its replies together. Not pyroute2's asyncio
    socket, so that a backend dropped without ``close`` releases it quietly."""

    def __init__(self) -> None:
        from pyroute2.netlink import NETLINK_NETFILTER

        self._socket = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self._socket.settimeout(_NETLINK_TIMEOUT_SECONDS)
        self._socket.setsockopt(_SOL_NETLINK, _NETLINK_CAP_ACK, 1)
        self._socket.bind((0, 0))
        self._lock = threading.Lock()
        self._sequence = itertools.count(1)

    def handle(self, family: str, name: str) -> int | None:
        with self._lock:
            sequence = next(self._sequence) & 0xFFFFFFFF
            request = (_NFNL_SUBSYS_NFTABLES << 8) | _NFT_MSG_GETTABLE
            body = string(_NFTA_TABLE_NAME, name)
            self._socket.send(_netlink_message(request, _NLM_F_REQUEST, sequence, NFPROTO[family], 0, body))
            while True:
                data = self._socket.recv(1 << 16)
                for offset, length, kind, seen in _netlink_messages(data):
                    if seen != sequence:
                        continue
                    if kind == _NLMSG_ERROR:
                        (code,) = struct.unpack_from("=i", data, offset + _NLMSG_HEADER.size)
                        if -code == errno.ENOENT:
                            return None
                        raise OSError(-code, f"GETTABLE {family} {name}: {os.strerror(-code)}")
                    return table_handle_of(data[offset : offset + length], family, name)

    def commit(self, batch: Batch) -> None:
        """Send ``batch`` between ``NFNL_MSG_BATCH_BEGIN`` and ``NFNL_MSG_BATCH_END``: the kernel
        commits it whole or not at all, as it does libnftables' batches. Only the last message
        asks for an acknowledgement; errors come unasked, each naming its message, and a
        failure of the commit itself names the batch's first message. The kernel handles a
        batch within the send, so its answers are queued when ``send`` returns: wait for the
        last message's acknowledgement (or an error about the whole batch), then take what
        else is queued."""
        with self._lock:
            begin = next(self._sequence) & 0xFFFFFFFF
            parts = [_batch_marker(_NFNL_MSG_BATCH_BEGIN, begin)]
            commands: dict[int, int] = {}
            last = begin
            for position, message in enumerate(batch.messages):
                last = next(self._sequence) & 0xFFFFFFFF
                commands[last] = message.command
                flags = _NLM_F_REQUEST | message.flags | (_NLM_F_ACK if position == len(batch.messages) - 1 else 0)
                kind = (_NFNL_SUBSYS_NFTABLES << 8) | message.type
                parts.append(_netlink_message(kind, flags, last, batch.family, 0, message.body))
            parts.append(_batch_marker(_NFNL_MSG_BATCH_END, next(self._sequence) & 0xFFFFFFFF))
            self._socket.send(b"".join(parts))
            errors: list[tuple[int, int]] = []
            done = False
            while not done:
                for sequence, code in _acknowledgements(self._socket.recv(1 << 16)):
                    if code:
                        errors.append((sequence, code))
                    done = done or sequence == last or (sequence == begin and code != 0)
            self._socket.setblocking(False)
            try:
                while True:
                    try:
                        data = self._socket.recv(1 << 16)
                    except BlockingIOError:
                        break
                    errors.extend((s, c) for s, c in _acknowledgements(data) if c)
            finally:
                self._socket.settimeout(_NETLINK_TIMEOUT_SECONDS)
        if errors:
            sequence, code = next(((s, c) for s, c in errors if s in commands), errors[0])
            raise NftCommandError(f"Could not process rule: {os.strerror(-code)}", index=commands.get(sequence))

    def close(self) -> None:
        self._socket.close()


def _netlink_message(kind: int, flags: int, sequence: int, family: int, resource: int, body: bytes) -> bytes:
    length = _NLMSG_HEADER.size + _NFGENMSG.size + len(body)
    return (_NLMSG_HEADER.pack(length, kind, flags, sequence, 0)
            + _NFGENMSG.pack(family, 0, socket.htons(resource)) + body)


def _batch_marker(kind: int, sequence: int) -> bytes:
    return _netlink_message(kind, _NLM_F_REQUEST, sequence, socket.AF_UNSPEC, _NFNL_SUBSYS_NFTABLES, b"")


def _netlink_messages(data: bytes) -> Iterator[tuple[int, int, int, int]]:
    """The ``(offset, length, type, sequence number)`` of each netlink message in ``data``."""
    offset = 0
    while offset + _NLMSG_HEADER.size <= len(data):
        length, kind, _, sequence, _ = _NLMSG_HEADER.unpack_from(data, offset)
        if length < _NLMSG_HEADER.size:
            raise OSError("malformed netlink reply")
        yield offset, length, kind, sequence
        offset += (length + 3) & ~3


def table_handle_of(reply: bytes, family: str, name: str) -> int | None:
    """The handle in one ``NFT_MSG_NEWTABLE`` reply to a GETTABLE for ``family``/``name``
    (None when it carries none); a reply about another table is an error."""
    attributes = attributes_by_type(reply, _NLMSG_HEADER.size + _NFGENMSG.size)
    if attributes.get(_NFTA_TABLE_NAME, b"").rstrip(b"\0") != name.encode():
        raise OSError(f"GETTABLE {family} {name} answered for another table")
    handle = attributes.get(_NFTA_TABLE_HANDLE)
    return int.from_bytes(handle, "big") if handle is not None and len(handle) == 8 else None


def _acknowledgements(data: bytes) -> list[tuple[int, int]]:
    """The ``(sequence number, error code)`` of every ``NLMSG_ERROR`` in ``data`` (code 0 is
    an acknowledgement)."""
    return [(sequence, struct.unpack_from("=i", data, offset + _NLMSG_HEADER.size)[0])
            for offset, _, kind, sequence in _netlink_messages(data) if kind == _NLMSG_ERROR]


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
        self._netlink: _Nfnetlink | None = None
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
        if not self._netlink_broken and family in NFPROTO:
            try:
                return self._netlink_tables().handle(family, name)
            except ImportError:
                self._netlink_broken = True
            except Exception:
                self._close_netlink()
        return handle_from_listing(self.run(_LIST_TABLES), family, name)

    def commit_batch(self, batch: Batch) -> None:
        """Commit a transaction as nfnetlink messages of our own (see
        :mod:`policyctl.enforcer.batches`), without libnftables' cache fetch; raises
        :class:`NftCommandError` naming the refused command as ``run`` does. Raises
        ``ImportError`` where pyroute2 is missing (the caller sends the payload instead)."""
        if self._netlink_broken:
            raise ImportError("pyroute2 does not import here")
        try:
            netlink = self._netlink_tables()
        except ImportError:
            self._netlink_broken = True
            raise
        try:
            netlink.commit(batch)
        except NftCommandError:
            raise
        except Exception:
            self._close_netlink()
            raise

    def _netlink_tables(self) -> _Nfnetlink:
        with self._netlink_lock:
            if self._netlink is None:
                netlink = self._call(_Nfnetlink)
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
