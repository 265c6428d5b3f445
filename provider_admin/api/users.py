"""/api/v1/users: what the Users page does, for site admins, through the same form and
service (the site keeps an active Site admin; an admin cannot lock themselves out)."""
import hashlib

from flask import Response, abort, json, url_for
from flask_login import current_user
from flask_openapi3 import Tag
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.datastructures import MultiDict

from ..conflicts import hold
from ..extensions import db
from ..models import Organization, Role, User
from ..problems import problem
from ..users import admins, service
from ..users.forms import UserForm
from ..users.queries import get_user_or_404
from .areas import area, precondition
from .provider_schemas import Precondition
from .schemas import Id, Line, OrganizationRef

TAG = Tag(name="Users", description="People and their site roles (site admins).")
bp = area("users", TAG, prefix="/users", roles=(Role.ADMIN.value,))


class UserOut(BaseModel):
    id: int
    email: str
    username: str
    role: str = Field(description="admin, manager or member.")
    active: bool
    idp_managed: bool = Field(description="The role comes from the identity provider's groups.")
    organizations: list[OrganizationRef]
    created_at: str


class UserList(BaseModel):
    items: list[UserOut]


class UserIn(BaseModel):
    """Every field optional on PATCH; a new user needs email, username and password."""

    model_config = ConfigDict(extra="forbid")
    email: Line | None = Field(None, max_length=254)
    username: Line | None = Field(None, max_length=64)
    password: Line | None = Field(None, max_length=200, description="Write-only.")
    role: Line | None = Field(None, max_length=16, description="admin, manager or member.")
    active: bool | None = None
    organizations: list[Line] | None = Field(None, description="Organization names.")


class UserPath(BaseModel):
    user_id: int = Id


def _body(user: User) -> dict:
    return UserOut(id=user.id, email=user.email, username=user.username, role=user.role, active=user.active,
                   idp_managed=bool(user.idp_managed),
                   organizations=[OrganizationRef(id=o.id, name=o.name) for o in user.organizations],
                   created_at=user.created_at.isoformat(timespec="seconds")).model_dump()


def etag(user: User) -> str:
    state = json.dumps([user.email, user.username, user.role, user.active, sorted(o.id for o in user.organizations),
                        user.session_version])
    return '"' + hashlib.sha256(state.encode()).hexdigest()[:20] + '"'


def _answer(user: User, status: int = 200, **headers) -> Response:
    response = Response(json.dumps(_body(user)), status, mimetype="application/json", headers=headers)
    response.headers["ETag"] = etag(user)
    return response


def _form(values: dict, user: User | None) -> UserForm | Response:
    start = service.values(user) if user is not None else {"role": "member", "active": True, "organizations": []}
    data = MultiDict({k: str(v) for k, v in {**start, **values}.items()
                      if k not in ("organizations", "active") and v is not None})
    if values.get("active", start["active"]):
        data["active"] = "y"
    names = values.get("organizations")
    if names is None:
        data.setlist("organizations", [str(i) for i in start["organizations"]])
    else:
        known = {o.name.lower(): o.id for o in db.session.scalars(select(Organization))}
        missing = [n for n in names if n.lower() not in known]
        if missing:
            return _refused({"organizations": [f"no organization named {', '.join(missing)}"]})
        data.setlist("organizations", [str(known[n.lower()]) for n in names])
    form = UserForm(formdata=data, user=user, meta={"csrf": False})
    form.organizations.choices = [(o.id, o.name) for o in db.session.scalars(select(Organization))]
    return form if form.validate() else _refused({f.name: f.errors for f in form if f.errors})


def _refused(errors: dict) -> Response:
    return problem(422, "Invalid user", "Some values were refused; see errors.", errors=[
        {"pointer": f"/{name}", "detail": str(message)} for name, messages in errors.items() for message in messages])


@bp.get("", responses={200: UserList})
def list_users():
    """List users"""
    users = db.session.scalars(select(User).options(selectinload(User.organizations)).order_by(User.username))
    return {"items": [_body(u) for u in users]}


@bp.get("/<int:user_id>", responses={200: UserOut})
def get_user(path: UserPath):
    """Get a user"""
    return _answer(get_user_or_404(path.user_id))


@bp.post("", responses={201: UserOut})
def create_user(body: UserIn):
    """Create a user

    With a role (member unless given), organizations and an initial password.
    """
    form = _form(body.model_dump(exclude_unset=True), None)
    if isinstance(form, Response):
        return form
    user = service.create(form)
    if user is None:
        return _refused({f.name: f.errors for f in form if f.errors})
    return _answer(user, 201, Location=url_for("api.users.get_user", user_id=user.id))


@bp.patch("/<int:user_id>", responses={200: UserOut, 412: None, 428: None})
def update_user(path: UserPath, body: UserIn, header: Precondition):
    """Change a user

    Role, organizations, status, email, username or password; a change of role, status or
    password ends the user's sessions. Needs `If-Match`.
    """
    admins.lock()  # as every change of a user, before its row: in one order, so two never deadlock
    user = hold(User, path.user_id)  # a concurrent change waits, then finds it changed
    if user is None:
        abort(404)
    if (refused := precondition(etag(user), what="the user")) is not None:
        return refused
    form = _form(body.model_dump(exclude_unset=True), user)
    if isinstance(form, Response):
        return form
    if not service.update(user, form, current_user):
        return _refused({f.name: f.errors for f in form if f.errors})
    return _answer(user)
