"""Feature writes: create, replace, patch and delete (OGC API Features Part 4).

Every feature is checked like an ingested row -- geometry validated and
repaired by ``ingest.geometry.check_geometries`` (a repair is reported in the
answer), properties matched by name and alias and coerced by
``ingest.fields.coerce`` -- except that a value which does not fit its
property is a 400 here, not a note in ``extra``: the caller is present to fix
it. Properties the layer does not declare are kept in ``extra``, as at ingest.

Who may write is ``auth.policy.require_write`` (analysts never; housing
officers the buildings and sites of their district; administrators all), and
the database's row-level security holds the same line. Each change is one
transaction with its audit row (before and after), so there is no change
without its record.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated, Any

import numpy as np
import orjson
import shapely
from fastapi import APIRouter, Body, Path, Request
from fastapi.responses import Response
from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy import exc as sa_exc

from gis_server import audit
from gis_server.api.auth import WriterDep
from gis_server.api.deps import BaseUrlDep, EngineDep, LayerDep
from gis_server.auth import policy
from gis_server.auth.principal import Principal
from gis_server.errors import Conflict, FeatureNotFound, Forbidden, InvalidParameter
from gis_server.limits import check_feature_count
from ingest.fields import CoercionError, coerce, jsonable, map_fields
from ingest.geometry import REJECTED, REPAIRED, check_geometries
from layers import LayerSpec, table_for

log = logging.getLogger("gis_server.api.writes")

router = APIRouter(tags=["Feature writes"])

GEOJSON = "application/geo+json"
FeatureId = Annotated[str, Path(description="Feature id (`id` of the feature).")]
FeatureBody = Annotated[
    dict[str, Any],
    Body(
        description=(
            "A GeoJSON Feature (or, to create several, a FeatureCollection). "
            "Coordinates are CRS84 longitude/latitude."
        ),
        media_type=GEOJSON,
    ),
]


def _actor(request: Request, principal: Principal) -> audit.Actor:
    return audit.Actor(
        name=principal.username,
        role=principal.role,
        request_id=request.headers.get("x-request-id"),
        client=request.client.host if request.client else None,
    )


def _geometry(spec: LayerSpec, feature: dict[str, Any], where: str) -> tuple[Any, str]:
    """The checked geometry of a GeoJSON feature and a note (repair or "")."""
    raw = feature.get("geometry")
    try:
        geom = shapely.from_geojson(orjson.dumps(raw)) if raw else None
    except (shapely.errors.GEOSException, ValueError, TypeError):
        geom = None
    checked = check_geometries(np.array([geom], dtype=object), spec)
    if checked.status[0] == REJECTED:
        raise InvalidParameter(f"{where}: {checked.reasons[0]}")
    out = checked.geometries[0]
    if spec.accepts(out.geom_type) != out.geom_type:  # single part of a multi layer
        out = _MULTI[out.geom_type]([out])
    note = checked.reasons[0] if checked.status[0] == REPAIRED else ""
    return out, note or ""


_MULTI = {
    "Point": shapely.MultiPoint,
    "LineString": shapely.MultiLineString,
    "Polygon": shapely.MultiPolygon,
}


def _properties(
    spec: LayerSpec, props: Any, where: str, *, partial: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(declared property values, extra) of a feature's ``properties``."""
    if props is None:
        props = {}
    if not isinstance(props, dict):
        raise InvalidParameter(f"{where}: properties must be an object")
    mapping = map_fields(spec, list(props))
    values: dict[str, Any] = {} if partial else {p.name: None for p in spec.properties}
    problems = []
    by_name = spec.prop_by_name
    for source, name in mapping.to_prop.items():
        try:
            values[name] = coerce(props[source], by_name[name])
        except CoercionError as exc:
            problems.append(f"{source}={props[source]!r}: {exc}")
    if problems:
        raise InvalidParameter(f"{where}: " + "; ".join(problems))
    extra = {k: jsonable(props[k]) for k in mapping.unmapped}
    return values, extra


def _check_scope(scope: policy.Scope, values: dict[str, Any], spec: LayerSpec) -> None:
    """A scoped writer may only write features inside their scope."""
    if scope.kind != "rows":
        return
    value = values.get(scope.column)  # type: ignore[arg-type]
    if value != scope.value:
        raise Forbidden(
            f"you may only write {spec.id} whose {scope.column} is {scope.value!r}"
        )


