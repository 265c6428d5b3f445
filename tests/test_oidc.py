"""OpenID Connect sign-in against a real provider over HTTP: the code flow with PKCE, state and
nonce, matching and creating accounts, a page for every failure, IdP sync of role and
organizations at every sign-in, and sign-out at the provider."""
import base64
import html
import re
import hashlib
import json

import pytest
import requests

from provider_admin.extensions import db
from provider_admin.models import AuditEvent, Role, User, organization_members

from .conftest import field_error
from .oidc import CLIENT_ID, idp, path_of, query, sso_config  # noqa: F401  (fixture)


@pytest.fixture
def app_config(database_url, idp):
    return sso_config(idp)


@pytest.fixture(autouse=True)
def site(actions):
    """A site in use (not the first visit's setup page): its admin signs in with a password."""
    return actions.user(Role.ADMIN.value, email="someone@example.com", username="someone")


def account(email):
    return db.session.scalar(db.select(User).filter_by(email=email))


@pytest.fixture
def orgs(make_org):
    return {name: make_org(name) for name in ("Platform", "Developers", "Payments")}


def start(client, actions, next_url=None):
    """Follow the sign-in link: the answer sends the browser to the provider."""
    page = client.get("/login" + (f"?next={next_url}" if next_url else "")).get_data(as_text=True)
    url = "/oidc/login" + (f"?next={next_url}" if next_url else "")
    assert f'href="{url}"' in page
    response = client.get(url)
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


def sign_in(client, actions, idp, sub, **claims):
    """A whole sign-in as `sub` with these claims; the app's last answer."""
    claims.setdefault("email", f"{sub}@example.com")
    claims.setdefault("email_verified", True)
    idp.set_user(sub, **claims)
    back = idp.authorize(start(client, actions), sub)
    return client.get(path_of(back))


def audit_actions(action):
    return [e.changes for e in db.session.scalars(db.select(AuditEvent).filter_by(action=action).order_by(AuditEvent.id))]


def test_the_sign_in_page_offers_single_sign_on_next_to_the_password(client):
    page = client.get("/login").get_data(as_text=True)
    assert "Sign in with SSO" in page and 'name="password"' in page


def test_the_authorization_request_uses_pkce_state_and_nonce(client, actions):
    location = start(client, actions)
    params = query(location)
    assert params["response_type"] == "code" and params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == "http://localhost/oidc/callback"
    assert set(params["scope"].split()) == {"openid", "email", "profile"}
    assert params["code_challenge_method"] == "S256"
    with client.session_transaction() as stored:
        data = stored[f"_state_oidc_{params['state']}"]["data"]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(data["code_verifier"].encode()).digest()).rstrip(b"=")
    assert params["code_challenge"] == challenge.decode()
    assert params["nonce"] == data["nonce"] and len(params["state"]) >= 20


def test_first_sign_in_creates_the_account_with_the_mapped_role_and_organizations(client, actions, idp, orgs):
    response = sign_in(client, actions, idp, "ada", groups=["platform-team", "org:Payments", "unrelated"],
                       preferred_username="ada.l")
    assert response.status_code == 303 and response.headers["Location"] == "/"
    user = db.session.scalar(db.select(User).filter_by(email="ada@example.com"))
    assert (user.username, user.role, user.idp_managed, user.password_hash) == ("ada.l", "manager", True, None)
    assert [o.name for o in user.organizations] == ["Payments", "Platform"]
    assert user.oidc_issuer == idp.url and user.oidc_subject == "ada"
    assert user.idp_outcome["role_from"] == ["platform-team"]
    assert user.idp_outcome["organizations"] == {"Platform": ["platform-team"], "Payments": ["org:Payments"]}
    assert client.get("/manage/providers/").status_code == 200  # signed in, as a manager
    created, = audit_actions("user.create")
    assert created["role"] == "member"
    synced, = audit_actions("user.idp_sync")
    assert synced == {"role": {"from": "member", "to": "manager"},
                      "organizations_added": ["Payments", "Platform"]}
    signed_in, = audit_actions("auth.sign_in")
    assert signed_in["method"] == "single sign-on"


def test_the_next_page_is_kept_through_the_provider(client, actions, idp, orgs):
    idp.set_user("nx", email="nx@example.com", email_verified=True, groups=["developers"])
    back = idp.authorize(start(client, actions, next_url="/workspaces/"), "nx")
    assert client.get(path_of(back)).headers["Location"] == "/workspaces/"


