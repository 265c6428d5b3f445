"""Views that show or act on a provider's cluster: its page, the badge poll, deploy."""
import json

from flask import Response, flash, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from .. import audit, kube
from ..checks import check_now
from ..checks.jobs import connection_for
from ..extensions import db
from ..htmx import done, render
from ..models import Provider, ProviderCheck
from . import bp
from .forms import ConfirmForm
from .queries import fingerprint, get_provider_or_404, workspace_counts


@bp.get("/status")
def status():
    """The badge poll: 204 while nothing changed, else only the changed rows (out of band)."""
    current = db.session.execute(select(Provider.id, Provider.display_version)).all()
    if request.args.get("fp") == fingerprint(current):
        return Response(status=204)
    known = _parse_known(request.args.get("known", ""))
    if request.args.get("list") and {row.id for row in current} != set(known):
        response = Response("", status=200)
        response.headers["HX-Trigger"] = json.dumps({"providersChanged": True})
        return response
    changed = [row.id for row in current if known.get(row.id) != row.display_version]
    providers = db.session.scalars(
        select(Provider).where(Provider.id.in_(changed)).options(selectinload(Provider.organizations))
    ).all()
    return render("providers/_status.html", "providers/_status.html", providers=providers,
                  counts=workspace_counts(), confirm=ConfirmForm(), fingerprint=fingerprint(current))


@bp.get("/<int:provider_id>")
def show(provider_id: int):
    """A provider's page: status, check history, bootstrap manifest and deploy."""
    provider = get_provider_or_404(provider_id)
    history = db.session.scalars(
        select(ProviderCheck).filter_by(provider_id=provider.id)
        .order_by(ProviderCheck.checked_at.desc(), ProviderCheck.id.desc()).limit(20)
    ).all()
    return render("providers/show.html", "providers/_detail.html", provider=provider,
                  history=history, confirm=ConfirmForm(), count=workspace_counts().get(provider.id, 0))


@bp.get("/<int:provider_id>/manifest.yaml")
def manifest(provider_id: int):
    """The bootstrap manifest to `kubectl apply`."""
    provider = get_provider_or_404(provider_id)
    body = kube.to_yaml(bootstrap_objects(provider))
    return Response(body, mimetype="application/yaml", headers={
        "Content-Disposition": f'attachment; filename="provider-admin-{provider.name}.yaml"'})


@bp.post("/<int:provider_id>/deploy")
def deploy(provider_id: int):
    """Apply the bootstrap manifest with the stored credentials, then check at once."""
    provider = get_provider_or_404(provider_id)
    if ConfirmForm().validate_on_submit():
        outcomes = kube.deploy(connection_for(provider), bootstrap_objects(provider),
                               timeout=_timeout())
        audit.record("provider.deploy", provider, {"result": kube.describe(outcomes)})
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


def bootstrap_objects(provider: Provider) -> list[dict]:
    return kube.bootstrap_manifest(
        provider_name=provider.name, namespace=provider.namespace,
        needs_service_accounts=bool(provider.service_account_annotations))


def _timeout() -> float:
    from flask import current_app

    return float(current_app.config["CHECK_TIMEOUT"])


def _parse_known(text: str) -> dict[int, int]:
    known = {}
    for pair in text.split(","):
        ident, _, version = pair.partition(".")
        if ident.isdigit() and version.isdigit():
            known[int(ident)] = int(version)
    return known
