"""Netlink attributes read back as they were written, and a malformed one ends the reading
without inventing attributes: the one reader behind the table-handle reply and NFLOG packets."""

from __future__ import annotations

import struct

import pytest

from policyctl.enforcer.nfmessages import attr, attributes, attributes_by_type

NESTED = 0x8000
BYTEORDER = 0x4000


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", []),
        (attr(1, b"abc") + attr(2, b""), [(1, b"abc"), (2, b"")]),
        (attr(3, attr(1, b"x"), nested=True), [(3 | NESTED, attr(1, b"x"))]),
        (attr(1, b"ab") + struct.pack("=HH", 2, 7) + attr(3, b"cd"), [(1, b"ab")]),
        (attr(1, b"ab") + struct.pack("=HH", 40, 7) + b"short", [(1, b"ab")]),
        (attr(1, b"ab") + b"\x08\x00", [(1, b"ab")]),
    ],
    ids=["nothing", "padded payloads in order", "nested flag kept", "length below the header stops",
         "length past the end stops", "a partial header is left"],
)
def test_attributes_read_in_order_until_one_cannot_be_framed(data: bytes, expected: list[tuple[int, bytes]]) -> None:
    assert list(attributes(data)) == expected


def test_by_type_masks_the_flags_and_starts_at_the_offset() -> None:
    data = b"HEAD" + attr(1 | BYTEORDER, b"one") + attr(2, attr(5, b"in"), nested=True) + attr(1, b"again")
    assert attributes_by_type(data, 4) == {1: b"again", 2: attr(5, b"in")}