def test_the_mapping_is_applied_again_at_every_sign_in(client, actions, idp, orgs):
    sign_in(client, actions, idp, "bo", groups=["platform-admins", "developers"])
    user = db.session.scalar(db.select(User).filter_by(email="bo@example.com"))
    assert user.role == "admin" and [o.name for o in user.organizations] == ["Developers"]
    client.post("/logout", data={"csrf_token": actions.token()})
    response = sign_in(client, actions, idp, "bo", groups=["org:Payments"])
    assert response.status_code == 303
    db.session.expire_all()
    assert user.role == "member"  # no group maps to a role: the default role
    assert [o.name for o in user.organizations] == ["Payments"]
    assert audit_actions("user.idp_sync")[-1] == {
        "role": {"from": "admin", "to": "member"}, "organizations_added": ["Payments"],
        "organizations_removed": ["Developers"]}
    assert client.get("/workspaces/").status_code == 200  # the new session holds after the role change
    assert client.get("/manage/providers/").status_code == 403


def test_sync_leaves_memberships_given_by_hand(client, actions, idp, orgs):
    sign_in(client, actions, idp, "cy", groups=["developers"])
    user = db.session.scalar(db.select(User).filter_by(email="cy@example.com"))
    user.organizations.append(orgs["Payments"])  # an admin adds one by hand
    db.session.commit()
    client.post("/logout", data={"csrf_token": actions.token()})
    sign_in(client, actions, idp, "cy", groups=[])
    db.session.expire_all()
    assert [o.name for o in user.organizations] == ["Payments"]
    sources = dict(db.session.execute(db.select(organization_members.c.organization_id, organization_members.c.source)
                                      .filter_by(user_id=user.id)).all())
    assert sources == {orgs["Payments"].id: "manual"}


def test_a_role_change_at_sign_in_ends_the_users_other_sessions_but_not_this_one(app, client, actions, idp, orgs):
    sign_in(client, actions, idp, "dee", groups=["platform-team"])
    other = app.test_client()
    from .conftest import Actions

    sign_in(other, Actions(other, app), idp, "dee", groups=["platform-admins"])
    assert other.get("/manage/users/").status_code == 200  # the sign-in that changed the role holds
    assert client.get("/workspaces/").status_code == 302  # the earlier session ended


def test_an_existing_account_is_matched_by_verified_email_and_linked(client, actions, idp, orgs):
    existing = actions.user(Role.MEMBER.value, email="eve@example.com", username="eve")
    sign_in(client, actions, idp, "eve-at-idp", email="EVE@example.com", groups=["platform-team"])
    db.session.expire_all()
    assert existing.oidc_subject == "eve-at-idp" and existing.role == "manager"
    assert db.session.scalar(db.select(db.func.count(User.id))) == 2  # with the site's member


def test_an_email_changed_at_the_provider_follows_to_the_linked_account(client, actions, idp, orgs):
    sign_in(client, actions, idp, "hal-at-idp", email="hal@example.com")
    hal = account("hal@example.com")
    assert sign_in(client, actions, idp, "hal-at-idp", email="Hal.Jordan@example.com").status_code == 303
    db.session.expire_all()
    assert hal.email == "hal.jordan@example.com" and account("hal@example.com") is None
    assert {"email": {"from": "hal@example.com", "to": "hal.jordan@example.com"}} in audit_actions("user.idp_sync")


def test_an_email_changed_to_another_accounts_address_is_not_taken(client, actions, idp, orgs):
    sign_in(client, actions, idp, "ida-at-idp", email="ida@example.com")
    other = actions.user(Role.MEMBER.value, email="ida.new@example.com", username="ida-new")
    assert sign_in(client, actions, idp, "ida-at-idp", email="ida.new@example.com").status_code == 303
    db.session.expire_all()
    assert account("ida@example.com").oidc_subject == "ida-at-idp" and other.oidc_subject is None
    assert other.email == "ida.new@example.com"


def test_an_email_linked_to_another_identity_is_refused(client, actions, idp):
    user = actions.user(Role.MEMBER.value, email="fay@example.com", username="fay")
    user.oidc_issuer, user.oidc_subject = idp.url, "fay-original"
    db.session.commit()
    response = sign_in(client, actions, idp, "fay-impostor", email="fay@example.com")
    assert response.status_code == 403 and "linked to another identity" in response.get_data(as_text=True)


