"""The table-handle query's reply, read without pyroute2: the handle it carries, none, or an
error when it answers for another table. That the kernel's answers read so is shown by
``test_delta_kernel.test_the_netlink_handle_agrees_with_the_libnftables_listing``."""

from __future__ import annotations

import struct

import pytest

from policyctl.enforcer.backend import table_handle_of
from policyctl.enforcer.nfmessages import attr, string, u32

#: ``NFTA_TABLE_NAME``, ``NFTA_TABLE_FLAGS``, ``NFTA_TABLE_USE``, ``NFTA_TABLE_HANDLE``.
NAME, FLAGS, USE, HANDLE = 1, 2, 3, 4


def reply(*attributes: bytes) -> bytes:
    body = struct.pack("=BBH", 1, 0, 0) + b"".join(attributes)
    return struct.pack("=IHHII", 16 + len(body), (10 << 8) | 0, 0, 7, 0) + body


@pytest.mark.parametrize(
    ("attributes", "handle"),
    [
        ((string(NAME, "policyctl"), u32(FLAGS, 0), u32(USE, 3), attr(HANDLE, (41).to_bytes(8, "big"))), 41),
        ((attr(HANDLE, (1 << 40).to_bytes(8, "big")), string(NAME, "policyctl")), 1 << 40),
        ((string(NAME, "policyctl"), u32(FLAGS, 0)), None),
    ],
    ids=["name, flags, use, handle", "handle before the name", "no handle"],
)
def test_a_reply_for_the_table_gives_its_handle(attributes: tuple[bytes, ...], handle: int | None) -> None:
    assert table_handle_of(reply(*attributes), "inet", "policyctl") == handle


def test_a_reply_for_another_table_is_an_error() -> None:
    answer = reply(string(NAME, "policyctl-old"), attr(HANDLE, (41).to_bytes(8, "big")))
    with pytest.raises(OSError, match="answered for another table"):
        table_handle_of(answer, "inet", "policyctl")
