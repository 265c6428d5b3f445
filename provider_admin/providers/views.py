from flask import flash, redirect, request, url_for

from .. import checks
from ..caches import caches
from ..conflicts import Gone
from ..forms import ConfirmForm
from ..htmx import done, is_fragment_request, render, render_rendered
from ..models import Provider
from ..workspaces import settings as workspace_settings
from . import bootstrap, bp, cluster, rows, scheduling, service
from .forms import CordonForm, DeleteForm, FilterForm, ProviderForm
from .queries import get_provider_or_404, workspace_count_of, workspaces_of


@bp.get("/")
def index():
    """The list of providers with their status, a page at a time, filtered by status,
    organization, cordon and name; a refused filter is said at its field (422)."""
    form = FilterForm(request.args, filter_organizations())
    status = 200 if form.validate() else 422
    scope = form.scope(request.args.get("page", ""))
    listing = rows.provider_list(scope)
    # An HTMX filter swaps the list only (typing keeps its focus): the filters' errors and the
    # announced count go along out of band.
    return render_rendered("providers/index.html", listing.html, status, "providers/_filters_oob.html",
                           form=form, scope=scope, total=listing.total)


def filter_organizations() -> list[tuple[int, str]]:
    """The organizations to filter by: every one, for the managers and admins who see this
    page, as read at most a second ago and before any commit since in this process."""
    return caches().organizations.fetch("all", service.organization_choices)


@bp.route("/new", methods=["GET", "POST"])
def create():
    """Register a new provider; it starts Pending."""
    form = ProviderForm(data={"affinity": scheduling.dumps(scheduling.DEFAULT_AFFINITY)})
    form.organizations.choices = service.organization_choices()
    if form.is_submitted() and service.check_form(None, form):
        provider, changes = service.save(None, form)
        if provider is None:
            return _form(form, None)
        checks.check_now(provider, trigger="save")
        flash(f"Provider {provider.name} created.", "success")
        _flash_e2e_notice(changes)
        return _saved(provider)
    return _form(form, None)


@bp.route("/<int:provider_id>/edit", methods=["GET", "POST"])
def update(provider_id: int):
    """Edit a provider; a save made by someone else in the meantime is a conflict."""
    provider = get_provider_or_404(provider_id)
    form = ProviderForm(provider=provider, data=service.form_data(provider))
    form.organizations.choices = service.organization_choices()
    if not (form.is_submitted() and service.check_form(provider, form)):
        return _form(form, provider)
    try:
        saved, changes = service.save(provider, form)
    except service.Conflict:
        return _conflict(form, provider_id)
    if saved is None:
        return _form(form, provider)
    checks.check_now(provider, trigger="save")
    flash(f"Provider {provider.name} updated.", "success")
    _flash_settings_notice(provider, changes)
    _flash_e2e_notice(changes)
    return _saved(provider)


@bp.get("/<int:provider_id>/menu")
def menu(provider_id: int):
    """The actions menu of one row."""
    provider = get_provider_or_404(provider_id)
    return render("providers/menu.html", "providers/_menu.html", provider=provider, confirm=ConfirmForm())


@bp.route("/<int:provider_id>/cordon", methods=["GET", "POST"])
def cordon(provider_id: int):
    """Stop new workspaces on a provider, keeping the ones it has."""
    provider = get_provider_or_404(provider_id)
    form = CordonForm()
    if form.validate_on_submit():
        name = provider.name  # it may be deleted right after: the message needs no reading
        service.cordon(provider, form.reason.data)
        flash(f"Provider {name} cordoned: it takes no new workspaces.", "success")
        return done(url_for(".index"), event="providersChanged", fragment="providers/_dialog_closed.html")
    status = 422 if form.errors else 200
    return render("providers/cordon.html", "providers/_cordon.html", status, provider=provider, form=form)


@bp.post("/<int:provider_id>/uncordon")
def uncordon(provider_id: int):
    """Let a cordoned provider take new workspaces again."""
    provider = get_provider_or_404(provider_id)
    name = provider.name
    if ConfirmForm().validate_on_submit() and service.uncordon(provider):
        flash(f"Provider {name} uncordoned.", "success")
    return _row(provider)


@bp.post("/<int:provider_id>/check")
def check(provider_id: int):
    """Check the provider's cluster now and show the result where it was asked for."""
    provider = get_provider_or_404(provider_id)
    if ConfirmForm().validate_on_submit() and checks.check_now(provider) is None:
        raise Gone("provider")  # deleted while its cluster was being checked
    if request.form.get("from") != "page":
        return _row(provider)
    if not is_fragment_request():
        return redirect(url_for(".show", provider_id=provider.id), code=303)
    return cluster.show(provider.id)  # the page's detail fragment, with the new result


@bp.route("/<int:provider_id>/delete", methods=["GET", "POST"])
def delete(provider_id: int):
    """Delete a provider after confirmation; refused while it has workspaces."""
    provider = get_provider_or_404(provider_id)
    form = DeleteForm()
    blocking = workspaces_of(provider)
    if form.validate_on_submit() and not blocking and not provider.is_builtin:
        # The record goes even when the cluster cannot be reached: what stays is said, with how.
        removal = bootstrap.remove(provider) if form.remove_bootstrap.data else None
        service.delete(provider, removal)
        flash(f"Provider {provider.name} deleted.", "success")
        if removal is not None:
            flash(removal.message(), "error" if removal.by_hand else "info")
        return done(url_for(".index"), event="providersChanged", fragment="providers/_dialog_closed.html")
    status = 422 if request.method == "POST" else 200
    return render("providers/delete.html", "providers/_delete.html", status,
                  provider=provider, form=form, blocking=blocking,
                  total=workspace_count_of(provider))


def _flash_settings_notice(provider: Provider, changes: dict) -> None:
    """Settings reach new workspaces only: say so, with the existing ones they do not reach."""
    notice = workspace_settings.saved_notice(changes, workspace_settings.of_provider(provider),
                                             workspace_settings.current(provider))
    if notice:
        flash(notice, "info")


def _flash_e2e_notice(changes: dict) -> None:
    if changes.get("e2e_encryption", {}).get("to"):
        flash("With end-to-end encryption on, users who connect over SSH must rerun "
              "coder config-ssh to regenerate their SSH configuration.", "info")


def _form(form, provider, status=None, conflict=False):
    status = status or (422 if form.errors else 200)
    return render("providers/form.html", "providers/_form.html", status,
                  form=form, provider=provider, conflict=conflict, standalone=_standalone())


def _standalone() -> bool:
    """The form is on its own page (opened by URL), not in the list's panel."""
    return not is_fragment_request() or request.form.get("standalone") == "1"


def _conflict(form, provider_id):
    """Keep what the user typed; take the current version so a second save wins knowingly."""
    current = get_provider_or_404(provider_id)
    form.version.data = str(current.version)
    return _form(form, current, status=409, conflict=True)


def _saved(provider):
    if _standalone():  # no list on the page to refresh: go to it
        return done(url_for(".index"))
    response = done(url_for(".index"), event="providersChanged", fragment="providers/_saved.html",
                    provider=provider)
    if is_fragment_request():
        response.headers["HX-Push-Url"] = url_for(".index")
    return response


def _row(provider):
    """A row action answers HTMX with the updated row, a plain request with the list."""
    if not is_fragment_request():
        return redirect(url_for(".index"), code=303)
    return render("providers/index.html", "providers/_row.html", provider=provider,
                  count=workspace_count_of(provider), confirm=ConfirmForm())
