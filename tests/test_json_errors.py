"""provider_admin.json_errors on its own: what it tells about any JSON a person typed.

The scheduling fields' messages, which add the field's own words, are in test_scheduling.py.
"""
import json

import pytest

from provider_admin.json_errors import InvalidJSON, explain, strict_loads, where


def explained(text, **kwargs):
    with pytest.raises(json.JSONDecodeError) as info:
        strict_loads(text)
    return explain(info.value, text, **kwargs)


def test_strict_loads_takes_json():
    assert strict_loads('{"a": [1, 2.5, true, null, "x"]}') == {"a": [1, 2.5, True, None, "x"]}


@pytest.mark.parametrize("text, message", [
    ('{"a": 1, "a": 2}', 'Duplicate field "a": a field may appear only once in an object.'),
    ('[NaN]', "Invalid JSON: NaN is not a JSON value; use a number or null."),
    ('[-Infinity]', "Invalid JSON: -Infinity is not a JSON value; use a number or null."),
    ("[" * 100_000 + "]" * 100_000, "Invalid JSON: the value is nested too deeply."),
])
def test_strict_loads_refuses_what_kubernetes_refuses(text, message):
    with pytest.raises(InvalidJSON) as info:
        strict_loads(text)
    assert str(info.value) == message


def test_where_counts_lines_and_columns_from_one():
    assert where("ab\ncd", 0) == "line 1, column 1"
    assert where("ab\ncd", 4) == "line 2, column 2"


@pytest.mark.parametrize("text, expected", [
    ('{"a": 1,}', "line 1, column 9: expected a field name in double quotes; remove the trailing comma."),
    ("{'a': 1}", "line 1, column 2: expected a field name in double quotes; "
                 'JSON needs straight double quotes (") around strings and field names.'),
    ('{"a": True}', "line 1, column 7: expected a value (a string in double quotes, a number, true, false, "
                    "null, [...] or {...}); write true, false and null in lowercase."),
    ("{a: 1}", "line 1, column 2: expected a field name in double quotes; put field names in double quotes."),
    # Right after the last character: where the closing brackets go.
    ('{"a": [1, 2', "line 1, column 12: the text ends too early; close the open brackets with ]}."),
    ('"a": 1', "line 1, column 4: unexpected text after the end of the value; "
               'the fields must be inside braces { }, like {"a": ...}.'),
])
def test_explain_says_where_and_why(text, expected):
    assert explained(text) == expected


def test_explain_names_the_item_of_a_list_and_adds_the_callers_hints():
    text = '["key": "x"]'
    assert explained(text) == ("line 1, column 7: expected ',' or a closing bracket; each item of this list "
                               'must be an object in braces { }, like [{"key": ...}].')
    assert explained(text, item="toleration", more_hints=["one more thing"]) == (
        "line 1, column 7: expected ',' or a closing bracket; each toleration must be an object in braces "
        '{ }, like [{"key": ...}]; one more thing.')
