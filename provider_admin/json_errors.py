"""JSON typed by people: strict decoding, and where and why a text is not JSON, in plain English.

The hints cover the mistakes people make copying snippets from documents: curly quotes,
trailing commas, Python's True/False/None, fields pasted without the braces around them,
text cut off before its closing brackets.
"""
import json
import re


class InvalidJSON(ValueError):
    """JSON the standard decoder takes but Kubernetes would not; the message is for the user."""


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


def strict_loads(text: str):
    """json.loads, refusing what Kubernetes' strict decoding refuses (a field twice in one
    object, NaN and Infinity) and nesting too deep to decode, with InvalidJSON; text that is
    not JSON at all raises json.JSONDecodeError, for `explain`."""
    def pairs(items):  # json would keep the last of duplicates
        seen = {}
        for key, value in items:
            if key in seen:
                raise InvalidJSON(f"Duplicate field {json.dumps(key, ensure_ascii=False)}: "
                                  "a field may appear only once in an object.")
            seen[key] = value
        return seen

    def constant(name):
        raise InvalidJSON(f"Invalid JSON: {name} is not a JSON value; use a number or null.")
    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except RecursionError:
        raise InvalidJSON("Invalid JSON: the value is nested too deeply.") from None


def where(text: str, pos: int) -> str:
    """`line L, column C` of a character offset, as the form's textarea counts them."""
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


def explain(error: json.JSONDecodeError, text: str, item: str | None = None, more_hints=()) -> str:
    """Where and why `text` is not JSON, with hints for the mistakes people make copying snippets.
    `item` names what a top-level list holds ("toleration"); `more_hints` are added at the end."""
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
        noun = item if len(stack) <= 1 and item else "item of this list" if stack else None
        hints.append(f"each {noun} must be an object in braces {{ }}, like [{example}]" if noun
                     else f"the fields must be inside braces {{ }}, like {example}")
    elif rest.startswith(("True", "False", "None")):
        hints.append("write true, false and null in lowercase")
    elif error.msg.startswith("Expecting property name") and char.isalpha():
        hints.append("put field names in double quotes")
    return f"{where(text, pos)}: {'; '.join([reason] + hints + list(more_hints))}."
