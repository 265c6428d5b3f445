"""Structured provider settings (an API body, an entry of a providers file) as the provider
form's fields, so that they go through the form's own checks and nothing is written twice."""
import json

from werkzeug.datastructures import MultiDict

from . import scheduling
from ..extensions import db
from ..models import Organization, Provider
from . import service

TEXT_FIELDS = ("name", "cluster_address", "namespace", "ca_certificate", "token", "kubeconfig",
               "kubeconfig_context", "access_url", "storage_class", "service_account")
FLAGS = ("e2e_encryption", "external_ssh")
FIELDS = (*TEXT_FIELDS, *FLAGS, "organizations", *service.SCHEDULING_FIELDS)


class FieldProblems(Exception):
    """Values that cannot even become form fields: {field: message}."""

    def __init__(self, problems: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))
        self.problems = problems


def to_formdata(values: dict, provider: Provider | None, *, partial: bool) -> MultiDict:
    """The form fields for `values`. `partial`: fields left out keep the provider's values
    (PATCH); else left out means empty, and the default affinity for a new provider."""
    start = service.form_data(provider) if provider is not None and partial else {}
    data = MultiDict()
    for key in TEXT_FIELDS:
        value = values[key] if key in values else start.get(key)
        data[key] = "" if value is None else str(value)
    for key in FLAGS:
        if (values[key] if key in values else start.get(key)) is True:
            data[key] = "y"
    for key in service.SCHEDULING_FIELDS:
        if key in values:
            data[key] = "" if values[key] is None else json.dumps(values[key])
        elif key == "affinity" and not (provider is not None and partial):
            data[key] = json.dumps(scheduling.DEFAULT_AFFINITY)
        else:
            data[key] = start.get(key) or ""
    if "organizations" in values:
        data.setlist("organizations", [str(i) for i in organization_ids(values["organizations"])])
    else:
        data.setlist("organizations", [str(i) for i in start.get("organizations", [])])
    if provider is not None:
        data["version"] = str(provider.version)
    return data


def organization_ids(names) -> list[int]:
    if not isinstance(names, list):
        raise FieldProblems({"organizations": "a list of organization names"})
    by_name = {o.name.lower(): o.id for o in db.session.scalars(db.select(Organization))}
    missing = [str(n) for n in names if str(n).lower() not in by_name]
    if missing:
        raise FieldProblems({"organizations": f"no organization named {', '.join(missing)}"})
    return [by_name[str(n).lower()] for n in names]
