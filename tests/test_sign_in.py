"""Sign-in under attack (SPEC §8): failures throttled per account and per client address,
also across several gunicorn workers; an unknown account costs as much time as a known one;
sign-ins, failures and throttling in the audit log."""
import re
import statistics
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta
from http.cookiejar import CookieJar

import pytest
from werkzeug.security import generate_password_hash

from provider_admin.auth import signin, throttle
from provider_admin.extensions import db
from provider_admin.models import AuditEvent, Role, SignInThrottle, utcnow

from . import servers
from .conftest import PASSWORD, field_error

# These tests read and change the database directly, in the app's context.
pytestmark = pytest.mark.usefixtures("app_context")


def attempt(actions, email, password="wrong password", address="198.51.100.7"):
    client = actions.client
    token = actions.form_token("/login")
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token},
                       environ_base={"REMOTE_ADDR": address})


def audit_actions() -> list[str]:
    return db.session.scalars(db.select(AuditEvent.action).filter_by(target_type="sign_in")
                              .order_by(AuditEvent.id)).all()


def test_the_account_is_locked_after_five_failures_even_for_the_right_password(actions):
    user = actions.user(Role.ADMIN.value)
    for _ in range(5):
        response = attempt(actions, user.email)
        assert response.status_code == 422
        assert field_error(response.text, "password") == signin.WRONG
    locked = attempt(actions, user.email, PASSWORD)
    assert locked.status_code == 429
    assert re.match(r"Too many failed sign-ins\. Try again in \d+ seconds\.", field_error(locked.text, "password"))
    assert audit_actions() == ["auth.sign_in_failed"] * 5 + ["auth.sign_in_throttled"]


def test_each_failure_past_the_limit_doubles_the_lock(actions):
    user = actions.user(Role.ADMIN.value)
    keys = throttle.Keys.of(user.email, "198.51.100.7")
    for _ in range(5):
        attempt(actions, user.email)
    first = db.session.get(SignInThrottle, keys.account).locked_until
    db.session.execute(db.update(SignInThrottle).values(locked_until=None))  # the lock ran out
    db.session.commit()
    attempt(actions, user.email)
    db.session.expire_all()
    second = db.session.get(SignInThrottle, keys.account).locked_until
    assert timedelta(seconds=25) < first - utcnow() <= timedelta(seconds=30)
    assert timedelta(seconds=55) < second - utcnow() <= timedelta(seconds=60)


