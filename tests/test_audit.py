"""The audit log: newest first, who and what changed, secrets redacted, filterable by type."""
import html
import re
from datetime import datetime, timedelta, timezone

import pytest

from provider_admin import audit
from provider_admin.extensions import db
from provider_admin.models import AuditEvent, Role


T0 = datetime(2026, 1, 5, 9, 30, tzinfo=timezone.utc)


def add_event(minutes: int, action: str, target_type: str, target_name: str, changes=None, actor="boss@example.com"):
    db.session.add(AuditEvent(at=T0 + timedelta(minutes=minutes), actor=actor, action=action,
                              target_type=target_type, target_id=1, target_name=target_name, changes=changes))
    db.session.commit()


def rows(page: str) -> list[str]:
    body = re.search(r"<tbody>(.*?)</tbody>", page, re.S)
    return [html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row))).strip()
            for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)] if body else []


def forget_sign_ins():
    """Signing in is audited; the tests below look at the events they make themselves."""
    db.session.execute(db.delete(AuditEvent).where(AuditEvent.target_type == "sign_in"))
    db.session.commit()


@pytest.fixture
def manager(actions):
    user = actions.login(Role.MANAGER.value, username="mgr")
    forget_sign_ins()
    return user


def test_events_are_listed_newest_first_with_actor_and_changes(client, manager):
    add_event(0, "organization.create", "organization", "Acme", {"name": "Acme"})
    add_event(5, "organization.update", "organization", "Acme", {"name": {"from": "Acme", "to": "Acme Labs"}})
    add_event(2, "user.update", "user", "dev@example.com", {"role": {"from": "member", "to": "manager"}},
              actor="root@example.com")
    listed = rows(client.get("/manage/audit/").get_data(as_text=True))
    assert listed == [
        '2026-01-05 09:35:00 UTC boss@example.com organization.update organization Acme name "Acme" → "Acme Labs"',
        '2026-01-05 09:32:00 UTC root@example.com user.update user dev@example.com role "member" → "manager"',
        "2026-01-05 09:30:00 UTC boss@example.com organization.create organization Acme name Acme",
    ]


def test_same_moment_events_keep_their_order(client, manager):
    for name in ("first", "second", "third"):
        add_event(0, "organization.create", "organization", name)
    assert [row.split()[-1] for row in rows(client.get("/manage/audit/").get_data(as_text=True))] == \
        ["third", "second", "first"]


def test_changes_made_in_the_app_show_up(client, actions, manager):
    actions.post("/manage/organizations/", {"name": "Acme"})
    org_id = db.session.scalar(db.select(AuditEvent.target_id))
    actions.post(f"/manage/organizations/{org_id}", {"name": "Acme Labs"})
    listed = rows(client.get("/manage/audit/").get_data(as_text=True))
    assert [r.split(" UTC ")[1] for r in listed] == [
        'mgr@example.com organization.update organization Acme name "Acme" → "Acme Labs"',
        "mgr@example.com organization.create organization Acme name Acme",
    ]
    assert 'datetime="' in client.get("/manage/audit/").get_data(as_text=True)


def test_password_change_is_recorded_without_the_password(client, actions):
    actions.login(Role.ADMIN.value, username="boss")
    dev = actions.user(Role.MEMBER.value, username="dev")
    forget_sign_ins()
    actions.post(f"/manage/users/{dev.id}/edit", {"email": dev.email, "username": "dev", "role": "member",
                                                  "active": "y", "password": "Hunter2-secret"})
    page = client.get("/manage/audit/").get_data(as_text=True)
    (row,) = rows(page)
    assert "user.update user dev@example.com password (redacted)" in row
    assert "Hunter2-secret" not in page
    assert "Hunter2-secret" not in str(db.session.scalar(db.select(AuditEvent.changes)))


@pytest.mark.parametrize("key", sorted(audit.SECRET_FIELDS))
def test_secret_fields_are_redacted(app, actions, key):
    user = actions.user()
    with app.test_request_context():
        audit.record("provider.update", user, {key: {"from": "old-secret", "to": "new-secret"}, "name": "east"},
                     actor=user)
    db.session.commit()
    changes = db.session.scalar(db.select(AuditEvent.changes))
    assert changes == {key: audit.REDACTED, "name": "east"}


@pytest.mark.parametrize("changes", [None, {}])
def test_redact_keeps_empty_changes(changes):
    assert audit.redact(changes) == changes


@pytest.mark.parametrize("target_type, shown", [
    ("organization", ["org.b", "org.a"]),
    ("user", ["user.a"]),
    ("provider", ["provider.a"]),
    ("", ["org.b", "provider.a", "user.a", "org.a"]),
])
def test_filter_by_type(client, manager, target_type, shown):
    add_event(0, "org.a", "organization", "Acme")
    add_event(1, "user.a", "user", "dev@example.com")
    add_event(2, "provider.a", "provider", "east")
    add_event(3, "org.b", "organization", "Globex")
    page = client.get(f"/manage/audit/?type={target_type}").get_data(as_text=True)
    assert [row.split()[4] for row in rows(page)] == shown
    selected = re.search(r'<option value="(\w*)" selected>', page).group(1)
    assert selected == target_type


def test_filter_for_htmx_returns_the_event_list_only(actions, manager):
    add_event(0, "org.a", "organization", "Acme")
    add_event(1, "user.a", "user", "dev@example.com")
    response = actions.htmx_get("/manage/audit/?type=user")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "HX-Request" in response.headers["Vary"]
    assert page.lstrip().startswith('<section id="audit-events">') and "<html" not in page
    assert [row.split()[4] for row in rows(page)] == ["user.a"]


def test_filter_form_offers_the_types(client, manager):
    page = client.get("/manage/audit/").get_data(as_text=True)
    assert re.findall(r'<option value="(\w*)"', page) == ["", "provider", "organization", "user", "sign_in", "api_token"]
    assert 'hx-get="/manage/audit/"' in page and 'hx-target="#audit-events"' in page


def test_empty_log(client, manager):
    assert "Nothing recorded yet." in client.get("/manage/audit/").get_data(as_text=True)


def test_pages_of_fifty(client, manager):
    for minute in range(51):
        add_event(minute, f"org.{minute}", "organization", "Acme")
    first = client.get("/manage/audit/?type=organization").get_data(as_text=True)
    assert len(rows(first)) == 50 and rows(first)[0].split()[4] == "org.50"
    assert "Page 1 of 2" in first and 'href="/manage/audit/?page=2&amp;type=organization">Older</a>' in first
    second = client.get("/manage/audit/?page=2&type=organization").get_data(as_text=True)
    assert [row.split()[4] for row in rows(second)] == ["org.0"] and ">Newer</a>" in second


@pytest.mark.parametrize("page", ["0", "-3", "abc", "99"])
def test_odd_page_numbers_do_not_fail(client, manager, page):
    add_event(0, "org.a", "organization", "Acme")
    assert client.get(f"/manage/audit/?page={page}").status_code == 200


def test_the_actor_name_outlives_the_user(client, actions):
    actions.login(Role.ADMIN.value, username="boss")
    dev = actions.user(Role.MANAGER.value, username="dev")
    with actions.app.test_request_context():
        audit.record("organization.create", dev, {"name": "Acme"}, actor=dev)
    db.session.commit()
    db.session.delete(dev)
    db.session.commit()
    db.session.expire_all()
    event = db.session.scalar(db.select(AuditEvent).filter_by(action="organization.create"))
    assert (event.actor_id, event.actor) == (None, "dev@example.com")
    assert "dev@example.com" in rows(client.get("/manage/audit/").get_data(as_text=True))[0]
