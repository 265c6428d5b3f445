"""The shapes of providers in the API."""
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .kube_types import Affinity, Toleration
from .schemas import Id, Line, Lines, OrganizationRef, Parameters

Status = Literal["pending", "ready", "error"]
_WRITE_ONLY = "Write-only: never sent back."


class Settings(BaseModel):
    """What a provider's form holds, as the API takes it (every field optional on PATCH)."""

    model_config = ConfigDict(extra="forbid")

    name: Line | None = Field(None, max_length=64)
    cluster_address: Line | None = Field(None, max_length=2048, description="https URL of the Kubernetes API.")
    namespace: Line | None = Field(None, max_length=63)
    ca_certificate: Lines | None = Field(None, description="PEM; empty for a publicly trusted certificate.")
    token: Line | None = Field(None, description="A service account token. " + _WRITE_ONLY)
    kubeconfig: Lines | None = Field(None, description="A kubeconfig, instead of the address, CA and token. "
                                                     + _WRITE_ONLY)
    kubeconfig_context: Line | None = Field(None, max_length=253)
    organizations: list[Line] | None = Field(None, description="Names of the organizations that may use it.")
    e2e_encryption: bool | None = None
    external_ssh: bool | None = None
    access_url: Line | None = Field(None, max_length=2048)
    storage_class: Line | None = Field(None, max_length=253)
    service_account: Line | None = Field(None, max_length=253)
    pod_tolerations: list[Toleration] | None = None
    pod_node_selector: dict[Line, Line] | None = None
    service_account_annotations: dict[Line, Line] | None = Field(
        None, description="Values may use {{ .Username }} and the other workspace template variables.")
    affinity: Affinity | None = Field(None, description="Omitted on create: the default affinity; `{}`: none.")


class NewProvider(Settings):
    name: Line = Field(min_length=1, max_length=64)
    namespace: Line = Field(min_length=1, max_length=63, description="A DNS label, e.g. `workspaces`.")


class Cordon(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Line = Field(min_length=1, max_length=500, description="Shown to people who look for a provider.")


class Credentials(BaseModel):
    kind: Literal["token", "client_cert"] | None
    token_expires_at: datetime | None


class Health(BaseModel):
    state: Status
    category: str | None = Field(None, description="Why it is in error, e.g. `unauthorized`, `timeout`.")
    message: str | None
    warnings: list[str]
    kube_version: str | None
    last_checked_at: datetime | None
    last_ready_at: datetime | None


class Provider(BaseModel):
    """A workspace provider: its settings (the ETag's version) and its live status."""

    id: int
    uid: str
    name: str
    builtin: bool
    cluster_address: str | None
    namespace: str
    ca_certificate: str | None
    kubeconfig_context: str | None
    credentials: Credentials
    organizations: list[OrganizationRef]
    e2e_encryption: bool
    external_ssh: bool
    access_url: str | None
    storage_class: str | None
    service_account: str | None
    pod_tolerations: list[dict] | None
    pod_node_selector: dict[str, str] | None
    service_account_annotations: dict[str, str] | None
    affinity: dict = Field(description="The affinity workspaces get (the default one unless set).")
    cordoned: bool
    cordon_reason: str | None
    status: Health
    workspaces: int = Field(description="How many workspaces it hosts.")
    version: int = Field(description="Changes with every change of its settings; the ETag.")
    created_at: datetime
    updated_at: datetime


class ProviderPage(BaseModel):
    items: list[Provider]
    next_cursor: int | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class ProviderFilter(Parameters):
    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    organization: Line | None = Field(None, max_length=64, description="An organization's name.")
    name: Line | None = Field(None, max_length=64, description="Part of the name, any case.")
    cordoned: bool | None = None
    limit: int = Field(50, ge=1, le=100)
    cursor: int | None = Field(None, ge=0, le=2**31 - 1, description="`next_cursor` of the previous page.")


class Precondition(Parameters):
    if_match: str = Field("", alias="If-Match", max_length=200,
                                 description="The ETag of your last read; a change made since is answered 412.")


class ProviderPath(BaseModel):
    provider_id: int = Id


class DeleteOptions(Parameters):
    model_config = ConfigDict(extra="forbid")

    remove_bootstrap: bool = Field(False, description="Also delete what Deploy created in the cluster.")


class ObjectOutcome(BaseModel):
    kind: str
    namespace: str | None
    name: str
    result: str


class Outcomes(BaseModel):
    succeeded: bool
    summary: str
    objects: list[ObjectOutcome]
