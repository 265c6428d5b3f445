from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .. import audit
from ..extensions import db
from ..htmx import done
from ..problems import is_api_request
from ..models import Role, User
from .. import sessions
from . import bp, signin
from .forms import LoginForm, SetupForm


OUTSIDE_SIGN_IN = ("health", "metrics")  # read by machines, with rules of their own


def _has_users() -> bool:
    return db.session.scalar(db.select(User.id).limit(1)) is not None


@bp.before_app_request
def _setup_first():
    """Until the first admin exists, every page leads to the setup page (the API has no token
    to accept yet, and says so itself)."""
    from flask import current_app

    if request.endpoint in ("auth.setup", "static") or request.blueprint in OUTSIDE_SIGN_IN or \
            current_app.config.get("_HAS_USERS") or is_api_request():
        return None
    if _has_users():
        current_app.config["_HAS_USERS"] = True
        return None
    return redirect(url_for("auth.setup"))


@bp.route("/setup", methods=["GET", "POST"])
def setup():
    """Create the first site admin."""
    if _has_users():
        return redirect(url_for("auth.login"))
    form = SetupForm()
    if form.validate_on_submit():
        user = User(email=form.email.data.strip().lower(), username=form.username.data,
                    role=Role.ADMIN.value)
        if form.password.data:
            user.set_password(form.password.data)
        db.session.add(user)
        db.session.flush()
        audit.record("user.create", user, {"role": user.role}, actor=user)
        db.session.commit()
        sessions.start(user)
        flash("Welcome! You are the site admin.", "success")
        return done(url_for("providers.index"))
    return render_template("auth/setup.html", form=form), 422 if form.errors else 200


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in with email and password (or, when that is off, only with single sign-on)."""
    form, status = LoginForm(), 200
    if not current_app.config["PASSWORD_SIGN_IN"]:
        return render_template("auth/login.html", form=None), 403 if request.method == "POST" else 200
    if form.validate_on_submit():
        attempt = signin.attempt(form.email.data, form.password.data, request.remote_addr)
        db.session.commit()
        if attempt.user is not None:
            sessions.start(attempt.user)
            return done(_safe_next(request.args.get("next")))
        form.password.errors.append(attempt.error)
        status = attempt.status
    return render_template("auth/login.html", form=form), status if status != 200 else (422 if form.errors else 200)


@bp.post("/logout")
@login_required
def logout():
    """Sign out, here and in every other session of this account."""
    sessions.end_all(current_user)
    audit.record("auth.sign_out", current_user, actor=current_user, target_type="sign_in")
    db.session.commit()
    from ..oidc.views import end_session_url  # the oidc blueprint builds on this one

    provider_sign_out = end_session_url()  # read while the session still says how it began
    sessions.end()
    if provider_sign_out:  # a page that moves on: `form-action 'self'` stops a redirect there
        return render_template("oidc/signed_out.html", url=provider_sign_out)
    return done(url_for("auth.login"))


@bp.route("/")
def home():
    """Managers start on the providers, everyone else on their workspaces."""
    if current_user.is_authenticated and current_user.can_manage:
        return redirect(url_for("providers.index"))
    return redirect(url_for("workspaces.index"))


def _safe_next(target: str | None) -> str:
    # Only same-site relative paths: never an open redirect.
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("auth.home")
