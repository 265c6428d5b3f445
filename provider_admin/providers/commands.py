"""`flask --app app providers export|apply`: providers kept in a file (e.g. in git)."""
import sys
from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError

from ..cli import COMMAND_LINE
from ..conflicts import Conflict, Gone
from ..extensions import db
from . import declarative

cli = AppGroup("providers", help="Export providers to a YAML file, or make them match one.")


@cli.command("export")
@click.option("-o", "--output", type=click.File("w"), default="-", help="Write here instead of standard output.")
def export(output):
    """Write every provider (not the built-in one) as YAML, without credentials."""
    output.write(declarative.export())


@cli.command("apply")
@click.option("-f", "--filename", "path", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="The YAML file ('-' for standard input).")
@click.option("--dry-run", is_flag=True, help="Print what would change, change nothing.")
@click.option("--prune", is_flag=True, help="Also delete providers that are not in the file.")
def apply(path, dry_run, prune):
    """Make the providers match the file: print the changes, then make them (all or nothing)."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    base = Path.cwd() if path == "-" else Path(path).resolve().parent
    try:
        changes = declarative.plan(text, base=base, prune=prune)
    except declarative.FileError as error:
        for problem in error.problems:
            click.echo(f"{path}: {problem}", err=True)
        raise SystemExit(1)
    for change in changes:
        click.echo("\n".join(change.lines()))
    todo = [c for c in changes if c.action != "unchanged"]
    if not todo:
        click.echo("Nothing to change.")
        return
    if dry_run:
        click.echo(f"{len(todo)} change(s) not made (dry run).")
        return
    try:
        declarative.apply(changes, COMMAND_LINE)
    except declarative.FileError as error:  # found only while writing, e.g. a name just taken
        for problem in error.problems:
            click.echo(f"{path}: {problem}", err=True)
        raise SystemExit(1)
    except (Conflict, Gone, StaleDataError, ObjectDeletedError, IntegrityError):
        db.session.rollback()
        click.echo("A provider was changed or deleted by someone else while the file was being applied; "
                   "the changes made before stay. Apply the file again to see what is left to do.", err=True)
        raise SystemExit(1)
    click.echo(f"{len(todo)} change(s) made.")
