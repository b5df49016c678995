"""Rule settings administrators change at run time: ``/admin/settings``.

``GET /admin/settings`` lists every overridable group (``rules_concrete``,
``loop``, ``water``, ``risk``, ...) with each field's value in force, where it
comes from (``override``, ``env`` or ``default``), its default and its
description with the source mark; ``PUT /admin/settings/{group}/{field}``
stores an override (validated by the settings class: a bad value is a 400
with the field's error), ``DELETE`` removes it (back to env or default). Each
change is audited; every server process on the database applies it within
moments (``gis_server.overrides``). Database, server, sign-in, limits, tiles
and map settings, and paths, stay in the environment only.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from gis_server import audit, overrides
from gis_server.api.auth import PrincipalDep, WriterDep
from gis_server.api.deps import EngineDep
from gis_server.auth import policy
from gis_server.auth.principal import Principal

router = APIRouter(tags=["Administration"])

GroupName = Annotated[
    str,
    Path(
        description="A settings group: the env prefix without `GIS_` and the "
        "trailing `_`, lower-case (`rules_concrete` for `GIS_RULES_CONCRETE_*`, "
        "`loop`, `water`, `risk`)."
    ),
]
FieldName = Annotated[
    str, Path(description="A field of the group (`chloride_environment`).")
]


class SettingValue(BaseModel):
    """The value to put in force."""

    model_config = ConfigDict(extra="forbid")

    value: Any = Field(
        description="The new value, in JSON (a number, string, list or object "
        "as the field takes it); checked by the settings class with the group's "
        "other values."
    )


def _json(body: Any) -> Response:
    return Response(
        orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def _groups() -> list[str]:
    from models.settings_groups import load_groups

    return list(load_groups())


def _actor(request: Request, principal: Principal) -> audit.Actor:
    return audit.Actor(
        principal.username,
        principal.role,
        request.headers.get("x-request-id"),
        request.client.host if request.client else None,
    )


@router.get("/admin/settings", summary="Rule settings (administrators)")
def list_settings(
    principal: PrincipalDep,
    group: Annotated[
        str | None, Query(description="Only this group (e.g. `rules_concrete`).")
    ] = None,
) -> Response:
    """Every overridable rule setting: value in force, where it comes from
    (`override`, `env`, `default`), default, description with its source mark
    ([S] published, [R] commonly cited, [D] design default), and who last
    overrode it when."""
    policy.require(principal, "settings.read")
    names = _groups()
    if group is not None:
        overrides.group(group)  # 404 for an unknown group
        names = [group]
    return _json({"groups": [overrides.describe(name) for name in names]})


@router.put(
    "/admin/settings/{group}/{field}",
    summary="Override a rule setting (administrators)",
)
def put_setting(
    group: GroupName,
    field: FieldName,
    body: SettingValue,
    request: Request,
    principal: WriterDep,
    engine: EngineDep,
) -> Response:
    """Put a value in force over the environment and the default, in every
    server process on this database; audited (before, after)."""
    policy.require(principal, "settings.manage")
    _groups()
    with engine.begin() as conn:
        overrides.set_override(
            conn, _actor(request, principal), group, field, body.value
        )
    overrides.load(engine)  # this process at once; the others by NOTIFY
    return _json({"setting": overrides.describe_field(group, field)})


@router.delete(
    "/admin/settings/{group}/{field}",
    summary="Remove a rule setting's override (administrators)",
)
def delete_setting(
    group: GroupName,
    field: FieldName,
    request: Request,
    principal: WriterDep,
    engine: EngineDep,
) -> Response:
    """Back to the environment's value or the default; audited. A field
    without an override is a 404."""
    policy.require(principal, "settings.manage")
    _groups()
    with engine.begin() as conn:
        overrides.unset_override(conn, _actor(request, principal), group, field)
    overrides.load(engine)
    return _json({"setting": overrides.describe_field(group, field)})
