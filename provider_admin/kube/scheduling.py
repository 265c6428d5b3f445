"""Kubernetes' own rules for the scheduling shapes a provider sets (SPEC §3.1).

Tolerations, a node selector, an Affinity and service account annotations end up in
workspace pod specs and on per-workspace ServiceAccounts, so they are checked here with the
rules the Kubernetes API server applies: a mistake then shows up next to the form field when
the provider is saved instead of as a failed workspace build much later. Each check is
`validate(value, path)` on the decoded JSON and raises SchedulingError.
"""
import copy
import re

# SchedulingError and render_annotation belong to this module's interface too: a workspace
# build renders its annotations, and the app catches the error, through this one module.
from .annotations import render_annotation, template_problem  # noqa: F401
from .names import label_value_problem, namespace_problem, qualified_name_problem
from .problems import SchedulingError, did_you_mean, fail, kind_of, one_of, quote  # noqa: F401

DEFAULT_AFFINITY = {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
    {"weight": 1, "podAffinityTerm": {"labelSelector": {"matchLabels": {"com.coder.resource": "true"}},
                                        "topologyKey": "kubernetes.io/hostname"}}]}}

_MAX_ANNOTATION_BYTES = 256 * 1024  # Kubernetes' TotalAnnotationSizeLimitB
_INTEGER_RE = re.compile(r"[-+]?[0-9]+")


# --- Validators: each is validate(value, path) and raises SchedulingError ---------------

def _at(path, name):
    return f"{path}.{name}" if path else name


def _string(problem=None):
    def validate(value, path):
        if not isinstance(value, str):
            fail(path, f"must be a string, got {kind_of(value)}")
        if problem and (message := problem(value)):
            fail(path, message)
    return validate


def _integer(low, high, rule):
    def validate(value, path):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            fail(path, f"{rule}, got {quote(value) if isinstance(value, (int, float)) else kind_of(value)}")
    return validate


def _enum(noun, choices, also=(), note=""):
    return _string(lambda value: None if value in choices or value in also
                   else f"unknown {noun} {quote(value)}; use {one_of(choices)}{note}")


def _list(item, empty_message=None):
    def validate(value, path):
        if not isinstance(value, list):
            fail(path, f"must be a list, got {kind_of(value)}")
        if empty_message and not value:
            fail(path, empty_message)
        for index, element in enumerate(value):
            item(element, f"{path}[{index}]")
    return validate


def _map(key_problem, value_problem):
    """A map of string to string, such as labels or annotations."""
    def validate(value, path):
        if not isinstance(value, dict):
            fail(path, f"must be an object, got {kind_of(value)}")
        for key, element in value.items():
            if message := key_problem(key):
                fail(path, message)
            where = f"{path}[{quote(key)}]" if path else quote(key)
            if not isinstance(element, str):
                # YAML habits (8, true) are the usual cause; Kubernetes only takes strings here.
                fix = ('; use "" for an empty value' if element is None else "" if isinstance(element, (dict, list))
                       else f"; put it in double quotes: {quote(quote(element))}")
                fail(where, f"the value must be a string, got {kind_of(element)}{fix}")
            if message := value_problem(element):
                fail(where, message)
    return validate


def _object(fields, required=(), rule=None):
    """A Kubernetes struct; unknown fields are errors, like the API server's strict decoding."""
    def validate(value, path):
        if not isinstance(value, dict):
            fail(path, f"must be an object, got {kind_of(value)}")
        for name in value:
            if name not in fields:
                fail(path, f"unknown field {quote(name)}{did_you_mean(name, list(fields))}; "
                            f"allowed fields: {', '.join(fields)}")
        for name in required:
            if value.get(name) in (None, ""):
                fail(_at(path, name), "is required")
        for name, check in fields.items():
            if value.get(name) is not None:  # null means "not set" to Kubernetes as well
                check(value[name], _at(path, name))
        if rule:
            rule(value, path)
    validate.fields = fields  # lets the tests compare against the Kubernetes schema
    return validate


def _toleration_rule(toleration, path):
    operator = toleration.get("operator") or "Equal"
    if not toleration.get("key") and operator != "Exists":
        fail(_at(path, "operator"), 'must be "Exists" when key is empty '
                                     '(an empty key with "Exists" tolerates every taint)')
    if operator == "Exists" and toleration.get("value"):
        fail(_at(path, "value"), 'must be empty when operator is "Exists"')
    if toleration.get("tolerationSeconds") is not None and toleration.get("effect") != "NoExecute":
        fail(_at(path, "tolerationSeconds"), 'is only allowed with effect "NoExecute"')


def _requirement_rule(requirement, path):
    operator, values, where = requirement["operator"], requirement.get("values") or [], _at(path, "values")
    if operator in ("In", "NotIn") and not values:
        fail(where, f'must hold at least one value for operator "{operator}"')
    if operator in ("Exists", "DoesNotExist") and values:
        fail(where, f'must be empty for operator "{operator}"')
    if operator in ("Gt", "Lt") and (len(values) != 1 or not _INTEGER_RE.fullmatch(values[0])
                                     or not -2**63 <= int(values[0]) < 2**63):
        fail(where, f'must hold exactly one integer, such as ["3"], for operator "{operator}"')


