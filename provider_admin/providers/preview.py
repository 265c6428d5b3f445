"""What a provider's settings would do, shown before they bite: the Pod and ServiceAccount a
sample workspace gets (live, as typed), and scheduling hints from the cluster's nodes and
storage classes."""
from flask import current_app, request
from flask_login import current_user

from .. import kube
from ..htmx import render
from ..kube import workspace as kube_workspace
from . import bp, scheduling, service
from .connection import connection_for
from .forms import SCHEDULING_PARSERS, ProviderForm
from .queries import get_provider_or_404

SAMPLE_UID = "0" * 32  # the preview's sample workspace
HINT_TIMEOUT = 3.0  # seconds per request: hints are advice, never worth a slow page

PREVIEW_KINDS = ("ServiceAccount", "Pod", "Service")


@bp.post("/preview")
def preview():
    """Render the objects for the settings as typed, before they are saved."""
    form = ProviderForm(meta={"csrf": False})  # read-only; the CSRF header is still checked app-wide
    form.organizations.choices = service.organization_choices()
    errors = [f"{getattr(form, name).label.text}: {error}"
              for name in SCHEDULING_PARSERS for error in _errors(getattr(form, name))]
    yaml = None if errors else kube.to_yaml(sample_objects(form))
    return render("providers/_preview.html", "providers/_preview.html", yaml=yaml, errors=errors)


@bp.route("/<int:provider_id>/hints", methods=["GET", "POST"])
def hints(provider_id: int):
    """Scheduling hints for the stored settings (GET) or the settings as typed (POST)."""
    provider = get_provider_or_404(provider_id)
    settings = dict(node_selector=provider.pod_node_selector, tolerations=provider.pod_tolerations,
                    storage_class=provider.storage_class, affinity_stored=provider.affinity)
    errors = []
    if request.method == "POST":
        form = ProviderForm(meta={"csrf": False})  # read-only, like the preview
        errors = [error for name in ("pod_node_selector", "pod_tolerations", "affinity")
                  for error in _errors(getattr(form, name))]
        affinity = form.affinity.parsed
        settings = dict(node_selector=form.pod_node_selector.parsed, tolerations=form.pod_tolerations.parsed,
                        storage_class=(form.storage_class.data or "").strip() or None,
                        affinity_stored=None if affinity == scheduling.DEFAULT_AFFINITY else affinity)
    found = [] if errors else kube.scheduling_hints(
        connection_for(provider), timeout=min(HINT_TIMEOUT, current_app.config["CHECK_TIMEOUT"]), **settings)
    notes = [h for h in found if h.startswith(kube.HINTS_UNAVAILABLE)]
    return render("providers/hints.html", "providers/_hints.html", provider=provider, errors=errors,
                  hints=[h for h in found if h not in notes], notes=notes)


def sample_objects(form: ProviderForm) -> list[dict]:
    """What a workspace "sample" of the current user would get on this provider."""
    organizations = [label for value, label in form.organizations.choices or []
                     if value in (form.organizations.data or [])]
    spec = kube_workspace.WorkspaceSpec(
        uid=SAMPLE_UID, base_name=kube_workspace.object_base(SAMPLE_UID, "sample"), name="sample",
        owner_email=current_user.email,
        owner_username=current_user.username,
        organization_name=organizations[0] if organizations else "example-org",
        provider_name=form.name.data or "new-provider", namespace=form.namespace.data or "default",
        image="codercom/enterprise-base:ubuntu", cpu="2", memory="4Gi", disk="10Gi",
        access_url=form.access_url.data or current_app.config["SITE_ACCESS_URL"],
        e2e_encryption=bool(form.e2e_encryption.data), external_ssh=bool(form.external_ssh.data),
        storage_class=form.storage_class.data or None, service_account=form.service_account.data or None,
        annotations=form.service_account_annotations.parsed, tolerations=form.pod_tolerations.parsed,
        node_selector=form.pod_node_selector.parsed, affinity=form.affinity.parsed,
    )
    return [o for o in kube_workspace.workspace_objects(spec) if o["kind"] in PREVIEW_KINDS]


def _errors(field) -> list[str]:
    if field.process_errors:  # refused before parsing (a file, control characters, too long)
        return list(field.process_errors)
    try:
        field.pre_validate(None)
    except Exception as error:  # a ValidationError with the user-facing message
        return [str(error)]
    return []

