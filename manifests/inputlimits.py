"""Bounds on what reading manifests may cost, so that no input (a device, an alias bomb, a file
of nested brackets, a number of a million digits) can exhaust memory or time.

Each bound is far above what a real manifest needs; crossing one is an input error with the
file, the line and the field where it was crossed, never a crash. The CLI sets them from
``--max-*`` options and ``POLICYCTL_MAX_*`` variables (see README, "Inputs and limits").
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 2**20


@dataclass(frozen=True, slots=True)
class InputLimits:
    """``max_file_bytes``: one file or standard input, before decoding. ``max_documents``: YAML
    documents in one file (empty ones count). ``max_depth``: nested maps and lists in one
    document (libyaml itself stops at 1,000). ``max_number_digits``: characters of one unquoted
    number (no Kubernetes field holds more than 20; Python refuses to read more than 4,300
    decimal digits). ``max_alias_nodes``: values reached through YAML aliases in one document,
    the defence against "billion laughs" documents that a few lines expand into billions."""

    max_file_bytes: int = 256 * MIB
    max_documents: int = 1_000_000
    max_depth: int = 200
    max_number_digits: int = 1_000
    max_alias_nodes: int = 1_000_000


DEFAULT_LIMITS = InputLimits()