def _row_json(conn: Connection, spec: LayerSpec, fid: int) -> dict[str, Any] | None:
    """A stored feature as audit JSON (properties, extra, geometry as GeoJSON)."""
    table = table_for(spec.id)
    cols = [table.c[p.name] for p in spec.properties]
    row = conn.execute(
        select(
            table.c.id,
            table.c.source,
            table.c.source_id,
            *cols,
            table.c.extra,
            func.ST_AsGeoJSON(table.c.geom, 7).label("geometry"),
        ).where(table.c.id == fid)
    ).first()
    if row is None:
        return None
    out = {str(k): jsonable(v) for k, v in row._mapping.items() if k != "geometry"}
    for key, value in out.items():
        if hasattr(value, "isoformat"):
            out[key] = value.isoformat()
    out["geometry"] = orjson.loads(row.geometry)
    return out


#: SQLSTATE of a unique violation
UNIQUE_VIOLATION = "23505"


def _source_id(feature: dict[str, Any], where: str) -> str:
    """The client's ``id`` of a new feature (a string or an integer, as GeoJSON
    has it; floats, objects and booleans are refused), or a fresh UUID."""
    value = feature.get("id")
    if value is None:
        return str(uuid.uuid4())
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidParameter(
            f"{where}: id must be a string or an integer, not "
            f"{type(value).__name__} {orjson.dumps(value).decode()[:40]}"
        )
    text = str(value)
    if not text.strip():
        raise InvalidParameter(f"{where}: id is empty; leave it out for a new one")
    return text


def _fid(spec: LayerSpec, feature_id: str) -> int:
    try:
        fid = int(feature_id)
    except ValueError:
        fid = None
    if fid is None or not -(2**63) <= fid < 2**63:
        raise FeatureNotFound(f"no feature {feature_id!r} in collection {spec.id!r}")
    return fid


def _write_columns(values: dict[str, Any], extra: dict[str, Any], geom) -> dict:
    return {
        **values,
        "extra": extra,
        "geom": func.ST_GeomFromText(geom.wkt, 4326),
        "updated_at": func.now(),
    }


@router.post(
    "/collections/{collection_id}/items",
    status_code=201,
    summary="Create features",
    responses={201: {"description": "Created; `Location` names a single feature."}},
)
def create_items(
    request: Request,
    spec: LayerDep,
    body: FeatureBody,
    principal: WriterDep,
    engine: EngineDep,
    base: BaseUrlDep,
) -> Response:
    """Create one feature (a Feature) or several (a FeatureCollection)."""
    scope = policy.require_write(principal, spec, request.app.state.auth_settings)
    if spec.computed:
        raise Forbidden(f"{spec.id} is computed by the server; it is not edited")
    kind = body.get("type")
    if kind == "Feature":
        features = [body]
    elif kind == "FeatureCollection" and isinstance(body.get("features"), list):
        features = body["features"]
    else:
        raise InvalidParameter(
            "the body must be a GeoJSON Feature or FeatureCollection"
        )
    check_feature_count(len(features), request.app.state.limit_settings)
    table = table_for(spec.id)
    prepared = []
    for i, feature in enumerate(features):
        where = f"feature {i}" if kind == "FeatureCollection" else "feature"
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise InvalidParameter(f"{where}: not a GeoJSON Feature")
        values, extra = _properties(spec, feature.get("properties"), where)
        if scope.kind == "rows" and values.get(scope.column) is None:
            values[scope.column] = scope.value  # a district officer's own district
        _check_scope(scope, values, spec)
        geom, note = _geometry(spec, feature, where)
        prepared.append((where, _source_id(feature, where), values, extra, geom, note))
    actor = _actor(request, principal)
    created = []
    with engine.begin() as conn:
        for where, source_id, values, extra, geom, note in prepared:
            statement = (
                insert(table)
                .values(
                    source="api",
                    source_id=source_id,
                    source_part=0,
                    **_write_columns(values, extra, geom),
                )
                .returning(table.c.id)
            )
            try:
                fid = conn.execute(statement).scalar_one()
            except sa_exc.IntegrityError as exc:
                if getattr(exc.orig, "pgcode", None) != UNIQUE_VIOLATION:
                    raise
                # the same words whoever holds the id, in the caller's scope or
                # not. NOTE: that a 409 comes at all tells a scoped caller the id
                # is taken somewhere: client ids share one namespace per layer
                raise Conflict(
                    f"{where}: id {source_id!r} is already taken in {spec.id}; "
                    "choose another id, or leave id out for a new one"
                ) from exc
            after = _row_json(conn, spec, fid)
            audit.record(
                conn,
                actor,
                "feature.create",
                "feature",
                f"{spec.id}/{fid}",
                after=after,
            )
            created.append({"id": fid, "repaired": note or None})
    log.info(
        "features created",
        extra={"layer": spec.id, "count": len(created), "user": principal.username},
    )
    headers = {}
    if len(created) == 1:
        headers["Location"] = f"{base}/collections/{spec.id}/items/{created[0]['id']}"
    return Response(
        orjson.dumps({"created": created}),
        status_code=201,
        media_type="application/json",
        headers=headers,
    )