@pytest.mark.parametrize("claims, text, reason", [
    ({"email_verified": True}, "did not send an email address", "email_missing"),
    ({"email": "gus@example.com", "email_verified": False}, "is not verified", "email_unverified"),
    ({"email": "gus@example.com"}, "is not verified", "email_unverified"),
    ({"email": "gus@example.com", "email_verified": "false"}, "is not verified", "email_unverified"),
])
def test_an_email_missing_or_unverified_is_refused_with_its_page(client, actions, idp, claims, text, reason):
    idp.set_user("gus", **claims)
    back = idp.authorize(start(client, actions), "gus")
    response = client.get(path_of(back))
    assert response.status_code == 403 and text in response.get_data(as_text=True)
    assert audit_actions("auth.sign_in_failed")[-1]["reason"] == reason
    assert account("gus@example.com") is None and "_user_id" not in _session(client)


def test_an_unverified_email_is_accepted_when_a_setting_allows_it(app, client, actions, idp):
    app.extensions["oidc"] = _with(app, allow_unverified_email=True)
    idp.set_user("hal", email="hal@example.com", email_verified=False)
    back = idp.authorize(start(client, actions), "hal")
    assert client.get(path_of(back)).status_code == 303


def test_without_signup_an_unknown_email_is_refused(app, client, actions, idp):
    app.extensions["oidc"] = _with(app, allow_signup=False)
    response = sign_in(client, actions, idp, "ivy")
    assert response.status_code == 403 and "There is no account for ivy@example.com" in response.get_data(as_text=True)
    assert account("ivy@example.com") is None


def test_a_user_deactivated_here_is_refused(client, actions, idp):
    user = actions.user(Role.MEMBER.value, email="jo@example.com", username="jo")
    user.active = False
    db.session.commit()
    response = sign_in(client, actions, idp, "jo")
    assert response.status_code == 403 and "is deactivated here" in response.get_data(as_text=True)
    assert "_user_id" not in _session(client)


def test_a_denied_consent_has_its_page(client, actions, idp):
    back = idp.authorize(start(client, actions), deny=True)
    assert query(back)["error"] == "access_denied"
    response = client.get(path_of(back))
    assert response.status_code == 403 and "Sign-in cancelled" in response.get_data(as_text=True)
    assert audit_actions("auth.sign_in_failed")[-1]["reason"] == "denied"


def test_a_replayed_or_foreign_state_is_refused(client, actions, idp, app):
    idp.set_user("kim", email="kim@example.com", email_verified=True)
    back = idp.authorize(start(client, actions), "kim")
    assert client.get(path_of(back)).status_code == 303
    client.post("/logout", data={"csrf_token": actions.token()})
    replayed = client.get(path_of(back))  # the same answer again: its state was used
    assert replayed.status_code == 400 and "was not started here" in replayed.get_data(as_text=True)
    # An answer meant for another browser's sign-in (login CSRF) is refused too.
    victim = app.test_client()
    from .conftest import Actions

    attacker_back = idp.authorize(start(client, actions), "kim")
    start(victim, Actions(victim, app))
    refused = victim.get(path_of(attacker_back))
    assert refused.status_code == 400 and "_user_id" not in _session(victim)
    assert audit_actions("auth.sign_in_failed")[-1]["reason"] == "state"


def test_a_wrong_nonce_is_refused(client, actions, idp):
    idp.set_user("lu", email="lu@example.com", email_verified=True)
    location = start(client, actions)
    state = query(location)["state"]
    with client.session_transaction() as stored:
        entry = stored[f"_state_oidc_{state}"]
        entry["data"]["nonce"] = "not-the-one-sent"
        stored[f"_state_oidc_{state}"] = entry
    response = client.get(path_of(idp.authorize(location, "lu")))
    assert response.status_code == 400 and "ID token was not valid" in response.get_data(as_text=True)
    assert account("lu@example.com") is None


def test_an_unreachable_provider_has_its_page(app, client, actions):
    from .fuzz import closed_port

    app.extensions["oidc_client"].server_metadata.clear()
    app.extensions["oidc_client"]._server_metadata_url = f"http://127.0.0.1:{closed_port()}/.well-known/openid-configuration"
    response = client.get("/oidc/login")
    assert response.status_code == 502
    assert "did not answer" in response.get_data(as_text=True)
    assert audit_actions("auth.sign_in_failed")[-1]["reason"] == "unreachable"


def test_single_sign_on_routes_answer_404_while_it_is_off(app, client):
    app.extensions["oidc"], app.config["OIDC_ISSUER"] = None, None
    assert client.get("/oidc/login").status_code == 404
    assert client.get("/oidc/callback?code=x&state=y").status_code == 404
    page = client.get("/login").get_data(as_text=True)
    assert "/oidc/login" not in page and 'name="password"' in page


