"""What a machine needs before policyctl can program its nftables: root and nftables.

Checked before any work starts, so ``policyctl enforce`` and ``policyctl lab`` say what is
missing and how to get it (exit 2), instead of failing halfway with a kernel error. Programming
nftables needs ``CAP_NET_ADMIN``, in practice root; the enforcer talks to the kernel through
the libnftables binding (``python3-nftables``) or the ``nft`` command (``nftables``), and the
lab also runs ``nft`` itself. On Debian both come from apt.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

INSTALL = "apt-get install nftables python3-nftables"


def is_root() -> bool:
    return os.geteuid() == 0


def has_nft_command() -> bool:
    return shutil.which("nft") is not None


def has_binding() -> bool:
    return importlib.util.find_spec("nftables") is not None


def missing(*, nft_command: bool = False) -> str | None:
    """Why nftables cannot be programmed here, with the remedy; None when it can.
    ``nft_command``: the ``nft`` command itself is needed, the binding alone is not enough."""
    if not (has_nft_command() if nft_command else has_nft_command() or has_binding()):
        return f"nftables is not installed (no nft command{'' if nft_command else ' and no python3-nftables'}); " \
               f"install it as root: {INSTALL}"
    if not is_root():
        return "programming nftables needs root (CAP_NET_ADMIN); run this command as root, e.g. with sudo"
    return None
