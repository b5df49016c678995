"""Folium elements the pages are made of, and the page shell.

Each element renders a few lines of JavaScript calling ``static/gis/maps.js``
or ``geojson_tiles.js``; data goes through Jinja's ``tojson`` (HTML-safe).
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

import folium
import numpy as np
from branca.element import Element, MacroElement
from folium.elements import ElementAddToElement
from folium.map import Layer
from jinja2 import Template
from sqlalchemy import text

from ingest.crs import wgs84_to_gcj02
from layers import LayerSpec
from map_ui.assets import localise
from map_ui.i18n import Lang, layer_title, property_titles, t
from map_ui.settings import MapSettings


def style_options(spec: LayerSpec, **override: Any) -> dict[str, Any]:
    """A layer's style hints as the options ``GIS.styleFn`` reads."""
    s = spec.style
    out = {
        "color": s.color,
        "fillColor": s.fill_color or s.color,
        "weight": s.weight,
        "radius": s.radius,
        "colorBy": s.color_by,
        "palette": dict(s.palette),
    }
    out.update(override)
    return out


class Configure(MacroElement):
    """Tells ``maps.js`` the map, the datum data is drawn in, and labels."""

    _template = Template(
        """{% macro script(this, kwargs) %}
        GIS.configure({map: {{ this._parent.get_name() }},
                       datum: {{ this.datum|tojson }},
                       labels: {{ this.labels|tojson }}});
        {% endmacro %}"""
    )

    def __init__(self, datum: str, labels: dict[str, str] | None = None) -> None:
        super().__init__()
        self._name = "GisConfigure"
        self.datum = datum
        self.labels = labels or {}


class InlineGeoJson(Layer):
    """A small layer embedded in the page (already in the page's datum)."""

    _template = Template(
        """{% macro script(this, kwargs) %}
        var {{ this.get_name() }} = GIS.geojsonLayer({{ this.layer_id|tojson }},
            {{ this.data_js }}, {{ this.opts|tojson }});
        {% endmacro %}"""
    )

    def __init__(self, layer_id: str, data: str, opts: dict, name: str,
                 show: bool = True) -> None:
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "GisInline"
        self.layer_id = layer_id
        self.data_js = script_json(data)
        self.opts = opts

    def render(self, **kwargs) -> None:
        # As Layer.render + MacroElement.render, except that the script goes in as
        # raw markup: MacroElement wraps it in Element(), which parses it as a
        # Jinja template -- slow for megabytes of data, and wrong should the data
        # hold "{{" or "{%".
        if self.show:
            self.add_child(
                ElementAddToElement(element_name=self.get_name(),
                                    element_parent_name=self._parent.get_name()),
                name=self.get_name() + "_add",
            )
        script = self._template.module.__dict__["script"]
        self.get_root().script.add_child(RawHtml(script(self, kwargs)),
                                         name=self.get_name())
        for child in self._children.values():
            child.render(**kwargs)


class GeoJsonTiles(Layer):
    """A large layer drawn from ``/tiles/{id}/{z}/{x}/{y}.geojson``."""

    _template = Template(
        """{% macro script(this, kwargs) %}
        var {{ this.get_name() }} = GIS.geojsonTiles({{ this.layer_id|tojson }},
            {{ this.url|tojson }}, {{ this.opts|tojson }});
        {% endmacro %}"""
    )

    def __init__(self, layer_id: str, url: str, opts: dict, name: str,
                 show: bool = True) -> None:
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "GisTiles"
        self.layer_id = layer_id
        self.url = url
        self.opts = opts


class ImageOverlay(Layer):
    """A raster drawn as one PNG between two corners (page datum)."""

    _template = Template(
        """{% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.imageOverlay({{ this.url|tojson }},
            {{ this.bounds|tojson }}, {opacity: 0.7});
        GIS.layers[{{ this.layer_id|tojson }}] = {{ this.get_name() }};
        {% endmacro %}"""
    )

    def __init__(self, layer_id: str, url: str, bounds: list, name: str,
                 show: bool = False) -> None:
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "GisImage"
        self.layer_id = layer_id
        self.url = url
        self.bounds = bounds


