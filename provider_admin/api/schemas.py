"""The API's request and response shapes (Pydantic): they validate requests and are the
source of the OpenAPI document, so the two cannot drift apart."""
import functools
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Literal

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ..web import MAX_ID

Id = Field(ge=1, le=MAX_ID)
# Text as every form takes it: no control characters (line breaks only where a field takes
# several lines); the same rule as forms.text_problem, said in the document.
Line = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f-\x9f]*$")]
Lines = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$")]


class Parameters(BaseModel):
    """A model of query or header parameters. flask-openapi3 reads its JSON schema on every
    request (to tell lists from single values), and Pydantic would build it anew each time,
    which cost more than the rest of a list request. That schema (no arguments) is built once,
    read-only; the document's (with arguments) is built as before."""

    @classmethod
    def model_json_schema(cls, *args, **kwargs):
        if args or kwargs:
            return super().model_json_schema(*args, **kwargs)
        return _read_only_schema(cls)


@functools.cache
def _read_only_schema(model: type[BaseModel]) -> Mapping:
    return _read_only(BaseModel.model_json_schema.__func__(model))


def _read_only(value):
    if isinstance(value, dict):
        return MappingProxyType({key: _read_only(item) for key, item in value.items()})
    if isinstance(value, list):
        return tuple(_read_only(item) for item in value)
    return value


class FieldProblem(BaseModel):
    pointer: str = Field(description="JSON pointer into the request, e.g. `/tolerations/0/effect`; "
                                     "query and path parameters as `#/query/name`.")
    detail: str
    line: int | None = Field(None, description="For JSON-valued text fields: the line of the error.")
    column: int | None = None


class Problem(BaseModel):
    """An error (RFC 9457), served as `application/problem+json`."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"type": "about:blank", "title": "Token expired", "status": 401,
         "detail": "The token \"CI\" expired on 2026-12-01 10:00 UTC.", "instance": "/api/v1/me"}]})

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldProblem] | None = Field(None, description="One entry per refused field.")


class OrganizationRef(BaseModel):
    id: int
    name: str


class Token(BaseModel):
    """A personal access token as listed: never its secret."""

    id: int
    name: str
    owner: str = Field(description="The owner's e-mail.")
    hint: str = Field(description="The token's first characters, to tell tokens apart.")
    read_only: bool
    state: Literal["active", "expired", "revoked"]
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenList(BaseModel):
    items: list[Token]


class Me(BaseModel):
    """The user a token acts as, with the role they have now."""

    id: int
    email: str
    username: str
    role: Literal["admin", "manager", "member"]
    organizations: list[OrganizationRef]
    token: Token


class TokenPath(BaseModel):
    token_id: int = Id


class TokenQuery(Parameters):
    owner: Literal["all"] | None = Field(None, description="`all`: every user's tokens (site admins).")
