"""Tests for provider_admin.scheduling: the four scheduling JSON fields of a provider."""
import copy
import json
import textwrap

import pytest

from provider_admin import scheduling
from provider_admin.scheduling import (
    DEFAULT_AFFINITY, MAX_FIELD_BYTES, TEMPLATE_VARIABLES, SchedulingError, dumps, effective_affinity,
    parse_affinity, parse_annotations, parse_node_selector, parse_tolerations, render_annotation,
    template_variables_in)
from tests.seed import AFFINITY_BLOCK, ANNOTATIONS_BLOCK, EMPTY_AFFINITY, TOLERATIONS_BLOCK

PARSERS = (parse_tolerations, parse_node_selector, parse_annotations, parse_affinity)

ALLOWED_VARIABLES = "{{ .UserEmail }}, {{ .Username }}, {{ .WorkspaceName }}, {{ .OrganizationName }}"


def error_of(parser, text):
    with pytest.raises(SchedulingError) as info:
        parser(text)
    return str(info.value)


def assert_mentions(message, *fragments):
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# --- The source document's snippets ------------------------------------------------------

def test_seed_tolerations_block_explains_every_problem():
    message = error_of(parse_tolerations, TOLERATIONS_BLOCK)
    assert message.startswith("Invalid JSON at line 1, column 1: ")
    assert_mentions(
        message,
        'paste only the value, without the "pod_tolerations": key',
        '[{"key": "com.coder.workspace", "operator": "Exists", "effect": "NoSchedule"}]',
        # After the key, the first toleration's fields stand in the list without { }.
        "line 2, column 10", "each toleration must be an object in braces { }",
        '"pod_node_selector", "service_account_annotations" and "affinity"', "own field")


def test_seed_tolerations_block_keeps_positions_when_copied_with_indentation():
    indented = textwrap.indent(TOLERATIONS_BLOCK, "      ")
    message = error_of(parse_tolerations, indented)
    assert_mentions(message, "line 1, column 7", 'without the "pod_tolerations": key', "line 2, column 16",
                    "each toleration must be an object in braces")


def test_seed_tolerations_without_the_key_still_explains_the_braces():
    value = "[\n" + TOLERATIONS_BLOCK.split("\n", 1)[1]
    message = error_of(parse_tolerations, value)
    assert_mentions(message, "Invalid JSON at line 2, column 10", "each toleration must be an object in braces",
                    '[{"key": ...}]')


def test_seed_single_toleration_fields_without_brackets():
    fields = '"key": "com.coder.workspace", "operator": "Exists", "effect": "NoSchedule"'
    message = error_of(parse_tolerations, fields)
    assert_mentions(message, "Invalid JSON at line 1, column 6", "each toleration must be an object in braces")


def test_seed_annotations_block():
    message = error_of(parse_annotations, ANNOTATIONS_BLOCK)
    assert_mentions(message, "Invalid JSON at line 1, column 1",
                    'paste only the value, without the "service_account_annotations": key',
                    # ...and the closing brace never came: name the spot and the bracket to add.
                    "line 2, column 91", "ends too early", "close the open brackets with }")


def test_seed_annotations_value_without_braces():
    value = ANNOTATIONS_BLOCK.split("\n", 1)[1]
    message = error_of(parse_annotations, value)
    assert_mentions(message, "Invalid JSON at line 1, column 31", "must be inside braces { }",
                    '{"eks.amazonaws.com/role-arn": ...}')


def test_seed_affinity_block():
    message = error_of(parse_affinity, AFFINITY_BLOCK)
    assert_mentions(message, "Invalid JSON at line 1, column 1", 'paste only the value, without the "affinity": key',
                    "line 4, column 27", "each item of this list must be an object in braces { }",
                    '[{"weight": ...}]')


def test_seed_empty_affinity_with_key():
    message = error_of(parse_affinity, EMPTY_AFFINITY)
    assert_mentions(message, "Invalid JSON at line 1, column 1", 'without the "affinity": key', "that is: {}",
                    "{} means no affinity at all", "leave the field empty for the default affinity")


def test_pasted_key_with_a_valid_value():
    message = error_of(parse_tolerations, '"pod_tolerations": [{"operator": "Exists"}]')
    assert message == ('Invalid JSON at line 1, column 1: paste only the value, without the "pod_tolerations": key, '
                       'that is: [{"operator": "Exists"}].')
    long_value = json.dumps({f"key{i}": "value" for i in range(100)})
    message = error_of(parse_node_selector, '"pod_node_selector": ' + long_value)
    assert message == 'Invalid JSON at line 1, column 1: paste only the value, without the "pod_node_selector": key.'


