"""Supervision warnings and their closed loop, river-chief patrols, the rules.

- ``GET /supervision/rules``: every rule with its source, confidence mark and
  the current values of its thresholds.
- ``GET /supervision/warnings`` (filters: responsible party, state, domain,
  district, level, overdue, rule, listed) and ``GET /supervision/warnings/{id}``
  with its history; ``GET /supervision/rankings?by=district|responsible|domain|rule``.
- ``POST /supervision/warnings/{id}/dispatch|rectify|verify``: the loop's steps
  (rectify takes the reply and its photos as ``multipart/form-data``; the
  photos are stored outside the database under their SHA-256);
  ``POST /supervision/evidence`` stores an inspection photo;
  ``GET /supervision/evidence/{sha256}`` returns a stored photo -- of a reply,
  or named by a warning's evidence (an inspection problem's ``photo_sha256``)
  -- when the caller sees that warning, checked against its checksum.
- ``POST /patrols``: a river chief records a patrol of one of their segments.

Reads follow the warnings layer's scope (a housing officer sees the warnings
of their district, in the database too). Each step needs the layer's write
scope and its own permission (``warnings.dispatch``, ``warnings.rectify``,
``warnings.verify``: separation of duties, with the loop's four-eyes rule on
top), and each one is audited by the loop in its own transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import text

from gis_server import audit
from gis_server.api.auth import PrincipalDep, WriterDep
from gis_server.api.deps import EngineDep
from gis_server.auth import policy
from gis_server.auth.principal import Principal
from gis_server.errors import InvalidParameter, NotFound
from layers import get_layer

router = APIRouter(tags=["Supervision"])

WARNINGS = "supervision_warnings"


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body, default=str, option=orjson.OPT_NON_STR_KEYS),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "private, no-cache"},
    )


def _reader(request: Request, principal: Principal) -> None:
    policy.require_read(principal, get_layer(WARNINGS), request.app.state.auth_settings)


def _mover(request: Request, principal: Principal, permission: str) -> None:
    """A step needs the warnings' write scope and the step's own permission."""
    policy.require_write(
        principal, get_layer(WARNINGS), request.app.state.auth_settings
    )
    policy.require(principal, permission)


def _actor(request: Request, principal: Principal) -> audit.Actor:
    return audit.Actor(
        principal.username,
        principal.role,
        request.headers.get("x-request-id"),
        request.client.host if request.client else None,
    )


@router.get("/supervision/rules", summary="The supervision rules and thresholds")
def rules(request: Request, principal: PrincipalDep) -> Response:
    """Every rule: id, domain, title, the standard it comes from, its confidence
    ([S] published, [R] commonly cited, [D] design default) and the current
    values of the settings holding its thresholds."""
    _reader(request, principal)
    from models.supervision.engine import domain_settings, load_domains
    from models.supervision.rules import RULES

    load_domains()
    out = []
    cache: dict[str, Any] = {}
    for rule in RULES.values():
        if rule.domain not in cache:
            cache[rule.domain] = domain_settings(rule.domain)
        cfg = cache[rule.domain]
        values = {
            name: getattr(cfg, name)
            for name in rule.settings
            if cfg is not None and hasattr(cfg, name)
        }
        out.append(
            {
                "id": rule.id,
                "domain": rule.domain,
                "title": rule.title,
                "title_zh": rule.title_zh,
                "source": rule.source,
                "confidence": rule.confidence,
                "description": rule.description,
                "thresholds": values,
            }
        )
    return _json({"rules": out})


State = Literal["raised", "dispatched", "rectified", "closed"]
Level = Literal["yellow", "orange", "red"]


@router.get("/supervision/warnings", summary="Warnings, per responsible party")
def warnings(
    request: Request,
    principal: PrincipalDep,
    engine: EngineDep,
    responsible: Annotated[str | None, Query(description="Responsible party.")] = None,
    state: Annotated[State | None, Query()] = None,
    domain: Annotated[
        str | None, Query(description="`buildings`, `concrete`...")
    ] = None,
    district: Annotated[str | None, Query()] = None,
    level: Annotated[Level | None, Query()] = None,
    overdue: Annotated[bool | None, Query()] = None,
    rule: Annotated[str | None, Query(description="A rule id.")] = None,
    listed: Annotated[
        bool | None,
        Query(
            description="Only supervised-listed (挂牌督办) warnings, or only "
            "the others."
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """Warnings the caller may see, newest first, filtered."""
    _reader(request, principal)
    from models.supervision import loop

    with engine.connect() as conn:
        rows = loop.list_warnings(
            conn,
            responsible=responsible,
            state=state,
            domain=domain,
            district=district,
            level=level,
            overdue=overdue,
            rule=rule,
            listed=listed,
            limit=limit,
            offset=offset,
        )
    return _json({"warnings": rows, "limit": limit, "offset": offset})


@router.get("/supervision/warnings/{warning_id}", summary="One warning and its history")
def warning(
    request: Request, warning_id: int, principal: PrincipalDep, engine: EngineDep
) -> Response:
    _reader(request, principal)
    from models.supervision import loop

    with engine.connect() as conn:
        return _json(loop.get_warning(conn, warning_id))


@router.get("/supervision/rankings", summary="Warning counts per district, party...")
def rankings(
    request: Request,
    principal: PrincipalDep,
    engine: EngineDep,
    by: Annotated[
        Literal["district", "responsible", "domain", "rule"], Query()
    ] = "district",
    state: Annotated[State | None, Query()] = None,
    domain: Annotated[str | None, Query()] = None,
) -> Response:
    """Open, overdue and closed warnings and levels, ranked."""
    _reader(request, principal)
    from models.supervision import loop

    with engine.connect() as conn:
        rows = loop.rankings(conn, by, state=state, domain=domain)
    return _json({"by": by, "rows": rows})


class DispatchBody(BaseModel):
    responsible: str | None = Field(
        default=None, max_length=200, description="Default: the finding's party."
    )
    deadline: dt.datetime | None = Field(
        default=None,
        description="Default: the domain's (an inspection notice: by severity), "
        "else by level (7 / 15 / 30 days).",
    )
    note: str = Field(default="", max_length=4000)


class VerifyBody(BaseModel):
    accept: bool = Field(description="true: close (销号); false: send back.")
    note: str = Field(default="", max_length=4000, description="Needed to send back.")
    deadline: dt.datetime | None = None


@router.post("/supervision/warnings/{warning_id}/dispatch", summary="Dispatch")
def dispatch(
    request: Request,
    warning_id: int,
    body: DispatchBody,
    principal: WriterDep,
    engine: EngineDep,
) -> Response:
    """raised -> dispatched: the rectification notice, with a deadline."""
    _mover(request, principal, "warnings.dispatch")
    from models.supervision import loop

    with engine.begin() as conn:
        out = loop.dispatch(
            conn,
            warning_id,
            _actor(request, principal),
            responsible=body.responsible,
            deadline=body.deadline,
            note=body.note,
        )
    return _json(out)


@router.post("/supervision/warnings/{warning_id}/rectify", summary="Reply")
def rectify(
    request: Request,
    warning_id: int,
    principal: WriterDep,
    engine: EngineDep,
    note: Annotated[str, Form(max_length=4000, description="The reply.")],
    photos: Annotated[
        list[UploadFile], File(description="Photos or PDFs (JPEG/PNG/WebP/PDF).")
    ],
) -> Response:
    """dispatched -> rectified: the party's reply with its evidence."""
    _mover(request, principal, "warnings.rectify")
    from models.supervision import loop
    from models.supervision.evidence import read_upload, store_evidence
    from models.supervision.settings import loop_settings

    settings = loop_settings()
    if not photos:
        raise InvalidParameter("a rectification needs at least one photo")
    with engine.begin() as conn:
        refs = [
            store_evidence(
                conn,
                read_upload(photo.file, settings),
                photo.filename,
                photo.content_type,
                settings,
            )
            for photo in photos
        ]
        out = loop.rectify(conn, warning_id, _actor(request, principal), note, refs)
    return _json(out)