class Legend(MacroElement):
    """A colour legend in a map corner."""

    _template = Template(
        """{% macro script(this, kwargs) %}
        (function () {
          var legend = L.control({position: 'bottomleft'});
          legend.onAdd = function () {
            var div = L.DomUtil.create('div', 'gis-legend');
            div.innerHTML = {{ this.html|tojson }};
            return div;
          };
          legend.addTo({{ this._parent.get_name() }});
        })();
        {% endmacro %}"""
    )

    def __init__(self, title: str, entries: list[tuple[str, str]],
                 note: str = "") -> None:
        super().__init__()
        self._name = "GisLegend"
        rows = "".join(
            f'<div><i style="background:{escape(color)}"></i>{escape(label)}</div>'
            for label, color in entries
        )
        note_html = f'<div class="gis-note">{escape(note)}</div>' if note else ""
        self.html = (
            f'<div class="gis-legend-title">{escape(title)}</div>{rows}{note_html}'
        )


class BoxDownloads(MacroElement):
    """Wires the drawn box to the download links of the side panel."""

    _template = Template(
        """{% macro script(this, kwargs) %}
        GIS.boxDownloads({{ this._parent.get_name() }}, 'gis-download',
                         {{ this.opts|tojson }});
        {% endmacro %}"""
    )

    def __init__(self, opts: dict) -> None:
        super().__init__()
        self._name = "GisBoxDownloads"
        self.opts = opts


class RawHtml(Element):
    """Markup put in the page as is (never parsed as a template)."""

    _template = Template("{{ this.markup }}")

    def __init__(self, markup: str) -> None:
        super().__init__()
        self.markup = markup