def test_seed_empty_affinity_with_trailing_comma():
    message = error_of(parse_affinity, EMPTY_AFFINITY + ",")
    assert_mentions(message, 'without the "affinity": key', "line 1, column 15", "remove the trailing comma")


@pytest.mark.parametrize("parser, text, owner", [
    (parse_tolerations, EMPTY_AFFINITY, "Affinity field"),
    (parse_node_selector, TOLERATIONS_BLOCK, "Pod tolerations field"),
    (parse_affinity, ANNOTATIONS_BLOCK, "Service account annotations field"),
    (parse_annotations, '"nodeSelector": {"a": "b"}', "Pod node selector field"),
])
def test_seed_snippet_in_the_wrong_field_names_the_right_one(parser, text, owner):
    message = error_of(parser, text)
    assert_mentions(message, "Invalid JSON at line 1, column 1", owner, "this field takes")


@pytest.mark.parametrize("parser, fixed", [
    (parse_tolerations, '[{"key": "com.coder.workspace", "operator": "Exists", "effect": "NoSchedule"}]'),
    (parse_node_selector, "{}"),
    (parse_annotations, '{"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789123:role/coder-role-{{.UserEmail}}"}'),
    (parse_affinity, json.dumps(DEFAULT_AFFINITY, indent=4)),
    (parse_affinity, "{}"),
])
def test_seed_snippets_once_fixed_are_accepted(parser, fixed):
    assert parser(fixed) == json.loads(fixed)


# --- Valid values ------------------------------------------------------------------------

VALID_TOLERATIONS = [
    [],
    [{"key": "com.coder.workspace", "operator": "Exists", "effect": "NoSchedule"}],
    [{"key": "dedicated", "operator": "Equal", "value": "workspaces", "effect": "NoExecute",
      "tolerationSeconds": 3600}],
    [{"key": "dedicated", "value": "gpu"}],  # operator defaults to Equal
    [{"key": "example.com/pool", "operator": "Equal", "value": "", "effect": "PreferNoSchedule"}],
    [{"operator": "Exists"}],  # empty key with Exists tolerates everything
    [{"key": "a", "operator": "Exists", "effect": ""}, {"key": "b", "operator": "Exists", "value": None}],
    [{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
      "tolerationSeconds": -5}],
]
VALID_NODE_SELECTORS = [
    {},
    {"node-pool": "workspaces"},
    {"kubernetes.io/os": "linux", "topology.kubernetes.io/zone": "eu-west-1a", "empty": ""},
    {"a" * 63: "b" * 63, ("s" * 60 + ".com") + "/x": "A.b_c-9"},
]
VALID_ANNOTATIONS = [
    {},
    {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789123:role/coder-role-{{.UserEmail}}"},
    {"iam.gke.io/gcp-service-account": "{{ .Username }}@project.iam.gserviceaccount.com",
     "example.com/owner": "{{ .OrganizationName }}/{{.WorkspaceName}}/{{  .UserEmail  }}"},
    {"Example.COM/Mixed-Case": "any content: spaces, {braces}, } and { alone, unicode é, \n newlines"},
    {"plain": ""},
]
VALID_AFFINITIES = [
    {},
    DEFAULT_AFFINITY,
    {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["coder"]}]},
         "topologyKey": "topology.kubernetes.io/zone", "namespaces": ["coder", "team-a"],
         "matchLabelKeys": ["pod-template-hash"]}]}},
    {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [
                {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64", "arm64"]},
                {"key": "example.com/cores", "operator": "Gt", "values": ["8"]},
                {"key": "spot", "operator": "DoesNotExist"}]},
            {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["node-1"]}]}]},
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "preference": {"matchExpressions": [{"key": "ssd", "operator": "Exists"}]}}]}},
    {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "podAffinityTerm": {
            "labelSelector": {"matchLabels": {"com.coder.resource": "true"}},
            "namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["x"]}]},
            "topologyKey": "kubernetes.io/hostname", "mismatchLabelKeys": ["tenant"]}}]},
     "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
    {"nodeAffinity": None, "podAffinity": {}},  # null means unset, as in Kubernetes
]
VALID = ([(parse_tolerations, v) for v in VALID_TOLERATIONS]
         + [(parse_node_selector, v) for v in VALID_NODE_SELECTORS]
         + [(parse_annotations, v) for v in VALID_ANNOTATIONS]
         + [(parse_affinity, v) for v in VALID_AFFINITIES])


@pytest.mark.parametrize("parser, value", VALID)
def test_valid_values_are_returned_unchanged(parser, value):
    assert parser(json.dumps(value)) == value
    assert parser(json.dumps(value, indent=2)) == value


@pytest.mark.parametrize("parser, value", VALID)
def test_dumps_round_trips_through_the_parser(parser, value):
    assert parser(dumps(value)) == value


