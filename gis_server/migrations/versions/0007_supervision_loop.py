"""supervision warnings and their closed loop

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 19:30:00

The ``supervision_warnings`` layer table (declared in
``layers/supervision/warnings.py``), the loop history
``supervision_warning_events`` and the evidence register
``supervision_evidence`` (both in ``models/supervision``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "layer_supervision_warnings"
LAYER_ID = "supervision_warnings"
TS = sa.DateTime(timezone=True)

#: (name, type, comment) of the declared properties, in declaration order.
PROPERTIES = (
    ("rule", sa.Text(), "Rule"),
    ("domain", sa.Text(), "Domain"),
    ("level", sa.Text(), "Warning level"),
    ("state", sa.Text(), "State"),
    ("occurrence", sa.Integer(), "Occurrence"),
    ("subject_layer", sa.Text(), "Subject layer"),
    ("subject_id", sa.Text(), "Subject id"),
    ("summary", sa.Text(), "Summary"),
    ("responsible", sa.Text(), "Responsible party"),
    ("district", sa.Text(), "District"),
    ("period", sa.Text(), "Period"),
    ("raised_at", TS, "Raised at"),
    ("observed_at", TS, "Last observed"),
    ("dispatched_at", TS, "Dispatched at"),
    ("deadline", TS, "Rectification deadline"),
    ("rectified_at", TS, "Rectified at"),
    ("closed_at", TS, "Closed at"),
    ("escalation", sa.Integer(), "Escalation (0 none, 1 督办, 2 约谈, 3 通报)"),
    ("escalated_at", TS, "Last escalated at"),
    ("overdue", sa.Boolean(), "Overdue"),
    ("evidence", postgresql.JSONB(astext_type=sa.Text()), "Evidence"),
    ("source_standard", sa.Text(), "Standard"),
    ("located", sa.Boolean(), "Placed on its subject"),
)
#: btree indexes: temporal and indexed properties, and updated_at
INDEXED = (
    "rule",
    "domain",
    "state",
    "responsible",
    "district",
    "raised_at",
    "updated_at",
)


def _point(srid: int, **kw) -> Geometry:
    return Geometry(
        geometry_type="POINT",
        srid=srid,
        dimension=2,
        spatial_index=False,
        from_text="ST_GeomFromEWKT",
        name="geometry",
        **kw,
    )


def upgrade() -> None:
    op.create_geospatial_table(
        TABLE,
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column(
            "source_part", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        *(
            sa.Column(name, type_, nullable=True, comment=comment)
            for name, type_, comment in PROPERTIES
        ),
        sa.Column(
            "extra",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("geom", _point(4326, nullable=False), nullable=False),
        sa.Column(
            "geom_3857",
            _point(3857),
            sa.Computed("ST_Transform(geom, 3857)", persisted=True),
            nullable=True,
        ),
        sa.Column("updated_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "level IN ('yellow', 'orange', 'red')",
            name=op.f(f"ck_{TABLE}_level_choice"),
        ),
        sa.CheckConstraint(
            "state IN ('raised', 'dispatched', 'rectified', 'closed')",
            name=op.f(f"ck_{TABLE}_state_choice"),
        ),
        sa.CheckConstraint(
            "occurrence >= 0", name=op.f(f"ck_{TABLE}_occurrence_non_negative")
        ),
        sa.CheckConstraint(
            "escalation >= 0", name=op.f(f"ck_{TABLE}_escalation_non_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{TABLE}")),
        sa.UniqueConstraint(
            "source", "source_id", "source_part", name=f"uq_{TABLE}_source_key"
        ),
    )
    # create_geospatial_table drops a table comment: set it on its own
    op.create_table_comment(TABLE, "Supervision warnings (监管预警)")
    for col in ("geom", "geom_3857"):
        op.create_geospatial_index(
            f"ix_{TABLE}_{col}",
            TABLE,
            [col],
            unique=False,
            postgresql_using="gist",
            postgresql_ops={},
        )
    for col in INDEXED:
        op.create_index(f"ix_{TABLE}_{col}", TABLE, [col], unique=False)
    op.execute(
        f"CREATE TRIGGER bump_version AFTER INSERT OR UPDATE OR DELETE "
        f"ON {TABLE} FOR EACH STATEMENT "
        f"EXECUTE FUNCTION gis_bump_layer_version('{LAYER_ID}')"
    )
    op.execute(
        f"CREATE TRIGGER bump_version_truncate AFTER TRUNCATE "
        f"ON {TABLE} FOR EACH STATEMENT "
        f"EXECUTE FUNCTION gis_bump_layer_version('{LAYER_ID}')"
    )
    op.execute(
        f"INSERT INTO layer_versions (layer_id, version) VALUES ('{LAYER_ID}', 0) "
        "ON CONFLICT DO NOTHING"
    )

    op.create_table(
        "supervision_warning_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("warning_id", sa.BigInteger(), nullable=False),
        sa.Column("at", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("actor_role", sa.Text(), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("from_state", sa.Text(), nullable=True),
        sa.Column("to_state", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "evidence",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("deadline", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["warning_id"],
            [f"{TABLE}.id"],
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supervision_warning_events")),
        comment="History of every supervision warning's loop",
    )
    op.create_index(
        "ix_supervision_warning_events_warning_id",
        "supervision_warning_events",
        ["warning_id"],
        unique=False,
    )
    op.create_table(
        "supervision_evidence",
        sa.Column("sha256", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("stored_at", TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_supervision_evidence")),
        comment="Evidence files of warning rectifications (stored outside the DB)",
    )


def downgrade() -> None:
    op.drop_table("supervision_evidence")
    op.drop_table("supervision_warning_events")
    op.drop_geospatial_table(TABLE)
    op.execute(f"DELETE FROM layer_versions WHERE layer_id = '{LAYER_ID}'")
