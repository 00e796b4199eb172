"""Unquoted YAML scalars typed as kubectl types them.

kubectl converts YAML to JSON with go-yaml v2, a YAML 1.1 reader (``yaml.v2/resolve.go``):
``yes``/``no``/``on``/``off``/``y``/``n`` are booleans, Go integer syntax (``0x``, ``0o``,
``0b``, leading-zero octal, ``_`` separators) gives an integer when it fits ``int64`` (or
``uint64`` without a sign), then ``strconv.ParseFloat`` gives a float unless it overflows, and
anything else stays text. So ``99999999999999999999`` is a float and a number of 400 digits is
a string, exactly as kubectl sends them; no text is ever turned into an unbounded integer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_TRUES = frozenset({"y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"})
_FALSES = frozenset({"n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"})
_SPECIAL_FLOATS = {
    ".inf": math.inf, ".Inf": math.inf, ".INF": math.inf,
    "+.inf": math.inf, "+.Inf": math.inf, "+.INF": math.inf,
    "-.inf": -math.inf, "-.Inf": -math.inf, "-.INF": -math.inf,
    ".nan": math.nan, ".NaN": math.nan, ".NAN": math.nan,
}  # fmt: skip
_GO_INT_RE = re.compile(r"[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")
_GO_FLOAT_RE = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INT64_MIN, _INT64_MAX, _UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
_UINT64_DECIMAL_DIGITS = 20
_BASES = {"x": 16, "X": 16, "o": 8, "O": 8, "b": 2, "B": 2}


@dataclass(frozen=True, slots=True)
class Scalar:
    """A scalar as written: ``raw`` text and whether it was plain (unquoted, untagged), which
    is when YAML guesses its type from the text."""

    raw: str
    plain: bool
    line: int


def looks_numeric(raw: str) -> bool:
    """Whether go-yaml would try to read ``raw`` as a number."""
    plain = raw.replace("_", "")
    return bool(_GO_INT_RE.fullmatch(plain) or _GO_FLOAT_RE.fullmatch(plain))


def _go_int(plain: str) -> int | None:
    """``strconv.ParseInt(plain, 0, 64)``, then ``ParseUint`` (which takes no sign)."""
    signed = plain[0] in "+-"
    body = plain[1:] if signed else plain
    if len(body) > 1 and body[0] == "0" and body[1] in _BASES:
        base, digits = _BASES[body[1]], body[2:]
    elif len(body) > 1 and body[0] == "0":
        base, digits = 8, body[1:]
    else:
        base, digits = 10, body
    if base == 10 and len(digits) > _UINT64_DECIMAL_DIGITS:
        return None
    value = int(digits, base)
    if plain[0] == "-":
        value = -value
    if _INT64_MIN <= value <= _INT64_MAX or (not signed and 0 <= value <= _UINT64_MAX):
        return value
    return None


def resolve_plain(raw: str) -> object:
    """The value go-yaml v2 gives an unquoted scalar (see the module doc)."""
    if raw in _NULLS:
        return None
    if raw in _TRUES:
        return True
    if raw in _FALSES:
        return False
    if raw in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[raw]
    if raw[0] not in "0123456789+-.":
        return raw
    if raw[0] == ".":
        return _finite_float(raw, raw) if _GO_FLOAT_RE.fullmatch(raw) else raw
    plain = raw.replace("_", "") if "_" in raw else raw
    if _GO_INT_RE.fullmatch(plain):
        number = _go_int(plain)
        if number is not None:
            return number
    if _GO_FLOAT_RE.fullmatch(plain):
        return _finite_float(plain, raw)
    return raw


def _finite_float(text: str, raw: str) -> object:
    """``strconv.ParseFloat``: a float, or the text as written when it overflows (``ErrRange``)."""
    value = float(text)
    return raw if math.isinf(value) else value