@pytest.mark.parametrize("parser", PARSERS)
@pytest.mark.parametrize("blank", ["", "   ", "\n\t \n", None])
def test_blank_means_unset(parser, blank):
    assert parser(blank) is None


def test_empty_affinity_is_kept_apart_from_unset():
    assert parse_affinity("{}") == {}
    assert parse_affinity("") is None
    assert effective_affinity(parse_affinity("{}")) == {}
    assert effective_affinity(parse_affinity("")) == DEFAULT_AFFINITY


def test_effective_affinity_returns_a_copy_of_the_default():
    affinity = effective_affinity(None)
    assert affinity == DEFAULT_AFFINITY
    affinity["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] = 99
    assert DEFAULT_AFFINITY["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"] == 1
    stored = {"podAntiAffinity": {}}
    assert effective_affinity(stored) is stored


def test_default_affinity_matches_the_source_document():
    term = DEFAULT_AFFINITY["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["weight"] == 1
    assert term["podAffinityTerm"] == {"labelSelector": {"matchLabels": {"com.coder.resource": "true"}},
                                       "topologyKey": "kubernetes.io/hostname"}
    assert parse_affinity(dumps(DEFAULT_AFFINITY)) == DEFAULT_AFFINITY


def test_dumps_is_stable_pretty_json():
    assert dumps(None) == ""
    assert dumps({}) == "{}"
    assert dumps({"b": "é", "a": ["x"]}) == '{\n  "a": [\n    "x"\n  ],\n  "b": "é"\n}'
    assert dumps({"b": 1, "a": 2}) == dumps({"a": 2, "b": 1})


def test_errors_are_value_errors():
    assert issubclass(SchedulingError, ValueError)
    with pytest.raises(ValueError):
        parse_tolerations("{")


# --- Size ----------------------------------------------------------------------------------

@pytest.mark.parametrize("parser", PARSERS)
def test_oversized_input_names_the_limit(parser):
    text = "{}" + " " * MAX_FIELD_BYTES
    message = error_of(parser, text)
    assert_mentions(message, "too large", f"{MAX_FIELD_BYTES + 2} bytes", "64 KiB")


def test_size_limit_counts_utf8_bytes_and_allows_exactly_the_limit():
    assert parse_node_selector("{}" + " " * (MAX_FIELD_BYTES - 2)) == {}
    text = '{"a": "' + "é" * (MAX_FIELD_BYTES // 2) + '"}'  # fewer characters than the limit, more bytes
    assert len(text) < MAX_FIELD_BYTES
    assert "64 KiB" in error_of(parse_annotations, text)


def test_annotations_total_size_limit():
    # Unreachable through the 64 KiB form field, but kept so rendered values get the same check.
    big = {"a": "x" * (128 * 1024), "b": "y" * (128 * 1024)}
    with pytest.raises(SchedulingError, match="256 KiB"):
        scheduling._annotations(big, "")
    scheduling._annotations({"a": "x" * (200 * 1024)}, "")


# --- Malformed JSON --------------------------------------------------------------------------

@pytest.mark.parametrize("parser, text, fragments", [
    (parse_node_selector, '{"a": "b",}', ["line 1, column 11", "remove the trailing comma"]),
    (parse_tolerations, '[{"operator": "Exists"},]', ["line 1, column 25", "remove the trailing comma"]),
    (parse_node_selector, "{'a': 'b'}", ["line 1, column 2", "double quotes"]),
    (parse_node_selector, '{\u201ca\u201d: "b"}', ["line 1, column 2", "straight double quotes"]),
    (parse_node_selector, '{a: "b"}', ["line 1, column 2", "put field names in double quotes"]),
    (parse_node_selector, '{"a": True}', ["line 1, column 7", "true, false and null in lowercase"]),
    (parse_node_selector, '{"a" "b"}', ["line 1, column 6", "expected ':' after the field name"]),
    (parse_node_selector, '{"a": "b"} {"c": "d"}', ["line 1, column 12", "unexpected text after the end"]),
    (parse_node_selector, '{"a": "b\n"}', ["line 1, column 9", "line break", "\\n"]),
    (parse_node_selector, '{"a": "b\\q"}', ["line 1, column 9", "backslash escape"]),
    (parse_node_selector, '{"a": "b', ["line 1, column 7", "no closing double quote"]),
    (parse_node_selector, '{\n  "a": "b"\n', ["line 2, column 11", "ends too early", "}"]),
    (parse_affinity, '{"podAffinity": {"x": [', ["ends too early", "]}}"]),
    (parse_tolerations, "[1: 2]", ["line 1, column 3", "object in braces"]),
    (parse_node_selector, '{"a": NaN}', ["NaN is not a JSON value"]),
    (parse_node_selector, '{"a": "b", "a": "c"}', ['Duplicate field "a"']),
    (parse_tolerations, "[" * 100000 + "]" * 100000, ["too large"]),
    (parse_tolerations, "[" * 30000 + "]" * 30000, ["nested too deeply"]),
    (parse_node_selector, "nope", ["line 1, column 1", "expected a value"]),
    (parse_node_selector, '{"a": tru}', ["line 1, column 7", "expected a value"]),
])
def test_malformed_json_gets_position_and_plain_reason(parser, text, fragments):
    message = error_of(parser, text)
    assert_mentions(message, *fragments)
    if "line" in fragments[0]:
        assert message.startswith("Invalid JSON at " + fragments[0] + ": ")


def test_malformed_json_reason_is_plain_english_not_python():
    message = error_of(parse_node_selector, '{"a": "b" "c": "d"}')
    assert message == "Invalid JSON at line 1, column 11: expected ',' or a closing bracket."


# --- Wrong top-level type ------------------------------------------------------------------

@pytest.mark.parametrize("parser, text, expected", [
    (parse_tolerations, '{"key": "a", "operator": "Exists"}',
     "Pod tolerations must be a JSON list of tolerations, got an object; wrap a single toleration in [ ]."),
    (parse_tolerations, '"a"', "Pod tolerations must be a JSON list of tolerations, got a string."),
    (parse_node_selector, '[{"a": "b"}]', "Pod node selector must be a JSON object of node label names to values, "
                                          "got a list."),
    (parse_annotations, "42", "Service account annotations must be a JSON object of annotation names to values, "
                              "got a number."),
    (parse_affinity, "[]", "Affinity must be a JSON object (a Kubernetes Affinity), got a list."),
    (parse_affinity, "null", "Affinity must be a JSON object (a Kubernetes Affinity), got null."),
    (parse_affinity, "true", "Affinity must be a JSON object (a Kubernetes Affinity), got true."),
])
def test_wrong_top_level_type(parser, text, expected):
    assert error_of(parser, text) == expected


# --- Tolerations -----------------------------------------------------------------------------

@pytest.mark.parametrize("toleration, expected", [
    ({"key": "a", "operator": "Exist"}, '[0].operator: unknown operator "Exist"; use "Exists" or "Equal"'),
    ({"key": "a", "operator": "exists"}, '[0].operator: unknown operator "exists"; use "Exists" or "Equal"'),
    ({"key": "a", "operator": "Exists", "effect": "NoSchedul"},
     '[0].effect: unknown effect "NoSchedul"; use "NoSchedule", "PreferNoSchedule" or "NoExecute"'),
    ({"key": "a", "opertor": "Exists"},
     '[0]: unknown field "opertor" (did you mean "operator"?); '
     'allowed fields: key, operator, value, effect, tolerationSeconds'),
    ({"key": "a", "Effect": "NoSchedule"}, '[0]: unknown field "Effect" (did you mean "effect"?)'),
    ({"key": "a", "colour": "red"}, '[0]: unknown field "colour"; allowed fields: key, operator'),
    ({"value": "x"}, '[0].operator: must be "Exists" when key is empty'),
    ({"key": "", "operator": "Equal"}, '[0].operator: must be "Exists" when key is empty'),
    ({"key": "a", "operator": "Exists", "value": "x"}, '[0].value: must be empty when operator is "Exists"'),
    ({"key": "a", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 60},
     '[0].tolerationSeconds: is only allowed with effect "NoExecute"'),
    ({"key": "a", "operator": "Exists", "tolerationSeconds": 60},
     '[0].tolerationSeconds: is only allowed with effect "NoExecute"'),
    ({"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": "60"},
     "[0].tolerationSeconds: must be a whole number of seconds, got a string"),
    ({"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1.5},
     "[0].tolerationSeconds: must be a whole number of seconds, got 1.5"),
    ({"key": "a", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": True},
     "[0].tolerationSeconds: must be a whole number of seconds, got true"),
    ({"key": "bad key", "operator": "Exists"}, '[0].key: invalid key "bad key": the name "bad key" must be'),
    ({"key": "a/b/c", "operator": "Exists"}, '[0].key: invalid key "a/b/c": only one \'/\' is allowed'),
    ({"key": "Example.com/a", "operator": "Exists"},
     '[0].key: invalid key "Example.com/a": the prefix before \'/\' must be a lowercase DNS subdomain'),
    ({"key": "example.com/", "operator": "Exists"}, '[0].key: invalid key "example.com/": the name must not be empty'),
    ({"key": 5, "operator": "Exists"}, "[0].key: must be a string, got a number"),
    ({"key": "a", "value": "has space"}, '[0].value: invalid label value "has space"'),
    ({"key": "a", "value": "v" * 64}, "[0].value: invalid label value", ),
    ({"key": "a", "operator": 1}, "[0].operator: must be a string, got a number"),
])
def test_invalid_toleration(toleration, expected):
    message = error_of(parse_tolerations, json.dumps([toleration]))
    assert message.startswith(expected), message


def test_toleration_error_path_names_the_index():
    text = json.dumps([{"key": "a", "operator": "Exists"}, "oops"])
    assert error_of(parse_tolerations, text) == "[1]: must be an object, got a string"


# --- Node selector ---------------------------------------------------------------------------

@pytest.mark.parametrize("selector, expected", [
    ({"gpu": 8}, '"gpu": the value must be a string, got a number; put it in double quotes: "8"'),
    ({"ssd": True}, '"ssd": the value must be a string, got true; put it in double quotes: "true"'),
    ({"ssd": False}, '"ssd": the value must be a string, got false; put it in double quotes: "false"'),
    ({"zone": None}, '"zone": the value must be a string, got null; use "" for an empty value'),
    ({"zone": ["a"]}, '"zone": the value must be a string, got a list'),
    ({"bad key": "x"}, 'Invalid key "bad key": the name "bad key" must be at most 63 characters'),
    ({"a" * 64: "x"}, 'Invalid key "' + "a" * 64 + '": the name'),
    ({"_a": "x"}, 'Invalid key "_a": the name "_a" must be at most 63 characters of letters, digits'),
    ({"-a.com/b": "x"}, 'Invalid key "-a.com/b": the prefix before \'/\' must be a lowercase DNS subdomain'),
    ({"a" * 254 + "/b": "x"}, 'Invalid key "' + "a" * 254 + '/b": the prefix'),
    ({"/b": "x"}, 'Invalid key "/b": the prefix before \'/\' must be a lowercase DNS subdomain'),
    ({"": "x"}, 'Invalid key "": the name must not be empty'),
    ({"pool": "a b"}, '"pool": invalid label value "a b": it must be empty or at most 63 characters'),
    ({"pool": "x" * 64}, '"pool": invalid label value'),
    ({"pool": "-x"}, '"pool": invalid label value "-x"'),
    ({"pool": "x."}, '"pool": invalid label value "x."'),
])
def test_invalid_node_selector(selector, expected):
    message = error_of(parse_node_selector, json.dumps(selector))
    assert message.startswith(expected), message


# --- Annotations and template variables ------------------------------------------------------

@pytest.mark.parametrize("value, offending", [
    ("{{ .Email }}", '"{{ .Email }}": unknown template variable .Email'),
    ("{{ .userEmail }}", '"{{ .userEmail }}": unknown template variable .userEmail (did you mean {{ .UserEmail }}?)'),
    ("{{ UserEmail }}", '"{{ UserEmail }}": a variable needs a dot before its name: {{ .UserEmail }}'),
    ("{{ .UserEmail | upper }}", '"{{ .UserEmail | upper }}": only a plain variable may stand inside {{ }}'),
    ('{{ printf "%s" .UserEmail }}', r'"{{ printf \"%s\" .UserEmail }}": only a plain variable may stand inside {{ }}, '
                                     'no functions, pipes'),
    ("{{ .User.Email }}", '"{{ .User.Email }}": only a plain variable'),
    ("{{ }}", '"{{ }}": only a plain variable'),
    ("{{- .UserEmail -}}", '"{{- .UserEmail -}}": only a plain variable'),
    ("role-{{ .UserEmail }", '"{{ .UserEmail }": "{{" has no matching "}}"'),
    ("{{ .UserEmail }}{{", '"{{": "{{" has no matching "}}"'),
    ("role-{ .UserEmail }}", '"}}" has no matching "{{"'),
    ("{{{ .UserEmail }}", '"{{{ .UserEmail }}": only a plain variable'),
    ("{{ {{ .UserEmail }} }}", '"{{ {{ .UserEmail }}": only a plain variable'),
])
def test_invalid_template_names_the_text_and_lists_the_variables(value, offending):
    message = error_of(parse_annotations, json.dumps({"example.com/role": value}))
    assert message.startswith('"example.com/role": ' + offending), message
    assert message.endswith("allowed variables: " + ALLOWED_VARIABLES)


@pytest.mark.parametrize("annotations, expected", [
    ({"bad key": "x"}, 'Invalid key "bad key"'),
    ({"a/b/c": "x"}, 'Invalid key "a/b/c": only one \'/\' is allowed'),
    ({"eks.amazonaws.com/role-arn": 1}, '"eks.amazonaws.com/role-arn": the value must be a string, got a number; '
                                        'put it in double quotes: "1"'),
    ({"a": {"b": "c"}}, '"a": the value must be a string, got an object'),
])
def test_invalid_annotations(annotations, expected):
    message = error_of(parse_annotations, json.dumps(annotations))
    assert message.startswith(expected), message


def test_render_annotation_from_the_source_document():
    value = parse_annotations(ANNOTATIONS_BLOCK.split("\n", 1)[1].join("{}"))["eks.amazonaws.com/role-arn"]
    assert value == "arn:aws:iam::123456789123:role/coder-role-{{.UserEmail}}"
    assert render_annotation(value, {"UserEmail": "ada@example.com"}) == \
        "arn:aws:iam::123456789123:role/coder-role-ada@example.com"


ALL_VARIABLES = {"UserEmail": "ada@example.com", "Username": "ada", "WorkspaceName": "dev",
                 "OrganizationName": "engineering"}


@pytest.mark.parametrize("value, rendered", [
    ("{{ .UserEmail }}", "ada@example.com"),
    ("{{.Username}}/{{ .WorkspaceName }}/{{   .OrganizationName\t}}", "ada/dev/engineering"),
    ("{{ .Username }}-{{ .Username }}", "ada-ada"),
    ("no variables", "no variables"),
    # Rendering only substitutes; nothing else in the text is interpreted.
    ("{0.__class__}", "{0.__class__}"),
    ("{UserEmail} %(UserEmail)s $UserEmail", "{UserEmail} %(UserEmail)s $UserEmail"),
    ("{{ .UserEmail }}{{", "ada@example.com{{"),
    ("{{ .Nope }} {{ .UserEmail | upper }}", "{{ .Nope }} {{ .UserEmail | upper }}"),
])
def test_render_annotation(value, rendered):
    assert render_annotation(value, ALL_VARIABLES) == rendered


def test_render_annotation_does_not_interpret_substituted_values():
    variables = {"UserEmail": "{{ .Username }}\\1\\g<0>", "Username": "ada"}
    assert render_annotation("x-{{ .UserEmail }}", variables) == "x-{{ .Username }}\\1\\g<0>"


def test_render_annotation_without_a_value_for_a_used_variable():
    with pytest.raises(SchedulingError, match="WorkspaceName"):
        render_annotation("{{ .WorkspaceName }}", {"UserEmail": "ada@example.com"})
    assert render_annotation("{{ .UserEmail }}", {"UserEmail": "a@b"}) == "a@b"


@pytest.mark.parametrize("value, names", [
    ("arn:aws:iam::123456789123:role/coder-role-{{.UserEmail}}", ["UserEmail"]),
    ("{{ .WorkspaceName }}-{{ .Username }}-{{.WorkspaceName}}", ["WorkspaceName", "Username"]),
    ("{{ .Nope }} {UserEmail}", []),
    ("", []),
])
def test_template_variables_in(value, names):
    assert template_variables_in(value) == names


def test_every_template_variable_is_accepted_and_rendered():
    for name in TEMPLATE_VARIABLES:
        value = parse_annotations(json.dumps({"a": "{{ .%s }}" % name}))["a"]
        assert render_annotation(value, ALL_VARIABLES) == ALL_VARIABLES[name]


# --- Affinity --------------------------------------------------------------------------------

PREFERRED = "podAffinity.preferredDuringSchedulingIgnoredDuringExecution[0]"
NODE_REQUIRED = "nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"


def default_affinity_with(**term_changes):
    affinity = copy.deepcopy(DEFAULT_AFFINITY)
    affinity["podAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0].update(term_changes)
    return affinity


def node_expression(**requirement):
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [requirement]}]}}}


def anti_affinity_term(**term):
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}


