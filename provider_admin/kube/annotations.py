"""Template variables in service account annotation values (Go template syntax, variables only).

A provider's annotations may name the workspace's owner, name and organization, such as
`role-{{ .Username }}`; they are checked when the provider is saved and filled in when a
workspace's ServiceAccount is built.
"""
import re

from .problems import SchedulingError, did_you_mean, quote

TEMPLATE_VARIABLES = ("UserEmail", "Username", "WorkspaceName", "OrganizationName")

_ACTION_RE = re.compile(r"\{\{(.*?)\}\}", re.S)
_VARIABLE_RE = re.compile(r"\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*")
_ALLOWED_ACTION_RE = re.compile(r"\{\{\s*\.(" + "|".join(TEMPLATE_VARIABLES) + r")\s*\}\}")
_ALLOWED_LIST = ", ".join("{{ .%s }}" % name for name in TEMPLATE_VARIABLES)


def template_problem(value: str) -> str | None:
    """What is wrong with the templates in an annotation value, or None."""
    for match in _ACTION_RE.finditer(value):
        inner = match.group(1)
        variable = _VARIABLE_RE.fullmatch(inner)
        if variable and variable.group(1) in TEMPLATE_VARIABLES:
            continue
        if variable:
            why = f"unknown template variable .{variable.group(1)}" + did_you_mean(
                variable.group(1), TEMPLATE_VARIABLES, lambda n: "{{ .%s }}" % n)
        elif inner.strip() in TEMPLATE_VARIABLES:
            why = "a variable needs a dot before its name: {{ .%s }}" % inner.strip()
        else:
            why = "only a plain variable may stand inside {{ }}, no functions, pipes or other expressions"
        return f"{quote(match.group(0))}: {why}; allowed variables: {_ALLOWED_LIST}"
    rest = _ACTION_RE.sub("", value)
    if "{{" in rest:
        start = rest.index("{{")
        return f'{quote(rest[start:start + 30])}: "{{{{" has no matching "}}}}"; allowed variables: {_ALLOWED_LIST}'
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
