"""Validation and rendering of a provider's four scheduling fields (SPEC §3.1).

The fields end up in workspace pod specs and on per-workspace ServiceAccounts, so they
are checked here with the rules the Kubernetes API server applies: a mistake then shows
up next to the form field when the provider is saved instead of as a failed workspace
build much later. Standard library only, so the web app and the scheduler can share it.
"""
import copy
import difflib
import json
import re
from collections import namedtuple


class SchedulingError(ValueError):
    """A message meant for the user, shown next to the form field."""


MAX_FIELD_BYTES = 64 * 1024
TEMPLATE_VARIABLES = ("UserEmail", "Username", "WorkspaceName", "OrganizationName")
DEFAULT_AFFINITY = {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
    {"weight": 1, "podAffinityTerm": {"labelSelector": {"matchLabels": {"com.coder.resource": "true"}},
                                        "topologyKey": "kubernetes.io/hostname"}}]}}

_MAX_ANNOTATION_BYTES = 256 * 1024  # Kubernetes' TotalAnnotationSizeLimitB


def _q(value):
    return json.dumps(value, ensure_ascii=False)


def _or(choices, word="or"):
    quoted = [_q(c) for c in choices]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} {word} {quoted[-1]}"


def _kind(value):
    if isinstance(value, bool) or value is None:
        return _q(value)
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), "a number")


def _fail(path, message):
    raise SchedulingError(f"{path}: {message}" if path else message[:1].upper() + message[1:])


# --- Kubernetes name rules (k8s.io/apimachinery/pkg/util/validation) -------------------

_NAME_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_LABEL_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_INT_RE = re.compile(r"[-+]?[0-9]+")
_NAME_RULE = "at most 63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit"


def _qualified_name_problem(key, shown=None):
    shown = _q(key if shown is None else shown)
    parts = key.split("/")
    if len(parts) > 2:
        return f"invalid key {shown}: only one '/' is allowed, between the prefix and the name"
    if len(parts) == 2 and not (parts[0] and len(parts[0]) <= 253 and _SUBDOMAIN_RE.fullmatch(parts[0])):
        return (f"invalid key {shown}: the prefix before '/' must be a lowercase DNS subdomain "
                "of at most 253 characters, such as example.com")
    if not parts[-1]:
        return f"invalid key {shown}: the name must not be empty"
    if len(parts[-1]) > 63 or not _NAME_RE.fullmatch(parts[-1]):
        return f"invalid key {shown}: the name {_q(parts[-1])} must be {_NAME_RULE}"
    return None


def _label_value_problem(value):
    if value and (len(value) > 63 or not _NAME_RE.fullmatch(value)):
        return f"invalid label value {_q(value)}: it must be empty or {_NAME_RULE}"
    return None


def _namespace_problem(value):
    if len(value) > 63 or not _DNS_LABEL_RE.fullmatch(value):
        return (f"invalid namespace {_q(value)}: it must be at most 63 lowercase letters, digits or '-', "
                "starting and ending with a letter or digit")
    return None


# --- Template variables in annotation values (Go template syntax, variables only) ------

_ACTION_RE = re.compile(r"\{\{(.*?)\}\}", re.S)
_VARIABLE_RE = re.compile(r"\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*")
_ALLOWED_ACTION_RE = re.compile(r"\{\{\s*\.(" + "|".join(TEMPLATE_VARIABLES) + r")\s*\}\}")
_ALLOWED_LIST = ", ".join("{{ .%s }}" % name for name in TEMPLATE_VARIABLES)


def _template_problem(value):
    for match in _ACTION_RE.finditer(value):
        inner = match.group(1)
        variable = _VARIABLE_RE.fullmatch(inner)
        if variable and variable.group(1) in TEMPLATE_VARIABLES:
            continue
        if variable:
            why = f"unknown template variable .{variable.group(1)}" + _did_you_mean(
                variable.group(1), TEMPLATE_VARIABLES, lambda n: "{{ .%s }}" % n)
        elif inner.strip() in TEMPLATE_VARIABLES:
            why = "a variable needs a dot before its name: {{ .%s }}" % inner.strip()
        else:
            why = "only a plain variable may stand inside {{ }}, no functions, pipes or other expressions"
        return f"{_q(match.group(0))}: {why}; allowed variables: {_ALLOWED_LIST}"
    rest = _ACTION_RE.sub("", value)
    if "{{" in rest:
        start = rest.index("{{")
        return f'{_q(rest[start:start + 30])}: "{{{{" has no matching "}}}}"; allowed variables: {_ALLOWED_LIST}'
    if "}}" in rest:
        return f'"}}}}" has no matching "{{{{"; allowed variables: {_ALLOWED_LIST}'
    return None


