"""Administration and summaries: the audit log, accounts, the river summary.

Accounts (administrators only): ``GET/POST /admin/users``, ``GET/PATCH
/admin/users/{name}``, ``GET/POST /admin/users/{name}/keys``, ``DELETE
/admin/users/{name}/keys/{key_id}``; each change goes through
``gis_server.auth.manage`` (the CLI's implementation too) and is audited.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import orjson
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sqlalchemy import text

from gis_server import audit
from gis_server.api.auth import PrincipalDep, WriterDep
from gis_server.api.deps import EngineDep
from gis_server.auth import accounts, dbsecurity, manage, policy
from gis_server.auth.principal import Principal
from gis_server.errors import InvalidParameter
from layers import ROLES

router = APIRouter(tags=["Administration"])


def _json(body, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


@router.get("/audit", summary="The audit log (administrators)")
def audit_log(
    principal: PrincipalDep,
    engine: EngineDep,
    target_kind: Annotated[
        str | None, Query(description="`feature`, `warning`, `patrol`, `user`...")
    ] = None,
    target: Annotated[
        str | None, Query(description="e.g. `buildings/123` or a warning id")
    ] = None,
    actor: Annotated[str | None, Query(description="An account name.")] = None,
    since: Annotated[dt.datetime | None, Query(description="ISO 8601")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """Changes made on someone's behalf, newest first: who, when, what, before
    and after."""
    policy.require(principal, "audit.read")
    with engine.connect() as conn:
        rows = audit.entries(
            conn,
            target_kind=target_kind,
            target=target,
            actor=actor,
            since=since,
            limit=limit,
            offset=offset,
        )
    return _json({"entries": rows, "limit": limit, "offset": offset})


@router.get("/admin/users", summary="Accounts (administrators)")
def users(principal: PrincipalDep, engine: EngineDep) -> Response:
    """Every account with its role, scope attribute and number of live keys."""
    policy.require(principal, "users.manage")
    with engine.connect() as conn:
        return _json({"users": accounts.list_users(conn)})


# -- account administration ---------------------------------------------------------

UserName = Annotated[str, Path(description="The account name.")]


class UserCreate(BaseModel):
    """A new account."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(
        description="Account name: 2-64 letters, digits or `.` `_` `@` `-`.",
        examples=["zhang.wei"],
    )
    role: str = Field(description="One of: " + ", ".join(ROLES) + ".")
    district: str | None = Field(
        None,
        description="Housing officers (required for them only): the district "
        "they serve, as written in the layers' `district`.",
    )
    chief_id: str | None = Field(
        None,
        description="River chiefs (required for them only): their chief id, "
        "the rivers layer's `chief_id`.",
    )
    display_name: str | None = Field(
        None, max_length=200, description="Name shown in lists (optional)."
    )
    password: SecretStr | None = Field(
        None,
        description="The password (8 characters or more). Omitted: one is "
        "generated and returned once in the response (`password`), unless "
        "`key_only`.",
    )
    key_only: bool = Field(
        False,
        description="No password: an account for scripts that signs in with "
        "API keys only.",
    )
    api_key: str | None = Field(
        None,
        max_length=100,
        description="Also create an API key with this name (what it is for); "
        "the key is returned once in the response (`api_key.key`).",
    )


class UserUpdate(BaseModel):
    """Changes to an account; only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    disabled: bool | None = Field(
        None,
        description="true: the account's tokens and keys stop working (within "
        "`GIS_AUTH_LOOKUP_CACHE_SECONDS`); false: enabled again.",
    )
    role: str | None = Field(None, description="One of: " + ", ".join(ROLES) + ".")
    district: str | None = Field(
        None,
        description="Housing officers: their district. A housing officer "
        "keeps theirs when not given; other roles have none.",
    )
    chief_id: str | None = Field(
        None, description="River chiefs: their chief id (likewise)."
    )
    display_name: str | None = Field(
        None, max_length=200, description="Name shown in lists."
    )
    password: SecretStr | None = Field(
        None, description="A new password (8 characters or more)."
    )
    generate_password: bool = Field(
        False,
        description="Reset the password to a generated one, returned once in "
        "the response (`password`).",
    )


class KeyCreate(BaseModel):
    """A new API key."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        "default",
        min_length=1,
        max_length=100,
        description="What the key is for (e.g. `qgis`, `nightly-import`).",
    )


def _actor(request: Request, principal: Principal) -> audit.Actor:
    return audit.Actor(
        principal.username,
        principal.role,
        request.headers.get("x-request-id"),
        request.client.host if request.client else None,
    )


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


@router.post(
    "/admin/users",
    status_code=201,
    summary="Create an account (administrators)",
)
def create_user(
    request: Request, principal: WriterDep, engine: EngineDep, body: UserCreate
) -> Response:
    """Create an account. A generated password and a new API key are in the
    response this once only; every change is in the audit log (without
    secrets)."""
    policy.require(principal, "users.manage")
    if body.key_only and body.password is not None:
        raise InvalidParameter("a key-only account has no password")
    with engine.begin() as conn:
        created = manage.create_user(
            conn,
            _actor(request, principal),
            body.username,
            body.role,
            district=body.district,
            chief_id=body.chief_id,
            display_name=body.display_name,
            password=_secret(body.password),
            generate_password=body.password is None and not body.key_only,
            key_name=body.api_key,
        )
    out: dict = {"user": created.user}
    if created.password:
        out["password"] = created.password
    if created.key:
        out["api_key"] = {**created.key.row, "key": created.key.key}
    return _json(out, 201)


