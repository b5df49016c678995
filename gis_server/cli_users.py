"""``gis-server users add|list|disable|enable|password|key`` and ``gis-server audit``.

Accounts are managed from the command line by whoever runs the server (the
database's owner); every change is written to the audit log as
``cli:<os user>``.
"""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gis_server import audit
from gis_server.auth import accounts
from layers import ROLES

out = Console()

users_app = typer.Typer(
    help="Accounts and API keys (roles: " + ", ".join(ROLES) + ").",
    no_args_is_help=True,
)


def _engine():
    from gis_server import db
    from gis_server.settings import database_settings

    return db.open_engine(database_settings())


#: the person at the command line (the --as account, else cli:<os user>):
#: one definition, in gis_server.audit
cli_actor = audit.cli_actor


def _password(given: str | None, prompt: bool) -> str | None:
    if given is not None:
        return given
    env = os.environ.get("GIS_NEW_PASSWORD")
    if env:
        return env
    if prompt:
        return typer.prompt("password", hide_input=True, confirmation_prompt=True)
    return None


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="Account name.")],
    role: Annotated[str, typer.Option("--role", help=" | ".join(ROLES))],
    district: Annotated[
        str | None,
        typer.Option(help="Housing officers: their district (as in the layers)."),
    ] = None,
    chief_id: Annotated[
        str | None, typer.Option("--chief-id", help="River chiefs: their chief id.")
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            help="The password (else GIS_NEW_PASSWORD, else asked); "
            "omit with --no-password for a key-only account."
        ),
    ] = None,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="Key-only account (scripts).")
    ] = False,
    key: Annotated[bool, typer.Option("--key", help="Also create an API key.")] = False,
) -> None:
    """Create an account."""
    secret = None if no_password else _password(password, prompt=True)
    with _engine().begin() as conn:
        account = accounts.add_user(
            conn, username, role, secret, district=district, chief_id=chief_id
        )
        audit.record(
            conn,
            cli_actor(),
            "user.add",
            "user",
            username,
            after={"role": role, "district": district, "chief_id": chief_id},
        )
        new_key = accounts.create_key(conn, username, "cli") if key else None
        if new_key:
            audit.record(conn, cli_actor(), "key.create", "user", username)
    scope = account.district or account.chief_id or "all"
    out.print(f"user {username} added ({role}, scope {scope})")
    if new_key:
        out.print(f"API key (shown once): {new_key}", soft_wrap=True)


@users_app.command("list")
def users_list(
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Every account, its role, scope and live keys."""
    with _engine().connect() as conn:
        rows = accounts.list_users(conn)
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    table = Table("user", "role", "district", "chief id", "disabled", "keys")
    for r in rows:
        table.add_row(
            r["username"],
            r["role"],
            r["district"] or "",
            r["chief_id"] or "",
            "yes" if r["disabled"] else "",
            str(r["keys"]),
        )
    out.print(table)


def _set_disabled(username: str, disabled: bool) -> None:
    with _engine().begin() as conn:
        before = accounts.get_user(conn, username)
        accounts.set_disabled(conn, username, disabled)
        audit.record(
            conn,
            cli_actor(),
            "user.disable" if disabled else "user.enable",
            "user",
            username,
            before={"disabled": before.disabled},
            after={"disabled": disabled},
        )


@users_app.command("disable")
def users_disable(username: str) -> None:
    """Disable an account: its tokens and keys stop working (within seconds)."""
    _set_disabled(username, True)
    out.print(f"user {username} disabled")


@users_app.command("enable")
def users_enable(username: str) -> None:
    """Enable a disabled account again."""
    _set_disabled(username, False)
    out.print(f"user {username} enabled")


@users_app.command("password")
def users_password(
    username: str,
    password: Annotated[str | None, typer.Option(help="Else asked.")] = None,
) -> None:
    """Set an account's password."""
    secret = _password(password, prompt=True)
    with _engine().begin() as conn:
        accounts.set_password(conn, username, secret or "")
        audit.record(conn, cli_actor(), "user.password", "user", username)
    out.print(f"password of {username} changed")


@users_app.command("key")
def users_key(
    username: str,
    name: Annotated[str, typer.Option(help="What the key is for.")] = "default",
    revoke: Annotated[
        bool, typer.Option("--revoke", help="Revoke keys instead of creating one.")
    ] = False,
    prefix: Annotated[
        str | None, typer.Option(help="With --revoke: only keys starting so.")
    ] = None,
) -> None:
    """Create an API key (printed once) or revoke keys."""
    with _engine().begin() as conn:
        if revoke:
            n = accounts.revoke_keys(conn, username, prefix)
            audit.record(
                conn, cli_actor(), "key.revoke", "user", username, after={"keys": n}
            )
            out.print(f"{n} key(s) of {username} revoked")
            return
        key = accounts.create_key(conn, username, name)
        audit.record(
            conn, cli_actor(), "key.create", "user", username, after={"name": name}
        )
    out.print(key, soft_wrap=True)


def audit_command(
    target: Annotated[
        str | None, typer.Option(help="e.g. buildings/12 or a warning id.")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="An account name.")] = None,
    limit: Annotated[int, typer.Option(help="Entries (newest first).")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """The audit log: who changed what, when, before and after."""
    with _engine().connect() as conn:
        rows = audit.entries(conn, target=target, actor=actor, limit=limit)
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    table = Table("id", "at", "actor", "action", "target")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["at"].strftime("%Y-%m-%d %H:%M:%S"),
            r["actor"],
            r["action"],
            f"{r['target_kind']} {r['target']}",
        )
    out.print(table)
