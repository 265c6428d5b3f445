"""A real OpenID Connect provider over HTTP for the tests: oidc-provider-mock in a thread, whose
users' claims each test sets, and the steps of a sign-in through it."""
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

CLIENT_ID = "provider-admin"


@dataclass
class Idp:
    url: str  # the issuer

    def set_user(self, sub: str, **claims) -> None:
        response = requests.put(f"{self.url}/users/{sub}", json=claims, timeout=5)
        assert response.status_code == 204, response.text

    def authorize(self, location: str, sub: str | None = None, deny: bool = False) -> str:
        """Answer the provider's authorization page as its user would; returns where the
        provider sends the browser back."""
        assert location.startswith(f"{self.url}/oauth2/authorize?"), location
        page = requests.get(location, timeout=5)
        assert page.status_code == 200, page.text
        form = {"action": "deny"} if deny else {"sub": sub}
        answer = requests.post(location, data=form, allow_redirects=False, timeout=5)
        assert answer.status_code == 302, answer.text
        return answer.headers["Location"]


def query(url: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@pytest.fixture(scope="session")
def idp():
    from oidc_provider_mock import run_server_in_thread

    with run_server_in_thread() as server:
        yield Idp(f"http://localhost:{server.server_port}")


def sso_config(idp: Idp, **overrides) -> dict:
    config = {
        "OIDC_ISSUER": idp.url, "OIDC_CLIENT_ID": CLIENT_ID, "OIDC_CLIENT_SECRET": "client-secret",
        "OIDC_ALLOW_SIGNUP": True, "OIDC_TIMEOUT": 5.0,
        "OIDC_ROLE_MAP": {"platform-admins": "admin", "platform-team": "manager", "developers": "member"},
        "OIDC_ORGANIZATION_MAP": {"platform-team": "Platform", "developers": "Developers"},
        "OIDC_ORGANIZATION_PREFIX": "org:",
    }
    config.update(overrides)
    return config
