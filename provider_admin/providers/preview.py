"""The live preview on the provider form: the Pod and ServiceAccount a sample workspace gets."""
from flask import current_app
from flask_login import current_user

from .. import kube
from ..htmx import render
from ..kube import workspace as kube_workspace
from . import bp, service
from .forms import SCHEDULING_PARSERS, ProviderForm

PREVIEW_KINDS = ("ServiceAccount", "Pod")


@bp.post("/preview")
def preview():
    """Render the objects for the settings as typed, before they are saved."""
    form = ProviderForm(meta={"csrf": False})  # read-only; the CSRF header is still checked app-wide
    form.organizations.choices = service.organization_choices()
    errors = [f"{getattr(form, name).label.text}: {error}"
              for name in SCHEDULING_PARSERS for error in _errors(getattr(form, name))]
    yaml = None if errors else kube.to_yaml(sample_objects(form))
    return render("providers/_preview.html", "providers/_preview.html", yaml=yaml, errors=errors)


def sample_objects(form: ProviderForm) -> list[dict]:
    """What a workspace "sample" of the current user would get on this provider."""
    organizations = [label for value, label in form.organizations.choices or []
                     if value in (form.organizations.data or [])]
    spec = kube_workspace.WorkspaceSpec(
        workspace_id=0, name="sample", owner_email=current_user.email,
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
    try:
        field.pre_validate(None)
    except Exception as error:  # a ValidationError with the user-facing message
        return [str(error)]
    return []

