"""The interactive map pages (``/maps/...``) and their static assets.

Pages are built by :mod:`map_ui` with Folium; every script and stylesheet
they load is served from ``/static`` (vendored, see map_ui/static/VENDORED.md).
"""

from __future__ import annotations

import html
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from gis_server.api.auth import get_principal, login_redirect
from gis_server.api.deps import EngineDep, FeaturesSettingsDep
from gis_server.auth import policy
from gis_server.errors import NotFound
from layers import get_layer
from map_ui.assets import static_file
from map_ui.i18n import parse_lang
from map_ui.settings import MapSettings

router = APIRouter(tags=["Maps"])

Lang = Annotated[
    str | None,
    Query(description="Label language: `zh` (default) or `en`."),
]


def map_settings(request: Request) -> MapSettings:
    """The app's map settings (``app.state.map_settings``, else from env)."""
    settings = getattr(request.app.state, "map_settings", None)
    if settings is None:
        settings = request.app.state.map_settings = MapSettings()
    return settings


def _page(html: str) -> HTMLResponse:
    # private: pages show what the signed-in caller may see
    return HTMLResponse(html, headers={"Cache-Control": "private, no-cache"})


def _gate(request: Request, layer_id: str) -> Response | None:
    """A page needs its main layer to be readable: anonymous callers are sent
    to the sign-in form, signed-in ones outside the scope get a 404."""
    principal = get_principal(request)
    scope = policy.read_scope(
        principal, get_layer(layer_id), request.app.state.auth_settings
    )
    if scope.kind != "none":
        return None
    if principal.anonymous:
        return login_redirect(request)
    raise NotFound("no such map page")


def _check_trend_subject(request: Request, engine, *, building: str | None,
                         centre: str | None) -> None:
    """A trend chart draws records of one building or fund centre: only of one
    the caller may see (a 404 rather than an empty chart; the feeds' own
    row-level policies would leave the chart empty)."""
    from sqlalchemy import text

    visible = readable_ids(request)
    for value, layer in ((building, "buildings"), (centre, "fund_centres")):
        if value is None:
            continue
        if layer not in visible:
            raise NotFound("no such chart")
        column = "source_id" if layer == "buildings" else "code"
        with engine.connect() as conn:  # row-level security scopes this
            found = conn.execute(
                text(f"SELECT 1 FROM layer_{layer} WHERE {column} = :v LIMIT 1"),
                {"v": value},
            ).first()
        if found is None:
            raise NotFound("no such chart")


def city_wide(request: Request, layer_id: str) -> bool:
    """Whether the caller reads every feature of ``layer_id`` (city-wide
    reports need that: the enterprises' credit ranking; the rasters, among
    them the composite risk surface, need the whole risk grid)."""
    scope = policy.read_scope(
        get_principal(request), get_layer(layer_id), request.app.state.auth_settings
    )
    return scope.kind == "all"


def readable_ids(request: Request) -> set[str]:
    """Ids of the layers the caller may read (pages leave the others out)."""
    return {
        spec.id
        for spec in policy.readable_layers(
            get_principal(request), request.app.state.auth_settings
        )
    }


#: The map pages: path, the layer each needs, English and Chinese titles.
PAGES = (
    ("/maps/river-chief", "rivers", "River chief", "河长"),
    ("/maps/housing", "buildings", "Housing officer", "住房安全"),
    ("/maps/supervision", "supervision_warnings", "Supervision warnings", "监管预警"),
    ("/maps/analyst", "districts", "Analyst", "分析"),
)


@router.get("/maps", response_class=HTMLResponse, summary="The map pages")
def maps_index(request: Request) -> Response:
    """Links to the map pages the caller may open (sign-in first if none)."""
    visible = readable_ids(request)
    links = [
        f'<li><a href="{path}">{zh} · {en}</a></li>'
        for path, layer, en, zh in PAGES
        if layer in visible
    ]
    if not links and get_principal(request).anonymous:
        return login_redirect(request)
    who = get_principal(request)
    body = (
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
        "<title>Maps · 地图</title></head><body style=\"font:15px system-ui;"
        'max-width:40em;margin:3em auto"><h1>Maps · 地图</h1>'
        f"<p>{html.escape(who.username)} ({html.escape(who.role or 'anonymous')})"
        ' · <form method="post" action="/auth/logout" style="display:inline">'
        '<button>Sign out · 退出</button></form></p>'
        f"<ul>{''.join(links)}</ul></body></html>"
    )
    return _page(body)


@router.get("/maps/river-chief", response_class=HTMLResponse,
            summary="River chief's map")
def river_chief(
    request: Request,
    engine: EngineDep,
    chief: Annotated[str | None, Query(
        description="River chief id (`chief_id` of the river segments); without "
                    "it, a river chief's own map, anyone else's list of "
                    "chiefs.")] = None,
    lang: Lang = None,
) -> HTMLResponse:
    """A river chief's segments by warning level, stations, risks and tasks."""
    from map_ui.river_chief import chiefs_page, river_chief_page

    if (gate := _gate(request, "rivers")) is not None:
        return gate
    settings = map_settings(request)
    language = parse_lang(lang, settings.default_lang)
    if chief is None:
        principal = get_principal(request)
        if principal.role != "river_chief" or not principal.chief_id:
            return _page(chiefs_page(engine, settings, language))
        chief = principal.chief_id  # a chief's own map, not a list of one
    return _page(river_chief_page(engine, settings, chief, language))


@router.get("/maps/housing", response_class=HTMLResponse,
            summary="Housing officer's map")