def template_variables_in(value: str) -> list[str]:
    """The allowed variables a value uses, each once, in order of first use."""
    return list(dict.fromkeys(m.group(1) for m in _ALLOWED_ACTION_RE.finditer(value)))


def render_annotation(value: str, variables: dict[str, str]) -> str:
    """Substitutes {{ .Var }} with variables["Var"]; all other text is copied unchanged."""
    def substitute(match):
        if match.group(1) not in variables:
            raise SchedulingError(f"No value for template variable .{match.group(1)}")
        return str(variables[match.group(1)])
    # A function replacement is used literally (no backslash or group expansion), and
    # re.sub never rescans the substituted text, so a user's email cannot inject a template.
    return _ALLOWED_ACTION_RE.sub(substitute, value)


# --- Validators: each is validate(value, path) and raises SchedulingError ---------------

def _did_you_mean(name, choices, show=_q):
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6) or [
        c for c in choices if c.lower() == name.lower()]
    return f" (did you mean {show(close[0])}?)" if close else ""


def _at(path, name):
    return f"{path}.{name}" if path else name


def _string(problem=None):
    def validate(value, path):
        if not isinstance(value, str):
            _fail(path, f"must be a string, got {_kind(value)}")
        if problem and (message := problem(value)):
            _fail(path, message)
    return validate


def _integer(low, high, rule):
    def validate(value, path):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            _fail(path, f"{rule}, got {_q(value) if isinstance(value, (int, float)) else _kind(value)}")
    return validate


def _enum(noun, choices, also=(), note=""):
    return _string(lambda value: None if value in choices or value in also
                   else f"unknown {noun} {_q(value)}; use {_or(choices)}{note}")


def _list(item, empty_message=None):
    def validate(value, path):
        if not isinstance(value, list):
            _fail(path, f"must be a list, got {_kind(value)}")
        if empty_message and not value:
            _fail(path, empty_message)
        for index, element in enumerate(value):
            item(element, f"{path}[{index}]")
    return validate


def _map(key_problem, value_problem):
    """A map of string to string, such as labels or annotations."""
    def validate(value, path):
        if not isinstance(value, dict):
            _fail(path, f"must be an object, got {_kind(value)}")
        for key, element in value.items():
            if message := key_problem(key):
                _fail(path, message)
            where = f"{path}[{_q(key)}]" if path else _q(key)
            if not isinstance(element, str):
                # YAML habits (8, true) are the usual cause; Kubernetes only takes strings here.
                fix = ('; use "" for an empty value' if element is None else "" if isinstance(element, (dict, list))
                       else f"; put it in double quotes: {_q(_q(element))}")
                _fail(where, f"the value must be a string, got {_kind(element)}{fix}")
            if message := value_problem(element):
                _fail(where, message)
    return validate


def _object(fields, required=(), rule=None):
    """A Kubernetes struct; unknown fields are errors, like the API server's strict decoding."""
    def validate(value, path):
        if not isinstance(value, dict):
            _fail(path, f"must be an object, got {_kind(value)}")
        for name in value:
            if name not in fields:
                _fail(path, f"unknown field {_q(name)}{_did_you_mean(name, list(fields))}; "
                            f"allowed fields: {', '.join(fields)}")
        for name in required:
            if value.get(name) in (None, ""):
                _fail(_at(path, name), "is required")
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
        _fail(_at(path, "operator"), 'must be "Exists" when key is empty '
                                     '(an empty key with "Exists" tolerates every taint)')
    if operator == "Exists" and toleration.get("value"):
        _fail(_at(path, "value"), 'must be empty when operator is "Exists"')
    if toleration.get("tolerationSeconds") is not None and toleration.get("effect") != "NoExecute":
        _fail(_at(path, "tolerationSeconds"), 'is only allowed with effect "NoExecute"')


