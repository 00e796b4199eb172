"""String formats the API server checks: label keys and values, object names, port names.

Each function transcribes one check of ``k8s.io/apimachinery`` (``pkg/api/validate/content``
``kube.go`` and ``dns.go``, and ``pkg/util/validation/validation.go`` for port names) and
returns its error messages, worded as upstream words them; an empty list means valid. They are
pure string predicates so the same rule reads the same everywhere (policy metadata, selectors,
pod labels, container port names).

Two details of Go that Python does not share are kept:

* Go's ``regexp`` anchors ``^...$`` match the whole string; Python's ``$`` also matches before
  a final newline (``re.match("^a$", "a\\n")`` succeeds), so every pattern here is applied with
  :meth:`re.Pattern.fullmatch`, and ``"web\\n"`` is refused as the API server refuses it.
* ``len`` of a Go string counts bytes (UTF-8), not characters; lengths here are byte lengths.
"""

from __future__ import annotations

import re

DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
LABEL_KEY_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE_FMT = "(" + LABEL_KEY_FMT + ")?"

_DNS1123_LABEL_RE = re.compile(DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE = re.compile(DNS1123_SUBDOMAIN_FMT)
_LABEL_KEY_RE = re.compile(LABEL_KEY_FMT)
_LABEL_VALUE_RE = re.compile(LABEL_VALUE_FMT)
_PORT_NAME_CHARSET_RE = re.compile("[-a-z0-9]+")
_PORT_NAME_LETTER_RE = re.compile("[a-z]")

DNS1123_LABEL_MAX_LENGTH = 63
DNS1123_SUBDOMAIN_MAX_LENGTH = 253
LABEL_KEY_MAX_LENGTH = 63
LABEL_VALUE_MAX_LENGTH = 63
PORT_NAME_MAX_LENGTH = 15

_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character"
)
_LABEL_KEY_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character"
)
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character"
)


def byte_length(value: str) -> int:
    """Go's ``len(string)``: the UTF-8 byte count."""
    return len(value.encode("utf-8", "surrogatepass"))


def max_len_error(length: int) -> str:
    """``content.MaxLenError``."""
    return f"must be no more than {length} bytes"


def regex_error(message: str, fmt: str, *examples: str) -> str:
    """``content.RegexError``: the message, its examples and the pattern."""
    if not examples:
        return f"{message} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}'," for e in examples)
    return f"{message} (e.g. {shown} regex used for validation is '{fmt}')"


def dns1123_label_errors(value: str) -> list[str]:
    """``IsDNS1123Label``: namespace names (``ValidateNamespaceName`` = ``NameIsDNSLabel``).
    At most 63 bytes of lower-case alphanumerics and '-', starting and ending with an
    alphanumeric; a valid subdomain that is not a label is told it "must not contain dots"."""
    errors = []
    if byte_length(value) > DNS1123_LABEL_MAX_LENGTH:
        errors.append(max_len_error(DNS1123_LABEL_MAX_LENGTH))
    if not _DNS1123_LABEL_RE.fullmatch(value):
        if _DNS1123_SUBDOMAIN_RE.fullmatch(value):
            errors.append("must not contain dots")
        else:
            errors.append(regex_error(_DNS1123_LABEL_MSG, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errors


def dns1123_subdomain_errors(value: str) -> list[str]:
    """``IsDNS1123Subdomain``: most object names (NetworkPolicy via ``NameIsDNSSubdomain``,
    Pod, Node) and label key prefixes. At most 253 bytes; dot-separated RFC 1123 labels."""
    errors = []
    if byte_length(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errors.append(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errors.append(regex_error(_DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errors


def generated_name_prefix_errors(value: str) -> list[str]:
    """``NameIsDNSSubdomain(name, prefix=true)``, for ``metadata.generateName``: a trailing
    '-' is allowed, since characters will be appended. ``maskTrailingDash`` replaces the last
    *two* bytes by ``a``, as upstream does."""
    raw = value.encode("utf-8", "surrogatepass")
    if len(raw) > 1 and raw.endswith(b"-"):
        value = (raw[:-2] + b"a").decode("utf-8", "replace")
    return dns1123_subdomain_errors(value)


def qualified_name_errors(value: str) -> list[str]:
    """``IsQualifiedName`` (``content.IsLabelKey``): label keys, selector keys, annotation keys
    (lower-cased first), finalizers. An optional DNS-subdomain prefix and '/', then a name of
    at most 63 bytes of alphanumerics, '-', '_' and '.', starting and ending with an
    alphanumeric."""
    parts = value.split("/")
    errors: list[str] = []
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors.extend(f"prefix part {m}" for m in dns1123_subdomain_errors(prefix))
    else:
        return [
            "a valid label key "
            + regex_error(_LABEL_KEY_MSG, LABEL_KEY_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errors.append("name part must be non-empty")
    elif byte_length(name) > LABEL_KEY_MAX_LENGTH:
        errors.append("name part " + max_len_error(LABEL_KEY_MAX_LENGTH))
    if not _LABEL_KEY_RE.fullmatch(name):
        errors.append("name part " + regex_error(_LABEL_KEY_MSG, LABEL_KEY_FMT, "MyName", "my.name", "123-abc"))
    return errors


def label_value_errors(value: str) -> list[str]:
    """``IsValidLabelValue`` (``content.IsLabelValue``): empty, or at most 63 bytes of
    alphanumerics, '-', '_' and '.', starting and ending with an alphanumeric."""
    errors = []
    if byte_length(value) > LABEL_VALUE_MAX_LENGTH:
        errors.append(max_len_error(LABEL_VALUE_MAX_LENGTH))
    if not _LABEL_VALUE_RE.fullmatch(value):
        errors.append(regex_error(_LABEL_VALUE_MSG, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errors


def port_name_errors(value: str) -> list[str]:
    """``IsValidPortName``: an IANA_SVC_NAME (RFC 6335). At most 15 bytes, only lower-case
    alphanumerics and '-', at least one letter, no '--', no '-' at either end. Every failing
    check is reported, as upstream does."""
    errors = []
    if byte_length(value) > PORT_NAME_MAX_LENGTH:
        errors.append(max_len_error(PORT_NAME_MAX_LENGTH))
    if not _PORT_NAME_CHARSET_RE.fullmatch(value):
        errors.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not _PORT_NAME_LETTER_RE.search(value):
        errors.append("must contain at least one letter (a-z)")
    if "--" in value:
        errors.append("must not contain consecutive hyphens")
    if value.startswith("-") or value.endswith("-"):
        errors.append("must not begin or end with a hyphen")
    return errors


def port_number_errors(value: int) -> list[str]:
    """``IsValidPortNum``: 1 to 65535 inclusive."""
    if 1 <= value <= 65535:
        return []
    return ["must be between 1 and 65535, inclusive"]
