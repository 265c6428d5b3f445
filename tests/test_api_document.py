"""The API's OpenAPI 3.1 document: generated from the schemas that validate requests, valid,
complete, readable as a page, and true to the live app (Schemathesis, SPEC §10)."""
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.specs.openapi.checks import positive_data_acceptance
from openapi_spec_validator.validation import OpenAPIV31SpecValidator

from provider_admin.api.document import PUBLIC
from provider_admin.models import Role
from provider_admin.tokens import service

from .tests_api import serving

PROBLEM = "application/problem+json"
EXAMPLES = 30  # per operation and token; a bounded run that keeps the suite's time


@pytest.fixture
def document(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.json


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"] == "3.1.0"
    validate(document, cls=OpenAPIV31SpecValidator)


def test_every_api_route_is_in_the_document(app, document):
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api.") and rule.endpoint not in PUBLIC:
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert (path, method) in documented, f"{method} {path} is missing from the document"


def test_every_error_is_documented_as_a_problem(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation["security"] == [{"token": []}]
            for status in ("401", "403", "404", "429"):
                content = operation["responses"][status]["content"]
                assert list(content) == [PROBLEM], f"{method} {path} {status}"
            assert "<br/>" not in operation.get("description", "")


def test_the_reference_page_shows_every_operation_and_schema_without_script(client, document):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert f"<code>{method.upper()} {path}</code>" in page and operation["summary"] in page
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name}"' in page
    scripts = re.findall(r"<script[^>]*>", page)
    assert all('src="/static/' in tag for tag in scripts), scripts
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]


def test_a_refused_parameter_points_at_itself(client, actions):
    user = actions.user(Role.ADMIN.value, username="boss")
    _, secret = service.create(user, "script", 30, True)
    response = client.get("/api/v1/tokens?owner=everyone", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 422 and response.mimetype == PROBLEM
    assert response.json["errors"][0]["pointer"] == "#/query/owner"
    assert "all" in response.json["errors"][0]["detail"]


@pytest.fixture
def live_app(app):
    with serving(app) as url:
        yield url


@pytest.mark.parametrize("role, read_only", [(Role.ADMIN.value, False), (Role.MEMBER.value, True)])
def test_schemathesis_finds_nothing(live_app, actions, role, read_only):
    """Every operation with generated valid and invalid input, as an admin's read-write token
    and a member's read-only one: no 5xx, every status, content type and body as documented.
    (Schemathesis' check that schema-valid input is accepted is left out: the form's rules go
    beyond what a schema says, e.g. a token is needed unless a kubeconfig is given.)"""
    user = actions.user(role, username="caller")
    for name in ("a", "b", "c"):
        service.create(actions.user(Role.MEMBER.value, username=f"other-{name}"), name, 30, True)
    _, secret = service.create(user, "schemathesis", 365, read_only)
    schema = schemathesis.openapi.from_url(f"{live_app}/api/v1/openapi.json")
    headers = {"Authorization": f"Bearer {secret}"}
    tried = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            if case.path_parameters and case.path_parameters.get("token_id") == _token_id(secret):
                return  # revoking the caller's own token would end the run, not test anything
            case.call_and_validate(base_url=live_app, headers=headers, excluded_checks=[positive_data_acceptance])
            tried.append(case.operation.label)

        run()
    assert {"GET /api/v1/me", "GET /api/v1/tokens", "DELETE /api/v1/tokens/{token_id}"} <= set(tried)


def _token_id(secret: str) -> int:
    from provider_admin.extensions import db
    from provider_admin.tokens import secrets
    from provider_admin.tokens.models import ApiToken

    return db.session.scalar(db.select(ApiToken.id).filter_by(secret_hash=secrets.digest(secret)))


def test_schemathesis_follows_the_links_statefully(live_app, actions, make_org):
    """Create a provider, then what its answer links to (get, change with its ETag, cordon,
    uncordon, check, delete), in generated sequences: nothing breaks the document."""
    from hypothesis.stateful import run_state_machine_as_test

    make_org("Acme")
    _, secret = service.create(actions.user(Role.ADMIN.value, username="caller"), "stateful", 365, False)
    schema = schemathesis.openapi.from_url(f"{live_app}/api/v1/openapi.json")
    followed = []

    class Machine(schema.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"base_url": live_app, "headers": {"Authorization": f"Bearer {secret}"}}

        def validate_response(self, response, case, **kwargs):
            followed.append(case.operation.label)
            case.validate_response(response, excluded_checks=[positive_data_acceptance])

    run_state_machine_as_test(Machine, settings=settings(
        max_examples=EXAMPLES, stateful_step_count=6, deadline=None, database=None, derandomize=True,
        suppress_health_check=list(HealthCheck)))
    assert "POST /api/v1/providers" in followed
    assert any("{provider_id}" in label for label in followed), "no link of a created provider was followed"
