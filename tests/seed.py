"""The scheduling examples of the source document (workspace-provider-management), shared by
the tests of the parsers, the provider form and the workspace build.

The blocks are exactly as the document prints them: they lost their closing brackets and the
braces around list items on the way into the document, so each one is malformed JSON that
the parsers must explain. The values are what those blocks meant."""
import textwrap

TOLERATIONS_BLOCK = textwrap.dedent("""\
    "pod_tolerations": [
        "key": "com.coder.workspace",
        "operator": "Exists",
        "effect": "NoSchedule"
    "pod_node_selector": {},
    "service_account_annotations": {},
    "affinity": {}""")
ANNOTATIONS_BLOCK = textwrap.dedent("""\
    "service_account_annotations": {
      "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789123:role/coder-role-{{.UserEmail}}\"""")
AFFINITY_BLOCK = textwrap.dedent("""\
    "affinity": {
          "podAffinity": {
              "preferredDuringSchedulingIgnoredDuringExecution": [
                      "weight": 1,
                      "podAffinityTerm": {
                          "labelSelector": {
                              "matchLabels": {
                                  "com.coder.resource": "true"
                          "topologyKey": "kubernetes.io/hostname\"""")
EMPTY_AFFINITY = '"affinity": {}'

ROLE_ARN = "arn:aws:iam::123456789123:role/coder-role-{{.UserEmail}}"
ANNOTATIONS = {"eks.amazonaws.com/role-arn": ROLE_ARN}
TOLERATION = {"key": "com.coder.workspace", "operator": "Exists", "effect": "NoSchedule"}
TOLERATIONS_JSON = '[{"key": "com.coder.workspace", "operator": "Exists", "effect": "NoSchedule"}]'
ANNOTATIONS_JSON = '{"eks.amazonaws.com/role-arn": "' + ROLE_ARN + '"}'
