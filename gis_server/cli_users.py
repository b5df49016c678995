"""``gis-server users add|list|set|disable|enable|password|key|keys`` and
``gis-server audit``.

Accounts are managed from the command line by whoever runs the server (the
database's owner), or by administrators through ``/admin/users``: both call
``gis_server.auth.manage``, which writes every change to the audit log (here
as ``cli:<os user>``).
"""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gis_server import audit
from gis_server.auth import accounts, manage
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
    generate: Annotated[
        bool,
        typer.Option("--generate-password", help="Generate one and print it once."),
    ] = False,
    key: Annotated[bool, typer.Option("--key", help="Also create an API key.")] = False,
) -> None:
    """Create an account."""
    secret = None if no_password or generate else _password(password, prompt=True)
    with _engine().begin() as conn:
        created = manage.create_user(
            conn,
            cli_actor(),
            username,
            role,
            district=district,
            chief_id=chief_id,
            password=secret,
            generate_password=generate,
            key_name="cli" if key else None,
        )
    user = created.user
    scope = user["district"] or user["chief_id"] or "all"
    out.print(f"user {username} added ({role}, scope {scope})")
    if created.password:
        out.print(f"password (shown once): {created.password}", soft_wrap=True)
    if created.key:
        out.print(f"API key (shown once): {created.key.key}", soft_wrap=True)


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


def _update(username: str, **changes) -> dict:
    with _engine().begin() as conn:
        return manage.update_user(conn, cli_actor(), username, **changes)


@users_app.command("disable")
def users_disable(username: str) -> None:
    """Disable an account: its tokens and keys stop working (within seconds)."""
    _update(username, disabled=True)
    out.print(f"user {username} disabled")


@users_app.command("enable")
def users_enable(username: str) -> None:
    """Enable a disabled account again."""
    _update(username, disabled=False)
    out.print(f"user {username} enabled")


@users_app.command("set")
def users_set(
    username: str,
    role: Annotated[str | None, typer.Option(help=" | ".join(ROLES))] = None,
    district: Annotated[
        str | None, typer.Option(help="Housing officers: their district.")
    ] = None,
    chief_id: Annotated[
        str | None, typer.Option("--chief-id", help="River chiefs: their chief id.")
    ] = None,
    display_name: Annotated[
        str | None, typer.Option("--display-name", help="Name shown in lists.")
    ] = None,
) -> None:
    """Change an account's role, district, chief id or display name."""
    given = {
        "role": role,
        "district": district,
        "chief_id": chief_id,
        "display_name": display_name,
    }
    changes = {k: v for k, v in given.items() if v is not None}
    if not changes:
        raise typer.BadParameter("nothing to change")
    user = _update(username, **changes)
    scope = user["district"] or user["chief_id"] or "all"
    out.print(f"user {username}: {user['role']}, scope {scope}")


@users_app.command("password")
def users_password(
    username: str,
    password: Annotated[str | None, typer.Option(help="Else asked.")] = None,
    generate: Annotated[
        bool,
        typer.Option("--generate", help="Generate one and print it once."),
    ] = False,
) -> None:
    """Set an account's password."""
    secret = None if generate else _password(password, prompt=True) or ""
    with _engine().begin() as conn:
        generated = manage.set_password(conn, cli_actor(), username, secret)
    out.print(f"password of {username} changed")
    if generated:
        out.print(f"password (shown once): {generated}", soft_wrap=True)


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
    key_id: Annotated[
        int | None, typer.Option("--id", help="With --revoke: only this key.")
    ] = None,
) -> None:
    """Create an API key (printed once) or revoke keys."""
    with _engine().begin() as conn:
        if revoke and key_id is not None:
            manage.revoke_key(conn, cli_actor(), username, key_id)
            out.print(f"key {key_id} of {username} revoked")
            return
        if revoke:
            n = manage.revoke_keys(conn, cli_actor(), username, prefix)
            out.print(f"{n} key(s) of {username} revoked")
            return
        new = manage.create_key(conn, cli_actor(), username, name)
    out.print(new.key, soft_wrap=True)


@users_app.command("keys")
def users_keys(
    username: str,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """An account's API keys: id, name, prefix, created, last used, revoked."""
    with _engine().connect() as conn:
        rows = accounts.list_keys(conn, username)
    if as_json:
        out.print_json(json.dumps(rows, default=str))
        return
    table = Table("id", "name", "prefix", "created", "last used", "revoked")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["name"],
            r["prefix"],
            _when(r["created_at"]),
            _when(r["last_used_at"]),
            _when(r["revoked_at"]),
        )
    out.print(table)


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else ""


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