def script_json(text: str) -> str:
    r"""JSON text made safe inside a ``<script>`` (as Jinja's ``tojson`` does).

    >>> script_json('{"a": "</script>"}')
    '{"a": "\\u003c/script\\u003e"}'
    """
    return (text.replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026").replace("'", "\\u0027")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _shift_coords(coords: list) -> list:
    if coords and isinstance(coords[0], int | float):
        return wgs84_to_gcj02(np.array([coords], dtype=float))[0].tolist()
    if coords and coords[0] and isinstance(coords[0][0], int | float):
        return wgs84_to_gcj02(np.asarray(coords, dtype=float)).tolist()
    return [_shift_coords(part) for part in coords]


def collection_json(conn, select_sql: str, params: dict, datum: str,
                    *, drop: tuple[str, ...] = (), simplify_deg: float = 0.0) -> str:
    """A FeatureCollection (text, page datum) of the rows of ``select_sql``.

    ``select_sql`` selects ``id``, ``geom`` (EPSG:4326) and the properties;
    PostGIS writes the JSON (6 decimals, ~0.1 m), lines and polygons simplified
    by ``simplify_deg`` (collapsed parts kept). With a GCJ-02 basemap the
    coordinates are shifted here with :func:`ingest.crs.wgs84_to_gcj02`.
    """
    geom = "q.geom"
    if simplify_deg > 0:
        geom = f"ST_Simplify(q.geom, {float(simplify_deg)!r}, true)"
    names = [k for k in conn.execute(text(f"SELECT * FROM ({select_sql}) q LIMIT 0"),
                                     params).keys()
             if k not in ("geom", *drop)]
    # properties by name: to_jsonb(q) would also convert the geometry (slow)
    props = ", ".join(f"'{n}', q.\"{n}\"" for n in names)
    sql = (
        "SELECT '{\"type\":\"FeatureCollection\",\"features\":[' || "
        "coalesce(string_agg(json_build_object('type', 'Feature', 'id', q.id, "
        f"'geometry', ST_AsGeoJSON({geom}, 6)::json, "
        f"'properties', json_build_object({props}))::text, ','), '') || ']}}' "
        f"FROM ({select_sql}) q"
    )
    text_ = conn.execute(text(sql), params).scalar_one()
    if datum != "gcj02":
        return text_
    collection = json.loads(text_)
    for f in collection["features"]:
        if f.get("geometry"):
            f["geometry"]["coordinates"] = _shift_coords(f["geometry"]["coordinates"])
    return json.dumps(collection, ensure_ascii=False)


def collection_of(features: list[dict]) -> str:
    """A FeatureCollection text of feature dicts built in Python."""
    return json.dumps({"type": "FeatureCollection", "features": features},
                      ensure_ascii=False, default=str)


def new_map(settings: MapSettings, lang: Lang,
            bounds: list[list[float]] | None) -> folium.Map:
    """An empty map with the configured basemap (none by default)."""
    m = folium.Map(
        location=None,
        tiles=None,
        zoom_start=12,
        prefer_canvas=True,
        control_scale=True,
        zoom_control=True,
    )
    # explicit limits: otherwise Leaflet takes the tiled layers' minZoom as the
    # map's and the user could not zoom out past it
    m.options.update(minZoom=3, maxZoom=22)
    basemap = settings.basemap_config()
    if basemap is not None:
        folium.TileLayer(
            tiles=basemap["url"],
            attr=basemap["attribution"] or "basemap",
            name=t("basemap", lang),
            subdomains=basemap["subdomains"],
            max_zoom=settings.basemap_max_zoom,
            overlay=False,
            control=False,
        ).add_to(m)
    m.add_child(Configure(settings.datum))
    if bounds is not None:
        m.fit_bounds(bounds)
    else:
        m.location = [23.13, 113.26]  # Guangzhou, when there is nothing to show
    return m


def tile_min_zoom(spec: LayerSpec, settings: MapSettings) -> int:
    """Lowest zoom ``spec`` is drawn from tiles at on the pages."""
    return max(spec.min_zoom, settings.tile_layer_min_zoom,
               settings.tile_min_zoom_by_layer.get(spec.id, 0))


def tiles_layer(spec: LayerSpec, settings: MapSettings, lang: Lang,
                *, show: bool = True, filter: dict | None = None,
                style: dict | None = None) -> GeoJsonTiles:
    """``spec`` drawn from the server's GeoJSON tiles."""
    opts = {
        "minZoom": tile_min_zoom(spec, settings),
        "maxNativeZoom": spec.max_zoom,
        "style": style or style_options(spec),
        "titles": property_titles(spec, lang),
        "filter": filter,
    }
    return GeoJsonTiles(
        spec.id, f"/tiles/{spec.id}/{{z}}/{{x}}/{{y}}.geojson", opts,
        name=layer_title(spec, lang), show=show,
    )


def inline_layer(layer_id: str, collection: str, spec: LayerSpec | None,
                 lang: Lang, name: str, *, show: bool = True,
                 style: dict | None = None,
                 titles: dict | None = None) -> InlineGeoJson:
    """A FeatureCollection (JSON text, page datum) embedded in the page."""
    opts = {
        "style": style or (style_options(spec) if spec else {}),
        "titles": titles or (property_titles(spec, lang) if spec else {}),
    }
    return InlineGeoJson(layer_id, collection, opts, name=name, show=show)


def feature(geometry_json: str, properties: dict, fid: Any = None) -> dict:
    """A GeoJSON feature dict from a geometry text and properties."""
    out = {"type": "Feature", "geometry": json.loads(geometry_json),
           "properties": properties}
    if fid is not None:
        out["id"] = fid
    return out


def render_page(m: folium.Map, settings: MapSettings, title: str, panel_html: str,
                lang: Lang) -> str:
    """The whole HTML page: the map, the side panel, vendored assets only."""
    root = m.get_root()
    # data: favicon: no /favicon.ico request (a 404 in the console otherwise)
    root.header.add_child(RawHtml(f'<title>{escape(title)}</title>'
                                  '<link rel="icon" href="data:,">'), name="gis_title")
    panel = f'<div id="gis-panel" lang="{lang}">{panel_html}</div>'
    root.html.add_child(RawHtml(panel), name="gis_panel")
    localise(root, settings.static_url)
    html = root.render()
    return html.replace("<html>", f'<html lang="{"zh-CN" if lang == "zh" else "en"}">',
                        1)
