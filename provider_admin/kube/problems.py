"""How a problem in a scheduling value is told: the error, quoting, lists of choices, close matches."""
import difflib
import json


class SchedulingError(ValueError):
    """A message meant for the user, shown next to the form field."""


def quote(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def one_of(choices, word="or") -> str:
    """`"a", "b" or "c"`: the choices quoted, the last joined with `word`."""
    quoted = [quote(c) for c in choices]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} {word} {quoted[-1]}"


def kind_of(value) -> str:
    """What a JSON value is, as a user would say it: "an object", "a list", "a string", ..."""
    if isinstance(value, bool) or value is None:
        return quote(value)
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), "a number")


def did_you_mean(name, choices, show=quote) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6) or [
        c for c in choices if c.lower() == name.lower()]
    return f" (did you mean {show(close[0])}?)" if close else ""


def fail(path, message):
    raise SchedulingError(f"{path}: {message}" if path else message[:1].upper() + message[1:])
