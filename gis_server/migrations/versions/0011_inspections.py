"""water-engineering inspections: checklists, inspections, problems

The three record feeds of ``layers/supervision/inspections.py``, written by
hand to match ``layers.tables.build_feed_table``. Stages and severities are
spelled out: a migration must not change when the declarations do.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 19:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STAGES = (
    "preparation",
    "foundation",
    "main_structure",
    "metal_structure",
    "electromechanical",
    "completion",
)
SEVERITIES = ("general", "serious", "severe")


def _choice(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _frame_head() -> list:
    return [sa.Column("id", sa.BigInteger(), sa.Identity(always=False),
                      nullable=False)]


def _frame_tail() -> list:
    return [
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("extra", postgresql.JSONB(astext_type=sa.Text()),
                  server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True),
                  server_default=sa.text("now()"), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "feed_inspection_checklists",
        *_frame_head(),
        sa.Column("stage", sa.Text(), nullable=False, comment="Stage"),
        sa.Column("item_code", sa.Text(), nullable=False, comment="Item code"),
        sa.Column("item", sa.Text(), nullable=False, comment="Item"),
        sa.Column("severity_default", sa.Text(), nullable=True,
                  comment="Default severity"),
        sa.Column("required", sa.Boolean(), nullable=True, comment="Required"),
        *_frame_tail(),
        sa.PrimaryKeyConstraint("id", name="pk_feed_inspection_checklists"),
        sa.UniqueConstraint("stage", "item_code",
                            name="uq_feed_inspection_checklists_key"),
        sa.CheckConstraint(_choice("stage", STAGES),
                           name="ck_feed_inspection_checklists_stage_choice"),
        sa.CheckConstraint(
            _choice("severity_default", SEVERITIES),
            name="ck_feed_inspection_checklists_severity_default_choice"),
        comment="Inspection checklists (巡检检查表)",
    )
    op.create_table(
        "feed_inspections",
        *_frame_head(),
        sa.Column("inspection_id", sa.Text(), nullable=False, comment="Inspection"),
        sa.Column("project", sa.Text(), nullable=False, comment="Project"),
        sa.Column("stage", sa.Text(), nullable=False, comment="Stage"),
        sa.Column("inspector", sa.Text(), nullable=True, comment="Inspector"),
        sa.Column("inspected_on", sa.Date(), nullable=False, comment="Inspected on"),
        sa.Column("district", sa.Text(), nullable=True, comment="District"),
        sa.Column("lon", sa.Double(), nullable=True, comment="Longitude"),
        sa.Column("lat", sa.Double(), nullable=True, comment="Latitude"),
        sa.Column("checked_items", postgresql.JSONB(astext_type=sa.Text()),
                  nullable=True, comment="Checked items"),
        *_frame_tail(),
        sa.PrimaryKeyConstraint("id", name="pk_feed_inspections"),
        sa.UniqueConstraint("inspection_id", name="uq_feed_inspections_key"),
        sa.CheckConstraint(_choice("stage", STAGES),
                           name="ck_feed_inspections_stage_choice"),
        comment="Water-engineering inspections (水工程巡检记录)",
    )
    op.create_index("ix_feed_inspections_project", "feed_inspections", ["project"])
    op.create_index("ix_feed_inspections_inspected_on", "feed_inspections",
                    ["inspected_on"])
    op.create_table(
        "feed_inspection_problems",
        *_frame_head(),
        sa.Column("inspection_id", sa.Text(), nullable=False, comment="Inspection"),
        sa.Column("problem_no", sa.Integer(), nullable=False, comment="Problem no."),
        sa.Column("item_code", sa.Text(), nullable=True, comment="Item code"),
        sa.Column("severity", sa.Text(), nullable=True, comment="Severity"),
        sa.Column("description", sa.Text(), nullable=False, comment="Description"),
        sa.Column("photo_sha256", sa.Text(), nullable=True,
                  comment="Photo (SHA-256)"),
        sa.Column("measures", sa.Text(), nullable=True, comment="Measures"),
        sa.Column("responsible", sa.Text(), nullable=True, comment="Responsible"),
        *_frame_tail(),
        sa.PrimaryKeyConstraint("id", name="pk_feed_inspection_problems"),
        sa.UniqueConstraint("inspection_id", "problem_no",
                            name="uq_feed_inspection_problems_key"),
        sa.CheckConstraint(
            "problem_no >= 0",
            name="ck_feed_inspection_problems_problem_no_non_negative"),
        sa.CheckConstraint(_choice("severity", SEVERITIES),
                           name="ck_feed_inspection_problems_severity_choice"),
        comment="Inspection problems (巡检发现问题)",
    )


def downgrade() -> None:
    op.drop_table("feed_inspection_problems")
    op.drop_index("ix_feed_inspections_inspected_on", table_name="feed_inspections")
    op.drop_index("ix_feed_inspections_project", table_name="feed_inspections")
    op.drop_table("feed_inspections")
    op.drop_table("feed_inspection_checklists")