def _requirement_rule(requirement, path):
    operator, values, where = requirement["operator"], requirement.get("values") or [], _at(path, "values")
    if operator in ("In", "NotIn") and not values:
        _fail(where, f'must hold at least one value for operator "{operator}"')
    if operator in ("Exists", "DoesNotExist") and values:
        _fail(where, f'must be empty for operator "{operator}"')
    if operator in ("Gt", "Lt") and (len(values) != 1 or not _INT_RE.fullmatch(values[0])
                                     or not -2**63 <= int(values[0]) < 2**63):
        _fail(where, f'must hold exactly one integer, such as ["3"], for operator "{operator}"')


def _field_requirement_rule(requirement, path):
    if requirement["key"] != "metadata.name":
        _fail(_at(path, "key"), 'must be "metadata.name", the only node field Kubernetes can match')
    if len(requirement.get("values") or []) != 1:
        _fail(_at(path, "values"), "must hold exactly one node name")


def _pod_term_rule(term, path):
    match, mismatch = term.get("matchLabelKeys") or [], term.get("mismatchLabelKeys") or []
    if (match or mismatch) and term.get("labelSelector") is None:
        _fail(_at(path, "labelSelector"), "is required when matchLabelKeys or mismatchLabelKeys is set")
    for key in match:
        if key in mismatch:
            _fail(path, f"{_q(key)} cannot be in both matchLabelKeys and mismatchLabelKeys")


def _requirement(key, operators, value, rule):
    return _object({"key": key, "operator": _enum("operator", operators), "values": _list(value)},
                   required=("key", "operator"), rule=rule)


_LABEL_KEY = _string(_qualified_name_problem)
_LABELS = _map(_qualified_name_problem, _label_value_problem)
_WEIGHT = _integer(1, 100, "must be an integer from 1 to 100")

