"""structural monitoring and curtain-wall checks

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 19:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _frame() -> list:
    return [
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "extra",
            JSONB(),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "loaded_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
    ]


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False)


def upgrade() -> None:
    # tables as layers.tables.build_feed_table derives them from the FeedSpecs
    # in layers/supervision/buildings.py (tests/test_store.py compares)
    op.create_table(
        "feed_building_readings",
        _id(),
        sa.Column("building_id", sa.Text(), nullable=False, comment="Building"),
        sa.Column(
            "sensor_id", sa.Text(), nullable=False, comment="Survey point / sensor"
        ),
        sa.Column(
            "measured_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="Measured at",
        ),
        sa.Column("kind", sa.Text(), nullable=False, comment="Kind"),
        sa.Column("value", sa.Double(), nullable=False, comment="Value"),
        sa.Column("crack_type", sa.Text(), comment="Crack type"),
        sa.Column(
            "near_underground_works", sa.Boolean(), comment="Next to underground works"
        ),
        *_frame(),
        sa.PrimaryKeyConstraint("id", name="pk_feed_building_readings"),
        sa.UniqueConstraint(
            "building_id",
            "sensor_id",
            "kind",
            "measured_at",
            name="uq_feed_building_readings_key",
        ),
        sa.CheckConstraint(
            "kind IN ('tilt_pct', 'crack_width_mm', 'settlement_mm')",
            name="ck_feed_building_readings_kind_choice",
        ),
        sa.CheckConstraint(
            "crack_type IN ('vertical_compression', 'beam_bearing', "
            "'horizontal_eccentric', 'settlement')",
            name="ck_feed_building_readings_crack_type_choice",
        ),
        comment="Structural monitoring readings (房屋结构监测数据)",
    )
    op.create_index(
        "ix_feed_building_readings_measured_at",
        "feed_building_readings",
        ["measured_at"],
    )
    op.create_table(
        "feed_curtain_wall_checks",
        _id(),
        sa.Column("wall_id", sa.Text(), nullable=False, comment="Curtain wall"),
        sa.Column("checked_on", sa.Date(), nullable=False, comment="Checked on"),
        sa.Column("kind", sa.Text(), nullable=False, comment="Kind"),
        sa.Column("result", sa.Text(), comment="Result"),
        *_frame(),
        sa.PrimaryKeyConstraint("id", name="pk_feed_curtain_wall_checks"),
        sa.UniqueConstraint(
            "wall_id", "checked_on", "kind", name="uq_feed_curtain_wall_checks_key"
        ),
        sa.CheckConstraint(
            "kind IN ('safety_check', 'adhesive_sampling', 'appraisal')",
            name="ck_feed_curtain_wall_checks_kind_choice",
        ),
        comment="Curtain-wall checks (玻璃幕墙检查记录)",
    )
    op.create_index(
        "ix_feed_curtain_wall_checks_checked_on",
        "feed_curtain_wall_checks",
        ["checked_on"],
    )
    op.create_table(
        "feed_curtain_wall_events",
        _id(),
        sa.Column("wall_id", sa.Text(), nullable=False, comment="Curtain wall"),
        sa.Column("occurred_on", sa.Date(), nullable=False, comment="Occurred on"),
        sa.Column("event", sa.Text(), nullable=False, comment="Event"),
        sa.Column("note", sa.Text(), comment="Note"),
        *_frame(),
        sa.PrimaryKeyConstraint("id", name="pk_feed_curtain_wall_events"),
        sa.UniqueConstraint(
            "wall_id", "occurred_on", "event", name="uq_feed_curtain_wall_events_key"
        ),
        sa.CheckConstraint(
            "event IN ('typhoon', 'lightning', 'fire', 'explosion', 'deformation', "
            "'falling_parts', 'burst_glass')",
            name="ck_feed_curtain_wall_events_event_choice",
        ),
        comment="Curtain-wall events (玻璃幕墙异常事件)",
    )
    op.create_index(
        "ix_feed_curtain_wall_events_occurred_on",
        "feed_curtain_wall_events",
        ["occurred_on"],
    )


def downgrade() -> None:
    for table in (
        "feed_curtain_wall_events",
        "feed_curtain_wall_checks",
        "feed_building_readings",
    ):
        op.drop_table(table)