@router.post("/supervision/warnings/{warning_id}/verify", summary="Close or send back")
def verify(
    request: Request,
    warning_id: int,
    body: VerifyBody,
    principal: WriterDep,
    engine: EngineDep,
) -> Response:
    """rectified -> closed (accept) or back to dispatched (reject, with a reason);
    not by whoever recorded the rectification (four-eyes rule)."""
    _mover(request, principal, "warnings.verify")
    from models.supervision import loop

    with engine.begin() as conn:
        out = loop.verify(
            conn,
            warning_id,
            _actor(request, principal),
            body.accept,
            body.note,
            deadline=body.deadline,
        )
    return _json(out)


@router.post(
    "/supervision/evidence", status_code=201, summary="Store a photo (inspections)"
)
def upload_evidence(
    request: Request,
    principal: WriterDep,
    engine: EngineDep,
    photo: Annotated[UploadFile, File(description="JPEG, PNG, WebP or PDF.")],
) -> Response:
    """Store a photo taken on an inspection; answers its SHA-256, which the
    inspection's problem records (``photo_sha256``) and replies refer to.
    At most ``GIS_LOOP_EVIDENCE_MAX_BYTES`` (413 above)."""
    _mover(request, principal, "evidence.upload")
    from models.supervision.evidence import read_upload, store_evidence
    from models.supervision.settings import loop_settings

    settings = loop_settings()
    with engine.begin() as conn:
        ref = store_evidence(
            conn,
            read_upload(photo.file, settings),
            photo.filename,
            photo.content_type,
            settings,
        )
        audit.record(
            conn,
            _actor(request, principal),
            "evidence.store",
            "evidence",
            ref.sha256,
            after={"name": ref.name, "size": ref.size, "type": ref.content_type},
        )
    return _json({"sha256": ref.sha256, "name": ref.name, "size": ref.size}, status=201)