def housing(
    request: Request,
    engine: EngineDep,
    district: Annotated[str | None, Query(description="Only this district "
                                                      "(its name).")] = None,
    grade: Annotated[list[str] | None, Query(
        description="Safety grades to show (A-D; repeat or comma-separate); "
                    "all by default.")] = None,
    lang: Lang = None,
) -> HTMLResponse:
    """Buildings by safety grade, curtain walls due, hazard zones, hazard list."""
    from map_ui.housing import housing_page

    if (gate := _gate(request, "buildings")) is not None:
        return gate
    settings = map_settings(request)
    return _page(housing_page(engine, settings, parse_lang(lang, settings.default_lang),
                              district=district, grades=grade))


@router.get("/maps/analyst", response_class=HTMLResponse, summary="Analyst's map")
def analyst(
    request: Request,
    engine: EngineDep,
    features: FeaturesSettingsDep,
    lang: Lang = None,
) -> HTMLResponse:
    """Every layer, the risk grid and rasters, and box downloads."""
    from map_ui.analyst import analyst_page

    if (gate := _gate(request, "districts")) is not None:
        return gate
    settings = map_settings(request)
    return _page(analyst_page(engine, settings, parse_lang(lang, settings.default_lang),
                              json_limit=features.max_limit,
                              visible=readable_ids(request),
                              rasters=city_wide(request, "risk_grid")))


SupervisionDomain = Annotated[str | None, Query(
    description="Only this supervision domain (`buildings`, `concrete`, `sites`, "
                "`fund`, `inspections`, ...).")]
SupervisionState = Annotated[str | None, Query(
    description="Only warnings in this state: `raised`, `dispatched`, "
                "`rectified` or `closed`.")]


@router.get("/maps/supervision", response_class=HTMLResponse,
            summary="Supervision warnings map")
def supervision(
    request: Request,
    engine: EngineDep,
    domain: SupervisionDomain = None,
    state: SupervisionState = None,
    lang: Lang = None,
) -> HTMLResponse:
    """Supervision warnings by level and state, parties, rankings, fund centres."""
    from map_ui.supervision import supervision_page

    if (gate := _gate(request, "supervision_warnings")) is not None:
        return gate
    settings = map_settings(request)
    return _page(supervision_page(engine, settings,
                                  parse_lang(lang, settings.default_lang),
                                  domain=domain, state=state,
                                  visible=readable_ids(request),
                                  enterprises=city_wide(request,
                                                        "construction_sites")))


PNG = {200: {"content": {"image/png": {}}, "description": "The image."}}


@router.get("/maps/supervision/charts/{name}.png", response_class=Response,
            responses=PNG, summary="A supervision chart as a PNG")
def supervision_chart(
    request: Request,
    name: str,
    engine: EngineDep,
    domain: SupervisionDomain = None,
    state: SupervisionState = None,
    building: Annotated[str | None, Query(
        description="`trend`: the building whose readings to draw.")] = None,
    kind: Annotated[str | None, Query(
        description="`trend`: the reading kind (default `settlement_mm`).")] = None,
    centre: Annotated[str | None, Query(
        description="`trend`: the provident-fund centre code.")] = None,
    metric: Annotated[str | None, Query(
        description="`trend` of a centre: `loan_ratio` (default), `net_flow`, "
                    "`overdue_rate`, `flows` (deposits, withdrawals, loans "
                    "issued, principal repaid) or `balances`.")] = None,
    by: Annotated[str | None, Query(
        description="`ranking_table`: per `district` (default) or fund "
                    "`centre`.")] = None,
    months: Annotated[int | None, Query(
        ge=1, le=120,
        description="`fund_large_flows`: months counted (default 12).")] = None,
    lang: Lang = None,
) -> Response:
    """`warnings_by_district` and `warnings_by_centre` (bars),
    `warnings_by_state` (pie), `warnings_by_domain` (bar), `ranking_table`
    (a table per district or fund centre), `fund_centres` (loan ratio per
    centre, bar), `fund_large_flows` (months per large-flow band and centre,
    stacked bars), `enterprise_credit` and `enterprise_table` (the
    construction enterprises' credit ranking, worst first: city-wide callers
    only) or `trend` (a building's readings or a fund centre's metric, line).
    Counts are those of the warnings the caller may see."""
    from map_ui.supervision import chart_png

    if (gate := _gate(request, "supervision_warnings")) is not None:
        return gate
    _check_trend_subject(request, engine, building=building, centre=centre)
    if (name in ("fund_centres", "fund_large_flows")
            and "fund_centres" not in readable_ids(request)):
        raise NotFound("no such chart")
    if (name in ("enterprise_credit", "enterprise_table")
            and not city_wide(request, "construction_sites")):
        raise NotFound("no such chart")
    settings = map_settings(request)
    png = chart_png(engine, name, parse_lang(lang, settings.default_lang),
                    domain=domain, state=state, building=building, kind=kind,
                    centre=centre, metric=metric, by=by, months=months)
    return Response(png, media_type="image/png",
                    headers={"Cache-Control": "no-cache"})


@router.get("/maps/rasters/{name}.png", response_class=Response, responses=PNG,
            summary="A registered raster as a PNG overlay")
def raster_overlay(request: Request, name: str, engine: EngineDep) -> Response:
    """The raster warped to Web Mercator and coloured, for the analyst map."""
    from map_ui.rasters import raster_png

    if (gate := _gate(request, "risk_grid")) is not None:
        return gate
    if not city_wide(request, "risk_grid"):  # the raster covers the whole city
        raise NotFound("no such raster")
    return Response(raster_png(engine, name), media_type="image/png",
                    headers={"Cache-Control": "no-cache"})


@router.get("/static/{path:path}", include_in_schema=False)
def static(path: str) -> FileResponse:
    """A vendored script, stylesheet or image of the map pages."""
    found = static_file(path)
    if found is None:
        raise NotFound(f"no static file {path!r}")
    return FileResponse(found, headers={"Cache-Control": "public, max-age=86400"})
