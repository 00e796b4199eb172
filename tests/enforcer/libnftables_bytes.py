"""The nf_tables messages libnftables sends for a JSON payload, read with ``strace``.

``nft -c`` (check) sends the whole batch and never its end marker, so the kernel evaluates it
and commits nothing; ``strace -e write=all`` dumps what each ``sendmsg`` carried. The messages
between the batch's begin marker and its end are what the enforcer's own encoders must equal,
both read without set ids (:func:`without_set_ids`): libnftables numbers the sets it knows
in its own cache and gives those numbers to a new set, to element lists and to lookups
(``NFTA_SET_ID``, ``NFTA_SET_ELEM_LIST_SET_ID``, ``NFTA_LOOKUP_SET_ID``), where the kernel
reads them only when no set has the name the message gives.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import tempfile
from typing import Any

from policyctl.enforcer.nfmessages import attr, attributes

_HEADER = struct.Struct("=IHHII")
_NESTED = 0x8000
_NFT_MSG_NEWRULE, _NFT_MSG_NEWSET = 6, 9
_RULE_EXPRESSIONS, _EXPR_NAME, _EXPR_DATA, _LOOKUP_SET_ID = 4, 1, 2, 4
#: The set id's attribute in each message type that carries one at its top level.
_TOP_SET_IDS = {_NFT_MSG_NEWSET: 10, 12: 4, 14: 4}
_BATCH_BEGIN, _BATCH_END = 0x10, 0x11
_NLM_F_REQUEST, _NLM_F_ACK = 0x1, 0x4
_BUFFER = re.compile(r"^ \* \d+ bytes in buffer \d+$")
_DUMP = re.compile(r"^ \| [0-9a-f]{5}  ")


def strace_missing() -> str | None:
    return None if shutil.which("strace") else "strace is not installed (apt-get install strace)"


def libnftables_messages(netns: str, commands: list[dict[str, Any]]) -> list[tuple[int, int, int, bytes]]:
    """``(family, NFT_MSG_* type, flags beyond request and ack, attributes)`` of each message
    of the batch libnftables sends for ``commands`` in ``netns``, checked and not committed."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as payload:
        json.dump({"nftables": commands}, payload)
        payload.flush()
        done = subprocess.run(
            ["ip", "netns", "exec", netns, "strace", "-f", "-qq", "-e", "trace=sendmsg", "-e", "write=all",
             "nft", "-c", "-j", "-f", payload.name],
            capture_output=True, text=True, check=False,
        )
    if done.returncode != 0:
        raise AssertionError(f"nft -c refused the payload: {done.stderr[-2000:]}")
    for buffer in _buffers(done.stderr):
        messages = list(_messages(buffer))
        if messages and messages[0][1] == _BATCH_BEGIN:
            return [(family, kind & 0xFF, flags & ~(_NLM_F_REQUEST | _NLM_F_ACK), without_set_ids(kind & 0xFF, body))
                    for family, kind, flags, body in messages[1:] if kind != _BATCH_END]
    raise AssertionError("libnftables sent no batch")


def _buffers(trace: str) -> list[bytes]:
    buffers: list[bytearray] = []
    for line in trace.splitlines():
        if _BUFFER.match(line):
            buffers.append(bytearray())
        elif _DUMP.match(line) and buffers:
            buffers[-1] += bytes.fromhex("".join(line[10:59].split()))
    return [bytes(b) for b in buffers]


def _messages(data: bytes) -> list[tuple[int, int, int, bytes]]:
    found = []
    offset = 0
    while offset + _HEADER.size + 4 <= len(data):
        length, kind, flags, _, _ = _HEADER.unpack_from(data, offset)
        family = data[offset + _HEADER.size]
        found.append((family, kind, flags, data[offset + _HEADER.size + 4 : offset + length]))
        offset += (length + 3) & ~3
    return found


def without_set_ids(message: int, body: bytes) -> bytes:
    """A message's attributes without set ids: at the top, or in a new rule's lookups."""
    if message in _TOP_SET_IDS:
        return b"".join(attr(k, p) for k, p in attributes(body) if k & ~_NESTED != _TOP_SET_IDS[message])
    if message != _NFT_MSG_NEWRULE:
        return body
    out = b""
    for kind, payload in attributes(body):
        if kind & ~_NESTED == _RULE_EXPRESSIONS:
            payload = b"".join(attr(k, _expression_without_set_id(p)) for k, p in attributes(payload))
        out += attr(kind, payload)
    return out


def _expression_without_set_id(expression: bytes) -> bytes:
    parts = list(attributes(expression))
    if not any(k & ~_NESTED == _EXPR_NAME and p.rstrip(b"\0") == b"lookup" for k, p in parts):
        return expression
    out = b""
    for kind, payload in parts:
        if kind & ~_NESTED == _EXPR_DATA:
            payload = b"".join(attr(k, p) for k, p in attributes(payload) if k & ~_NESTED != _LOOKUP_SET_ID)
        out += attr(kind, payload)
    return out
