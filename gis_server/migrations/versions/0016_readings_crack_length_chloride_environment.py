"""crack length and storey height on readings; a mix's chloride environment

``feed_building_readings`` gains the crack length and the storey height
(JGJ 125-99: a vertical compression crack counts when it is longer than half
the storey height); ``feed_concrete_production`` gains the concrete type /
environment whose GB 50164-2011 table 3.1.8 limit its chloride content is
judged against. Written by hand to match ``layers.tables.build_feed_table``;
the choices are spelled out (a migration must not change when the
declarations do).

Revision ID: 0016
Revises: 0012
Create Date: 2026-12-04 10:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READINGS = "feed_building_readings"
PRODUCTION = "feed_concrete_production"
CHLORIDE_ENVIRONMENTS = (
    "reinforced_dry",
    "reinforced_humid",
    "reinforced_chloride",
    "reinforced_deicing",
    "prestressed",
    "plain",
)


def upgrade() -> None:
    op.add_column(
        READINGS,
        sa.Column("crack_length_m", sa.Double(), nullable=True, comment="Crack length"),
    )
    op.add_column(
        READINGS,
        sa.Column(
            "storey_height_m", sa.Double(), nullable=True, comment="Storey height"
        ),
    )
    for column in ("crack_length_m", "storey_height_m"):
        op.create_check_constraint(
            f"ck_{READINGS}_{column}_non_negative", READINGS, f"{column} >= 0"
        )
    op.add_column(
        PRODUCTION,
        sa.Column(
            "chloride_environment",
            sa.Text(),
            nullable=True,
            comment="Concrete type / environment (chloride limit)",
        ),
    )
    allowed = ", ".join(f"'{c}'" for c in CHLORIDE_ENVIRONMENTS)
    op.create_check_constraint(
        f"ck_{PRODUCTION}_chloride_environment_choice",
        PRODUCTION,
        f"chloride_environment IN ({allowed})",
    )


def downgrade() -> None:
    op.drop_column(PRODUCTION, "chloride_environment")
    op.drop_column(READINGS, "storey_height_m")
    op.drop_column(READINGS, "crack_length_m")
