"""The interactive map pages (``/maps/...``) and their static assets.

Pages are built by :mod:`map_ui` with Folium; every script and stylesheet
they load is served from ``/static`` (vendored, see map_ui/static/VENDORED.md).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from gis_server.api.deps import EngineDep, FeaturesSettingsDep
from gis_server.errors import NotFound
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
    return HTMLResponse(html, headers={"Cache-Control": "no-cache"})


@router.get("/maps/river-chief", response_class=HTMLResponse,
            summary="River chief's map")
def river_chief(
    request: Request,
    engine: EngineDep,
    chief: Annotated[str | None, Query(
        description="River chief id (`chief_id` of the river segments); without "
                    "it, the list of chiefs.")] = None,
    lang: Lang = None,
) -> HTMLResponse:
    """A river chief's segments by warning level, stations, risks and tasks."""
    from map_ui.river_chief import chiefs_page, river_chief_page

    settings = map_settings(request)
    language = parse_lang(lang, settings.default_lang)
    if chief is None:
        return _page(chiefs_page(engine, settings, language))
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

    settings = map_settings(request)
    return _page(analyst_page(engine, settings, parse_lang(lang, settings.default_lang),
                              json_limit=features.max_limit))


@router.get("/maps/rasters/{name}.png", summary="A registered raster as a PNG overlay")
def raster_overlay(name: str, engine: EngineDep) -> Response:
    """The raster warped to Web Mercator and coloured, for the analyst map."""
    from map_ui.rasters import raster_png

    return Response(raster_png(engine, name), media_type="image/png",
                    headers={"Cache-Control": "no-cache"})


@router.get("/static/{path:path}", include_in_schema=False)
def static(path: str) -> FileResponse:
    """A vendored script, stylesheet or image of the map pages."""
    found = static_file(path)
    if found is None:
        raise NotFound(f"no static file {path!r}")
    return FileResponse(found, headers={"Cache-Control": "public, max-age=86400"})