@pytest.mark.parametrize("affinity, expected", [
    (default_affinity_with(weight=0), f"{PREFERRED}.weight: must be an integer from 1 to 100, got 0"),
    (default_affinity_with(weight=101), f"{PREFERRED}.weight: must be an integer from 1 to 100, got 101"),
    (default_affinity_with(weight="1"), f"{PREFERRED}.weight: must be an integer from 1 to 100, got a string"),
    (default_affinity_with(weight=None), f"{PREFERRED}.weight: is required"),
    (default_affinity_with(podAffinityTerm=None), f"{PREFERRED}.podAffinityTerm: is required"),
    (default_affinity_with(podAffinityTerm={"labelSelector": {}}), f"{PREFERRED}.podAffinityTerm.topologyKey: "
                                                                   "is required"),
    (default_affinity_with(podAffinityTerm={"topologyKey": ""}), f"{PREFERRED}.podAffinityTerm.topologyKey: "
                                                                 "is required"),
    (default_affinity_with(podAffinityTerm={"topologyKey": "not valid"}),
     f'{PREFERRED}.podAffinityTerm.topologyKey: invalid key "not valid"'),
    (default_affinity_with(podAffinityTerm={"topologyKey": "k", "labelSelector": {"matchLabels": {"a": 1}}}),
     f'{PREFERRED}.podAffinityTerm.labelSelector.matchLabels["a"]: the value must be a string, got a number'),
    (default_affinity_with(podAffinityTerm={"topologyKey": "k", "labelSelector": {"matchLabels": {"a b": "c"}}}),
     f'{PREFERRED}.podAffinityTerm.labelSelector.matchLabels: invalid key "a b"'),
    (default_affinity_with(weigth=1), f'{PREFERRED}: unknown field "weigth" (did you mean "weight"?); '
                                      "allowed fields: weight, podAffinityTerm"),
    ({"podAfinity": {}}, 'Unknown field "podAfinity" (did you mean "podAffinity"?); '
                         "allowed fields: nodeAffinity, podAffinity, podAntiAffinity"),
    ({"podAffinity": {"preferred": []}}, 'podAffinity: unknown field "preferred"; allowed fields: '
                                         "requiredDuringSchedulingIgnoredDuringExecution, "
                                         "preferredDuringSchedulingIgnoredDuringExecution"),
    ({"podAffinity": []}, "podAffinity: must be an object, got a list"),
    ({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}},
     "podAffinity.requiredDuringSchedulingIgnoredDuringExecution: must be a list, got an object"),
    (anti_affinity_term(topologyKey="k", labelSelector={"matchExpressions": [{"key": "a", "operator": "Gt",
                                                                              "values": ["1"]}]}),
     "podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector.matchExpressions[0]"
     '.operator: unknown operator "Gt"; use "In", "NotIn", "Exists" or "DoesNotExist"'),
    (anti_affinity_term(topologyKey="k", labelSelector={"matchExpressions": [{"key": "a", "operator": "In"}]}),
     'matchExpressions[0].values: must hold at least one value for operator "In"'),
    (anti_affinity_term(topologyKey="k", labelSelector={"matchExpressions": [{"key": "a", "operator": "NotIn",
                                                                              "values": []}]}),
     'matchExpressions[0].values: must hold at least one value for operator "NotIn"'),
    (anti_affinity_term(topologyKey="k", labelSelector={"matchExpressions": [{"key": "a", "operator": "Exists",
                                                                              "values": ["x"]}]}),
     'matchExpressions[0].values: must be empty for operator "Exists"'),
    (anti_affinity_term(topologyKey="k", labelSelector={"matchExpressions": [{"key": "a", "operator": "In",
                                                                              "values": ["a b"]}]}),
     'matchExpressions[0].values[0]: invalid label value "a b"'),
    (anti_affinity_term(topologyKey="k", labelSelector={"matchExpressions": [{"operator": "Exists"}]}),
     "matchExpressions[0].key: is required"),
    (anti_affinity_term(topologyKey="k", labelSelector={"matchExpressions": [{"key": "a"}]}),
     "matchExpressions[0].operator: is required"),
    (anti_affinity_term(topologyKey="k", namespaceSelector={"matchLabels": []}),
     "requiredDuringSchedulingIgnoredDuringExecution[0].namespaceSelector.matchLabels: must be an object, got a list"),
    (anti_affinity_term(topologyKey="k", namespaces=["Team_A"]),
     'requiredDuringSchedulingIgnoredDuringExecution[0].namespaces[0]: invalid namespace "Team_A"'),
    (anti_affinity_term(topologyKey="k", namespaces="coder"),
     "requiredDuringSchedulingIgnoredDuringExecution[0].namespaces: must be a list, got a string"),
    (anti_affinity_term(topologyKey="k", matchLabelKeys=["app"]),
     "requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector: is required when matchLabelKeys"),
    (anti_affinity_term(topologyKey="k", labelSelector={}, matchLabelKeys=["app"], mismatchLabelKeys=["app"]),
     'requiredDuringSchedulingIgnoredDuringExecution[0]: "app" cannot be in both matchLabelKeys and '
     "mismatchLabelKeys"),
    (anti_affinity_term(topologyKey="k", labelSelector={}, mismatchLabelKeys=["bad key"]),
     'requiredDuringSchedulingIgnoredDuringExecution[0].mismatchLabelKeys[0]: invalid key "bad key"'),
    ({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}},
     f"{NODE_REQUIRED}.nodeSelectorTerms: must hold at least one node selector term"),
    ({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}},
     f"{NODE_REQUIRED}.nodeSelectorTerms: is required"),
    ({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": []}},
     f"{NODE_REQUIRED}: must be an object, got a list"),
    (node_expression(key="a", operator="Equals", values=["b"]),
     f'{NODE_REQUIRED}.nodeSelectorTerms[0].matchExpressions[0].operator: unknown operator "Equals"; '
     'use "In", "NotIn", "Exists", "DoesNotExist", "Gt" or "Lt"'),
    (node_expression(key="a", operator="In"), 'values: must hold at least one value for operator "In"'),
    (node_expression(key="a", operator="DoesNotExist", values=["b"]),
     'values: must be empty for operator "DoesNotExist"'),
    (node_expression(key="a", operator="Gt", values=["1", "2"]),
     'values: must hold exactly one integer, such as ["3"], for operator "Gt"'),
    (node_expression(key="a", operator="Lt", values=["ten"]),
     'values: must hold exactly one integer, such as ["3"], for operator "Lt"'),
    (node_expression(key="a", operator="Lt", values=["1.5"]),
     'values: must hold exactly one integer, such as ["3"], for operator "Lt"'),
    (node_expression(key="a", operator="Lt", values=[str(2 ** 63)]),
     'values: must hold exactly one integer, such as ["3"], for operator "Lt"'),
    (node_expression(key="a", operator="Gt"), 'values: must hold exactly one integer, such as ["3"], for operator "Gt"'),
    (node_expression(key="a", operator="In", values=[1]),
     "matchExpressions[0].values[0]: must be a string, got a number"),
    (node_expression(key="not valid", operator="Exists"), 'matchExpressions[0].key: invalid key "not valid"'),
    ({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.labels", "operator": "In", "values": ["x"]}]}]}}},
     'matchFields[0].key: must be "metadata.name"'),
    ({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a", "b"]}]}]}}},
     "matchFields[0].values: must hold exactly one node name"),
    ({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "Exists"}]}]}}},
     'matchFields[0].operator: unknown operator "Exists"; use "In" or "NotIn"'),
    ({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 5}]}},
     "nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference: is required"),
    ({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 500, "preference": {}}]}},
     "nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: must be an integer from 1 to 100"),
    ({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 5, "preference": {"nodeSelectorTerms": []}}]}},
     'preference: unknown field "nodeSelectorTerms"; allowed fields: matchExpressions, matchFields'),
])
def test_invalid_affinity(affinity, expected):
    message = error_of(parse_affinity, json.dumps(affinity))
    assert expected in message, message


