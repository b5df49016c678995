"""Local copies of every script and stylesheet the pages load (no CDN).

Folium elements declare their dependencies as ``default_js`` / ``default_css``
lists of (name, CDN URL). :func:`localise` rewrites them, on the elements of
one page, to the vendored files under ``map_ui/static`` (see VENDORED.md),
drops the ones the pages do not use, and refuses an unknown one: a new plugin
must be vendored before it can appear on a page.
"""

from __future__ import annotations

from pathlib import Path

from branca.element import Element

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: Folium dependency name -> path under the static folder.
VENDORED_JS = {
    "leaflet": "vendor/leaflet/leaflet.js",
    "leaflet_draw_js": "vendor/leaflet-draw/leaflet.draw.js",
}
VENDORED_CSS = {
    "leaflet_css": "vendor/leaflet/leaflet.css",
    "leaflet_draw_css": "vendor/leaflet-draw/leaflet.draw.css",
}
#: Our own scripts, loaded after Leaflet.
OWN_JS = (
    ("gis_gcj02", "gis/gcj02.js"),
    ("gis_maps", "gis/maps.js"),
    ("gis_geojson_tiles", "gis/geojson_tiles.js"),
)
OWN_CSS = (("gis_maps_css", "gis/maps.css"),)
#: Folium defaults the pages do without (circle markers, plain-HTML panels).
UNUSED = frozenset(
    {
        "jquery",
        "bootstrap",
        "awesome_markers",
        "bootstrap_css",
        "glyphicons_css",
        "awesome_markers_font_css",
        "awesome_markers_css",
        "awesome_rotate_css",
    }
)


class UnvendoredAsset(RuntimeError):
    """A page element needs a script or stylesheet that is not vendored."""


def _walk(element: Element):
    yield element
    for child in list(element._children.values()):
        yield from _walk(child)


def _rewrite(pairs, table: dict[str, str], static_url: str, owner: str):
    out = []
    for name, _url in pairs:
        if name in UNUSED:
            continue
        if name not in table:
            raise UnvendoredAsset(
                f"{owner} needs {name!r}, which is not vendored in map_ui/static "
                "(add it to scripts/vendor_map_assets.sh and map_ui.assets)"
            )
        out.append((name, f"{static_url}/{table[name]}"))
    return out


def localise(root: Element, static_url: str) -> None:
    """Point every folium dependency under ``root`` at the vendored copies.

    The map element (the first with a ``leaflet`` dependency) also gets the
    pages' own scripts and stylesheet, so they load right after Leaflet.
    """
    static_url = static_url.rstrip("/")
    for element in _walk(root):
        owner = type(element).__name__
        if "default_js" in dir(element):
            js = _rewrite(element.default_js, VENDORED_JS, static_url, owner)
            if any(name == "leaflet" for name, _ in js):
                js += [(n, f"{static_url}/{p}") for n, p in OWN_JS]
            element.default_js = js  # instance attribute: class lists stay intact
        if "default_css" in dir(element):
            css = _rewrite(element.default_css, VENDORED_CSS, static_url, owner)
            if any(name == "leaflet_css" for name, _ in css):
                css += [(n, f"{static_url}/{p}") for n, p in OWN_CSS]
            element.default_css = css


def static_file(path: str) -> Path | None:
    """The file under the static folder for a URL path, or None (no escaping it,
    and no NUL, which no file name holds)."""
    if "\x00" in path:
        return None
    candidate = (STATIC_DIR / path).resolve()
    if STATIC_DIR not in candidate.parents or not candidate.is_file():
        return None
    return candidate
