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
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from policyctl.enforcer.errors import BackendUnavailable, NftCommandError

Payload = dict[str, Any]
T = TypeVar("T")

_CLONE_NEWNET = 0x40000000
_NO_SUCH_OBJECT = "No such file or directory"


class NftBackend(Protocol):
    """What the enforcer needs from nftables. ``run`` raises :class:`NftCommandError` with
    nft's text when the kernel refuses; ``list_table`` returns the ``nft -j list table``
    document, or None when the table does not exist; ``check`` validates a payload against
    the kernel without committing it (nft's dry-run), raising like ``run``."""

    def run(self, payload: Payload) -> Payload: ...

    def list_table(self, family: str, name: str) -> Payload | None: ...

    def check(self, payload: Payload) -> None: ...


def _list_payload(family: str, name: str) -> Payload:
    return {"nftables": [{"list": {"table": {"family": family, "name": name}}}]}


def _is_missing(error: str) -> bool:
    return _NO_SUCH_OBJECT in error


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

    @staticmethod
    def _new_context() -> Any:
        import nftables

        ctx = nftables.Nftables()
        ctx.set_json_output(True)
        return ctx

    def _call(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            return fn()
        return self._executor.submit(fn).result()

    def _json_cmd(self, payload: Payload, *, dry_run: bool = False) -> tuple[int, Any, str]:
        def go() -> tuple[int, Any, str]:
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
        rc, out, err = self._json_cmd(_list_payload(family, name))
        if rc != 0:
            if _is_missing(err):
                return None
            raise NftCommandError(err)
        return out

    def check(self, payload: Payload) -> None:
        rc, _, err = self._json_cmd(payload, dry_run=True)
        if rc != 0:
            raise NftCommandError(err)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


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
        rc, out, err = self._nft(["-j", "list", "table", family, name])
        if rc != 0:
            if _is_missing(err):
                return None
            raise NftCommandError(err)
        loaded: Payload = json.loads(out)
        return loaded

    def check(self, payload: Payload) -> None:
        rc, _, err = self._nft(["-c", "-j", "-f", "-"], json.dumps(payload))
        if rc != 0:
            raise NftCommandError(err)

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
