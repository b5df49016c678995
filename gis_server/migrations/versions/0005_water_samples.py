"""water_samples: readings pivoted to one row per (station, time)

Scoring all segments pivoted ~10 M ``water_observations`` rows per run (GROUP
BY + FILTER aggregates, ~15 s); ``water_samples`` keeps that wide form
current at ingest so scoring reads pre-pivoted rows. The upgrade backfills it
from the stored readings.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 18:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# models.water.store.PIVOT_INDICATORS at this revision (spelled out: a
# migration must not change when the model code does)
INDICATORS = (
    "transparency",
    "do",
    "orp",
    "nh3n",
    "turbidity",
    "tp",
    "codmn",
    "cod",
    "ph",
    "depth",
    "rainfall",
)


def upgrade() -> None:
    op.create_table(
        "water_samples",
        sa.Column("station_code", sa.Text(), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        *(sa.Column(k, sa.Double(), nullable=True) for k in INDICATORS),
        sa.PrimaryKeyConstraint("station_code", "observed_at", name="pk_water_samples"),
        comment="Readings pivoted to one row per station and time (NULL = missing)",
    )
    cols = ", ".join(f'"{k}"' for k in INDICATORS)
    aggs = ", ".join(f"max(value) FILTER (WHERE indicator = '{k}')" for k in INDICATORS)
    op.execute(
        f"INSERT INTO water_samples (station_code, observed_at, {cols}) "
        f"SELECT station_code, observed_at, {aggs} FROM water_observations "
        "GROUP BY station_code, observed_at"
    )


def downgrade() -> None:
    op.drop_table("water_samples")
