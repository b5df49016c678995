"""water: warnings and patrol-task layers, observations, patrol records, models

Revision ID: 0003
Revises: 0001
Create Date: 2026-12-03

``water_observations`` is a plain table keyed by (station, time, indicator)
with a BRIN index on time; the figures behind choosing it over monthly
partitions are in ``models/water/store.py`` (``bench/bench_water.py store``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = "0003"
# NOTE: the lead relinks this after the risk migration (0002).
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: New layer tables at this revision: same data-version triggers as in 0001
#: (the function ``gis_bump_layer_version`` is created there).
LAYER_IDS = ("water_quality_warnings", "patrol_tasks")


def upgrade() -> None:
    op.create_geospatial_table(
        "layer_patrol_tasks",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column(
            "source_part", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("chief_id", sa.Text(), nullable=True, comment="River chief id"),
        sa.Column("chief_level", sa.Text(), nullable=True, comment="River chief level"),
        sa.Column("segment_code", sa.Text(), nullable=True, comment="Segment code"),
        sa.Column("period_start", sa.Date(), nullable=True, comment="Period start"),
        sa.Column("period_end", sa.Date(), nullable=True, comment="Period end"),
        sa.Column("level", sa.Text(), nullable=True, comment="Warning level"),
        sa.Column(
            "interval_days", sa.Double(), nullable=True, comment="Days between patrols"
        ),
        sa.Column(
            "patrols_required",
            sa.Integer(),
            nullable=True,
            comment="Patrols required in the period",
        ),
        sa.Column(
            "patrols_done",
            sa.Integer(),
            nullable=True,
            comment="Patrols done in the period",
        ),
        sa.Column(
            "urgency_rank",
            sa.Integer(),
            nullable=True,
            comment="Urgency rank (1 = most urgent)",
        ),
        sa.Column("reason", sa.Text(), nullable=True, comment="Reason"),
        sa.Column(
            "last_patrol_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Last patrol",
        ),
        sa.Column(
            "due_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Next patrol due",
        ),
        sa.Column("overdue", sa.Boolean(), nullable=True, comment="Overdue"),
        sa.Column("overdue_days", sa.Double(), nullable=True, comment="Days overdue"),
        sa.Column(
            "extra",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTILINESTRING",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "geom_3857",
            Geometry(
                geometry_type="MULTILINESTRING",
                srid=3857,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            sa.Computed("ST_Transform(geom, 3857)", persisted=True),
            nullable=True,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "chief_level IN ('city', 'district', 'town', 'village')",
            name=op.f("ck_layer_patrol_tasks_chief_level_choice"),
        ),
        sa.CheckConstraint(
            "level IN ('none', 'yellow', 'orange', 'red')",
            name=op.f("ck_layer_patrol_tasks_level_choice"),
        ),
        sa.CheckConstraint(
            "interval_days >= 0",
            name=op.f("ck_layer_patrol_tasks_interval_days_non_negative"),
        ),
        sa.CheckConstraint(
            "patrols_done >= 0",
            name=op.f("ck_layer_patrol_tasks_patrols_done_non_negative"),
        ),
        sa.CheckConstraint(
            "patrols_required >= 0",
            name=op.f("ck_layer_patrol_tasks_patrols_required_non_negative"),
        ),
        sa.CheckConstraint(
            "urgency_rank >= 0",
            name=op.f("ck_layer_patrol_tasks_urgency_rank_non_negative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_layer_patrol_tasks")),
        sa.UniqueConstraint(
            "source",
            "source_id",
            "source_part",
            name="uq_layer_patrol_tasks_source_key",
        ),
    )
    op.create_index(
        "ix_layer_patrol_tasks_due_at", "layer_patrol_tasks", ["due_at"], unique=False
    )
    op.create_geospatial_index(
        "ix_layer_patrol_tasks_geom",
        "layer_patrol_tasks",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_geospatial_index(
        "ix_layer_patrol_tasks_geom_3857",
        "layer_patrol_tasks",
        ["geom_3857"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        "ix_layer_patrol_tasks_period_start",
        "layer_patrol_tasks",
        ["period_start"],
        unique=False,
    )
    op.create_index(
        "ix_layer_patrol_tasks_updated_at",
        "layer_patrol_tasks",
        ["updated_at"],
        unique=False,
    )
    op.create_geospatial_table(
        "layer_water_quality_warnings",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column(
            "source_part", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("segment_code", sa.Text(), nullable=True, comment="Segment code"),
        sa.Column("level", sa.Text(), nullable=True, comment="Warning level"),
        sa.Column(
            "probability", sa.Double(), nullable=True, comment="Relapse probability"
        ),
        sa.Column(
            "grade",
            sa.Text(),
            nullable=True,
            comment="Black-odorous grade (2015 guideline)",
        ),
        sa.Column(
            "gb3838_class", sa.Text(), nullable=True, comment="GB 3838-2002 class"
        ),
        sa.Column(
            "reasons",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="Reasons",
        ),
        sa.Column("model_version", sa.Text(), nullable=True, comment="Model version"),
        sa.Column(
            "top_factors",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="Top contributing factors",
        ),
        sa.Column("chief_id", sa.Text(), nullable=True, comment="River chief id"),
        sa.Column(
            "computed_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Computed at",
        ),
        sa.Column(
            "extra",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTILINESTRING",
                srid=4326,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
                nullable=False,
            ),
            nullable=False,
        ),
        sa.Column(
            "geom_3857",
            Geometry(
                geometry_type="MULTILINESTRING",
                srid=3857,
                dimension=2,
                spatial_index=False,
                from_text="ST_GeomFromEWKT",
                name="geometry",
            ),
            sa.Computed("ST_Transform(geom, 3857)", persisted=True),
            nullable=True,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "gb3838_class IN ('I', 'II', 'III', 'IV', 'V', '劣V')",
            name=op.f("ck_layer_water_quality_warnings_gb3838_class_choice"),
        ),
        sa.CheckConstraint(
            "grade IN ('none', 'mild', 'severe')",
            name=op.f("ck_layer_water_quality_warnings_grade_choice"),
        ),
        sa.CheckConstraint(
            "level IN ('none', 'yellow', 'orange', 'red')",
            name=op.f("ck_layer_water_quality_warnings_level_choice"),
        ),
        sa.CheckConstraint(
            "probability >= 0",
            name=op.f("ck_layer_water_quality_warnings_probability_non_negative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_layer_water_quality_warnings")),
        sa.UniqueConstraint(
            "source",
            "source_id",
            "source_part",
            name="uq_layer_water_quality_warnings_source_key",
        ),
    )
    op.create_index(
        "ix_layer_water_quality_warnings_computed_at",
        "layer_water_quality_warnings",
        ["computed_at"],
        unique=False,
    )
    op.create_geospatial_index(
        "ix_layer_water_quality_warnings_geom",
        "layer_water_quality_warnings",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_geospatial_index(
        "ix_layer_water_quality_warnings_geom_3857",
        "layer_water_quality_warnings",
        ["geom_3857"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        "ix_layer_water_quality_warnings_updated_at",
        "layer_water_quality_warnings",
        ["updated_at"],
        unique=False,
    )
    op.create_table(
        "water_models",
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column(
            "trained_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("features", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "metrics",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("labelled", sa.Integer(), nullable=False),
        sa.Column("segments", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_water_models")),
        comment="Trained relapse models (返黑返臭预测模型)",
    )
    op.create_table(
        "water_observations",
        sa.Column("station_code", sa.Text(), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("indicator", sa.Text(), nullable=False),
        sa.Column("value", sa.Double(), nullable=False),
        sa.Column("unit", sa.Text(), nullable=False),
        sa.Column("load_id", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint(
            "station_code", "observed_at", "indicator", name="pk_water_observations"
        ),
        comment="Water-quality readings per station (水质监测数据)",
    )
    op.create_index(
        "ix_water_observations_observed_at_brin",
        "water_observations",
        ["observed_at"],
        unique=False,
        postgresql_using="brin",
    )
    op.create_table(
        "water_observation_loads",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column(
            "loaded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "report",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_water_observation_loads")),
        comment="One row per observation ingest (provenance of readings)",
    )
    op.create_table(
        "water_patrol_records",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("chief_id", sa.Text(), nullable=False),
        sa.Column("segment_code", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_min", sa.Double(), nullable=False),
        sa.Column("distance_km", sa.Double(), nullable=False),
        sa.Column(
            "black_odorous",
            sa.Boolean(),
            nullable=True,
            comment="What the chief saw; NULL = not judged",
        ),
        sa.Column("problems", sa.Text(), nullable=True),
        sa.Column(
            "meets_standard",
            sa.Boolean(),
            nullable=False,
            comment="Lasted >= 10 min and covered >= 1 km (2021 guidance)",
        ),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "distance_km >= 0",
            name=op.f("ck_water_patrol_records_distance_non_negative"),
        ),
        sa.CheckConstraint(
            "duration_min >= 0",
            name=op.f("ck_water_patrol_records_duration_non_negative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_water_patrol_records")),
        comment="Completed river-chief patrols (巡河记录)",
    )
    op.create_index(
        "ix_water_patrol_records_chief",
        "water_patrol_records",
        ["chief_id", "started_at"],
        unique=False,
    )
    op.create_index(
        "ix_water_patrol_records_segment",
        "water_patrol_records",
        ["segment_code", "started_at"],
        unique=False,
    )
    for layer_id in LAYER_IDS:
        op.execute(
            f"CREATE TRIGGER bump_version AFTER INSERT OR UPDATE OR DELETE "
            f"ON layer_{layer_id} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION gis_bump_layer_version('{layer_id}')"
        )
        op.execute(
            f"CREATE TRIGGER bump_version_truncate AFTER TRUNCATE "
            f"ON layer_{layer_id} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION gis_bump_layer_version('{layer_id}')"
        )
        op.execute(
            f"INSERT INTO layer_versions (layer_id, version) VALUES ('{layer_id}', 0) "
            f"ON CONFLICT (layer_id) DO NOTHING"
        )


def downgrade() -> None:
    op.execute(
        "DELETE FROM layer_versions "
        "WHERE layer_id IN ('water_quality_warnings', 'patrol_tasks')"
    )
    op.drop_table("water_patrol_records")
    op.drop_table("water_observations")
    op.drop_table("water_observation_loads")
    op.drop_table("water_models")
    op.drop_geospatial_table("layer_water_quality_warnings")
    op.drop_geospatial_table("layer_patrol_tasks")
