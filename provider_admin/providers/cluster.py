"""Views that show or act on a provider's cluster: its page, the badge poll, deploy."""
import json

from flask import Response, current_app, flash, request, url_for
from sqlalchemy import select

from .. import kube
from ..auth.roles import confirm_roles, recent_role_will_do
from ..checks import check_now
from ..checks.jobs import connection_for
from ..downloads import attachment
from ..extensions import db
from ..htmx import done, render
from ..models import Provider, ProviderCheck
from ..workspaces import settings as workspace_settings
from . import bootstrap, bp
from .forms import ConfirmForm
from .queries import Scope, get_provider_or_404, providers_by_id, status_fingerprint, status_snapshot, \
    workspace_count_of
from .queries import fingerprint as fingerprint_of


@bp.get("/status")
@recent_role_will_do
def status():
    """The badge poll: 204 while what the page shows is current, else ask for its versions.
    The 204 says only "unchanged", so it may rest on the role seen a few seconds ago."""
    if request.args.get("fp") == status_fingerprint(Scope.from_args(request.args)):
        return Response(status=204)
    denied = confirm_roles()
    if denied is not None:
        return denied
    return Response(status=200, headers={"HX-Trigger": json.dumps({"providerStatusStale": True})})


@bp.post("/status")
def sync_status():
    """The rows whose version changed since the page showed them, out of band, with a new poll;
    a list whose set of providers changed is told to reload instead."""
    scope = Scope.from_args(request.args)
    total, shown, fingerprint = status_snapshot(scope)
    known = _parse_known(request.form.get("known", ""))
    shown_total = request.form.get("fp", "").partition("-")[0]
    if scope.is_list and (shown_total != str(total) or set(known) != {row.id for row in shown}):
        return Response(status=200, headers={"HX-Trigger": json.dumps({"providersChanged": True})})
    changed = [row.id for row in shown if _differs(known.get(row.id), row)]
    return render("providers/_status.html", "providers/_status.html",
                  providers=providers_by_id(changed) if changed else [],
                  counts={row.id: row.workspaces for row in shown},
                  fingerprint=fingerprint, poll_scope=scope.args)


@bp.app_template_global()
def provider_fingerprint(provider: Provider, count: int) -> str:
    """The poll fingerprint of a provider's own page."""
    return fingerprint_of(1, [(provider, count)])


@bp.get("/<int:provider_id>")
def show(provider_id: int):
    """A provider's page: status, check history, bootstrap manifest and deploy."""
    provider = get_provider_or_404(provider_id)
    history = db.session.scalars(
        select(ProviderCheck).filter_by(provider_id=provider.id)
        .order_by(ProviderCheck.checked_at.desc(), ProviderCheck.id.desc()).limit(20)
    ).all()
    groups = workspace_settings.groups(workspace_settings.of_provider(provider),
                                       workspace_settings.current(provider))
    return render("providers/show.html", "providers/_detail.html", provider=provider,
                  history=history, confirm=ConfirmForm(), count=workspace_count_of(provider),
                  settings_groups=groups)


@bp.get("/<int:provider_id>/manifest.yaml")
def manifest(provider_id: int):
    """The bootstrap manifest to `kubectl apply`."""
    provider = get_provider_or_404(provider_id)
    body = kube.to_yaml(bootstrap.objects(provider))
    return Response(body, mimetype="application/yaml", headers={
        "Content-Disposition": attachment(f"provider-admin-{provider.name}", ".yaml")})


@bp.post("/<int:provider_id>/deploy")
def deploy(provider_id: int):
    """Converge the bootstrap with the stored credentials, like kubectl apply; check at once."""
    provider = get_provider_or_404(provider_id)
    if ConfirmForm().validate_on_submit():
        outcomes = bootstrap.deploy(provider)
        db.session.commit()
        flash(kube.describe(outcomes), "success" if kube.succeeded(outcomes) else "error")
        check_now(provider, trigger="deploy")
    return done(url_for(".show", provider_id=provider.id))


@bp.get("/<int:provider_id>/cluster-names")
def cluster_names(provider_id: int):
    """Storage classes and service accounts that exist in the cluster, for the edit form."""
    provider = get_provider_or_404(provider_id)
    conn = connection_for(provider)
    timeout = min(_timeout(), 3.0)
    lists = {"storage_class": kube.storage_classes(conn, timeout),
             "service_account": kube.service_accounts(conn, timeout)}
    chosen = {field: request.args.get(field, "").strip() for field in lists}
    return render("providers/_cluster_names.html", "providers/_cluster_names.html",
                  lists=lists, chosen=chosen, namespace=provider.namespace)


def _timeout() -> float:
    return float(current_app.config["CHECK_TIMEOUT"])


def _parse_known(text: str) -> dict[int, tuple[int, ...]]:
    """"id.version.workspaces,..." as the page sends it (a provider's page: "id.version")."""
    known = {}
    for item in text.split(",")[:1000]:
        ident, *numbers = item.split(".")
        if ident.isdigit() and numbers and all(n.isdigit() for n in numbers):
            known[int(ident)] = tuple(int(n) for n in numbers[:2])
    return known


def _differs(known: tuple[int, ...] | None, row) -> bool:
    return known is None or known != (row.version, row.workspaces)[: len(known)]