def test_no_provider_token_is_kept_in_the_session_or_the_database(client, actions, idp, orgs):
    sign_in(client, actions, idp, "max", groups=["developers"])
    stored = json.dumps(_session(client))
    assert "_state_oidc" not in stored and "token" not in stored.lower()
    user = db.session.scalar(db.select(User).filter_by(email="max@example.com"))
    kept = json.dumps([user.idp_claims, user.idp_outcome])
    assert not {"access_token", "id_token", "refresh_token", "nonce", "at_hash"} & set(json.loads(kept)[0])
    assert "eyJ" not in kept  # nothing like a JWT
    assert user.idp_claims["groups"] == ["developers"] and user.idp_claims["email"] == "max@example.com"


def test_nested_group_claims_are_read_by_their_path(app, client, actions, idp, orgs):
    app.extensions["oidc"] = _with(app, groups_claim=("realm_access", "roles"))
    sign_in(client, actions, idp, "ned", realm_access={"roles": ["platform-admins"]})
    assert db.session.scalar(db.select(User.role).filter_by(email="ned@example.com")) == "admin"


def test_sync_keeps_the_last_active_admin(client, actions, idp, site):
    site.active = False
    db.session.commit()
    sign_in(client, actions, idp, "olga", groups=["platform-admins"])
    client.post("/logout", data={"csrf_token": actions.token()})
    sign_in(client, actions, idp, "olga", groups=[])
    user = db.session.scalar(db.select(User).filter_by(email="olga@example.com"))
    db.session.refresh(user)
    assert user.role == "admin" and "the last one" in " ".join(user.idp_outcome["notes"])


def test_sign_out_ends_the_providers_session_too(client, actions, idp):
    sign_in(client, actions, idp, "pia")
    response = client.post("/logout", data={"csrf_token": actions.token()})
    # A page that moves on to the provider (the CSP's form-action stops a redirect there).
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    location = html.unescape(re.search(r'<meta http-equiv="refresh" content="0; url=([^"]+)">', page).group(1))
    assert f'href="{html.escape(location)}"' in page
    assert location.startswith(f"{idp.url}/oauth2/end_session?")
    assert query(location)["post_logout_redirect_uri"] == "http://localhost/login"
    assert query(location)["client_id"] == CLIENT_ID and "id_token_hint" not in query(location)
    assert "_user_id" not in _session(client)
    confirm = requests.post(f"{idp.url}/oauth2/end_session/confirm",
                            data={"redirect_uri": query(location)["post_logout_redirect_uri"]},
                            allow_redirects=False, timeout=5)
    assert confirm.headers["Location"] == "http://localhost/login"


def test_a_password_sign_in_signs_out_here_only(client, actions):
    actions.login()
    response = client.post("/logout", data={"csrf_token": actions.token()})
    assert response.headers["Location"] == "/login"


def _session(client) -> dict:
    with client.session_transaction() as stored:
        return dict(stored)


def _with(app, **changes):
    import dataclasses

    return dataclasses.replace(app.extensions["oidc"], **changes)


def test_the_claims_page_shows_what_was_received_and_what_the_mapping_made_of_it(app, client, actions, idp, orgs):
    sign_in(client, actions, idp, "quin", groups=["platform-team", "org:Nowhere", "<script>x</script>"],
            name="Quin <b>Q</b>")
    user = account("quin@example.com")
    client.post("/logout", data={"csrf_token": actions.token()})
    actions.login(Role.ADMIN.value, username="boss")
    edit = client.get(f"/manage/users/{user.id}/edit").get_data(as_text=True)
    assert f'href="/manage/users/{user.id}/claims"' in edit
    page = client.get(f"/manage/users/{user.id}/claims").get_data(as_text=True)
    assert "Site role</dt>\n    <dd>manager, from platform-team" in page
    assert "Platform (from platform-team)" in page
    assert "No organization named Nowhere here" in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<script>x" not in page and "Quin &lt;b&gt;Q&lt;/b&gt;" in page
    assert "mapping has changed since" not in page
    app.extensions["oidc"] = _with(app, role_map={"platform-team": "member"})
    assert "mapping has changed since" in client.get(f"/manage/users/{user.id}/claims").get_data(as_text=True)


