"""The badge poll's views: "unchanged" while a page's fingerprint holds, else the changed rows."""
import json

from flask import Response, request

from ..auth.roles import confirm_roles, recent_role_will_do
from ..checks.heartbeat import banner_is_current
from ..htmx import render
from ..models import Provider
from . import bp
from .fingerprint import Shown, fingerprint_of, status_fingerprint, status_snapshot
from .queries import providers_by_id
from .scope import Scope


@bp.get("/status")
@recent_role_will_do
def status():
    """The badge poll: 204 while what the page shows (its rows and the stale statuses banner) is
    current, else ask for its versions. The 204 says only "unchanged", so it may rest on the
    role seen a few seconds ago."""
    if request.args.get("fp") == status_fingerprint(Scope.from_args(request.args)) and \
            banner_is_current(request.args.get("stale")):
        return Response(status=204)
    denied = confirm_roles()
    if denied is not None:
        return denied
    return Response(status=200, headers={"HX-Trigger": json.dumps({"providerStatusStale": True})})


@bp.post("/status")
def sync_status():
    """The rows whose version changed since the page showed them, out of band, with a new poll
    (and the stale statuses banner when it changed); a list whose set of providers changed is
    told to reload instead."""
    scope = Scope.from_args(request.args)
    now = status_snapshot(scope)
    known = _parse_known(request.form.get("known", ""))
    shown_total = request.form.get("fp", "").partition("-")[0]
    if scope.is_list and (shown_total != str(now.total) or set(known) != {row.id for row in now.shown}):
        return Response(status=200, headers={"HX-Trigger": json.dumps({"providersChanged": True})})
    changed = [row.id for row in now.shown if _differs(known.get(row.id), row)]
    return render("providers/_status.html", "providers/_status.html",
                  providers=providers_by_id(changed) if changed else [],
                  counts={row.id: row.workspaces for row in now.shown},
                  fingerprint=now.fingerprint, poll_scope=scope.args,
                  banner_changed=not banner_is_current(request.form.get("stale")))


@bp.app_template_global()
def provider_fingerprint(provider: Provider, count: int) -> str:
    """The poll fingerprint of a provider's own page."""
    return fingerprint_of(1, [(provider, count)])


def _parse_known(text: str) -> dict[int, tuple[int, ...]]:
    """"id.version.workspaces,..." as the page sends it (a provider's page: "id.version")."""
    known = {}
    for item in text.split(",")[:1000]:
        ident, *numbers = item.split(".")
        if ident.isdigit() and numbers and all(n.isdigit() for n in numbers):
            known[int(ident)] = tuple(int(n) for n in numbers[:2])
    return known


def _differs(known: tuple[int, ...] | None, row: Shown) -> bool:
    return known is None or known != (row.version, row.workspaces)[: len(known)]
