"""scope columns of the risk layers, feed-subject indexes, evidence uploader

- ``layer_risk_zones.district`` (a building's or curtain wall's district)
  and ``layer_risk_zones.chief_id`` (a river corridor's chief): the zones
  are scoped like their subjects (``layers/risk.py``); existing zones are
  filled in from their subjects here, new ones by the risk models.
- ``layer_risk_grid.district``: the district a cell's centre lies in
  (housing officers read the cells of their district).
- an index on ``source_id`` of every layer a record feed names features of:
  the feeds' row-level policies look the subject feature up by it.
- ``supervision_evidence.uploaded_by``: the account storing a file, the only
  one seeing its row until a loop event or an inspection record cites it;
  the citing events and records are found by two new indexes (a GIN index
  on the events' evidence, a btree on the problems' photo hash).

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-04 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: the layers record feeds name features of by ``source_id`` at this revision
SUBJECT_LAYERS = ("buildings", "curtain_walls", "plants", "construction_sites")

#: a curtain wall's district: its building's, else the district it lies in
WALL_DISTRICT = """coalesce(
    (SELECT b.district FROM layer_buildings b
     WHERE b.source_id = w.building AND b.district IS NOT NULL
     ORDER BY b.id LIMIT 1),
    (SELECT d.name FROM layer_districts d
     WHERE ST_Intersects(d.geom, ST_PointOnSurface(w.geom))
     ORDER BY d.id LIMIT 1))"""

BACKFILL = (
    "UPDATE layer_risk_zones z SET district = b.district FROM layer_buildings b "
    "WHERE z.kind = 'dangerous_building' AND b.id = z.subject_id",
    f"UPDATE layer_risk_zones z SET district = {WALL_DISTRICT} "
    "FROM layer_curtain_walls w WHERE z.kind = 'curtain_wall' AND w.id = z.subject_id",
    "UPDATE layer_risk_zones z SET chief_id = r.chief_id FROM layer_rivers r "
    "WHERE z.kind = 'river_pressure' AND r.id = z.subject_id",
    "UPDATE layer_risk_grid c SET district = (SELECT d.name FROM layer_districts d "
    "WHERE ST_Intersects(d.geom, ST_Centroid(c.geom)) ORDER BY d.id LIMIT 1)",
)


def upgrade() -> None:
    op.add_column(
        "layer_risk_zones", sa.Column("district", sa.Text(), comment="District")
    )
    op.add_column(
        "layer_risk_zones",
        sa.Column("chief_id", sa.Text(), comment="River chief id"),
    )
    op.add_column(
        "layer_risk_grid", sa.Column("district", sa.Text(), comment="District")
    )
    op.create_index("ix_layer_risk_zones_district", "layer_risk_zones", ["district"])
    op.create_index("ix_layer_risk_zones_chief_id", "layer_risk_zones", ["chief_id"])
    op.create_index("ix_layer_risk_grid_district", "layer_risk_grid", ["district"])
    for layer in SUBJECT_LAYERS:
        op.create_index(f"ix_layer_{layer}_source_id", f"layer_{layer}", ["source_id"])
    op.add_column(
        "supervision_evidence",
        sa.Column(
            "uploaded_by",
            sa.Text(),
            server_default=sa.text("nullif(current_setting('gis.username', true), '')"),
        ),
    )
    op.create_index(
        "ix_supervision_warning_events_evidence",
        "supervision_warning_events",
        ["evidence"],
        postgresql_using="gin",
        postgresql_ops={"evidence": "jsonb_path_ops"},
    )
    op.create_index(
        "ix_feed_inspection_problems_photo_sha256",
        "feed_inspection_problems",
        ["photo_sha256"],
    )
    for statement in BACKFILL:
        op.execute(statement)


def downgrade() -> None:
    op.drop_index(
        "ix_feed_inspection_problems_photo_sha256",
        table_name="feed_inspection_problems",
    )
    op.drop_index(
        "ix_supervision_warning_events_evidence",
        table_name="supervision_warning_events",
    )
    op.drop_column("supervision_evidence", "uploaded_by")
    for layer in SUBJECT_LAYERS:
        op.drop_index(f"ix_layer_{layer}_source_id", table_name=f"layer_{layer}")
    op.drop_index("ix_layer_risk_grid_district", table_name="layer_risk_grid")
    op.drop_index("ix_layer_risk_zones_chief_id", table_name="layer_risk_zones")
    op.drop_index("ix_layer_risk_zones_district", table_name="layer_risk_zones")
    op.drop_column("layer_risk_grid", "district")
    op.drop_column("layer_risk_zones", "chief_id")
    op.drop_column("layer_risk_zones", "district")
