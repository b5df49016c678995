"""ready-mixed concrete plant records and credit

Four record feeds (layers/supervision/concrete.py: production, batching,
raw-material arrivals, self-test specimen groups), as layers.tables derives
them, and the credit-score history (models/supervision/concrete.py).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 19:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "concrete_credit_history",
        sa.Column("plant_id", sa.Text(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("deductions", JSONB(), nullable=False),
        sa.Column(
            "computed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("plant_id", "as_of", name="pk_concrete_credit_history"),
        comment="Credit score of each concrete plant per evaluation date",
    )
    op.create_table(
        "feed_concrete_batching",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("plant_id", sa.Text(), nullable=False, comment="Plant id"),
        sa.Column("batch_no", sa.Text(), nullable=False, comment="Batch number"),
        sa.Column(
            "record_no", sa.Text(), nullable=False, comment="Production record number"
        ),
        sa.Column(
            "produced_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Produced at",
        ),
        sa.Column("material", sa.Text(), nullable=False, comment="Material"),
        sa.Column("target_kg", sa.Double(), nullable=False, comment="Target weight"),
        sa.Column("actual_kg", sa.Double(), nullable=False, comment="Actual weight"),
        sa.Column("cumulative", sa.Boolean(), nullable=True, comment="Cumulative"),
        sa.Column(
            "chloride_pct", sa.Double(), nullable=True, comment="Chloride content"
        ),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "extra", JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column(
            "loaded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "material IN ('binder', 'aggregate', 'water', 'admixture')",
            name=op.f("ck_feed_concrete_batching_material_choice"),
        ),
        sa.CheckConstraint(
            "actual_kg >= 0",
            name=op.f("ck_feed_concrete_batching_actual_kg_non_negative"),
        ),
        sa.CheckConstraint(
            "chloride_pct >= 0",
            name=op.f("ck_feed_concrete_batching_chloride_pct_non_negative"),
        ),
        sa.CheckConstraint(
            "target_kg >= 0",
            name=op.f("ck_feed_concrete_batching_target_kg_non_negative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_concrete_batching")),
        sa.UniqueConstraint(
            "plant_id",
            "record_no",
            "batch_no",
            "material",
            name="uq_feed_concrete_batching_key",
        ),
        comment="Concrete batching records (预拌混凝土生产配料)",
    )
    op.create_index(
        "ix_feed_concrete_batching_plant_id",
        "feed_concrete_batching",
        ["plant_id"],
        unique=False,
    )
    op.create_index(
        "ix_feed_concrete_batching_produced_at",
        "feed_concrete_batching",
        ["produced_at"],
        unique=False,
    )
    op.create_table(
        "feed_concrete_materials",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("plant_id", sa.Text(), nullable=False, comment="Plant id"),
        sa.Column(
            "material_record_no",
            sa.Text(),
            nullable=False,
            comment="Material record number",
        ),
        sa.Column("material", sa.Text(), nullable=False, comment="Material"),
        sa.Column("supplier", sa.Text(), nullable=True, comment="Supplier"),
        sa.Column("batch_no", sa.Text(), nullable=True, comment="Lot number"),
        sa.Column(
            "quantity_kg", sa.Double(), nullable=True, comment="Quantity arrived"
        ),
        sa.Column(
            "arrived_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="Arrived at",
        ),
        sa.Column(
            "entered_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Entered at",
        ),
        sa.Column("tested", sa.Boolean(), nullable=True, comment="Self-tested"),
        sa.Column(
            "tested_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Self-test reported at",
        ),
        sa.Column("expires_on", sa.Date(), nullable=True, comment="Expires on"),
        sa.Column(
            "first_used_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="First used at",
        ),
        sa.Column(
            "last_used_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Last used at",
        ),
        sa.Column("used_kg", sa.Double(), nullable=True, comment="Quantity used"),
        sa.Column(
            "stone_powder_pct",
            sa.Double(),
            nullable=True,
            comment="Stone-powder content",
        ),
        sa.Column(
            "mb_value", sa.Double(), nullable=True, comment="Methylene-blue (MB) value"
        ),
        sa.Column(
            "for_strength_class", sa.Text(), nullable=True, comment="For strength class"
        ),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "extra", JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column(
            "loaded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "mb_value >= 0",
            name=op.f("ck_feed_concrete_materials_mb_value_non_negative"),
        ),
        sa.CheckConstraint(
            "quantity_kg >= 0",
            name=op.f("ck_feed_concrete_materials_quantity_kg_non_negative"),
        ),
        sa.CheckConstraint(
            "stone_powder_pct >= 0",
            name=op.f("ck_feed_concrete_materials_stone_powder_pct_non_negative"),
        ),
        sa.CheckConstraint(
            "used_kg >= 0", name=op.f("ck_feed_concrete_materials_used_kg_non_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_concrete_materials")),
        sa.UniqueConstraint(
            "plant_id", "material_record_no", name="uq_feed_concrete_materials_key"
        ),
        comment="Raw-material arrivals (原材料进场记录)",
    )
    op.create_index(
        "ix_feed_concrete_materials_arrived_at",
        "feed_concrete_materials",
        ["arrived_at"],
        unique=False,
    )
    op.create_index(
        "ix_feed_concrete_materials_plant_id",
        "feed_concrete_materials",
        ["plant_id"],
        unique=False,
    )
    op.create_table(
        "feed_concrete_production",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("plant_id", sa.Text(), nullable=False, comment="Plant id"),
        sa.Column(
            "record_no", sa.Text(), nullable=False, comment="Production record number"
        ),
        sa.Column(
            "produced_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="Produced at",
        ),
        sa.Column("project", sa.Text(), nullable=True, comment="Project"),
        sa.Column("strength_class", sa.Text(), nullable=True, comment="Strength class"),
        sa.Column("volume_m3", sa.Double(), nullable=True, comment="Volume"),
        sa.Column("mix_ratio_no", sa.Text(), nullable=True, comment="Mix ratio number"),
        sa.Column(
            "batching_serial",
            sa.Text(),
            nullable=True,
            comment="Batching serial number",
        ),
        sa.Column("approved", sa.Boolean(), nullable=True, comment="Approved"),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "extra", JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column(
            "loaded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "volume_m3 >= 0",
            name=op.f("ck_feed_concrete_production_volume_m3_non_negative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_concrete_production")),
        sa.UniqueConstraint(
            "plant_id", "record_no", name="uq_feed_concrete_production_key"
        ),
        comment="Concrete production records (预拌混凝土生产记录)",
    )
    op.create_index(
        "ix_feed_concrete_production_plant_id",
        "feed_concrete_production",
        ["plant_id"],
        unique=False,
    )
    op.create_index(
        "ix_feed_concrete_production_produced_at",
        "feed_concrete_production",
        ["produced_at"],
        unique=False,
    )
    op.create_table(
        "feed_concrete_self_tests",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("plant_id", sa.Text(), nullable=False, comment="Plant id"),
        sa.Column("group_no", sa.Text(), nullable=False, comment="Group number"),
        sa.Column(
            "record_no", sa.Text(), nullable=True, comment="Production record number"
        ),
        sa.Column(
            "strength_class", sa.Text(), nullable=False, comment="Strength class"
        ),
        sa.Column("cast_on", sa.Date(), nullable=False, comment="Cast on"),
        sa.Column("tested_on", sa.Date(), nullable=True, comment="Tested on"),
        sa.Column(
            "strength_mpa",
            sa.Double(),
            nullable=True,
            comment="Compressive strength (group value)",
        ),
        sa.Column("curing", sa.Text(), nullable=True, comment="Curing"),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column(
            "extra", JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column(
            "loaded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "curing IN ('standard', 'same_condition')",
            name=op.f("ck_feed_concrete_self_tests_curing_choice"),
        ),
        sa.CheckConstraint(
            "strength_mpa >= 0",
            name=op.f("ck_feed_concrete_self_tests_strength_mpa_non_negative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_concrete_self_tests")),
        sa.UniqueConstraint(
            "plant_id", "group_no", name="uq_feed_concrete_self_tests_key"
        ),
        comment="Self-test specimen groups (混凝土自检试件组)",
    )
    op.create_index(
        "ix_feed_concrete_self_tests_cast_on",
        "feed_concrete_self_tests",
        ["cast_on"],
        unique=False,
    )
    op.create_index(
        "ix_feed_concrete_self_tests_plant_id",
        "feed_concrete_self_tests",
        ["plant_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        "ix_feed_concrete_self_tests_plant_id", table_name="feed_concrete_self_tests"
    )
    op.drop_index(
        "ix_feed_concrete_self_tests_cast_on", table_name="feed_concrete_self_tests"
    )
    op.drop_table("feed_concrete_self_tests")
    op.drop_index(
        "ix_feed_concrete_production_produced_at", table_name="feed_concrete_production"
    )
    op.drop_index(
        "ix_feed_concrete_production_plant_id", table_name="feed_concrete_production"
    )
    op.drop_table("feed_concrete_production")
    op.drop_index(
        "ix_feed_concrete_materials_plant_id", table_name="feed_concrete_materials"
    )
    op.drop_index(
        "ix_feed_concrete_materials_arrived_at", table_name="feed_concrete_materials"
    )
    op.drop_table("feed_concrete_materials")
    op.drop_index(
        "ix_feed_concrete_batching_produced_at", table_name="feed_concrete_batching"
    )
    op.drop_index(
        "ix_feed_concrete_batching_plant_id", table_name="feed_concrete_batching"
    )
    op.drop_table("feed_concrete_batching")
    op.drop_table("concrete_credit_history")
