"""What a providers list or poll shows, from its query string (the filters, the page), and
the SQL that selects and pages it. The filters are the JSON API's too (api/providers.py):
one rule for which providers match, written once here."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from itertools import combinations

from sqlalchemy import bindparam, func, select

from ..models import Organization, Provider, Status, organization_members, provider_organizations
from ..web import arg_int

PAGE_SIZE = 50
SEARCH_MAX = 64
STATUSES = tuple(status.value for status in Status)
# ?cordoned=yes|no on the page (the API takes a JSON boolean).
CORDONED = {"yes": True, "no": False}
# The page's filters, in the order of their query parameters.
PAGE_FILTERS = ("q", "status", "organization", "cordoned")


@dataclass(frozen=True)
class Scope:
    """What one list or badge poll covers: a page of the list (its filters and page number),
    the one provider of a provider's page, or the providers a member may see (those of the
    member's organizations: the status view, provider_admin/embed). `member` never comes
    from the query string."""

    q: str = ""
    page: int = 1
    provider_id: int | None = None
    status: str | None = None
    organization: int | None = None
    cordoned: bool | None = None
    member: int | None = None

    @classmethod
    def from_args(cls, args) -> Scope:
        provider_id = arg_int(args, "provider")
        if provider_id is not None:
            return cls(provider_id=provider_id)
        return cls.list_from_args(args)

    @classmethod
    def list_from_args(cls, args) -> Scope:
        """A page of the list, whatever else the query string holds: a filter that is not
        one (an unknown status, a bad id) is left out. The page says why (forms.py); a poll
        only shows what its page shows."""
        return cls(q=args.get("q", "").strip()[:SEARCH_MAX], page=arg_int(args, "page", 1),
                   status=args.get("status") if args.get("status") in STATUSES else None,
                   organization=arg_int(args, "organization"), cordoned=CORDONED.get(args.get("cordoned", "")))

    @property
    def is_list(self) -> bool:
        return self.provider_id is None

    @property
    def filters(self) -> dict:
        """The filters in effect, as the query string names them."""
        cordoned = {True: "yes", False: "no"}.get(self.cordoned)
        named = (("q", self.q), ("status", self.status), ("organization", self.organization),
                 ("cordoned", cordoned))
        return {k: v for k, v in named if v}

    @property
    def args(self) -> dict:
        """The query string that names this scope (empty for the list's first page, unfiltered)."""
        if not self.is_list:
            return {"provider": self.provider_id}
        return {**self.filters, **({"page": self.page} if self.page != 1 else {})}

    def on_page(self, page: int) -> Scope:
        return dataclasses.replace(self, page=page)

    @property
    def kind(self) -> tuple[str, ...] | str:
        """"provider", or the names of the filters in effect: scopes of a kind share their SQL
        statements."""
        if self.member is not None:
            return "member"
        return "provider" if not self.is_list else tuple(name for name in PAGE_FILTERS if name in self.filters)

    @property
    def params(self) -> dict:
        """The values of the bind parameters of the statements of its kind (queries.py)."""
        if not self.is_list:
            return {"provider": self.provider_id}
        if self.member is not None:
            return {"member": self.member, "limit": PAGE_SIZE, "offset": (self.page - 1) * PAGE_SIZE}
        return {**filter_params(q=self.q, status=self.status, organization=self.organization,
                                cordoned=self.cordoned),
                "limit": PAGE_SIZE, "offset": (self.page - 1) * PAGE_SIZE}


# Which providers match a filter, each with bind parameters for its value (filter_params).
# "organization_name" is the API's (an organization's name, any case); the page names one by id.
def _in_organization(condition):
    return Provider.id.in_(select(provider_organizations.c.provider_id)
                           .join(Organization, Organization.id == provider_organizations.c.organization_id)
                           .where(condition))


FILTERS = {
    "q": lambda: Provider.name.ilike(bindparam("pattern"), escape="\\"),
    "status": lambda: Provider.status == bindparam("status"),
    "organization": lambda: _in_organization(Organization.id == bindparam("organization")),
    "organization_name": lambda: _in_organization(
        func.lower(Organization.name) == func.lower(bindparam("organization_name"))),
    "cordoned": lambda: Provider.cordoned == bindparam("cordoned"),
}


def filter_params(**values) -> dict:
    """The bind parameters of FILTERS for these values (None or "": not filtered by it)."""
    params = {name: value for name, value in values.items() if value not in (None, "")}
    if "q" in params:
        pattern = params.pop("q").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params["pattern"] = f"%{pattern}%"
    return params


# The statements of the read path are built once per kind of scope, with bind parameters
# for what differs (Scope.params), so that SQLAlchemy computes their cache keys once.
KINDS = ("provider", "member") + tuple(kind for n in range(len(PAGE_FILTERS) + 1)
                              for kind in combinations(PAGE_FILTERS, n))


# The providers of the organizations a user belongs to.
_OF_MEMBER = (select(provider_organizations.c.provider_id)
              .join(organization_members,
                    organization_members.c.organization_id == provider_organizations.c.organization_id)
              .where(organization_members.c.user_id == bindparam("member")))


def where(kind) -> list:
    """The providers of a scope of this kind."""
    if kind == "provider":
        return [Provider.id == bindparam("provider")]
    if kind == "member":
        return [Provider.id.in_(_OF_MEMBER)]
    return [FILTERS[name]() for name in kind]


def paged(kind, statement):
    """`statement` limited to a page of the list, sorted by name."""
    if kind == "provider":
        return statement
    return statement.order_by(Provider.name).limit(bindparam("limit")).offset(bindparam("offset"))


def total(kind):
    """The number of providers of the scope, whatever its page (a scalar subquery)."""
    return select(func.count()).select_from(Provider).where(*where(kind)).scalar_subquery()


@dataclass
class ProviderPage:
    """One page of the list: its providers, their workspace counts, and the poll fingerprint."""

    scope: Scope
    providers: list
    counts: dict[int, int]
    total: int
    pages: int
    fingerprint: str

    @property
    def first(self) -> int:
        return (self.scope.page - 1) * PAGE_SIZE + 1 if self.providers else 0

    @property
    def last(self) -> int:
        return self.first + len(self.providers) - 1 if self.providers else 0

    def page_numbers(self, around: int = 2) -> list[int | None]:
        """1 … 4 5 [6] 7 8 … 20: the first, the last and a window; None marks a gap."""
        shown = {1, self.pages, *range(self.scope.page - around, self.scope.page + around + 1)}
        numbers, previous = [], 0
        for n in sorted(n for n in shown if 1 <= n <= self.pages):
            if n > previous + 1:
                numbers.append(None)
            numbers.append(n)
            previous = n
        return numbers
