"""Notifications end to end: the page (admins only), real webhook receivers and a real SMTP
server, the outbox with its retries and backoff, and a flapping provider summarised."""
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from provider_admin import kube
from provider_admin.checks import apply_result
from provider_admin.extensions import db
from provider_admin.models import (
    AuditEvent, NotificationDelivery, NotificationEvent, NotificationTarget, Role, utcnow,
)
from provider_admin.kube.connection import BLOCKED_NETWORKS
from provider_admin.notifications.channels import SendError, post
from provider_admin.notifications.outbox import Courier

from .conftest import field_error
from .notify import (  # noqa: F401  (fixtures)
    PAGE, SMTP_PASSWORD, SMTP_USER, add_target, receiver, shown_secret, smtp_server, smtp_starttls,
)

pytestmark = pytest.mark.usefixtures("app_context")


@pytest.fixture
def app_config():
    return {"NOTIFY_RETRY_BASE": 0.3, "NOTIFY_FLAP_WINDOW": 600, "NOTIFY_TIMEOUT": 2.0}


def tick(app, times=1):
    courier = Courier(app, worker="test-courier")
    return sum(courier.tick() for _ in range(times))


def deliveries(target):
    db.session.expire_all()
    return db.session.scalars(sa.select(NotificationDelivery).filter_by(target_id=target.id)
                              .order_by(NotificationDelivery.id)).all()


def status_result(ok: bool, message="connection refused"):
    return kube.CheckResult(ok=ok, category="ok" if ok else "unreachable", message="" if ok else message)


def check_result(provider, ok: bool, message="connection refused"):
    """A manual check's result written the way check_now writes it (no threshold)."""
    db.session.refresh(provider)
    apply_result(provider.id, status_result(ok, message), trigger="manual", full=True,
                 generation=provider.check_generation)
    db.session.commit()


# The page and who may see it --------------------------------------------------------------

def test_a_webhook_secret_is_shown_once_and_the_url_never(actions, client, receiver):
    actions.login()
    target, page = add_target(actions, "Ops hook", "webhook", receiver.url)
    secret = shown_secret(page)
    assert secret.startswith("whsec_") and len(secret) > 30
    assert target.secret_encrypted and secret.encode() not in target.secret_encrypted
    assert b"SECRETPATH" not in target.url_encrypted
    for url in (PAGE, "/manage/audit/"):
        text = client.get(url).get_data(as_text=True)
        assert secret not in text and "SECRETPATH" not in text and "SECRETQUERY" not in text
    assert f"http://127.0.0.1:{receiver.server.server_port}/…" in client.get(PAGE).get_data(as_text=True)
    event = db.session.scalar(sa.select(AuditEvent).filter_by(action="notification_target.create"))
    assert event.target_name == "Ops hook" and "SECRET" not in str(event.changes)


@pytest.mark.parametrize("role", [Role.MANAGER.value, Role.MEMBER.value])
def test_managers_and_members_are_refused(actions, client, role, make_provider):
    actions.user(Role.ADMIN.value)
    target = NotificationTarget(name="mail", kind="email", recipients="ops@example.com")
    db.session.add(target)
    db.session.commit()
    actions.login(role)
    assert client.get(PAGE).status_code == 403
    assert actions.post(PAGE, {"name": "x", "kind": "email", "recipients": "a@example.com"}).status_code == 403
    for action in ("test", "delete"):
        assert actions.post(f"{PAGE}{target.id}/{action}").status_code == 403
    assert db.session.scalar(sa.select(sa.func.count()).select_from(NotificationTarget)) == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(NotificationEvent)) == 0
    assert "Notifications" not in client.get("/workspaces/").get_data(as_text=True)  # not in their menu


def test_signed_out_visitors_are_sent_to_sign_in(actions, client):
    actions.user()
    response = client.get(PAGE)
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_changes_need_the_csrf_token(actions, client):
    actions.login()
    target = NotificationTarget(name="mail", kind="email", recipients="ops@example.com")
    db.session.add(target)
    db.session.commit()
    assert client.post(PAGE, data={"name": "x", "kind": "email", "recipients": "a@example.com"}).status_code == 400
    assert client.post(f"{PAGE}{target.id}/test").status_code == 400
    assert client.post(f"{PAGE}{target.id}/delete").status_code == 400
    assert db.session.scalar(sa.select(sa.func.count()).select_from(NotificationTarget)) == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(NotificationDelivery)) == 0


