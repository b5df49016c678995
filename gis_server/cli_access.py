"""What ``gis-server --as ACCOUNT`` lets an account do: one table, every command.

With ``--as`` the command line runs with an account's scope, as the API
would serve it: its database connections are pinned to the account's
database role (``gis_server.auth.dbsecurity.pin``), and before any command
runs :func:`check` applies the policy here -- the same
``gis_server.auth.policy`` questions the routes ask. A command not listed in
:data:`RULES` is the server's own work (migrations, risk and model runs,
accounts, the audit log, serving) and is refused to every account but an
administrator's: a new command is closed until it is listed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import typer

from gis_server.auth import policy
from gis_server.auth.principal import CURRENT, Principal
from gis_server.errors import Forbidden
from layers import all_layers, get_layer

#: (principal, command path) -> None, or a domain error refusing it
Check = Callable[[Principal, tuple[str, ...]], None]


def _servers_own(principal: Principal, path: tuple[str, ...]) -> None:
    raise Forbidden(
        f"`gis-server {' '.join(path)}` is the server's own work: run it without "
        f"--as (or as an administrator), not as {principal.role}"
    )


def _anyone(principal: Principal, path: tuple[str, ...]) -> None:
    """The command shows only what the account reads (``layers``) or no
    data at all (``risk settings``)."""


def _reads(layer_id: str) -> Check:
    def check(principal: Principal, path: tuple[str, ...]) -> None:
        policy.require_read(principal, get_layer(layer_id))

    return check


def _may(permission: str, layer_id: str) -> Check:
    def check(principal: Principal, path: tuple[str, ...]) -> None:
        # in the order POST /patrols asks
        policy.require(principal, permission)
        policy.require_read(principal, get_layer(layer_id))

    return check


def _has(permission: str) -> Check:
    def check(principal: Principal, path: tuple[str, ...]) -> None:
        policy.require(principal, permission)

    return check


def _writes_layer(principal: Principal, path: tuple[str, ...]) -> None:
    """``ingest LAYER``: the layer's write scope (the database's row-level
    policy admits only rows inside it: a housing officer's own district)."""
    policy.require_write(principal, get_layer(path[-1]))


#: Commands an account other than an administrator may run, and the check.
RULES: dict[tuple[str, ...], Check] = {
    ("layers",): _anyone,
    ("risk", "settings"): _anyone,
    # a chief's task list (the database returns only the chief's own tasks)
    ("patrols",): _reads("patrol_tasks"),
    # the command also checks that the segment is in the account's charge
    ("patrols", "record"): _may("patrols.record", "rivers"),
    ("supervision", "rules"): _reads("supervision_warnings"),
    # administrators only, refused in the words of the permission
    ("settings", "list"): _has("settings.read"),
    ("settings", "set"): _has("settings.manage"),
    ("settings", "unset"): _has("settings.manage"),
    **{
        ("ingest", spec.id): _writes_layer for spec in all_layers() if not spec.computed
    },
}
#: Groups whose commands decide for themselves (the warning loop's steps
#: have their own permissions, ``cli_supervision``): what every one of them
#: needs at least.
GROUPS: dict[str, Check] = {
    "warnings": _reads("supervision_warnings"),
}


def cli_principal() -> Principal | None:
    """The ``--as`` account, None without ``--as``."""
    return CURRENT.get()


def check(path: tuple[str, ...]) -> None:
    """Refuse command ``path`` to the ``--as`` account if the policy says so."""
    principal = cli_principal()
    if principal is None or principal.role == "admin":
        return
    rule = RULES.get(path) or GROUPS.get(path[0], _servers_own)
    rule(principal, path)


def _guarded(callback: Callable, path: tuple[str, ...]) -> Callable:
    @functools.wraps(callback)
    def run(*args, **kwargs):
        check(path)
        return callback(*args, **kwargs)

    return run


def _name(info) -> str:
    if info.name:
        return info.name
    return info.callback.__name__.lower().replace("_", "-")


def guard(app: typer.Typer, path: tuple[str, ...] = ()) -> typer.Typer:
    """Make every command of ``app`` (and its groups) pass :func:`check`
    first. Group callbacks that do work themselves (``patrols --chief``)
    call :func:`check` in their body."""
    for info in app.registered_commands:
        info.callback = _guarded(info.callback, (*path, _name(info)))
    for group in app.registered_groups:
        name = group.name or group.typer_instance.info.name
        guard(group.typer_instance, (*path, name))
    return app