def test_the_claims_page_of_a_user_without_single_sign_on(client, actions):
    admin = actions.login(Role.ADMIN.value, username="boss")
    page = client.get(f"/manage/users/{admin.id}/claims")
    assert page.status_code == 200 and "has not signed in with single sign-on yet" in page.get_data(as_text=True)
    assert client.get("/manage/users/999999/claims").status_code == 404


@pytest.mark.parametrize("role", [Role.MANAGER.value, Role.MEMBER.value])
def test_the_claims_page_is_for_admins_only(client, actions, site, role):
    actions.login(role)
    assert client.get(f"/manage/users/{site.id}/claims").status_code == 403


def test_a_synced_users_role_is_not_changed_by_hand(client, actions, idp, orgs):
    sign_in(client, actions, idp, "rae", groups=["developers"])
    user = account("rae@example.com")
    client.post("/logout", data={"csrf_token": actions.token()})
    actions.login(Role.ADMIN.value, username="boss")
    page = client.get(f"/manage/users/{user.id}/edit").get_data(as_text=True)
    assert "Role managed by the identity provider" in page
    form = {"email": user.email, "username": user.username, "role": "admin", "active": "y",
            "organizations": [str(orgs["Developers"].id)]}
    response = actions.post(f"/manage/users/{user.id}/edit", form)
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "role").startswith(
        "Role managed by the identity provider: change rae's groups there")
    db.session.expire_all()
    assert user.role == "member"
    form["role"] = "member"  # everything else may still be changed
    form["active"] = ""
    assert actions.post(f"/manage/users/{user.id}/edit", form).status_code == 303
    db.session.expire_all()
    assert user.active is False


@pytest.mark.parametrize("setting, value, message", [
    ("OIDC_ISSUER", "ftp://sso.example.com", "PROVIDER_ADMIN_OIDC_ISSUER: must be the provider's https URL"),
    ("OIDC_ISSUER", "http://sso.example.com", "PROVIDER_ADMIN_OIDC_ISSUER: must be https"),
    ("OIDC_ISSUER", "https://sso.example.com/?realm=a", "PROVIDER_ADMIN_OIDC_ISSUER: must be the provider's"),
    ("OIDC_CLIENT_ID", "", "PROVIDER_ADMIN_OIDC_CLIENT_ID: must be set"),
    ("OIDC_ROLE_MAP", {"platform-admins": "root"}, "PROVIDER_ADMIN_OIDC_ROLE_MAP: the group 'platform-admins' maps to 'root'"),
    ("OIDC_ROLE_MAP", '["admin"]', "PROVIDER_ADMIN_OIDC_ROLE_MAP: must be a JSON object"),
    ("OIDC_ROLE_MAP", "{not json", "PROVIDER_ADMIN_OIDC_ROLE_MAP: not valid JSON"),
    ("OIDC_ORGANIZATION_MAP", {"team": ""}, "PROVIDER_ADMIN_OIDC_ORGANIZATION_MAP: the group 'team' must map"),
    ("OIDC_ORGANIZATION_MAP", {"team": 3}, "PROVIDER_ADMIN_OIDC_ORGANIZATION_MAP: the group 'team' must map"),
    ("OIDC_DEFAULT_ROLE", "owner", "PROVIDER_ADMIN_OIDC_DEFAULT_ROLE: 'owner' is not a role"),
    ("OIDC_GROUPS_CLAIM", "realm_access..roles", "PROVIDER_ADMIN_OIDC_GROUPS_CLAIM: must name a claim"),
    ("OIDC_SCOPES", "email profile", "PROVIDER_ADMIN_OIDC_SCOPES: must include openid"),
])
def test_a_mistake_in_the_settings_stops_the_start_naming_the_setting(idp, database_url, setting, value, message):
    from provider_admin import create_app

    config = sso_config(idp, **{setting: value}) | {"SQLALCHEMY_DATABASE_URI": database_url, "TESTING": True,
                                                    "SECRET_KEY": "x", "AUTO_MIGRATE": False}
    with pytest.raises(ValueError) as error:
        create_app(config)
    assert str(error.value).startswith(message)


def test_the_maps_may_be_given_as_json_text(app, idp, database_url):
    from provider_admin import create_app

    config = sso_config(idp, OIDC_ROLE_MAP='{"ops": "admin"}', OIDC_ORGANIZATION_MAP="") | {
        "SQLALCHEMY_DATABASE_URI": database_url, "TESTING": True, "SECRET_KEY": "x", "AUTO_MIGRATE": False}
    found = create_app(config).extensions["oidc"]
    assert found.role_map == {"ops": "admin"} and found.organization_map == {} and found.syncs_organizations  # by the prefix