def _change(
    request: Request,
    spec: LayerSpec,
    feature_id: str,
    principal: Principal,
    engine,
    body: dict[str, Any] | None,
    *,
    partial: bool,
) -> Response:
    scope = policy.require_write(principal, spec, request.app.state.auth_settings)
    if spec.computed:
        raise Forbidden(f"{spec.id} is computed by the server; it is not edited")
    fid = _fid(spec, feature_id)
    table = table_for(spec.id)
    actor = _actor(request, principal)
    with engine.begin() as conn:
        before = _row_json(conn, spec, fid)
        if before is None:  # absent, or outside the caller's scope: the same 404
            raise FeatureNotFound(
                f"no feature {feature_id!r} in collection {spec.id!r}"
            )
        if body is None:
            conn.execute(delete(table).where(table.c.id == fid))
            audit.record(
                conn,
                actor,
                "feature.delete",
                "feature",
                f"{spec.id}/{fid}",
                before=before,
            )
            return Response(status_code=204)
        if not isinstance(body, dict) or (
            not partial and body.get("type") != "Feature"
        ):
            raise InvalidParameter("the body must be a GeoJSON Feature")
        values, extra = _properties(
            spec, body.get("properties"), "feature", partial=partial
        )
        changes: dict[str, Any] = dict(values)
        if partial:
            merged = {p.name: before.get(p.name) for p in spec.properties}
            merged.update(values)
            _check_scope(scope, merged, spec)
            if extra:
                changes["extra"] = {**(before.get("extra") or {}), **extra}
            if body.get("geometry") is not None:
                geom, _ = _geometry(spec, body, "feature")
                changes["geom"] = func.ST_GeomFromText(geom.wkt, 4326)
        else:
            _check_scope(scope, values, spec)
            geom, _ = _geometry(spec, body, "feature")
            changes = _write_columns(values, extra, geom)
        changes["updated_at"] = func.now()
        conn.execute(update(table).where(table.c.id == fid).values(**changes))
        after = _row_json(conn, spec, fid)
        audit.record(
            conn,
            actor,
            "feature.patch" if partial else "feature.replace",
            "feature",
            f"{spec.id}/{fid}",
            before=before,
            after=after,
        )
    return Response(orjson.dumps(after), media_type="application/json")


@router.put("/collections/{collection_id}/items/{feature_id}", summary="Replace")
def replace_item(
    request: Request,
    spec: LayerDep,
    feature_id: FeatureId,
    body: FeatureBody,
    principal: WriterDep,
    engine: EngineDep,
) -> Response:
    """Replace a feature's geometry and properties."""
    return _change(request, spec, feature_id, principal, engine, body, partial=False)


@router.patch("/collections/{collection_id}/items/{feature_id}", summary="Update")
def patch_item(
    request: Request,
    spec: LayerDep,
    feature_id: FeatureId,
    body: Annotated[
        dict[str, Any],
        Body(
            description=(
                "Changed members only: `properties` (merged) and/or `geometry`."
            ),
            media_type="application/merge-patch+json",
        ),
    ],
    principal: WriterDep,
    engine: EngineDep,
) -> Response:
    """Change some properties (and/or the geometry) of a feature."""
    return _change(request, spec, feature_id, principal, engine, body, partial=True)


@router.delete(
    "/collections/{collection_id}/items/{feature_id}",
    status_code=204,
    summary="Delete",
)
def delete_item(
    request: Request,
    spec: LayerDep,
    feature_id: FeatureId,
    principal: WriterDep,
    engine: EngineDep,
) -> Response:
    """Delete a feature (its last state stays in the audit log)."""
    return _change(request, spec, feature_id, principal, engine, None, partial=False)
