"""String formats the API server checks: label keys and values, object names, port names.

Each function mirrors one check of ``k8s.io/apimachinery/pkg/util/validation`` (``validation.go``)
and returns its error messages, worded as upstream words them; an empty list means valid.
They are pure string predicates so the same rule reads the same everywhere (policy metadata,
selectors, pod labels, container port names).
"""

from __future__ import annotations

import re

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE = re.compile(rf"^{_DNS1123_LABEL}$")
_DNS1123_SUBDOMAIN_RE = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")
_QUALIFIED_NAME_RE = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_PORT_NAME_CHARSET_RE = re.compile(r"^[-a-z0-9]+$")
_PORT_NAME_LETTER_RE = re.compile(r"[a-z]")

DNS1123_LABEL_MAX_LENGTH = 63
DNS1123_SUBDOMAIN_MAX_LENGTH = 253
QUALIFIED_NAME_MAX_LENGTH = 63
LABEL_VALUE_MAX_LENGTH = 63
PORT_NAME_MAX_LENGTH = 15

_QUALIFIED_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character (e.g. 'MyName', 'my.name', or '123-abc')"
)


def dns1123_label_errors(value: str) -> list[str]:
    """``IsDNS1123Label``: namespace names. At most 63 characters of lower-case alphanumerics
    and '-', starting and ending with an alphanumeric."""
    errors = []
    if len(value) > DNS1123_LABEL_MAX_LENGTH:
        errors.append(f"must be no more than {DNS1123_LABEL_MAX_LENGTH} characters")
    if not _DNS1123_LABEL_RE.match(value):
        errors.append(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
            "'-', and must start and end with an alphanumeric character (e.g. 'my-name', or "
            "'123-abc')"
        )
    return errors


def dns1123_subdomain_errors(value: str) -> list[str]:
    """``IsDNS1123Subdomain``: most object names (NetworkPolicy, Pod, Node) and label key
    prefixes. At most 253 characters; dot-separated RFC 1123 labels."""
    errors = []
    if len(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errors.append(f"must be no more than {DNS1123_SUBDOMAIN_MAX_LENGTH} characters")
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        errors.append(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character (e.g. "
            "'example.com')"
        )
    return errors


def qualified_name_errors(value: str) -> list[str]:
    """``IsQualifiedName``: label keys and selector keys. An optional DNS-subdomain prefix and
    '/', then a name of at most 63 characters of alphanumerics, '-', '_' and '.', starting and
    ending with an alphanumeric."""
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
        errors: list[str] = []
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errors = ["prefix part must be non-empty"]
        else:
            errors = [f"prefix part {m}" for m in dns1123_subdomain_errors(prefix)]
    else:
        return [
            "a qualified name "
            + _QUALIFIED_NAME_MSG
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > QUALIFIED_NAME_MAX_LENGTH:
        errors.append(f"name part must be no more than {QUALIFIED_NAME_MAX_LENGTH} characters")
    if not _QUALIFIED_NAME_RE.match(name):
        errors.append("name part " + _QUALIFIED_NAME_MSG)
    return errors


def label_value_errors(value: str) -> list[str]:
    """``IsValidLabelValue``: empty, or at most 63 characters of alphanumerics, '-', '_' and
    '.', starting and ending with an alphanumeric."""
    errors = []
    if len(value) > LABEL_VALUE_MAX_LENGTH:
        errors.append(f"must be no more than {LABEL_VALUE_MAX_LENGTH} characters")
    if not _LABEL_VALUE_RE.match(value):
        errors.append(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', "
            "'_' or '.', and must start and end with an alphanumeric character (e.g. "
            "'MyValue', or 'my_value', or '12345')"
        )
    return errors


def port_name_errors(value: str) -> list[str]:
    """``IsValidPortName``: an IANA_SVC_NAME (RFC 6335). At most 15 characters, only
    lower-case alphanumerics and '-', at least one letter, no '--', no '-' at either end.
    Every failing check is reported, as upstream does."""
    errors = []
    if len(value) > PORT_NAME_MAX_LENGTH:
        errors.append(f"must be no more than {PORT_NAME_MAX_LENGTH} characters")
    if not _PORT_NAME_CHARSET_RE.match(value):
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
