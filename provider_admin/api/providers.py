"""/api/v1/providers: what the providers pages do, for site managers and admins, through the
same form, service and guards as the pages."""
import json

from flask import Response, abort, request, url_for
from flask_openapi3 import Tag
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from .. import kube
from ..kube import scheduling
from ..checks import check_now
from ..extensions import db
from ..models import Organization, Provider, Workspace, provider_organizations
from ..problems import problem
from ..providers import bootstrap, formdata, service
from ..providers.forms import ProviderForm
from ..providers.queries import get_provider_or_404
from ..providers.scope import filtered
from .areas import MANAGERS, area, precondition
from .provider_schemas import (Cordon, DeleteOptions, NewProvider, Outcomes, Precondition, Provider as ProviderOut,
                               ProviderFilter, ProviderPage, ProviderPath, Settings)

TAG = Tag(name="Providers", description="Workspace providers (site managers and admins).")
bp = area("providers", TAG, prefix="/providers", roles=MANAGERS)


def _representation(provider, workspaces: int, organizations: list[dict]) -> dict:
    """The Provider schema's fields, from a Provider or a row of its table (built by hand:
    this runs for every row of a list)."""
    stamp = _iso
    return {
        "id": provider.id, "uid": provider.uid, "name": provider.name, "builtin": provider.is_builtin,
        "cluster_address": provider.cluster_address, "namespace": provider.namespace,
        "ca_certificate": provider.ca_cert, "kubeconfig_context": provider.kubeconfig_context,
        "credentials": {"kind": provider.credentials_kind, "token_expires_at": stamp(provider.token_expires_at)},
        "organizations": organizations,
        "e2e_encryption": provider.e2e_encryption, "external_ssh": provider.external_ssh,
        "access_url": provider.access_url, "storage_class": provider.storage_class,
        "service_account": provider.service_account, "pod_tolerations": provider.pod_tolerations,
        "pod_node_selector": provider.pod_node_selector,
        "service_account_annotations": provider.service_account_annotations,
        "affinity": scheduling.DEFAULT_AFFINITY if provider.affinity is None else provider.affinity,
        "cordoned": provider.cordoned,
        "cordon_reason": provider.cordon_reason, "workspaces": workspaces, "version": provider.version,
        "status": {"state": provider.status, "category": provider.status_category,
                   "message": provider.status_message, "warnings": provider.status_warnings or [],
                   "kube_version": provider.kube_version, "last_checked_at": stamp(provider.last_checked_at),
                   "last_ready_at": stamp(provider.last_ready_at)},
        "created_at": stamp(provider.created_at), "updated_at": stamp(provider.updated_at),
    }


def _iso(value) -> str | None:
    return None if value is None else value.isoformat()


def _count(provider: Provider) -> int:
    return db.session.scalar(select(func.count()).select_from(Workspace).filter_by(provider_id=provider.id))


def etag(provider: Provider) -> str:
    return f'"{provider.version}"'


def _answer(provider: Provider, status: int = 200, *, workspaces: int | None = None, **headers) -> Response:
    if workspaces is None:  # after a change: read it back as stored
        db.session.refresh(provider)
        workspaces = _count(provider)
    organizations = [{"id": o.id, "name": o.name} for o in provider.organizations]
    response = Response(json.dumps(_representation(provider, workspaces, organizations)), status,
                        mimetype="application/json", headers=headers)
    response.headers["ETag"] = etag(provider)
    return response


_COUNT = select(func.count()).select_from(Workspace).where(Workspace.provider_id == Provider.id) \
    .correlate(Provider).scalar_subquery()


def _read(provider_id: int) -> Response:
    """One provider with its organizations and workspace count in one statement."""
    row = db.session.execute(select(Provider, _COUNT).where(Provider.id == provider_id)
                             .options(joinedload(Provider.organizations))).unique().first()
    if row is None:
        abort(404)
    return _answer(row[0], workspaces=row[1])


def _precondition(provider: Provider, required: bool) -> Response | None:
    return precondition(etag(provider), required=required, what="the provider")


# Reading ------------------------------------------------------------------------------------

@bp.get("", responses={200: ProviderPage})
def list_providers(query: ProviderFilter):
    """List providers

    In the order they were registered, a page at a time (`limit`, then `cursor` from the
    previous page: pages stay right while providers come and go), filtered by status,
    organization, part of the name or cordon.
    """
    table = Provider.__table__
    statement = _filtered(select(table, _COUNT.label("workspace_count")), query)
    if query.cursor is not None:
        statement = statement.filter(Provider.id > query.cursor)
    rows = db.session.execute(statement.order_by(Provider.id).limit(query.limit + 1)).all()
    page, more = rows[:query.limit], len(rows) > query.limit
    organizations = _organizations_of([row.id for row in page])
    body = {"items": [_representation(row, row.workspace_count, organizations.get(row.id, [])) for row in page],
            "next_cursor": page[-1].id if page and more else None}
    return Response(json.dumps(body), mimetype="application/json")


def _organizations_of(ids: list[int]) -> dict[int, list[dict]]:
    found: dict[int, list[dict]] = {}
    rows = db.session.execute(select(provider_organizations.c.provider_id, Organization.id, Organization.name)
                              .join(Organization).where(provider_organizations.c.provider_id.in_(ids))
                              .order_by(Organization.name))
    for provider_id, organization_id, name in rows:
        found.setdefault(provider_id, []).append({"id": organization_id, "name": name})
    return found


def _filtered(statement, query: ProviderFilter):
    """The providers the query's filters select: the same rule as the providers page's."""
    return filtered(statement, status=query.status, cordoned=query.cordoned, q=query.name,
                    organization_name=query.organization)


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
    return _answer(provider, 201, Location=url_for("api.providers.get_provider", provider_id=provider.id))


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
    return _answer(saved)


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
    removal = bootstrap.remove(provider) if query.remove_bootstrap else None
    bootstrap.delete_audit(provider, removal)
    db.session.delete(provider)
    db.session.commit()
    return Response(status=204)


@bp.post("/<int:provider_id>/check", responses={200: ProviderOut})
def check_provider(path: ProviderPath):
    """Check now

    Checks the cluster at once and answers with the provider and its new status.
    """
    provider = get_provider_or_404(path.provider_id)
    check_now(provider)
    return _answer(provider)


@bp.post("/<int:provider_id>/cordon", responses={200: ProviderOut, 409: None})
def cordon_provider(path: ProviderPath, body: Cordon):
    """Cordon

    No new workspaces on it; those it has keep running.
    """
    provider = get_provider_or_404(path.provider_id)
    try:
        service.cordon(provider, body.reason)
    except service.Conflict:
        return problem(409, "Changed meanwhile", "The provider changed while cordoning it; try again.")
    return _answer(provider)


@bp.post("/<int:provider_id>/uncordon", responses={200: ProviderOut})
def uncordon_provider(path: ProviderPath):
    """Uncordon

    It takes new workspaces again (nothing changes when it was not cordoned).
    """
    provider = get_provider_or_404(path.provider_id)
    try:
        service.uncordon(provider)
    except service.Conflict:
        pass  # a concurrent uncordon did it: the answer shows the provider as it is
    return _answer(get_provider_or_404(path.provider_id))


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
