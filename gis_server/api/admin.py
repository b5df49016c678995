"""Administration and summaries: the audit log, accounts, the river summary."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response
from sqlalchemy import text

from gis_server import audit
from gis_server.api.auth import PrincipalDep
from gis_server.api.deps import EngineDep
from gis_server.auth import accounts, dbsecurity, policy

router = APIRouter(tags=["Administration"])


def _json(body) -> Response:
    return Response(
        orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS),
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
