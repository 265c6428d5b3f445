"""/api/v1/providers: what the providers pages do, for site managers and admins, through the
same form, service and guards as the pages."""
import functools
import json

from flask import Response, abort, request, url_for
from flask_openapi3 import Tag
from sqlalchemy import Integer, bindparam

from .. import kube
from ..checks import check_now
from ..conflicts import Gone
from ..extensions import db
from ..models import Provider
from ..problems import problem
from ..providers import bootstrap, formdata, service
from ..providers.forms import ProviderForm
from ..providers.queries import get_provider_or_404
from ..providers import scope
from . import provider_json
from .areas import MANAGERS, area, precondition
from .provider_schemas import (Cordon, DeleteOptions, NewProvider, Outcomes, Precondition, Provider as ProviderOut,
                               ProviderFilter, ProviderPage, ProviderPath, Settings)

TAG = Tag(name="Providers", description="Workspace providers (site managers and admins).")
bp = area("providers", TAG, prefix="/providers", roles=MANAGERS)


def etag(version: int) -> str:
    return f'"{version}"'


def _read(provider_id: int, status: int = 200, **headers) -> Response:
    """One provider as stored now, with its version as the ETag (after a change too)."""
    found = provider_json.one(provider_id)
    if found is None:
        get_provider_or_404(provider_id)  # says so when it was deleted meanwhile
        abort(404)
    body, version = found
    response = Response(body, status, mimetype="application/json", headers=headers)
    response.headers["ETag"] = etag(version)
    return response


def _precondition(provider: Provider, required: bool) -> Response | None:
    return precondition(etag(provider.version), required=required, what="the provider")


# Reading ------------------------------------------------------------------------------------

@bp.get("", responses={200: ProviderPage})
def list_providers(query: ProviderFilter):
    """List providers

    In the order they were registered, a page at a time (`limit`, then `cursor` from the
    previous page: pages stay right while providers come and go), filtered by status,
    organization, part of the name or cordon.
    """
    values = {"q": query.name, "status": query.status, "cordoned": query.cordoned,
              "organization_name": query.organization}
    active = tuple(name for name, value in values.items() if value not in (None, ""))
    statement = _page_statement(active, query.cursor is not None)
    rows = db.session.connection().execute(statement, {**scope.filter_params(**values), "cursor": query.cursor,
                                                       "limit": query.limit + 1}).all()
    page, more = rows[:query.limit], len(rows) > query.limit
    next_cursor = page[-1].id if page and more else None
    items = ", ".join(provider_json.encoded(page))  # each already JSON
    return Response(f'{{"items": [{items}], "next_cursor": {json.dumps(next_cursor)}}}', mimetype="application/json")


@functools.cache
def _page_statement(active: tuple[str, ...], cursor: bool):
    """The list's statement with these filters (the providers page's own rule, providers/scope.py)
    and their values as parameters: one statement object per combination, whose compiled form
    SQLAlchemy finds without working it out again."""
    statement = provider_json.STORED.where(*scope.where(active))
    if cursor:
        statement = statement.filter(Provider.id > bindparam("cursor"))
    return statement.order_by(Provider.id).limit(bindparam("limit", type_=Integer))


@bp.get("/<int:provider_id>", responses={200: ProviderOut})
def get_provider(path: ProviderPath):
    """Get a provider

    Its settings, with their version as the ETag, and its live status.
    """
    return _read(path.provider_id)


@bp.get("/<int:provider_id>/manifest", responses={200: None})
def get_manifest(path: ProviderPath):
    """The bootstrap manifest

    The YAML to `kubectl apply` in the provider's cluster (what Deploy applies).
    """
    provider = get_provider_or_404(path.provider_id)
    return Response(kube.to_yaml(bootstrap.objects(provider)), mimetype="application/yaml")


# Changing -----------------------------------------------------------------------------------

def _form(provider: Provider | None, values: dict) -> ProviderForm | Response:
    """The provider form filled from the body and checked like the page's, or the 422 answer."""
    try:
        data = formdata.to_formdata(values, provider, partial=provider is not None)
    except formdata.FieldProblems as error:
        return _refused({name: [message] for name, message in error.problems.items()})
    form = ProviderForm(formdata=data, provider=provider, meta={"csrf": False})
    form.organizations.choices = service.organization_choices()
    if not service.check_form(provider, form):
        return _refused({field.name: field.errors for field in form if field.errors})
    return form


