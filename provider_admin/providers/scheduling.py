"""The provider form's four scheduling fields (SPEC §3.1): JSON text in, checked value out, and back.

A field's text is decoded strictly, its mistakes explained at the line and column where they
are (`json_errors`), and the value checked with Kubernetes' own rules (`kube.scheduling`).
A snippet pasted with its key (`"affinity": {...}`) is recognised, and sent to its own field.
"""
import json
import re
from collections import namedtuple

from .. import json_errors
from ..kube.problems import kind_of, one_of, quote
from ..kube.scheduling import (  # noqa: F401  (the providers package reads them from here)
    DEFAULT_AFFINITY,
    SchedulingError,
    effective_affinity,
    validate_affinity,
    validate_annotations,
    validate_node_selector,
    validate_tolerations,
)

MAX_FIELD_BYTES = 64 * 1024

_Field = namedtuple("_Field", "key label type expected item example note validate")
_FIELDS = {field.key: field for field in (
    _Field("pod_tolerations", "Pod tolerations", list, "a JSON list of tolerations", "toleration",
           '[{"key": "com.coder.workspace", "operator": "Exists", "effect": "NoSchedule"}]', "",
           validate_tolerations),
    _Field("pod_node_selector", "Pod node selector", dict, "a JSON object of node label names to values",
           None, '{"node-pool": "workspaces"}', "", validate_node_selector),
    _Field("service_account_annotations", "Service account annotations", dict,
           "a JSON object of annotation names to values", None,
           '{"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789123:role/coder-role-{{.UserEmail}}"}', "",
           validate_annotations),
    _Field("affinity", "Affinity", dict, "a JSON object (a Kubernetes Affinity)", None,
           '{"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, '
           '"podAffinityTerm": {...}}]}}', " ({} means no affinity at all; leave the field empty for the default"
           " affinity.)", validate_affinity),
)}
_KEY_ALIASES = {"tolerations": "pod_tolerations", "nodeSelector": "pod_node_selector",
                "annotations": "service_account_annotations", **{key: key for key in _FIELDS}}
_PASTED_KEY_RE = re.compile(r'\s*"([^"\\]*)"\s*:')


def _decode(text):
    try:
        return json_errors.strict_loads(text)
    except json_errors.InvalidJSON as error:
        raise SchedulingError(str(error)) from None


def _explain(error, text, field):
    others = [k for k in _FIELDS if k != field.key and re.search(f'"{k}"\\s*:', text)]
    hints = [f"the text also holds {one_of(others, 'and')}: each of those has its own field"] if others else []
    return json_errors.explain(error, text, item=field.item, more_hints=hints)


def _load(text, field):
    try:
        return _decode(text)
    except json.JSONDecodeError as error:
        first = error
    pasted = _PASTED_KEY_RE.match(text)
    owner = pasted and _FIELDS.get(_KEY_ALIASES.get(pasted.group(1)))
    if not owner:
        raise SchedulingError(f"Invalid JSON at {_explain(first, text, field)}") from None
    key, at = pasted.group(1), f"Invalid JSON at {json_errors.where(text, pasted.start(1) - 1)}"
    if owner is not field:
        raise SchedulingError(f'{at}: this is the "{key}" setting, which goes in the {owner.label} field; '
                              f"this field takes {field.expected}, like {field.example}.") from None
    # Blank out the key rather than cut it off, so that line and column still match the form.
    value_only = re.sub(r"\S", " ", text[:pasted.end()]) + text[pasted.end():]
    head = f'{at}: paste only the value, without the "{key}": key'
    try:
        value = _decode(value_only)
    except json.JSONDecodeError as error:
        raise SchedulingError(f"{head}; it should look like {field.example}. "
                              f"Then, at {_explain(error, value_only, field)}") from None
    shown = quote(value)
    raise SchedulingError(f"{head}{', that is: ' + shown if len(shown) <= 200 else ''}.{field.note}")


def _parse(text, key):
    field = _FIELDS[key]
    if text is None or not text.strip():
        return None
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FIELD_BYTES:
        raise SchedulingError(f"{field.label} is too large: {size} bytes; the limit is 64 KiB "
                              f"({MAX_FIELD_BYTES} bytes).")
    value = _load(text.lstrip("\ufeff"), field)
    if not isinstance(value, field.type):
        hint = "; wrap a single toleration in [ ]" if field.item and isinstance(value, dict) else ""
        raise SchedulingError(f"{field.label} must be {field.expected}, got {kind_of(value)}{hint}.")
    field.validate(value, "")
    return value


def parse_tolerations(text: str) -> list | None:
    """A list of Kubernetes Tolerations, or None when the field is blank."""
    return _parse(text, "pod_tolerations")


def parse_node_selector(text: str) -> dict | None:
    """A map of node label to value, or None when the field is blank."""
    return _parse(text, "pod_node_selector")


def parse_annotations(text: str) -> dict | None:
    """A map of annotation to value (values may use template variables), or None when blank."""
    return _parse(text, "service_account_annotations")


def parse_affinity(text: str) -> dict | None:
    """A Kubernetes Affinity; None (blank) means DEFAULT_AFFINITY, {} means no affinity."""
    return _parse(text, "affinity")


def dumps(value) -> str:
    """The stored value as shown back in the form; keys sorted so it is the same on every database."""
    return "" if value is None else json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
