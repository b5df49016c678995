"""``gis-server settings list|set|unset``: rule settings changed at run time.

The same overrides as ``/admin/settings`` (``gis_server.overrides``): a value
set here is validated by its settings class, stored over the environment and
the default, audited, and applied by every server on the database within
moments. ``GROUP.FIELD`` names a field, e.g. ``rules_concrete.chloride_environment``
(the group is the env prefix without ``GIS_`` and ``_``, lower-case).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gis_server import audit, overrides
from gis_server.errors import InvalidParameter

out = Console()

settings_app = typer.Typer(
    help="Rule settings administrators change at run time (over env and defaults).",
    no_args_is_help=True,
)


def _engine():
    from gis_server import db
    from gis_server.settings import database_settings

    engine = db.open_engine(database_settings())
    overrides.load(engine)
    return engine


def _groups() -> list[str]:
    from models.settings_groups import load_groups

    return list(load_groups())


def _split(name: str) -> tuple[str, str]:
    group, dot, field = name.partition(".")
    if not dot or not group or not field:
        raise InvalidParameter(f"{name!r}: GROUP.FIELD, e.g. loop.deadline_days_red")
    return group, field


def _actor() -> audit.Actor:
    """The CLI's actor; with ``--as``, that account must be an administrator."""
    from gis_server.auth import policy
    from gis_server.auth.principal import CURRENT

    principal = CURRENT.get()
    if principal is not None:
        policy.require(principal, "settings.manage")
    return audit.cli_actor()


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


@settings_app.command("list")
def settings_list(
    group: Annotated[
        str | None, typer.Argument(help="Only this group (e.g. rules_concrete).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON output.")] = False,
) -> None:
    """Every overridable setting: value in force, where it comes from, default."""
    engine = _engine()
    engine.dispose()
    names = _groups()
    if group is not None:
        overrides.group(group)
        names = [group]
    described = [overrides.describe(name) for name in names]
    if as_json:
        out.print_json(json.dumps(described, default=str, ensure_ascii=False))
        return
    table = Table("setting", "value", "from", "default", "source / meaning")
    for g in described:
        for f in g["fields"]:
            source = f["source"] if f["overridable"] else f"{f['source']} (env only)"
            if f["updated_by"]:
                source += f"\n{f['updated_by']}"
            table.add_row(
                f"{g['group']}.{f['field']}",
                _show(f["value"]),
                source,
                _show(f["default"]),
                f["description"],
            )
    out.print(table)
    for g in described:
        if g["problem"]:
            out.print(
                f"[red]{g['group']}: stored overrides refused ({g['problem']}); "
                "env and defaults are in force[/]"
            )


@settings_app.command("set")
def settings_set(
    name: Annotated[
        str, typer.Argument(help="GROUP.FIELD, e.g. loop.deadline_days_red")
    ],
    value: Annotated[
        str,
        typer.Argument(
            help="The value: JSON when it parses (20, 0.1, true, [1, 2], "
            '{"a": 1}), else the text itself.'
        ),
    ],
) -> None:
    """Override a setting (validated; audited)."""
    group, field = _split(name)
    actor = _actor()
    engine = _engine()
    try:
        _groups()
        parsed = overrides.parse_value(value)
        with engine.begin() as conn:
            try:
                result = overrides.set_override(conn, actor, group, field, parsed)
            except InvalidParameter:
                if parsed == value:
                    raise
                # JSON that the field does not take: maybe the text was meant
                result = overrides.set_override(conn, actor, group, field, value)
        overrides.load(engine)
    finally:
        engine.dispose()
    out.print(
        f"{name} = {_show(result['value'])} (was {_show(result['before'])})",
        soft_wrap=True,
    )


@settings_app.command("unset")
def settings_unset(
    name: Annotated[str, typer.Argument(help="GROUP.FIELD")],
) -> None:
    """Remove an override: back to the environment's value or the default."""
    group, field = _split(name)
    actor = _actor()
    engine = _engine()
    try:
        _groups()
        with engine.begin() as conn:
            result = overrides.unset_override(conn, actor, group, field)
        overrides.load(engine)
    finally:
        engine.dispose()
    out.print(f"{name} = {_show(result['value'])} (override removed)", soft_wrap=True)
