"""What a providers list or poll shows, from its query string (the search, the page), and
the SQL that selects and pages it."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, func, select

from ..models import Provider, organization_members, provider_organizations
from ..web import arg_int

PAGE_SIZE = 50
SEARCH_MAX = 64


@dataclass(frozen=True)
class Scope:
    """What one list or badge poll covers: a page of the list (search and page number), the
    one provider of a provider's page, or the providers a member may see (those of the
    member's organizations: the status view, provider_admin/embed). `member` never comes
    from the query string."""

    q: str = ""
    page: int = 1
    provider_id: int | None = None
    member: int | None = None

    @classmethod
    def from_args(cls, args) -> Scope:
        provider_id = arg_int(args, "provider")
        if provider_id is not None:
            return cls(provider_id=provider_id)
        return cls.list_from_args(args)

    @classmethod
    def list_from_args(cls, args) -> Scope:
        """A page of the list, whatever else the query string holds."""
        return cls(q=args.get("q", "").strip()[:SEARCH_MAX], page=arg_int(args, "page", 1))

    @property
    def is_list(self) -> bool:
        return self.provider_id is None

    @property
    def args(self) -> dict:
        """The query string that names this scope (empty for the list's first page)."""
        if not self.is_list:
            return {"provider": self.provider_id}
        return {k: v for k, v in (("q", self.q), ("page", self.page)) if v and v != 1}

    @property
    def kind(self) -> str:
        """"all", "search", "provider" or "member": scopes of a kind share their SQL statements."""
        if self.member is not None:
            return "member"
        return "provider" if not self.is_list else "search" if self.q else "all"

    @property
    def params(self) -> dict:
        """The values of the bind parameters of the statements of its kind (queries.py)."""
        if not self.is_list:
            return {"provider": self.provider_id}
        if self.member is not None:
            return {"member": self.member, "limit": PAGE_SIZE, "offset": (self.page - 1) * PAGE_SIZE}
        pattern = self.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return {"pattern": f"%{pattern}%", "limit": PAGE_SIZE, "offset": (self.page - 1) * PAGE_SIZE}


# The statements of the read path are built once per kind of scope, with bind parameters
# for what differs (Scope.params), so that SQLAlchemy computes their cache keys once.
KINDS = ("all", "search", "provider", "member")

# The providers of the organizations a user belongs to.
_OF_MEMBER = (select(provider_organizations.c.provider_id)
              .join(organization_members,
                    organization_members.c.organization_id == provider_organizations.c.organization_id)
              .where(organization_members.c.user_id == bindparam("member")))


def where(kind: str) -> list:
    """The providers of a scope of this kind."""
    if kind == "provider":
        return [Provider.id == bindparam("provider")]
    if kind == "member":
        return [Provider.id.in_(_OF_MEMBER)]
    if kind == "search":
        return [Provider.name.ilike(bindparam("pattern"), escape="\\")]
    return []


def paged(kind: str, statement):
    """`statement` limited to a page of the list, sorted by name."""
    if kind == "provider":
        return statement
    return statement.order_by(Provider.name).limit(bindparam("limit")).offset(bindparam("offset"))


def total(kind: str):
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
