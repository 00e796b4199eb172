"""Label selectors and label maps read from manifests, validated as the API server does.

Implements ``ValidateLabelSelector``, ``ValidateLabelSelectorRequirement`` and
``ValidateLabels`` of ``k8s.io/apimachinery/pkg/apis/meta/v1/validation/validation.go``:

* ``matchLabels``: every key a qualified name (``IsQualifiedName``), every value a valid label
  value (``IsValidLabelValue``);
* ``matchExpressions[i].operator`` one of ``In``, ``NotIn``, ``Exists``, ``DoesNotExist``
  ("not a valid selector operator" otherwise); ``values`` "must be specified when `operator`
  is 'In' or 'NotIn'" and "may not be specified when `operator` is 'Exists' or
  'DoesNotExist'"; ``key`` a qualified name; each value a valid label value (the API server
  only relaxes that for updates of objects that already had invalid values).

A valid selector becomes the canonical :class:`~policy.model.LabelSelector`: a ``matchLabels``
entry is the requirement ``key In (value)``, and "the requirements are ANDed".
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from functools import lru_cache
from typing import TypeVar

from policyctl.policy.diagnostics import Diagnostic
from policyctl.manifests.fields import FieldReader, Site
from policyctl.policy.model import LabelSelector, Operator, Requirement
from policyctl.manifests.names import label_value_errors, qualified_name_errors
from policyctl.manifests.yamlsource import Path

SELECTOR_FIELDS = frozenset({"matchLabels", "matchExpressions"})
REQUIREMENT_FIELDS = frozenset({"key", "operator", "values"})
_OPERATORS = {op.value: op for op in Operator}
K = TypeVar("K", bound=Hashable)


def memoized(check: Callable[[K], Sequence[str]]) -> Callable[[K], tuple[str, ...]]:
    """A validation of names, as a pure function of the name, remembered: label keys and
    values, port names and numbers repeat across the pods of a cluster."""
    return lru_cache(maxsize=1 << 16)(lambda value: tuple(check(value)))


_qualified_name_errors = memoized(qualified_name_errors)
_label_value_errors = memoized(label_value_errors)


def check_label_key(reader: FieldReader, key: str, path: Path) -> bool:
    errors = _qualified_name_errors(key)
    for message in errors:
        reader.error(path, "invalid-label-key", f'"{key}": {message}')
    return not errors


def check_label_value(reader: FieldReader, value: str, path: Path) -> bool:
    errors = _label_value_errors(value)
    for message in errors:
        reader.error(path, "invalid-label-value", f'"{value}": {message}')
    return not errors


def read_labels(reader: FieldReader, value: object, path: Path) -> dict[str, str] | None:
    """A label map (``metadata.labels``, ``matchLabels``): ``ValidateLabels``. Absent or
    ``null`` is no labels."""
    if value is None:
        return {}
    labels = reader.string_map(value, path)
    if labels is None:
        return None
    ok = True
    for key in sorted(labels):
        ok &= check_label_key(reader, key, (*path, key))
        ok &= check_label_value(reader, labels[key], (*path, key))
    return labels if ok else None


def _read_requirement(reader: FieldReader, value: object, path: Path) -> Requirement | None:
    raw = reader.mapping(value, path, known=REQUIREMENT_FIELDS)
    if raw is None:
        return None
    failed = len(reader.diagnostics)
    key = reader.string(raw.get("key"), (*path, "key"))
    operator_text = reader.string(raw.get("operator"), (*path, "operator"))
    values = [] if raw.get("values") is None else reader.strings(raw["values"], (*path, "values"))
    operator = _OPERATORS.get(operator_text) if operator_text is not None else None
    if operator_text is not None and operator is None:
        reader.error(
            (*path, "operator"),
            "invalid-selector-operator",
            f'"{operator_text}": not a valid selector operator (In, NotIn, Exists, DoesNotExist)',
        )
    if values is not None and operator in (Operator.IN, Operator.NOT_IN) and not values:
        reader.error(
            (*path, "values"),
            "missing-selector-values",
            "must be specified when `operator` is 'In' or 'NotIn'",
        )
    if values and operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST):
        reader.error(
            (*path, "values"),
            "forbidden-selector-values",
            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        )
    if key is not None:
        check_label_key(reader, key, (*path, "key"))
    for i, item in enumerate(values or []):
        check_label_value(reader, item, (*path, "values", i))
    if len(reader.diagnostics) != failed or key is None or operator is None or values is None:
        return None
    return Requirement(key, operator, tuple(sorted(set(values))))


def read_label_selector(reader: FieldReader, value: object, path: Path) -> LabelSelector | None:
    """A ``metav1.LabelSelector``; ``None`` (with diagnostics in ``reader``) when invalid.
    ``null`` is the empty selector, which selects everything."""
    if value is None:
        return LabelSelector()
    raw = reader.mapping(value, path, known=SELECTOR_FIELDS)
    if raw is None:
        return None
    labels = read_labels(reader, raw.get("matchLabels"), (*path, "matchLabels"))
    requirements: list[Requirement] | None = []
    expressions = raw.get("matchExpressions")
    items = [] if expressions is None else reader.sequence(expressions, (*path, "matchExpressions"))
    for i, item in enumerate(items or []):
        requirement = _read_requirement(reader, item, (*path, "matchExpressions", i))
        if requirement is None:
            requirements = None
        elif requirements is not None:
            requirements.append(requirement)
    if labels is None or items is None or requirements is None:
        return None
    from_labels = [Requirement(k, Operator.IN, (v,), True) for k, v in labels.items()]
    return LabelSelector.of(from_labels + requirements)


def parse_label_selector(
    value: object, *, site: Site, path: Path = ()
) -> tuple[LabelSelector | None, list[Diagnostic]]:
    """A raw label selector at ``path`` of ``site`` -> the canonical selector (``None`` when
    invalid) and every problem found."""
    reader = FieldReader(site)
    selector = read_label_selector(reader, value, path)
    return selector, reader.diagnostics