@pytest.mark.parametrize("kind, url, recipients, field, message", [
    ("webhook", "", "", "url", "Enter the webhook's URL."),
    ("webhook", "http://hooks.example.com/x", "", "url", "Must be https"),
    ("text", "https://169.254.169.254/latest/meta-data", "", "url", "cloud metadata address"),
    ("text", "https://[fe80::1]/hook", "", "url", "link-local address"),
    ("webhook", "https://metadata.google.internal/x", "", "url", "cloud metadata service"),
    ("webhook", "https://user:pw@hooks.example.com/x", "", "url", "user name or password"),
    ("webhook", "ftp://hooks.example.com/x", "", "url", "Must be an https URL"),
    ("webhook", "https://[::1/x", "", "url", "Not a valid URL"),
    ("email", "", "", "recipients", "at least one e-mail address"),
    ("email", "", "ops@example.com, not an address", "recipients", "not an address:"),
])
def test_bad_targets_are_refused_at_the_field(actions, kind, url, recipients, field, message):
    actions.login()
    response = actions.post(PAGE, {"name": "t", "kind": kind, "url": url, "recipients": recipients})
    assert response.status_code == 422
    assert message in field_error(response.get_data(as_text=True), field)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(NotificationTarget)) == 0


def test_link_local_webhooks_follow_the_clusters_setting(actions, app):
    actions.login()
    app.config["ALLOW_LINK_LOCAL_CLUSTERS"] = True
    target, _ = add_target(actions, "Local", "text", "https://169.254.10.10/hook")
    assert target.url_origin == "https://169.254.10.10"


def test_a_duplicate_name_is_refused(actions):
    actions.login()
    add_target(actions, "mail", "email", recipients="ops@example.com")
    response = actions.post(PAGE, {"name": "mail", "kind": "email", "recipients": "b@example.com"})
    assert response.status_code == 422
    assert field_error(response.get_data(as_text=True), "name") == "Another target has this name."


def test_removing_a_target_removes_its_log(actions, client):
    actions.login()
    target, _ = add_target(actions, "mail", "email", recipients="ops@example.com")
    response = actions.post(f"{PAGE}{target.id}/delete")
    assert response.status_code == 303
    assert db.session.scalar(sa.select(sa.func.count()).select_from(NotificationTarget)) == 0
    assert db.session.scalar(sa.select(AuditEvent.action).order_by(AuditEvent.id.desc()).limit(1)) == \
        "notification_target.delete"


# Send test --------------------------------------------------------------------------------

def test_send_test_reaches_a_signed_webhook_and_is_audited(actions, client, receiver):
    user = actions.login()
    target, page = add_target(actions, "Ops hook", "webhook", receiver.url)
    response = actions.post(f"{PAGE}{target.id}/test")
    assert response.status_code == 303
    [body] = receiver.verified(shown_secret(page))
    assert body["event"] == "test" and body["test"] is True and user.email in body["text"]
    assert receiver.requests[0]["path"] == "/hooks/T0SECRETPATH?key=SECRETQUERY"
    [delivery] = deliveries(target)
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("delivered", 1, 200)
    assert str(body["id"]) == receiver.requests[0]["headers"]["X-Provider-Admin-Delivery"] == str(delivery.id)
    text = client.get(PAGE).get_data(as_text=True)
    assert "The test message reached Ops hook." in text and "Delivered (200)" in text
    assert db.session.scalar(sa.select(AuditEvent.action).order_by(AuditEvent.id.desc()).limit(1)) == \
        "notification_target.test"


def test_a_failed_test_shows_the_answer_escaped(actions, client, receiver):
    actions.login()
    target, _ = add_target(actions, "Chat", "text", receiver.url)
    receiver.answer(500, b"<script>alert('owned')</script> upstream broke")
    actions.post(f"{PAGE}{target.id}/test")
    assert receiver.bodies() == [{"text": receiver.bodies()[0]["text"]}]
    assert receiver.bodies()[0]["text"].startswith("[test] A test message")
    [delivery] = deliveries(target)
    assert delivery.status == "failed" and delivery.attempts == 1  # a test is not retried
    page = client.get(PAGE).get_data(as_text=True)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#39;owned&#39;)&lt;/script&gt; upstream broke" in page


def test_a_redirect_is_not_followed(actions, receiver):
    actions.login()
    target, _ = add_target(actions, "Chat", "text", receiver.url)
    receiver.answer(302, headers={"Location": "http://169.254.169.254/latest/meta-data"})
    actions.post(f"{PAGE}{target.id}/test")
    [delivery] = deliveries(target)
    assert delivery.status == "failed" and "redirect" in delivery.last_error
    assert len(receiver.requests) == 1


