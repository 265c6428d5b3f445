"""The layout rules of the package (STYLE.md §3, §4, §15), checked on the source text.

- `provider_admin/kube/` is the Kubernetes boundary: it imports nothing from the rest of
  the app, so that it can be read, tested and reused on its own.
- No file under `provider_admin/` is over MAX_FILE_LINES lines.
- No view function is over MAX_VIEW_LINES lines.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "provider_admin"
KUBE = PACKAGE / "kube"
MAX_FILE_LINES = 400
MAX_VIEW_LINES = 25
ROUTE_DECORATORS = {"route", "get", "post", "put", "patch", "delete"}


def modules(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def dotted_name(path: Path) -> str:
    """provider_admin/kube/client.py -> provider_admin.kube.client; a package is its folder."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(path: Path) -> str:
    """The package a module's relative imports start from."""
    return dotted_name(path) if path.name == "__init__.py" else dotted_name(path).rpartition(".")[0]


def imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """Every module an import statement names, made absolute, with its line number.
    `from . import x` names `<package>.x`: x may be a module, so it is counted as one."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append((node.lineno, node.module))
                continue
            parts = package.split(".")
            base = ".".join(parts[:len(parts) - (node.level - 1)])
            if node.module:
                found.append((node.lineno, f"{base}.{node.module}"))
            else:
                found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def outside_kube(name: str) -> bool:
    """Whether a module is part of the app but not of its kube/ package."""
    return name == "provider_admin" or (
        name.startswith("provider_admin.") and not (name + ".").startswith("provider_admin.kube."))


def imports_outside_kube(source: str, package: str) -> list[tuple[int, str]]:
    return [(line, name) for line, name in imported_modules(source, package) if outside_kube(name)]


def test_the_boundary_check_finds_every_way_of_reaching_out():
    source = """
import json
import yaml
from . import errors as e
from .client import send
from .. import audit
from ..models import Provider
from provider_admin import scheduling
from provider_admin.kube import connection
import provider_admin.web
def later():
    from ..extensions import db
"""
    assert [name for _, name in imports_outside_kube(source, "provider_admin.kube")] == [
        "provider_admin.audit", "provider_admin.models", "provider_admin", "provider_admin.web",
        "provider_admin.extensions"]
    assert package_of(KUBE / "__init__.py") == package_of(KUBE / "client.py") == "provider_admin.kube"


def test_kube_imports_nothing_from_the_rest_of_the_app():
    outside = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
               for path in modules(KUBE)
               for line, name in imports_outside_kube(path.read_text(encoding="utf-8"), package_of(path))]
    assert outside == [], "kube/ must not import from the rest of the app:\n" + "\n".join(outside)


@pytest.mark.parametrize("path", [pytest.param(path, id=str(path.relative_to(PACKAGE)))
                                  for path in modules(PACKAGE)])
def test_no_file_is_over_the_line_limit(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_FILE_LINES, f"{path.relative_to(PACKAGE.parent)} has {lines} lines; split it by concern"


def is_route(decorator: ast.expr) -> bool:
    """`@bp.get(...)`, `@bp.route(...)` and the like: a call of a blueprint's route method."""
    return (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
            and decorator.func.attr in ROUTE_DECORATORS and isinstance(decorator.func.value, ast.Name)
            and decorator.func.value.id.endswith("bp"))


def view_length(function: ast.FunctionDef) -> int:
    """The lines of a view: from its `def` line to the last line of its body, blank lines and
    comments included; its decorators and its docstring do not count."""
    length = function.end_lineno - function.lineno + 1
    first = function.body[0]
    if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        length -= first.end_lineno - first.lineno + 1
    return length


def views(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(map(is_route, node.decorator_list)):
            yield node


def test_the_view_length_counts_the_def_and_body_but_not_decorator_or_docstring():
    source = '''
@bp.post("/x")
@other
def view():
    """One line.

    And more."""
    a = 1

    # why
    return a
'''
    (function,) = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.FunctionDef)]
    assert is_route(function.decorator_list[0]) and not is_route(function.decorator_list[1])
    assert view_length(function) == 5  # def, a = 1, blank, comment, return


def test_no_view_is_over_the_line_limit():
    long = [f"{path.relative_to(PACKAGE.parent)}:{view.lineno} {view.name} has {view_length(view)} lines"
            for path in modules(PACKAGE) for view in views(path) if view_length(view) > MAX_VIEW_LINES]
    assert long == [], f"views over {MAX_VIEW_LINES} lines (load, validate, change, commit, respond):\n" + \
        "\n".join(long)
