"""Views that show or act on a provider's cluster: its page, its manifest, deploy."""

from flask import Response, current_app, flash, request, url_for
from sqlalchemy import select

from .. import checks, kube
from ..downloads import attachment
from ..extensions import db
from ..forms import ConfirmForm
from ..htmx import done, render
from ..models import ProviderCheck
from ..workspaces import settings as workspace_settings
from . import bootstrap, bp
from .connection import connection_for
from .queries import get_provider_or_404, workspace_count_of


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
        checks.check_now(provider, trigger="deploy")
    return done(url_for(".show", provider_id=provider.id))


@bp.get("/<int:provider_id>/cluster-names")
def cluster_names(provider_id: int):
    """Storage classes and service accounts that exist in the cluster, for the edit form."""
    provider = get_provider_or_404(provider_id)
    conn = connection_for(provider)
    lists = kube.cluster_names(conn, min(_timeout(), 3.0))  # both look-ups within it
    chosen = {field: request.args.get(field, "").strip() for field in lists}
    return render("providers/_cluster_names.html", "providers/_cluster_names.html",
                  lists=lists, chosen=chosen, namespace=provider.namespace)


def _timeout() -> float:
    return float(current_app.config["CHECK_TIMEOUT"])