def test_send_test_reaches_an_inbox(actions, app, smtp_server):
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_server.port, SMTP_SECURITY="none",
                      SMTP_FROM="alerts@example.com")
    actions.login()
    target, _ = add_target(actions, "Ops mail", "email", recipients="ops@example.com, Oncall@Example.com")
    actions.post(f"{PAGE}{target.id}/test")
    [mail] = smtp_server.inbox.messages
    assert mail["Subject"] == "[Provider Admin] [test] Test message for Ops mail"
    assert smtp_server.inbox.envelopes == [("alerts@example.com", ["ops@example.com", "Oncall@example.com"])]
    assert "this target works" in mail.get_content()
    assert deliveries(target)[0].status == "delivered"


@pytest.fixture
def starttls_settings(app, smtp_starttls):
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=smtp_starttls.port, SMTP_SECURITY="starttls",
                      SMTP_USER=SMTP_USER, SMTP_PASSWORD=SMTP_PASSWORD)
    return smtp_starttls


def test_mail_goes_over_starttls_and_signs_in(actions, monkeypatch, starttls_settings):
    monkeypatch.setenv("SSL_CERT_FILE", str(starttls_settings.ca_file))  # trust the test CA
    actions.login()
    target, _ = add_target(actions, "Ops mail", "email", recipients="ops@example.com")
    actions.post(f"{PAGE}{target.id}/test")
    assert deliveries(target)[0].status == "delivered"
    assert starttls_settings.logins == [(SMTP_USER, SMTP_PASSWORD)]
    assert len(starttls_settings.inbox.messages) == 1


def test_an_untrusted_mail_server_gets_no_password(actions, monkeypatch, tmp_path, starttls_settings):
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-ca.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    actions.login()
    target, _ = add_target(actions, "Ops mail", "email", recipients="ops@example.com")
    actions.post(f"{PAGE}{target.id}/test")
    delivery = deliveries(target)[0]
    assert delivery.status == "failed" and "CERTIFICATE_VERIFY_FAILED" in delivery.last_error
    assert starttls_settings.logins == [] and starttls_settings.inbox.messages == []


def test_a_wrong_mail_password_is_in_the_log(actions, app, monkeypatch, starttls_settings):
    monkeypatch.setenv("SSL_CERT_FILE", str(starttls_settings.ca_file))
    app.config["SMTP_PASSWORD"] = "wrong"
    actions.login()
    target, _ = add_target(actions, "Ops mail", "email", recipients="ops@example.com")
    actions.post(f"{PAGE}{target.id}/test")
    assert deliveries(target)[0].last_error.startswith("The mail server answered 535")
    assert starttls_settings.inbox.messages == []


def test_a_name_that_resolves_to_a_blocked_address_gets_no_request(receiver):
    url = receiver.url.replace("127.0.0.1", "localhost")
    with pytest.raises(SendError, match=r"^localhost resolves to a blocked address \(127\.0\.0\.1\)"):
        post(url, b"{}", {}, timeout=2, blocked=("127.0.0.0/8", "::1/128"))
    assert receiver.requests == []
    assert post(url, b"{}", {}, timeout=2, blocked=BLOCKED_NETWORKS) == 200  # the same, allowed


def test_without_a_mail_server_the_log_says_so(actions):
    actions.login()
    target, _ = add_target(actions, "Ops mail", "email", recipients="ops@example.com")
    actions.post(f"{PAGE}{target.id}/test")
    assert deliveries(target)[0].last_error == "No mail server is configured: set PROVIDER_ADMIN_SMTP_HOST."


# The outbox: events, retries, flapping ----------------------------------------------------

def test_a_failing_receiver_is_retried_with_backoff_until_it_answers(actions, app, receiver, make_provider):
    actions.login()
    target, page = add_target(actions, "Ops hook", "webhook", receiver.url)
    provider = make_provider("db-eu-1", status="ready")
    receiver.answer(503, b"busy", times=2)
    check_result(provider, ok=False)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and deliveries(target)[0].status == "pending":
        tick(app)
        time.sleep(0.05)
    [delivery] = deliveries(target)
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    first, second, third = (r["at"] for r in receiver.requests)
    assert second - first >= 0.3 and third - second >= 0.6  # the wait doubles
    bodies = receiver.verified(shown_secret(page))
    assert len({b["id"] for b in bodies}) == 1  # one delivery, tried three times
    assert bodies[0]["event"] == "provider.status" and bodies[0]["text"] == "db-eu-1 is now Error: connection refused"
    assert bodies[0]["data"]["provider"]["status"] == "error"