def test_the_lock_ends_and_a_success_clears_the_accounts_count(actions):
    user = actions.user(Role.ADMIN.value)
    for _ in range(5):
        attempt(actions, user.email)
    db.session.execute(db.update(SignInThrottle).values(locked_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert attempt(actions, user.email, PASSWORD).status_code == 303
    assert db.session.get(SignInThrottle, f"account:{user.email}") is None
    assert db.session.get(SignInThrottle, "address:198.51.100.7").failures == 5  # the address keeps its count


def test_unknown_accounts_are_counted_and_locked_like_known_ones(actions):
    actions.user()
    for _ in range(5):
        assert attempt(actions, "nobody@example.com").status_code == 422
    assert attempt(actions, "nobody@example.com").status_code == 429
    assert audit_actions()[-1] == "auth.sign_in_throttled"


def test_one_address_guessing_at_many_accounts_is_locked(actions):
    user = actions.user(Role.ADMIN.value)
    for n in range(20):
        assert attempt(actions, f"guess{n}@example.com", address="203.0.113.50").status_code == 422
    assert attempt(actions, user.email, PASSWORD, address="203.0.113.50").status_code == 429
    # Another address is not affected, nor is the account itself.
    assert attempt(actions, user.email, PASSWORD, address="203.0.113.51").status_code == 303


def test_a_window_without_a_lock_starts_again(actions):
    user = actions.user(Role.ADMIN.value)
    for _ in range(4):
        attempt(actions, user.email)
    db.session.execute(db.update(SignInThrottle).values(window_started_at=utcnow() - timedelta(minutes=16)))
    db.session.commit()
    attempt(actions, user.email)
    db.session.expire_all()
    assert db.session.get(SignInThrottle, f"account:{user.email}").failures == 1


def test_sign_ins_and_failures_are_audited_with_the_address(actions):
    user = actions.user(Role.MEMBER.value)
    attempt(actions, user.email, address="192.0.2.1")
    attempt(actions, "stranger@example.com", address="192.0.2.2")
    assert attempt(actions, user.email, PASSWORD, address="192.0.2.3").status_code == 303
    events = db.session.scalars(db.select(AuditEvent).filter_by(target_type="sign_in").order_by(AuditEvent.id)).all()
    assert [(e.action, e.target_name, e.changes["address"]) for e in events] == [
        ("auth.sign_in_failed", user.email, "192.0.2.1"),
        ("auth.sign_in_failed", "stranger@example.com", "192.0.2.2"),
        ("auth.sign_in", user.email, "192.0.2.3"),
    ]
    assert events[0].actor == "(not signed in) 192.0.2.1" and events[2].actor_id == user.id
    assert PASSWORD not in str([e.changes for e in events])


def test_the_audit_page_filters_sign_ins(client, actions):
    actions.login(Role.ADMIN.value)
    page = client.get("/manage/audit/?type=sign_in").text
    assert "auth.sign_in" in page


# --- timing -----------------------------------------------------------------------------

class TestTiming:
    @pytest.fixture
    def app_config(self):
        return {"SIGN_IN_MAX_FAILURES": 1000, "SIGN_IN_MAX_FAILURES_PER_ADDRESS": 1000}

    def test_an_unknown_account_costs_as_much_time_as_a_known_one(self, app, actions):
        user = actions.user(Role.MEMBER.value)
        user.password_hash = generate_password_hash(PASSWORD)  # the real default method
        db.session.commit()
        token = actions.form_token("/login")

        def median(email):
            times = []
            for _ in range(9):
                started = time.perf_counter()
                response = actions.client.post("/login", data={"email": email, "password": "wrong", "csrf_token": token})
                times.append(time.perf_counter() - started)
                assert response.status_code == 422
            return statistics.median(times)

        known, unknown = median(user.email), median("nobody@example.com")
        # Before, an unknown account answered without hashing: a ratio of about 0.02.
        assert 0.6 < unknown / known < 1.6, (unknown, known)


# --- several gunicorn workers ---------------------------------------------------------

@pytest.fixture
def gunicorn(database_url, tmp_path):
    """The app under gunicorn with three sync workers on the test database; yields its URL and
    the access log (each line: worker pid, status, path)."""
    log = tmp_path / "access.log"
    with servers.gunicorn(servers.environment(database_url, tmp_path / "instance"), log) as url:
        yield url, log


def post_sign_in(url: str, email: str, password: str) -> int:
    """A browser's sign-in: the form (with its CSRF token and cookie), then the post."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    page = opener.open(url + "/login", timeout=30).read().decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    data = urllib.parse.urlencode({"email": email, "password": password, "csrf_token": token}).encode()
    try:
        return opener.open(url + "/login", data=data, timeout=30).status
    except urllib.error.HTTPError as error:
        return error.code


def test_the_throttle_holds_across_gunicorn_workers(app, actions, gunicorn):
    url, log = gunicorn
    email = actions.user(Role.ADMIN.value).email
    statuses, lock = [], threading.Lock()

    def guess():
        status = post_sign_in(url, email, "wrong password")
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=guess) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(statuses) <= {422, 429} and statuses.count(422) >= 5
    # Whichever worker answers now, the account is locked, even for the right password.
    assert {post_sign_in(url, email, PASSWORD) for _ in range(6)} == {429}
    db.session.expire_all()
    # Every failure that was answered as one was counted: no update was lost between processes.
    assert db.session.get(SignInThrottle, f"account:{email}").failures == statuses.count(422)
    workers = {line.split()[0] for line in log.read_text().splitlines() if line.split()[1] in ("422", "429")}
    assert len(workers) >= 2, "the attempts should have been answered by several workers"