@router.get("/admin/users/{name}", summary="One account (administrators)")
def get_user(name: UserName, principal: PrincipalDep, engine: EngineDep) -> Response:
    """An account: role, scope attribute, display name, whether it is
    disabled, has a password, and how many live keys it has."""
    policy.require(principal, "users.manage")
    with engine.connect() as conn:
        return _json({"user": accounts.user_view(conn, name)})


@router.patch("/admin/users/{name}", summary="Change an account (administrators)")
def update_user(
    name: UserName,
    request: Request,
    principal: WriterDep,
    engine: EngineDep,
    body: UserUpdate,
) -> Response:
    """Disable or enable an account, change its role, district, chief id or
    display name, or reset its password (given, or generated and returned
    once). The last enabled administrator cannot be disabled or demoted."""
    policy.require(principal, "users.manage")
    given = body.model_fields_set
    changes = {k: getattr(body, k) for k in accounts.PROFILE_FIELDS if k in given}
    for required in ("role", "disabled"):
        if required in changes and changes[required] is None:
            raise InvalidParameter(f"{required} cannot be null")
    resets = "password" in given or body.generate_password
    if "password" in given and body.generate_password:
        raise InvalidParameter("give a password or generate_password, not both")
    if not changes and not resets:
        raise InvalidParameter("nothing to change")
    actor = _actor(request, principal)
    generated = None
    with engine.begin() as conn:
        accounts.get_user(conn, name)  # 404 before any other complaint
        if changes:
            manage.update_user(conn, actor, name, **changes)
        if resets:
            generated = manage.set_password(conn, actor, name, _secret(body.password))
        view = accounts.user_view(conn, name)
    out: dict = {"user": view}
    if generated:
        out["password"] = generated
    return _json(out)


@router.post(
    "/admin/users/{name}/keys",
    status_code=201,
    summary="Create an API key of an account (administrators)",
)
def create_key(
    name: UserName,
    request: Request,
    principal: WriterDep,
    engine: EngineDep,
    body: KeyCreate | None = None,
) -> Response:
    """A new API key; the key (`key`) is in this response only, the server
    keeps its SHA-256."""
    policy.require(principal, "users.manage")
    key_name = body.name if body is not None else "default"
    with engine.begin() as conn:
        new = manage.create_key(conn, _actor(request, principal), name, key_name)
    return _json({**new.row, "key": new.key}, 201)


@router.get(
    "/admin/users/{name}/keys", summary="An account's API keys (administrators)"
)
def list_keys(name: UserName, principal: PrincipalDep, engine: EngineDep) -> Response:
    """Every key of the account, newest first: id, name, prefix, when it was
    created, last accepted (to the minute) and revoked. Never the key."""
    policy.require(principal, "users.manage")
    with engine.connect() as conn:
        return _json({"keys": accounts.list_keys(conn, name)})


@router.delete(
    "/admin/users/{name}/keys/{key_id}",
    status_code=204,
    summary="Revoke an API key (administrators)",
)
def revoke_key(
    name: UserName,
    key_id: Annotated[int, Path(ge=1, description="The key's id (see the listing).")],
    request: Request,
    principal: WriterDep,
    engine: EngineDep,
) -> Response:
    """Revoke one key: it stops working within
    `GIS_AUTH_LOOKUP_CACHE_SECONDS`. A revoked key is a 409."""
    policy.require(principal, "users.manage")
    with engine.begin() as conn:
        manage.revoke_key(conn, _actor(request, principal), name, key_id)
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


RIVER_SUMMARY_SQL = """
SELECT coalesce(r.district, '') AS district,
       count(*) AS segments,
       round(sum(coalesce(r.length_m, 0))::numeric / 1000, 1) AS length_km,
       count(*) FILTER (WHERE w.level = 'red') AS red,
       count(*) FILTER (WHERE w.level = 'orange') AS orange,
       count(*) FILTER (WHERE w.level = 'yellow') AS yellow,
       count(*) FILTER (WHERE r.remediated) AS remediated
FROM layer_rivers r
LEFT JOIN layer_water_quality_warnings w ON w.segment_code = r.code
GROUP BY 1 ORDER BY 1
"""


@router.get("/summary/rivers", summary="City-wide river summary")
def river_summary(principal: PrincipalDep, engine: EngineDep) -> Response:
    """Segments, length and warning levels per district: what a river chief
    sees of the rivers outside their charge (counts, not features)."""
    policy.require(principal, "rivers.summary")
    # run as the server: a summary of every river, whoever asks
    with dbsecurity.as_server(), engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(text(RIVER_SUMMARY_SQL))]
    return _json({"districts": rows})