def test_after_the_last_attempt_a_delivery_is_failed(actions, app, receiver, make_provider):
    app.config["NOTIFY_MAX_ATTEMPTS"] = 2
    actions.login()
    target, _ = add_target(actions, "Chat", "text", receiver.url)
    receiver.answer(500, b"down", times=5)
    check_result(make_provider("db-eu-1", status="ready"), ok=False)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and deliveries(target)[0].status == "pending":
        tick(app)
        time.sleep(0.05)
    [delivery] = deliveries(target)
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 2, 500)
    assert delivery.last_error == "Answered 500 Internal Server Error: down"
    tick(app)
    assert len(receiver.requests) == 2


def test_a_flapping_provider_is_summarised(actions, app, receiver, make_provider):
    app.config["NOTIFY_FLAP_WINDOW"] = 8
    actions.login()
    add_target(actions, "Chat", "text", receiver.url)
    provider = make_provider("db-eu-1", status="ready")
    went_down = time.time()
    check_result(provider, ok=False)  # told at once
    tick(app)
    assert [b["text"] for b in receiver.bodies()] == ["db-eu-1 is now Error: connection refused"]
    for ok in (True, False, True, False):  # within the window: held, and merged
        check_result(provider, ok=ok, message="etcd is gone")
    deadline = time.monotonic() + 20
    while len(receiver.requests) < 2 and time.monotonic() < deadline:
        tick(app)
        time.sleep(0.2)
    tick(app)
    assert [b["text"] for b in receiver.bodies()] == [
        "db-eu-1 is now Error: connection refused",
        "db-eu-1 changed status 4 times in 8 seconds; now Error: etcd is gone"]
    assert receiver.requests[1]["at"] >= went_down + 8  # held until the window ended


def test_a_warning_below_the_threshold_is_not_told(app, actions, receiver, make_provider):
    actions.login()
    add_target(actions, "Chat", "text", receiver.url)
    provider = make_provider("db-eu-1", status="ready")
    apply_result(provider.id, status_result(False), trigger="scheduled", full=False,
                 generation=provider.check_generation)  # 1 of 2 failures: still Ready
    db.session.commit()
    tick(app)
    assert receiver.requests == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(NotificationEvent)) == 0


def test_cordon_and_uncordon_are_told(actions, app, receiver, make_provider):
    user = actions.login()
    add_target(actions, "Chat", "text", receiver.url)
    provider = make_provider("db-eu-1")
    assert actions.post(f"/manage/providers/{provider.id}/cordon",
                        {"reason": "kernel upgrade", "version": str(provider.version)}).status_code in (200, 303)
    db.session.refresh(provider)
    assert actions.post(f"/manage/providers/{provider.id}/uncordon").status_code in (200, 303)
    tick(app)
    assert [b["text"] for b in receiver.bodies()] == [
        f"db-eu-1 is cordoned by {user.email}: kernel upgrade (no new workspaces start there)",
        f"db-eu-1 is uncordoned by {user.email}: new workspaces may start there again"]


def test_an_expiring_token_is_told_once(actions, app, receiver, make_provider):
    user = actions.login()
    add_target(actions, "Chat", "text", receiver.url)
    expires = utcnow() + timedelta(days=3)
    make_provider("db-eu-1", token_expires_at=expires)
    make_provider("later", token_expires_at=utcnow() + timedelta(days=30))
    from provider_admin.tokens import service as tokens

    token, _ = tokens.create(user, "CI", 7, True)
    tick(app)
    Courier(app, worker="another").tick()  # a second scheduler finds them told already
    texts = sorted(b["text"] for b in receiver.bodies())
    assert texts == [
        f"The API token \"CI\" of {user.email} expires on {token.expires_at:%Y-%m-%d %H:%M} UTC: renew it before then.",
        f"The cluster token of db-eu-1 expires on {expires:%Y-%m-%d %H:%M} UTC: renew it before then."]


def test_two_couriers_deliver_each_message_once(actions, app, receiver, make_provider):
    import threading

    actions.login()
    target, _ = add_target(actions, "Chat", "text", receiver.url)
    for i in range(12):
        check_result(make_provider(f"p{i}", status="ready"), ok=False)
    couriers = [Courier(app, worker=f"w{i}") for i in range(2)]
    threads = [threading.Thread(target=c.tick) for c in couriers for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    texts = [b["text"] for b in receiver.bodies()]
    assert sorted(texts) == sorted(f"p{i} is now Error: connection refused" for i in range(12))
    assert all(d.status == "delivered" and d.attempts == 1 for d in deliveries(target))
