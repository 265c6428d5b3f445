"""Kubernetes' rules for names, label keys and values (k8s.io/apimachinery/pkg/util/validation).

One place for them: the forms check namespaces and object names with them, and the
scheduling checks label keys, values and namespaces inside the JSON fields.
"""
import re

from .problems import quote

# `\Z` rather than `$`, which would also take a trailing newline.
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")
_NAME_RE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_NAME_RULE = "at most 63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit"


def is_dns_label(value: str) -> bool:
    """A namespace, or the name of a Service or Pod: at most 63 of [a-z0-9-], alphanumeric at the ends."""
    return len(value) <= 63 and DNS1123_LABEL.match(value) is not None


def is_dns_subdomain(value: str) -> bool:
    """Most object names: DNS labels joined by '.', at most 253 characters."""
    return len(value) <= 253 and DNS1123_SUBDOMAIN.match(value) is not None


def qualified_name_problem(key: str, shown: str | None = None) -> str | None:
    """What is wrong with a label or annotation key (`prefix/name`), or None."""
    shown = quote(key if shown is None else shown)
    parts = key.split("/")
    if len(parts) > 2:
        return f"invalid key {shown}: only one '/' is allowed, between the prefix and the name"
    if len(parts) == 2 and not is_dns_subdomain(parts[0]):
        return (f"invalid key {shown}: the prefix before '/' must be a lowercase DNS subdomain "
                "of at most 253 characters, such as example.com")
    if not parts[-1]:
        return f"invalid key {shown}: the name must not be empty"
    if len(parts[-1]) > 63 or not _NAME_RE.fullmatch(parts[-1]):
        return f"invalid key {shown}: the name {quote(parts[-1])} must be {_NAME_RULE}"
    return None


def label_value_problem(value: str) -> str | None:
    if value and (len(value) > 63 or not _NAME_RE.fullmatch(value)):
        return f"invalid label value {quote(value)}: it must be empty or {_NAME_RULE}"
    return None


def namespace_problem(value: str) -> str | None:
    if not is_dns_label(value):
        return (f"invalid namespace {quote(value)}: it must be at most 63 lowercase letters, digits or '-', "
                "starting and ending with a letter or digit")
    return None
