"""Pydantic shapes of the Kubernetes objects a provider's scheduling fields hold, made from
the `kubernetes` client's own models (their field names and types), so that the API's
document describes a toleration or an affinity exactly as Kubernetes does. They check the
structure; what Kubernetes would refuse beyond it is checked by the same rules as the form."""
import functools
import re
from typing import Any, Optional

from kubernetes import client
from pydantic import BaseModel, ConfigDict, Field, create_model

_SCALARS = {"str": str, "int": int, "bool": bool, "float": float, "object": Any, "datetime": str}


@functools.cache
def kubernetes_model(name: str) -> type[BaseModel]:
    """The Pydantic model of a `kubernetes.client` model, e.g. "V1Toleration" → Toleration."""
    source = getattr(client, name)
    fields = {attr: (Optional[_python_type(kind)], Field(None, alias=source.attribute_map[attr]))
              for attr, kind in source.openapi_types.items()}
    config = ConfigDict(extra="forbid", populate_by_name=False,
                        json_schema_extra={"description": f"As Kubernetes' {name[2:]} (core/v1)."})
    return create_model(re.sub(r"^V\d+(beta\d+|alpha\d+)?", "", name), __config__=config, **fields)


def _python_type(kind: str):
    if kind in _SCALARS:
        return _SCALARS[kind]
    if match := re.fullmatch(r"[Ll]ist\[(.+)\]", kind):
        return list[_python_type(match.group(1))]
    if match := re.fullmatch(r"[Dd]ict\(str, (.+)\)|Dict\[str, (.+)\]", kind):
        return dict[str, _python_type(match.group(1) or match.group(2))]
    return kubernetes_model(kind)


Toleration = kubernetes_model("V1Toleration")
Affinity = kubernetes_model("V1Affinity")
