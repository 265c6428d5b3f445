from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, Length, Regexp

from ..forms import BaseForm
from ..validators import dns_label

CPU = Regexp(r"^([0-9]+(\.[0-9]+)?|[0-9]+m)\Z",
             message='Use a number of cores such as "2" or "0.5", or millicores such as "500m".')
SIZE = Regexp(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)\Z",
              message='Use a size with a unit, such as "512Mi", "4Gi" or "10G".')
IMAGE = Regexp(r"^[a-z0-9]+([._/:@-][A-Za-z0-9_.-]+)*\Z",
               message="Use an image reference such as codercom/enterprise-base:ubuntu.")


class WorkspaceForm(BaseForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=40), dns_label])
    organization = SelectField("Organization", coerce=int)
    provider = SelectField("Workspace provider", coerce=int,
                           validators=[DataRequired(message="Choose a workspace provider.")])
    image = StringField("Image", default="codercom/enterprise-base:ubuntu",
                        validators=[DataRequired(), Length(max=512), IMAGE])
    cpu = StringField("CPU", default="2", validators=[DataRequired(), Length(max=16), CPU])
    memory = StringField("Memory", default="4Gi", validators=[DataRequired(), Length(max=16), SIZE])
    disk = StringField("Disk", default="10Gi", validators=[DataRequired(), Length(max=16), SIZE])