_TOLERATION = _object({
    "key": _string(lambda key: key and _qualified_name_problem(key)),
    "operator": _enum("operator", ("Exists", "Equal"), also=("",)),
    "value": _string(_label_value_problem),
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
        _LABEL_KEY, ("In", "NotIn", "Exists", "DoesNotExist"), _string(_label_value_problem), _requirement_rule)),
})
_POD_AFFINITY_TERM = _object({
    "labelSelector": _LABEL_SELECTOR,
    "namespaceSelector": _LABEL_SELECTOR,
    "namespaces": _list(_string(_namespace_problem)),
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
    _map(lambda key: _qualified_name_problem(key.lower(), key), _template_problem)(value, path)
    size = sum(len(k.encode("utf-8", "surrogatepass")) + len(v.encode("utf-8", "surrogatepass"))
               for k, v in value.items())
    if size > _MAX_ANNOTATION_BYTES:
        _fail(path, f"annotations total {size} bytes; Kubernetes allows at most 256 KiB")


# --- The four form fields ----------------------------------------------------------------

_Field = namedtuple("_Field", "key label type expected item example note validate")
_FIELDS = {field.key: field for field in (
    _Field("pod_tolerations", "Pod tolerations", list, "a JSON list of tolerations", "toleration",
           '[{"key": "com.coder.workspace", "operator": "Exists", "effect": "NoSchedule"}]', "",
           _list(_TOLERATION)),
    _Field("pod_node_selector", "Pod node selector", dict, "a JSON object of node label names to values",
           None, '{"node-pool": "workspaces"}', "", _LABELS),
    _Field("service_account_annotations", "Service account annotations", dict,
           "a JSON object of annotation names to values", None,
           '{"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789123:role/coder-role-{{.UserEmail}}"}', "",
           _annotations),
    _Field("affinity", "Affinity", dict, "a JSON object (a Kubernetes Affinity)", None,
           '{"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, '
           '"podAffinityTerm": {...}}]}}', " ({} means no affinity at all; leave the field empty for the default"
           " affinity.)", _AFFINITY),
)}
_KEY_ALIASES = {"tolerations": "pod_tolerations", "nodeSelector": "pod_node_selector",
                "annotations": "service_account_annotations", **{key: key for key in _FIELDS}}
_PASTED_KEY_RE = re.compile(r'\s*"([^"\\]*)"\s*:')
_REASONS = (  # json's messages, in plain English
    ("Expecting value", "expected a value (a string in double quotes, a number, true, false, null, [...] or {...})"),
    ("Expecting property name", "expected a field name in double quotes"),
    ("Expecting ':'", "expected ':' after the field name"),
    ("Expecting ','", "expected ',' or a closing bracket"),
    ("Extra data", "unexpected text after the end of the value"),
    ("Unterminated string", "a string has no closing double quote"),
    ("Invalid control character", "a string holds a line break or tab; write it as \\n or \\t"),
    ("Invalid \\", "a string holds an invalid backslash escape; write a backslash as \\\\"),
)


def _where(text, pos):
    error = json.JSONDecodeError("", text, pos)
    return f"line {error.lineno}, column {error.colno}"


def _open_brackets(text):
    stack, in_string, escaped = [], False, False
    for char in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            stack.append(char)
        elif char in "]}" and stack:
            stack.pop()
    return stack


def _explain(error, text, field):
    """Where and why `text` is not JSON, with hints for the mistakes people make copying snippets."""
    pos, char, rest = error.pos, text[error.pos:error.pos + 1], text[error.pos:].strip()
    reason = next((plain for prefix, plain in _REASONS if error.msg.startswith(prefix)), error.msg)
    stack, previous = _open_brackets(text[:pos]), text[:pos].rstrip()[-1:]
    hints = []
    if not rest and stack:
        closers = "".join("]" if b == "[" else "}" for b in reversed(stack))
        reason = f"the text ends too early; close the open brackets with {closers}"
        pos = len(text.rstrip())  # right after the last character, not on a trailing blank line
    elif char in "'\u2018\u2019\u201c\u201d":
        hints.append('JSON needs straight double quotes (") around strings and field names')
    elif previous == "," and char in "]}" or error.msg == "Extra data" and rest == ",":
        hints.append("remove the trailing comma")
    elif char == ":" and stack[-1:] in ([], ["["]):
        # A field pasted without the braces around it, as in the source document's snippets.
        name = re.search(r'("(?:[^"\\]|\\.)*")\s*$', text[:pos])
        example = "{%s: ...}" % (name.group(1) if name else '"name"')
        noun = field.item if len(stack) <= 1 and field.item else "item of this list" if stack else None
        hints.append(f"each {noun} must be an object in braces {{ }}, like [{example}]" if noun
                     else f"the fields must be inside braces {{ }}, like {example}")
    elif rest.startswith(("True", "False", "None")):
        hints.append("write true, false and null in lowercase")
    elif error.msg.startswith("Expecting property name") and char.isalpha():
        hints.append("put field names in double quotes")
    others = [k for k in _FIELDS if k != field.key and re.search(f'"{k}"\\s*:', text)]
    if others:
        hints.append(f"the text also holds {_or(others, 'and')}: each of those has its own field")
    return f"{_where(text, pos)}: {'; '.join([reason] + hints)}."


def _decode(text):
    def pairs(items):  # Kubernetes' strict decoding rejects duplicates; json would keep the last one
        seen = {}
        for key, value in items:
            if key in seen:
                raise SchedulingError(f"Duplicate field {_q(key)}: a field may appear only once in an object.")
            seen[key] = value
        return seen

    def constant(name):
        raise SchedulingError(f"Invalid JSON: {name} is not a JSON value; use a number or null.")
    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except RecursionError:
        raise SchedulingError("Invalid JSON: the value is nested too deeply.") from None


def _load(text, field):
    try:
        return _decode(text)
    except json.JSONDecodeError as error:
        first = error
    pasted = _PASTED_KEY_RE.match(text)
    owner = pasted and _FIELDS.get(_KEY_ALIASES.get(pasted.group(1)))
    if not owner:
        raise SchedulingError(f"Invalid JSON at {_explain(first, text, field)}") from None
    key, at = pasted.group(1), f"Invalid JSON at {_where(text, pasted.start(1) - 1)}"
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
    shown = _q(value)
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
        raise SchedulingError(f"{field.label} must be {field.expected}, got {_kind(value)}{hint}.")
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


def effective_affinity(stored: dict | None) -> dict:
    return copy.deepcopy(DEFAULT_AFFINITY) if stored is None else stored


def dumps(value) -> str:
    """The stored value as shown back in the form; keys sorted so it is the same on every database."""
    return "" if value is None else json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
