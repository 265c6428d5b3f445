from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length, Regexp, ValidationError

from ..extensions import db
from ..forms import BaseForm
from ..models import Organization, Provider, User, Workspace
from ..validators import dns_label
from .eligibility import providers_for

CPU = Regexp(r"^([0-9]+(\.[0-9]+)?|[0-9]+m)\Z",
             message='Use a number of cores such as "2" or "0.5", or millicores such as "500m".')
SIZE = Regexp(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)\Z",
              message='Use a size with a unit, such as "512Mi", "4Gi" or "10G".')
IMAGE = Regexp(r"^[a-z0-9]+([._/:@-][A-Za-z0-9_.-]+)*\Z",
               message="Use an image reference such as codercom/enterprise-base:ubuntu.")
DUPLICATE_NAME = "You already have a workspace with this name."


class WorkspaceForm(BaseForm):
    """A new workspace of `owner`: in one of their organizations (the one typed, else
    `organization_id`, else their first), on a provider that organization may use now."""

    name = StringField("Name", validators=[DataRequired(), Length(max=40), dns_label])
    organization = SelectField("Organization", coerce=int, validate_choice=False)
    provider = SelectField("Workspace provider", coerce=int,
                           validators=[DataRequired(message="Choose a workspace provider.")])
    image = StringField("Image", default="codercom/enterprise-base:ubuntu",
                        validators=[DataRequired(), Length(max=512), IMAGE])
    cpu = StringField("CPU", default="2", validators=[DataRequired(), Length(max=16), CPU])
    memory = StringField("Memory", default="4Gi", validators=[DataRequired(), Length(max=16), SIZE])
    disk = StringField("Disk", default="10Gi", validators=[DataRequired(), Length(max=16), SIZE])

    def __init__(self, *args, owner: User, organization_id: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.owner = owner
        organizations = {o.id: o for o in owner.organizations}
        self.organization.choices = [(o.id, o.name) for o in organizations.values()]
        self.chosen_organization: Organization | None = organizations.get(
            self.organization.data or organization_id) or next(iter(organizations.values()), None)
        # Each provider the form offers, with the reason it cannot be chosen (None when it can).
        self.offers = providers_for(self.chosen_organization, owner)
        self.provider.choices = [(p.id, p.name) for p, _ in self.offers]

    @property
    def chosen_provider(self) -> Provider | None:
        return next((p for p, _ in self.offers if p.id == self.provider.data), None)

    def validate_organization(self, field) -> None:
        if self.chosen_organization is None or self.chosen_organization.id != field.data:
            raise ValidationError("Choose one of your organizations.")

    def validate_provider(self, field) -> None:
        reason = next((reason for p, reason in self.offers if p.id == field.data), None)
        if reason:  # a provider not offered at all is refused as "Not a valid choice"
            raise ValidationError(f"{self.chosen_provider.name} cannot take new workspaces: {reason}.")

    def validate_name(self, field) -> None:
        taken = db.select(Workspace.id).filter_by(owner_id=self.owner.id, name=field.data)
        if db.session.scalar(taken) is not None:
            raise ValidationError(DUPLICATE_NAME)

    def new_workspace(self) -> Workspace:
        """The workspace as validated, about to be built."""
        return Workspace(name=self.name.data, owner=self.owner, organization=self.chosen_organization,
                         provider=self.chosen_provider, image=self.image.data, cpu=self.cpu.data,
                         memory=self.memory.data, disk=self.disk.data, status="building")
