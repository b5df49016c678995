"""The analyst's page: every layer, the risk grid and rasters, box downloads."""

from __future__ import annotations

import logging

import folium
from folium.plugins import Draw
from jinja2 import Environment
from sqlalchemy import Engine, text
from sqlalchemy.exc import ProgrammingError

from layers import LayerSpec, all_layers
from map_ui.elements import (
    BoxDownloads,
    ImageOverlay,
    collection_json,
    inline_layer,
    new_map,
    render_page,
    style_options,
    tiles_layer,
)
from map_ui.gcj import shift_bounds
from map_ui.i18n import Lang, layer_title, t
from map_ui.settings import MapSettings

log = logging.getLogger("gis_server.maps")

_ENV = Environment(autoescape=True)

#: Layers shown when the page opens; the others are one click away. The risk
#: grid opens as its raster (one image); its cells as vectors (tens of thousands
#: in a large city, ~2 s to draw) are one click away.
SHOWN = ("districts", "rivers")

PANEL = _ENV.from_string(
    """
<a class="gis-lang" href="?lang={{ other_lang }}">{{ t('language') }}</a>
<h1>{{ t('analyst_title') }}</h1>
<h2>{{ t('layers') }}</h2>
<table id="gis-layers">
{% for l in layers %}
<tr data-layer="{{ l.id }}" data-mode="{{ l.mode }}"><td>{{ l.title }}</td>
  <td>{{ l.count_text }} {{ t('features') }}</td>
  <td><a href="/collections/{{ l.id }}">OGC</a></td></tr>
{% endfor %}
{% for r in rasters %}
<tr data-raster="{{ r.name }}"><td>{{ t('raster') }}: {{ r.name }}</td>
  <td>{{ r.width }}×{{ r.height }}</td><td></td></tr>
{% endfor %}
</table>
<h2>{{ t('download') }}</h2>
<div id="gis-download">
  <label>{{ t('layer') }} <select>
  {% for l in layers %}<option value="{{ l.id }}">{{ l.title }}</option>{% endfor %}
  </select></label>
  <div class="gis-links"></div>
</div>
<h2>{{ t('ogc_api') }}</h2>
<ul id="gis-ogc">
  <li><a href="/">{{ t('landing') }}</a></li>
  <li><a href="/collections">{{ t('collections') }}</a></li>
  <li><a href="/conformance">conformance</a></li>
  <li><a href="/api.html">{{ t('openapi') }}</a></li>
</ul>
"""
)


def _style(spec: LayerSpec) -> dict:
    """The layer's style; area layers lighter, as they lie under the others."""
    light = {"risk_grid": 0.3, "districts": 0.0, "risk_zones": 0.25}
    return style_options(spec, fillOpacity=light.get(spec.id, 0.45))


def _capped_count(conn, spec: LayerSpec, cap: int) -> int:
    return conn.execute(text(
        f'SELECT count(*) FROM (SELECT 1 FROM "{spec.table}" LIMIT :cap) x'),
        {"cap": cap}).scalar_one()


def _rasters(engine: Engine) -> list[dict]:
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(text(
                "SELECT name, width, height, ST_XMin(footprint) AS minx, "
                "ST_YMin(footprint) AS miny, ST_XMax(footprint) AS maxx, "
                "ST_YMax(footprint) AS maxy FROM raster_layers "
                "WHERE footprint IS NOT NULL ORDER BY name")).mappings()]
    except ProgrammingError:  # no raster registry in this database
        log.warning("raster registry missing; analyst page shows no rasters")
        return []


def analyst_page(engine: Engine, settings: MapSettings, lang: Lang,
                 json_limit: int, visible: set[str] | None = None,
                 rasters: bool | None = None) -> str:
    """The analyst's HTML page, with the layers in ``visible`` (default all)
    and the registered rasters when ``rasters`` (default: when the risk grid
    is visible; the composite raster is city-wide, so the route passes
    whether the caller reads all of the grid)."""
    datum = settings.datum
    limit = settings.analyst_inline_max_features
    cap = limit + 1
    layers = []
    with engine.connect() as conn:
        extent = conn.execute(text(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
            "(SELECT ST_Extent(geom) AS e FROM layer_districts) x")).one()
        if extent[0] is None and (visible is None or "rivers" in visible):
            extent = conn.execute(text(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM "
                "(SELECT ST_Extent(geom) AS e FROM layer_rivers) x")).one()
        for spec in all_layers():
            if visible is not None and spec.id not in visible:
                continue
            n = _capped_count(conn, spec, cap)
            inline = n <= limit
            collection = None
            if inline:
                cols = "".join(f', "{p.name}"' for p in spec.properties
                               if p.type != "json")
                collection = collection_json(
                    conn, f'SELECT id{cols}, geom FROM "{spec.table}"', {}, datum,
                    simplify_deg=settings.simplify_deg)
            layers.append({"spec": spec, "count": n, "inline": inline,
                           "collection": collection})
    if rasters is None:
        rasters = visible is None or "risk_grid" in visible
    rasters = _rasters(engine) if rasters else []

    bounds = shift_bounds(tuple(extent), datum) if extent[0] is not None else None
    m = new_map(settings, lang, bounds)
    for raster in rasters:
        m.add_child(ImageOverlay(
            f"raster:{raster['name']}", f"/maps/rasters/{raster['name']}.png",
            shift_bounds((raster["minx"], raster["miny"], raster["maxx"],
                          raster["maxy"]), datum),
            name=f"{t('raster', lang)}: {raster['name']}", show=True))
    for entry in layers:
        spec = entry["spec"]
        show = spec.id in SHOWN
        if entry["inline"]:
            m.add_child(inline_layer(spec.id, entry["collection"], spec, lang,
                                     layer_title(spec, lang), show=show,
                                     style=_style(spec)))
        else:
            m.add_child(tiles_layer(spec, settings, lang, show=show,
                                    style=_style(spec)))
    Draw(
        export=False,
        draw_options={"polyline": False, "polygon": False, "circle": False,
                      "marker": False, "circlemarker": False, "rectangle": True},
        edit_options={"edit": False},
    ).add_to(m)
    m.add_child(BoxDownloads({
        "base": "",
        "hint": t("download_hint", lang),
        "jsonLimit": json_limit,
        "formats": [["json", "GeoJSON"], ["csv", "CSV"], ["gpkg", "GeoPackage"]],
    }))
    folium.LayerControl(collapsed=False).add_to(m)
    panel = PANEL.render(
        t=lambda key, **kw: t(key, lang, **kw),
        other_lang="zh" if lang == "en" else "en",
        layers=[{
            "id": e["spec"].id,
            "title": layer_title(e["spec"], lang),
            "mode": "inline" if e["inline"] else "tiles",
            "count_text": (str(e["count"]) if e["inline"]
                           else f"> {limit}"),
        } for e in layers],
        rasters=rasters,
    )
    log.info("analyst page built", extra={
        "layers": len(layers), "inline": sum(e["inline"] for e in layers),
        "rasters": len(rasters)})
    return render_page(m, settings, t("analyst_title", lang), panel, lang)