#: A stored file the caller may see: one of a reply to a warning in the
#: caller's scope, or one a warning in scope names in its evidence (an
#: inspection problem's photo). The warnings table is under the caller's
#: row-level policy, so "in scope" is the database's decision too.
EVIDENCE_VISIBLE = text("""
SELECT 1 FROM supervision_warning_events e
JOIN layer_supervision_warnings w ON w.id = e.warning_id
WHERE e.evidence @> CAST(:ref AS jsonb)
UNION ALL
SELECT 1 FROM layer_supervision_warnings w
WHERE w.evidence @> CAST(:photo AS jsonb)
LIMIT 1
""")


@router.get("/supervision/evidence/{sha256}", summary="A stored photo")
def evidence(
    request: Request, sha256: str, principal: PrincipalDep, engine: EngineDep
) -> Response:
    """A photo of a reply, or of an inspection problem, of a warning the caller
    may see; the bytes served are the ones checked against the checksum."""
    _reader(request, principal)
    from models.supervision.evidence import is_sha256, read_evidence
    from models.supervision.settings import loop_settings

    if not is_sha256(sha256):
        raise NotFound(f"no evidence {sha256[:80]!r}")
    ref = orjson.dumps([{"sha256": sha256}]).decode()
    photo = orjson.dumps({"photo_sha256": sha256}).decode()
    with engine.connect() as conn:  # the warning must be in the caller's scope
        visible = conn.execute(EVIDENCE_VISIBLE, {"ref": ref, "photo": photo})
        if visible.first() is None:
            raise NotFound(f"no evidence {sha256!r}")
        content_type = conn.execute(
            text("SELECT content_type FROM supervision_evidence WHERE sha256 = :s"),
            {"s": sha256},
        ).scalar()
    if content_type is None:  # named by a problem, not uploaded (yet)
        raise NotFound(f"no evidence {sha256!r}")
    data = read_evidence(sha256, loop_settings())
    return Response(
        data,
        media_type=content_type,
        headers={
            "Cache-Control": "private, max-age=86400",
            "ETag": f'"{sha256}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


class PatrolBody(BaseModel):
    segment_code: str = Field(max_length=100)
    started_at: dt.datetime
    duration_min: float = Field(ge=0, le=24 * 60)
    distance_km: float = Field(ge=0, le=500)
    black_odorous: bool | None = None
    problems: str | None = Field(default=None, max_length=4000)


@router.post("/patrols", status_code=201, summary="Record a river-chief patrol")
def record_patrol(
    request: Request, body: PatrolBody, principal: WriterDep, engine: EngineDep
) -> Response:
    """A completed patrol of one of the caller's segments (river chiefs), or of
    any segment for administrators, who name the chief by the segment."""
    policy.require(principal, "patrols.record")
    policy.require_read(principal, get_layer("rivers"), request.app.state.auth_settings)
    from models.water.service import record_patrol as record
    from models.water.settings import water_settings

    with engine.connect() as conn:  # scoped: a chief sees only their segments
        chief = conn.execute(
            text("SELECT chief_id FROM layer_rivers WHERE code = :c LIMIT 1"),
            {"c": body.segment_code},
        ).scalar()
    if chief is None:
        raise NotFound(f"no river segment {body.segment_code!r}")
    out = record(
        engine,
        water_settings(),
        chief_id=chief,
        segment_code=body.segment_code,
        started_at=body.started_at,
        duration_min=body.duration_min,
        distance_km=body.distance_km,
        black_odorous=body.black_odorous,
        problems=body.problems,
        actor=_actor(request, principal),
    )
    return _json(out, status=201)


# -- domain reports -----------------------------------------------------------------


def _layer_scope(request: Request, principal: Principal, layer_id: str):
    return policy.require_read(
        principal, get_layer(layer_id), request.app.state.auth_settings
    )


AsOf = Annotated[
    dt.date | None, Query(alias="as-of", description="Evaluation date (today).")
]


@router.get("/supervision/hazards", summary="Hazard list: C/D buildings, walls due")
def hazards(
    request: Request,
    principal: PrincipalDep,
    engine: EngineDep,
    district: Annotated[str | None, Query()] = None,
    as_of: AsOf = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> Response:
    """Dangerous (C/D) buildings, monitoring over its limits and curtain walls
    overdue, most severe first (a housing officer: their district)."""
    scope = _layer_scope(request, principal, "buildings")
    if scope.kind == "rows":
        district = scope.value
    from models.supervision.buildings import hazard_list

    with engine.connect() as conn:
        rows = hazard_list(
            conn, as_of or dt.date.today(), district=district, limit=limit
        )
    return _json({"district": district, "hazards": rows})


@router.get("/supervision/plants/{plant_id}/credit", summary="A plant's credit score")
def plant_credit(
    request: Request, plant_id: str, principal: PrincipalDep, engine: EngineDep
) -> Response:
    """The credit score history of a concrete plant (its deductions per rule)."""
    _layer_scope(request, principal, "plants")
    from models.supervision.concrete import credit_history

    with engine.connect() as conn:
        known = conn.execute(
            text("SELECT 1 FROM layer_plants WHERE source_id = :p LIMIT 1"),
            {"p": plant_id},
        ).first()
        if known is None:
            raise NotFound(f"no plant {plant_id!r}")
        return _json({"plant_id": plant_id, "history": credit_history(conn, plant_id)})


@router.get("/supervision/enterprises", summary="Construction enterprises' credit")
def enterprises(
    request: Request, principal: PrincipalDep, engine: EngineDep, as_of: AsOf = None
) -> Response:
    """Credit scores of the construction enterprises, worst first, and the
    blacklist (city-wide: for callers reading every construction site)."""
    if _layer_scope(request, principal, "construction_sites").kind != "all":
        raise policy.not_found("enterprises")
    from models.supervision.sites import enterprise_rankings

    with engine.connect() as conn:
        ranked = enterprise_rankings(conn, as_of or dt.date.today())
        return _json({"enterprises": ranked})


@router.get("/supervision/fund/centres", summary="Provident-fund centres, one month")
def fund_centres(
    request: Request,
    principal: PrincipalDep,
    engine: EngineDep,
    month: Annotated[dt.date | None, Query(description="First of a month.")] = None,
) -> Response:
    """Loan ratio and liquidity level of the 21 centres (the choropleth's data)."""
    _layer_scope(request, principal, "fund_centres")
    from models.supervision.fund import choropleth

    month = (month or dt.date.today()).replace(day=1)
    with engine.connect() as conn:
        return _json({"month": month, "centres": choropleth(conn, month)})


@router.get("/supervision/fund/centres/{code}", summary="One centre's monthly metrics")
def fund_centre(
    request: Request, code: str, principal: PrincipalDep, engine: EngineDep
) -> Response:
    """Loan ratio, net flow, overdue rate and liquidity level per month."""
    _layer_scope(request, principal, "fund_centres")
    from models.supervision.fund import centre_metrics

    with engine.connect() as conn:
        return _json({"code": code, "months": centre_metrics(conn, code)})
