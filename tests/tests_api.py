"""Calling the API from tests: a path under /api/v1 with a bearer token."""


def call(client, method, path, token=None, **kwargs):
    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.open(f"/api/v1{path}", method=method, headers=headers, **kwargs)
