"""SPEC §11's "done when": a provider going down reaches a webhook and an inbox once, signed,
even with two schedulers; the delivery log shows it. Two real scheduler processes on
PostgreSQL, a provider whose Kubernetes API goes away, a real webhook receiver and a real
SMTP server."""
import time

import pytest
import sqlalchemy as sa

from provider_admin.extensions import db
from provider_admin.models import NotificationDelivery, utcnow
from tests.conftest import TEST_DATABASE_URL

from .notify import PAGE, add_target, receiver, shown_secret, smtp_server  # noqa: F401  (fixtures)
from .test_scheduler_processes import start_scheduler, stop, wait_ready

pytestmark = [pytest.mark.usefixtures("app_context"),
              pytest.mark.skipif(not TEST_DATABASE_URL, reason="needs PROVIDER_ADMIN_TEST_DATABASE_URL")]


def test_a_provider_going_down_is_told_once_to_each_target_with_two_schedulers(
        tmp_path, monkeypatch, actions, client, kube_api, kube_provider, receiver, smtp_server):
    for name, value in {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": smtp_server.port, "SMTP_SECURITY": "none",
                        "SMTP_FROM": "alerts@example.com", "NOTIFY_TIMEOUT": 2}.items():
        monkeypatch.setenv(f"PROVIDER_ADMIN_{name}", str(value))  # the schedulers' environment
    actions.login()
    webhook, page = add_target(actions, "Ops hook", "webhook", receiver.url)
    mail, _ = add_target(actions, "Ops mail", "email", recipients="oncall@example.com")
    kube_api.deploy_marker("db-eu-1")
    kube_provider(kube_api, name="db-eu-1", status="ready", last_permissions_check_at=utcnow())
    kube_api.stop()  # the cluster goes away: Error after two failed checks
    a, b = start_scheduler(tmp_path, "a"), start_scheduler(tmp_path, "b")
    try:
        wait_ready(a, b)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (receiver.requests and smtp_server.inbox.messages):
            time.sleep(0.2)
        time.sleep(3)  # time enough for a second copy, were there one
    finally:
        stop(a, b)
    [body] = receiver.verified(shown_secret(page))
    assert body["event"] == "provider.status" and body["data"]["provider"]["status"] == "error"
    assert body["text"].startswith("db-eu-1 is now Error: ")
    [message] = smtp_server.inbox.messages
    assert message["Subject"] == "[Provider Admin] db-eu-1 is down (Error)"
    assert message.get_content().strip() == body["text"]
    db.session.expire_all()
    log = db.session.scalars(sa.select(NotificationDelivery).order_by(NotificationDelivery.target_id)).all()
    assert [(d.target_id, d.status, d.attempts, d.claimed_by) for d in log] == [
        (webhook.id, "delivered", 1, None), (mail.id, "delivered", 1, None)]
    assert str(log[0].id) == receiver.requests[0]["headers"]["X-Provider-Admin-Delivery"]
    shown = client.get(PAGE).get_data(as_text=True)
    for delivery in log:
        row = shown.split(f'id="delivery-{delivery.id}"', 1)[1].split("</tr>", 1)[0]
        assert "db-eu-1 is down (Error)" in row and "Delivered" in row and "1 of 6" in row
