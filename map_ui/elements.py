"""Folium elements the pages are made of, and the page shell.

Each element renders a few lines of JavaScript calling ``static/gis/maps.js``
or ``geojson_tiles.js``; data goes through Jinja's ``tojson`` (HTML-safe).
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

import folium
from branca.element import Element, MacroElement
from folium.map import Layer
from jinja2 import Template

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
            {{ this.data|tojson }}, {{ this.opts|tojson }});
        {% endmacro %}"""
    )

    def __init__(self, layer_id: str, data: dict, opts: dict, name: str,
                 show: bool = True) -> None:
        super().__init__(name=name, overlay=True, control=True, show=show)
        self._name = "GisInline"
        self.layer_id = layer_id
        self.data = data
        self.opts = opts


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


def new_map(settings: MapSettings, lang: Lang,
            bounds: list[list[float]] | None) -> folium.Map:
    """An empty map with the configured basemap (none by default)."""
    m = folium.Map(
        location=None,
        tiles=None,
        zoom_start=12,
        prefer_canvas=True,
        control_scale=True,
        # explicit limits: otherwise Leaflet takes the tiled layers' minZoom as
        # the map's and the user could not zoom out past it
        min_zoom=3,
        max_zoom=22,
        zoom_control=True,
    )
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


def tiles_layer(spec: LayerSpec, settings: MapSettings, lang: Lang,
                *, show: bool = True, filter: dict | None = None,
                style: dict | None = None) -> GeoJsonTiles:
    """``spec`` drawn from the server's GeoJSON tiles."""
    opts = {
        "minZoom": max(spec.min_zoom, settings.tile_layer_min_zoom),
        "maxNativeZoom": spec.max_zoom,
        "style": style or style_options(spec),
        "titles": property_titles(spec, lang),
        "filter": filter,
    }
    return GeoJsonTiles(
        spec.id, f"/tiles/{spec.id}/{{z}}/{{x}}/{{y}}.geojson", opts,
        name=layer_title(spec, lang), show=show,
    )


def inline_layer(layer_id: str, features: list[dict], spec: LayerSpec | None,
                 lang: Lang, name: str, *, show: bool = True,
                 style: dict | None = None,
                 titles: dict | None = None) -> InlineGeoJson:
    """Features (GeoJSON dicts, page datum) embedded in the page."""
    opts = {
        "style": style or (style_options(spec) if spec else {}),
        "titles": titles or (property_titles(spec, lang) if spec else {}),
    }
    data = {"type": "FeatureCollection", "features": features}
    return InlineGeoJson(layer_id, data, opts, name=name, show=show)


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
    root.header.add_child(Element(f"<title>{escape(title)}</title>"), name="gis_title")
    panel = f'<div id="gis-panel" lang="{lang}">{panel_html}</div>'
    root.html.add_child(Element(panel), name="gis_panel")
    localise(root, settings.static_url)
    html = root.render()
    return html.replace("<html>", f'<html lang="{"zh-CN" if lang == "zh" else "en"}">',
                        1)
