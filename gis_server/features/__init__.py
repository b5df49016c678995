"""OGC API - Features below the HTTP layer: query building, CQL2, CRS, export.

Nothing here knows about FastAPI; errors are the domain errors of
:mod:`gis_server.errors`, mapped to HTTP in :mod:`gis_server.api.errors`.
"""
