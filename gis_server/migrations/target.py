"""What the migrations manage: the metadata of every declared table, and the
filter leaving out tables that are not ours (PostGIS' own) or are written by
hand (the risk models' bookkeeping, migration 0002).

Shared by ``env.py`` (autogenerate) and the test comparing declarations with
the migrated database.
"""

from __future__ import annotations

from geoalchemy2 import alembic_helpers

import gis_server.audit
import gis_server.auth.accounts
import gis_server.overrides  # noqa: F401  (setting_overrides)
import models.supervision.concrete
import models.supervision.loop
import models.water.store  # noqa: F401  (the water tables)
from layers import metadata

EXCLUDED_TABLES = frozenset(
    {
        "spatial_ref_sys",
        "risk_dirty",
        "risk_grid_dirty",
        "risk_river_local",
        "risk_runs",
    }
)


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    if type_ == "table" and name in EXCLUDED_TABLES:
        return False
    return alembic_helpers.include_object(obj, name, type_, reflected, compare_to)


__all__ = ["EXCLUDED_TABLES", "include_object", "metadata"]
