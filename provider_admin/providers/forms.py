from flask import current_app
from wtforms import (
    Form,
    BooleanField,
    HiddenField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    URLField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, StopValidation, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from ..forms import BaseForm
from ..models import Status
from ..validators import absolute_url, cluster_address, dns_label, dns_subdomain, pem_certificates
from . import scheduling, service
from .scope import SEARCH_MAX, Scope

SCHEDULING_PARSERS = {
    "pod_tolerations": scheduling.parse_tolerations,
    "pod_node_selector": scheduling.parse_node_selector,
    "service_account_annotations": scheduling.parse_annotations,
    "affinity": scheduling.parse_affinity,
}


class CheckboxListField(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class SecretTextAreaField(TextAreaField):
    """A textarea whose content is never sent back to the browser (a kubeconfig holds keys):
    after an error it is empty, and the user pastes it again, as with a password."""

    def _value(self) -> str:
        return ""


class JSONField(TextAreaField):
    """A textarea holding JSON; `parsed` holds the validated value after validation."""

    parsed = None

    def pre_validate(self, form):
        try:
            self.parsed = SCHEDULING_PARSERS[self.name](self.data or "")
        except scheduling.SchedulingError as error:
            raise ValidationError(str(error))


class ProviderForm(BaseForm):
    name = StringField("Name", validators=[DataRequired(), Length(min=1, max=64)])
    cluster_address = URLField("Cluster address", validators=[Length(max=2048), cluster_address])
    namespace = StringField("Namespace", validators=[DataRequired(), dns_label])
    ca_certificate = TextAreaField(
        "CA certificate", validators=[Optional(), Length(max=64 * 1024), pem_certificates]
    )
    token = PasswordField("Service account token", validators=[Length(max=16 * 1024)])
    kubeconfig = SecretTextAreaField("Kubeconfig", validators=[Length(max=256 * 1024)])
    kubeconfig_context = StringField("Context", validators=[Length(max=253)])
    organizations = CheckboxListField("Organizations", coerce=int)
    e2e_encryption = BooleanField("Enable end-to-end encryption")
    external_ssh = BooleanField("Enable external SSH connections")
    access_url = URLField(
        "Access URL", validators=[Optional(), Length(max=2048), absolute_url("http", "https")]
    )
    storage_class = StringField("Storage class", validators=[Optional(), dns_subdomain])
    service_account = StringField("Service account", validators=[Optional(), dns_subdomain])
    pod_tolerations = JSONField("Pod tolerations")
    pod_node_selector = JSONField("Pod node selector")
    service_account_annotations = JSONField("Service account annotations")
    affinity = JSONField("Affinity")
    version = HiddenField()

    def __init__(self, *args, provider=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.provider = provider
        # The built-in provider reaches its cluster as the app's own pod: no connection to type.
        self.in_cluster = provider is not None and provider.is_builtin
        if self.in_cluster:
            for field in (self.cluster_address, self.ca_certificate, self.token, self.kubeconfig,
                          self.kubeconfig_context):
                field.data = ""

    def validate_name(self, field) -> None:
        from ..extensions import db
        from ..models import Provider

        field.data = (field.data or "").strip()
        query = db.select(Provider.id).filter(Provider.name == field.data)
        if self.provider is not None:
            query = query.filter(Provider.id != self.provider.id)
        if db.session.scalar(query) is not None:
            raise ValidationError(f'A provider named "{field.data}" already exists.')

    kube_connection = None  # set from a valid pasted kubeconfig

    def validate_cluster_address(self, field) -> None:
        field.data = (field.data or "").strip()
        if not field.data and not (self.kubeconfig.data or "").strip() and not self.in_cluster:
            raise ValidationError("The cluster address is required (or paste a kubeconfig).")

    def validate_service_account(self, field) -> None:
        field.data = (field.data or "").strip()
        if field.data and (self.service_account_annotations.data or "").strip():
            raise ValidationError(
                "Leave this empty while service account annotations are set: each workspace then "
                "gets a service account of its own, made from the annotations, and this one would "
                "not be used.")

    def validate_kubeconfig(self, field) -> None:
        from ..kube import KubeconfigError, parse_kubeconfig

        if not (field.data or "").strip():
            return
        context = (self.kubeconfig_context.data or "").strip() or None
        try:
            self.kube_connection, _ = parse_kubeconfig(
                field.data, context, allow_link_local=current_app.config["ALLOW_LINK_LOCAL_CLUSTERS"])
        except KubeconfigError as error:
            raise ValidationError(str(error))

    def validate_token(self, field) -> None:
        field.data = (field.data or "").strip()
        pasted = bool((self.kubeconfig.data or "").strip())
        kept = self.provider is not None and self.provider.has_credentials and not self.in_cluster
        if not field.data and not (kept or pasted or self.in_cluster):
            raise ValidationError(
                "A service account token is required to reach the cluster (or paste a kubeconfig).")
        if any(c.isspace() for c in field.data):
            raise ValidationError("A token has no spaces or line breaks; paste it in one piece.")
        if kept and not field.data and not pasted:
            changed = service.connection_changes(self.provider, self.cluster_address.data,
                                                 self.ca_certificate.data, self.kubeconfig_context.data)
            if changed:
                raise ValidationError(service.credentials_required_message(self.provider, changed))


class CordonForm(BaseForm):
    reason = StringField(
        "Reason", validators=[DataRequired(message="Say why, so others know."), Length(max=500)]
    )


class DeleteForm(BaseForm):
    remove_bootstrap = BooleanField("Also remove the bootstrap resources from the cluster")


class FilterChoice(SelectField):
    """A filter of the providers page: a value that is none of its choices (a URL edited by
    hand, an organization deleted since) is named in the error, and the list is not
    filtered by it."""

    def __init__(self, label, *, unknown: str, showing: str, **kwargs):
        super().__init__(label, **kwargs)
        self.unknown, self.showing = unknown, showing

    def pre_validate(self, form):
        if self.data not in {choice.value for choice in self.choices}:
            raise StopValidation(f"{self.unknown} “{self.data[:40]}”. Showing {self.showing}.")


class FilterForm(Form):
    """The providers page's filter bar, read from the query string (a GET: no CSRF token).
    `scope()` is what the list then shows: the filters without those refused. A plain WTForms
    form, not a BaseForm: what BaseForm refuses (control characters, invalid Unicode, over-long
    values) never reaches a view in a query string (web.py), and this runs on every load of
    the page."""

    status = FilterChoice("Status", unknown="Unknown status", showing="every status", default="",
                          choices=[SelectChoice("", "All")] + [SelectChoice(s.value, s.label) for s in Status])
    organization = FilterChoice("Organization", unknown="Unknown organization", showing="every organization",
                                default="")
    cordoned = FilterChoice("Cordoned", unknown="Unknown cordon filter",
                            showing="cordoned and not cordoned providers", default="",
                            choices=[SelectChoice("", "All"), SelectChoice("yes", "Cordoned"),
                                     SelectChoice("no", "Not cordoned")])
    q = StringField("Name contains", validators=[Length(max=SEARCH_MAX, message=(
        f"At most {SEARCH_MAX} characters. Showing every name."))])

    def __init__(self, args, organizations: list[tuple[int, str]]):
        super().__init__(formdata=args)
        self.organization.choices = [SelectChoice("", "All")] + [SelectChoice(str(ident), name)
                                                                 for ident, name in organizations]

    def scope(self, page) -> Scope:
        """The filters that were not refused, on `page` (a page number is not a filter: one
        out of range shows the nearest page, as the page links never make one)."""
        return Scope.list_from_args({"page": page, **{name: field.data for name, field in self._fields.items()
                                                      if field.data and not field.errors}})