def _refused(errors: dict) -> Response:
    pointers = {"version": "#/header/If-Match"}
    return problem(422, "Invalid provider", "Some values were refused; see errors.", errors=[
        {"pointer": pointers.get(name, f"/{name}"), "detail": str(message)}
        for name, messages in errors.items() for message in messages])


@bp.post("", responses={201: ProviderOut})
def create_provider(body: NewProvider):
    """Register a provider

    Checked like the page's form; it starts Pending and is checked at once.
    """
    form = _form(None, request.get_json())
    if isinstance(form, Response):
        return form
    provider, _ = service.save(None, form)
    if provider is None:
        return _refused({"name": form.name.errors})
    check_now(provider, trigger="save")
    return _read(provider.id, 201, Location=url_for("api.providers.get_provider", provider_id=provider.id))


@bp.patch("/<int:provider_id>", responses={200: ProviderOut, 412: None, 428: None})
def update_provider(path: ProviderPath, body: Settings, header: Precondition):
    """Change a provider

    The fields sent replace the stored ones (credentials stay unless sent). Needs `If-Match`.
    """
    provider = get_provider_or_404(path.provider_id)
    if (refused := _precondition(provider, required=True)) is not None:
        return refused
    form = _form(provider, request.get_json())
    if isinstance(form, Response):
        return form
    try:
        saved, _ = service.save(provider, form)
    except service.Conflict:
        return _precondition(get_provider_or_404(path.provider_id), required=True) or problem(412, "Changed meanwhile")
    if saved is None:
        return _refused({"name": form.name.errors})
    check_now(saved, trigger="save")
    return _read(saved.id)


@bp.delete("/<int:provider_id>", responses={204: None, 409: None, 412: None})
def delete_provider(path: ProviderPath, query: DeleteOptions, header: Precondition):
    """Delete a provider

    Refused (409) while it hosts workspaces. `If-Match` is honoured when sent.
    """
    provider = get_provider_or_404(path.provider_id)
    if (refused := _precondition(provider, required=False)) is not None:
        return refused
    if reason := service.why_not_deletable(provider):
        return problem(409, "Cannot delete", reason)
    service.delete(provider, bootstrap.remove(provider) if query.remove_bootstrap else None)
    return Response(status=204)


@bp.post("/<int:provider_id>/check", responses={200: ProviderOut})
def check_provider(path: ProviderPath):
    """Check now

    Checks the cluster at once and answers with the provider and its new status.
    """
    if check_now(get_provider_or_404(path.provider_id)) is None:
        raise Gone("provider")  # deleted while its cluster was being checked
    return _read(path.provider_id)


@bp.post("/<int:provider_id>/cordon", responses={200: ProviderOut, 409: None})
def cordon_provider(path: ProviderPath, body: Cordon):
    """Cordon

    No new workspaces on it; those it has keep running.
    """
    service.cordon(get_provider_or_404(path.provider_id), body.reason)
    return _read(path.provider_id)


@bp.post("/<int:provider_id>/uncordon", responses={200: ProviderOut})
def uncordon_provider(path: ProviderPath):
    """Uncordon

    It takes new workspaces again (nothing changes when it was not cordoned).
    """
    service.uncordon(get_provider_or_404(path.provider_id))
    return _read(path.provider_id)


@bp.post("/<int:provider_id>/deploy", responses={200: Outcomes})
def deploy_provider(path: ProviderPath):
    """Deploy

    Converges the bootstrap in the cluster like `kubectl apply` and checks at once; says per
    object what was created, updated, left unchanged or could not be touched.
    """
    provider = get_provider_or_404(path.provider_id)
    outcomes = bootstrap.deploy(provider)
    db.session.commit()
    check_now(provider, trigger="deploy")
    return {"succeeded": kube.succeeded(outcomes), "summary": kube.describe(outcomes),
            "objects": [{"kind": o.kind, "namespace": o.namespace or None, "name": o.name, "result": o.result}
                        for o in outcomes]}