def _field_requirement_rule(requirement, path):
    if requirement["key"] != "metadata.name":
        fail(_at(path, "key"), 'must be "metadata.name", the only node field Kubernetes can match')
    if len(requirement.get("values") or []) != 1:
        fail(_at(path, "values"), "must hold exactly one node name")


def _pod_term_rule(term, path):
    match, mismatch = term.get("matchLabelKeys") or [], term.get("mismatchLabelKeys") or []
    if (match or mismatch) and term.get("labelSelector") is None:
        fail(_at(path, "labelSelector"), "is required when matchLabelKeys or mismatchLabelKeys is set")
    for key in match:
        if key in mismatch:
            fail(path, f"{quote(key)} cannot be in both matchLabelKeys and mismatchLabelKeys")


def _requirement(key, operators, value, rule):
    return _object({"key": key, "operator": _enum("operator", operators), "values": _list(value)},
                   required=("key", "operator"), rule=rule)


_LABEL_KEY = _string(qualified_name_problem)
_LABELS = _map(qualified_name_problem, label_value_problem)
_WEIGHT = _integer(1, 100, "must be an integer from 1 to 100")

_TOLERATION = _object({
    "key": _string(lambda key: key and qualified_name_problem(key)),
    "operator": _enum("operator", ("Exists", "Equal"), also=("",)),
    "value": _string(label_value_problem),
    "effect": _enum("effect", ("NoSchedule", "PreferNoSchedule", "NoExecute"), also=("",),
                    note=" (or leave it out to match every effect)"),
    "tolerationSeconds": _integer(-2**63, 2**63 - 1, "must be a whole number of seconds"),
}, rule=_toleration_rule)
_NODE_SELECTOR_TERM = _object({
    "matchExpressions": _list(_requirement(
        _LABEL_KEY, ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"), _string(), _requirement_rule)),
    "matchFields": _list(_requirement(_string(), ("In", "NotIn"), _string(), _field_requirement_rule)),
})
_LABEL_SELECTOR = _object({
    "matchLabels": _LABELS,
    "matchExpressions": _list(_requirement(
        _LABEL_KEY, ("In", "NotIn", "Exists", "DoesNotExist"), _string(label_value_problem), _requirement_rule)),
})
_POD_AFFINITY_TERM = _object({
    "labelSelector": _LABEL_SELECTOR,
    "namespaceSelector": _LABEL_SELECTOR,
    "namespaces": _list(_string(namespace_problem)),
    "topologyKey": _LABEL_KEY,
    "matchLabelKeys": _list(_LABEL_KEY),
    "mismatchLabelKeys": _list(_LABEL_KEY),
}, required=("topologyKey",), rule=_pod_term_rule)
_POD_AFFINITY = _object({
    "requiredDuringSchedulingIgnoredDuringExecution": _list(_POD_AFFINITY_TERM),
    "preferredDuringSchedulingIgnoredDuringExecution": _list(_object(
        {"weight": _WEIGHT, "podAffinityTerm": _POD_AFFINITY_TERM}, required=("weight", "podAffinityTerm"))),
})
_NODE_AFFINITY = _object({
    "requiredDuringSchedulingIgnoredDuringExecution": _object(
        {"nodeSelectorTerms": _list(_NODE_SELECTOR_TERM, "must hold at least one node selector term")},
        required=("nodeSelectorTerms",)),
    "preferredDuringSchedulingIgnoredDuringExecution": _list(_object(
        {"weight": _WEIGHT, "preference": _NODE_SELECTOR_TERM}, required=("weight", "preference"))),
})
_AFFINITY = _object({"nodeAffinity": _NODE_AFFINITY, "podAffinity": _POD_AFFINITY, "podAntiAffinity": _POD_AFFINITY})


def _annotations(value, path):
    # Kubernetes lowercases annotation keys before checking them, so prefixes are case-insensitive.
    _map(lambda key: qualified_name_problem(key.lower(), key), template_problem)(value, path)
    size = sum(len(k.encode("utf-8", "surrogatepass")) + len(v.encode("utf-8", "surrogatepass"))
               for k, v in value.items())
    if size > _MAX_ANNOTATION_BYTES:
        fail(path, f"annotations total {size} bytes; Kubernetes allows at most 256 KiB")


# --- The four shapes a provider sets ----------------------------------------------------

validate_tolerations = _list(_TOLERATION)
validate_node_selector = _LABELS
validate_annotations = _annotations
validate_affinity = _AFFINITY


def effective_affinity(stored: dict | None) -> dict:
    """The affinity a workspace pod gets: DEFAULT_AFFINITY when none is stored; {} is none at all."""
    return copy.deepcopy(DEFAULT_AFFINITY) if stored is None else stored
