"""indexes on the columns row-level policies filter on

Every scoped caller's query (a housing officer's buildings and sites, a river
chief's segments, warnings and tasks) is filtered by the policy on these
columns; without an index a query that is not spatial reads the whole table.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 20:25:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column) at this revision: the scope columns of layers.*.access
SCOPE_COLUMNS = (
    ("layer_rivers", "chief_id"),
    ("layer_buildings", "district"),
    ("layer_construction_sites", "district"),
    ("layer_water_quality_warnings", "chief_id"),
    ("layer_patrol_tasks", "chief_id"),
)


def upgrade() -> None:
    for table, column in SCOPE_COLUMNS:
        op.create_index(f"ix_{table}_{column}", table, [column])


def downgrade() -> None:
    for table, column in SCOPE_COLUMNS:
        op.drop_index(f"ix_{table}_{column}", table_name=table)
