"""Interactive map pages built with Folium, served by ``gis_server.api.maps``.

One module per page -- :mod:`map_ui.river_chief`, :mod:`map_ui.housing`,
:mod:`map_ui.analyst` -- on shared parts: :mod:`map_ui.elements` (Folium
elements, embedded and tiled layers, legend, page shell), :mod:`map_ui.assets`
(vendored scripts, no CDN), :mod:`map_ui.gcj` (GCJ-02 shift of embedded data),
:mod:`map_ui.i18n` (Chinese / English labels) and :mod:`map_ui.settings`
(``GIS_MAP_*``).
"""