# --- Agreement with the Kubernetes schema (kubernetes-validate ships the OpenAPI schemas) ----

SCHEMA_TYPES = [
    ("toleration-v1", scheduling._TOLERATION),
    ("affinity-v1", scheduling._AFFINITY),
    ("nodeaffinity-v1", scheduling._NODE_AFFINITY),
    ("podaffinity-v1", scheduling._POD_AFFINITY),
    ("podantiaffinity-v1", scheduling._POD_AFFINITY),
    ("nodeselectorterm-v1", scheduling._NODE_SELECTOR_TERM),
    ("podaffinityterm-v1", scheduling._POD_AFFINITY_TERM),
    ("labelselector-meta-v1", scheduling._LABEL_SELECTOR),
]


@pytest.mark.parametrize("schema_name, validator", SCHEMA_TYPES)
def test_field_tables_match_the_kubernetes_schema(schema_name, validator):
    utils = pytest.importorskip("kubernetes_validate.utils")
    schema = utils.schema_contents(f"kubernetes-json-schema/v1.37.0-local-strict/{schema_name}.json", "1.37.0")
    assert set(validator.fields) == set(schema["properties"])


@pytest.mark.parametrize("index", range(max(len(VALID_TOLERATIONS), len(VALID_NODE_SELECTORS),
                                            len(VALID_ANNOTATIONS), len(VALID_AFFINITIES))))
def test_valid_values_are_accepted_by_the_kubernetes_schema(index):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")

    def pick(values):
        return values[index % len(values)]
    rendered = {k: render_annotation(v, ALL_VARIABLES) for k, v in pick(VALID_ANNOTATIONS).items()}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ws", "annotations": rendered},
           "spec": {"containers": [{"name": "dev", "image": "codercom/enterprise-base"}],
                    "tolerations": pick(VALID_TOLERATIONS), "nodeSelector": pick(VALID_NODE_SELECTORS),
                    "affinity": effective_affinity(pick(VALID_AFFINITIES))}}
    kubernetes_validate.validate(pod, "1.37.0", strict=True)
    assert parse_affinity(json.dumps(pod["spec"]["affinity"])) == pod["spec"]["affinity"]
