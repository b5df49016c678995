"""risk: roads, risk_zones, risk_grid layers; dirty queue and triggers

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 17:02:29.877180
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


#: New layer tables at this revision: same data-version triggers as in 0001.
LAYER_IDS = ("roads", "risk_zones", "risk_grid")

#: Source layers watched for incremental risk recomputation, with the zone
#: kinds an edit of that layer can change (frozen here; see models.risk.dirty).
WATCHED = {
    "buildings": ("dangerous_building", "curtain_wall"),
    "roads": ("dangerous_building", "curtain_wall"),
    "curtain_walls": ("curtain_wall",),
    "rivers": ("river_pressure",),
    "construction_sites": ("river_pressure",),
    "plants": ("river_pressure",),
}

BOOKKEEPING = """
CREATE TABLE risk_dirty (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    layer_id text NOT NULL,
    feature_id bigint,
    op char(1) NOT NULL CHECK (op IN ('I', 'U', 'D', 'T')),
    old_bbox geometry(Geometry, 4326),
    new_bbox geometry(Geometry, 4326),
    changed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE risk_dirty IS
    'Source-feature changes not yet folded into risk_zones (risk refresh).';
CREATE INDEX ix_risk_dirty_layer ON risk_dirty (layer_id);

CREATE TABLE risk_grid_dirty (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    old_bbox geometry(Geometry, 4326),
    new_bbox geometry(Geometry, 4326)
);
COMMENT ON TABLE risk_grid_dirty IS
    'Risk zones changed since the grid was last computed (old/new bbox).';

CREATE TABLE risk_river_local (
    river_id bigint PRIMARY KEY,
    code text,
    downstream_code text,
    local_pressure double precision NOT NULL,
    cause_ids jsonb NOT NULL DEFAULT '{}'::jsonb,
    computed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE risk_river_local IS
    'Pressure of nearby sources on each river segment before accumulation.';

CREATE TABLE risk_runs (
    kind text PRIMARY KEY,
    mode text NOT NULL,
    params jsonb NOT NULL DEFAULT '{}'::jsonb,
    zones integer NOT NULL DEFAULT 0,
    changed integer NOT NULL DEFAULT 0,
    seconds double precision NOT NULL DEFAULT 0,
    finished_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE risk_runs IS 'Last computation of each risk kind.';
"""

#: Zones whose geometry or score changed: the grid cells under their old and
#: new bbox are recomputed by the next refresh (the stale flag alone does not
#: count).
GRID_DIRTY_FUNCTION = """
CREATE OR REPLACE FUNCTION gis_risk_grid_dirty() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO risk_grid_dirty (new_bbox)
        SELECT ST_Envelope(r.geom) FROM new_rows r;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO risk_grid_dirty (old_bbox, new_bbox)
        SELECT ST_Envelope(o.geom), ST_Envelope(r.geom)
        FROM new_rows r JOIN old_rows o USING (id)
        WHERE r.score IS DISTINCT FROM o.score OR r.geom IS DISTINCT FROM o.geom;
    ELSE
        INSERT INTO risk_grid_dirty (old_bbox)
        SELECT ST_Envelope(o.geom) FROM old_rows o;
    END IF;
    RETURN NULL;
END
$$;
"""

#: Statement-level triggers with transition tables: one INSERT ... SELECT per
#: statement records every changed row (id, old/new bbox), so a bulk ingest of
#: a million rows costs one set-based insert, not a million trigger calls.
#: Zones whose bbox a changed feature touches are flagged stale at once for
#: small statements; above 10,000 rows that is left to ``risk refresh``.
DIRTY_FUNCTION = """
CREATE OR REPLACE FUNCTION gis_risk_mark_dirty() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    kinds text[] := TG_ARGV[1]::text[];
    n bigint;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO risk_dirty (layer_id, feature_id, op, new_bbox)
        SELECT TG_ARGV[0], r.id, 'I', ST_Envelope(r.geom) FROM new_rows r;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n BETWEEN 1 AND 10000 THEN
            UPDATE layer_risk_zones z SET stale = true
            FROM new_rows r
            WHERE z.geom && r.geom AND z.kind = ANY (kinds)
              AND z.stale IS NOT TRUE;
        END IF;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO risk_dirty (layer_id, feature_id, op, old_bbox, new_bbox)
        SELECT TG_ARGV[0], r.id, 'U', ST_Envelope(o.geom), ST_Envelope(r.geom)
        FROM new_rows r JOIN old_rows o USING (id);
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n BETWEEN 1 AND 10000 THEN
            UPDATE layer_risk_zones z SET stale = true
            FROM (SELECT geom FROM new_rows UNION ALL SELECT geom FROM old_rows) r
            WHERE z.geom && r.geom AND z.kind = ANY (kinds)
              AND z.stale IS NOT TRUE;
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO risk_dirty (layer_id, feature_id, op, old_bbox)
        SELECT TG_ARGV[0], o.id, 'D', ST_Envelope(o.geom) FROM old_rows o;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n BETWEEN 1 AND 10000 THEN
            UPDATE layer_risk_zones z SET stale = true
            FROM old_rows o
            WHERE z.geom && o.geom AND z.kind = ANY (kinds)
              AND z.stale IS NOT TRUE;
        END IF;
    ELSE  -- TRUNCATE
        INSERT INTO risk_dirty (layer_id, op) VALUES (TG_ARGV[0], 'T');
        UPDATE layer_risk_zones SET stale = true
        WHERE kind = ANY (kinds) AND stale IS NOT TRUE;
    END IF;
    RETURN NULL;
END
$$;
"""


def upgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_geospatial_table(
        "layer_risk_grid",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column(
            "source_part", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("cell_id", sa.Text(), nullable=True, comment="Cell id"),
        sa.Column("cell_size_m", sa.Double(), nullable=True, comment="Cell size"),
        sa.Column(
            "building_score",
            sa.Double(),
            nullable=True,
            comment="Dangerous-building score",
        ),
        sa.Column(
            "curtain_wall_score",
            sa.Double(),
            nullable=True,
            comment="Curtain-wall score",
        ),
        sa.Column(
            "river_score", sa.Double(), nullable=True, comment="River-pressure score"
        ),
        sa.Column("composite", sa.Double(), nullable=True, comment="Composite score"),
        sa.Column("gi_z", sa.Double(), nullable=True, comment="Gi* z-score"),
        sa.Column("gi_p", sa.Double(), nullable=True, comment="Gi* p-value"),
        sa.Column("hotspot", sa.Text(), nullable=True, comment="Hot spot"),
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
                geometry_type="POLYGON",
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
                geometry_type="POLYGON",
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
            "hotspot IN ('hot', 'cold', 'not_significant')",
            name=op.f("ck_layer_risk_grid_hotspot_choice"),
        ),
        sa.CheckConstraint(
            "building_score >= 0",
            name=op.f("ck_layer_risk_grid_building_score_non_negative"),
        ),
        sa.CheckConstraint(
            "cell_size_m >= 0", name=op.f("ck_layer_risk_grid_cell_size_m_non_negative")
        ),
        sa.CheckConstraint(
            "composite >= 0", name=op.f("ck_layer_risk_grid_composite_non_negative")
        ),
        sa.CheckConstraint(
            "curtain_wall_score >= 0",
            name=op.f("ck_layer_risk_grid_curtain_wall_score_non_negative"),
        ),
        sa.CheckConstraint(
            "river_score >= 0", name=op.f("ck_layer_risk_grid_river_score_non_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_layer_risk_grid")),
        sa.UniqueConstraint(
            "source", "source_id", "source_part", name="uq_layer_risk_grid_source_key"
        ),
    )
    op.create_index(
        "ix_layer_risk_grid_computed_at",
        "layer_risk_grid",
        ["computed_at"],
        unique=False,
    )
    op.create_geospatial_index(
        "ix_layer_risk_grid_geom",
        "layer_risk_grid",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_geospatial_index(
        "ix_layer_risk_grid_geom_3857",
        "layer_risk_grid",
        ["geom_3857"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        "ix_layer_risk_grid_updated_at", "layer_risk_grid", ["updated_at"], unique=False
    )
    op.create_geospatial_table(
        "layer_risk_zones",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column(
            "source_part", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("kind", sa.Text(), nullable=True, comment="Zone kind"),
        sa.Column("level", sa.Text(), nullable=True, comment="Level"),
        sa.Column("score", sa.Double(), nullable=True, comment="Score"),
        sa.Column("subject_layer", sa.Text(), nullable=True, comment="Subject layer"),
        sa.Column(
            "subject_id", sa.Integer(), nullable=True, comment="Subject feature id"
        ),
        sa.Column(
            "reasons",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="Reasons",
        ),
        sa.Column(
            "cause_ids",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="Causing feature ids by layer",
        ),
        sa.Column("radius_m", sa.Double(), nullable=True, comment="Radius"),
        sa.Column(
            "building_count", sa.Integer(), nullable=True, comment="Buildings inside"
        ),
        sa.Column(
            "building_ids",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="Buildings inside (ids)",
        ),
        sa.Column(
            "sensitive_count",
            sa.Integer(),
            nullable=True,
            comment="Sensitive uses inside",
        ),
        sa.Column(
            "sensitive_ids",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="Sensitive uses inside (ids)",
        ),
        sa.Column(
            "road_length_m", sa.Double(), nullable=True, comment="Road length inside"
        ),
        sa.Column(
            "detail",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="Detail",
        ),
        sa.Column(
            "params",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=True,
            comment="Parameters",
        ),
        sa.Column(
            "computed_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Computed at",
        ),
        sa.Column("stale", sa.Boolean(), nullable=True, comment="Stale"),
        sa.Column(
            "extra",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "geom",
            Geometry(
                geometry_type="MULTIPOLYGON",
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
                geometry_type="MULTIPOLYGON",
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
            "kind IN ('dangerous_building', 'curtain_wall', 'river_pressure')",
            name=op.f("ck_layer_risk_zones_kind_choice"),
        ),
        sa.CheckConstraint(
            "level IN ('yellow', 'orange', 'red')",
            name=op.f("ck_layer_risk_zones_level_choice"),
        ),
        sa.CheckConstraint(
            "building_count >= 0",
            name=op.f("ck_layer_risk_zones_building_count_non_negative"),
        ),
        sa.CheckConstraint(
            "radius_m >= 0", name=op.f("ck_layer_risk_zones_radius_m_non_negative")
        ),
        sa.CheckConstraint(
            "road_length_m >= 0",
            name=op.f("ck_layer_risk_zones_road_length_m_non_negative"),
        ),
        sa.CheckConstraint(
            "score >= 0", name=op.f("ck_layer_risk_zones_score_non_negative")
        ),
        sa.CheckConstraint(
            "sensitive_count >= 0",
            name=op.f("ck_layer_risk_zones_sensitive_count_non_negative"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_layer_risk_zones")),
        sa.UniqueConstraint(
            "source", "source_id", "source_part", name="uq_layer_risk_zones_source_key"
        ),
    )
    op.create_index(
        "ix_layer_risk_zones_computed_at",
        "layer_risk_zones",
        ["computed_at"],
        unique=False,
    )
    op.create_geospatial_index(
        "ix_layer_risk_zones_geom",
        "layer_risk_zones",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_geospatial_index(
        "ix_layer_risk_zones_geom_3857",
        "layer_risk_zones",
        ["geom_3857"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        "ix_layer_risk_zones_updated_at",
        "layer_risk_zones",
        ["updated_at"],
        unique=False,
    )
    op.create_geospatial_table(
        "layer_roads",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Text(), nullable=False),
        sa.Column(
            "source_part", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("name", sa.Text(), nullable=True, comment="Name"),
        sa.Column("road_class", sa.Text(), nullable=True, comment="Road class"),
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
            "road_class IN ('motorway', 'primary', 'secondary', 'local')",
            name=op.f("ck_layer_roads_road_class_choice"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_layer_roads")),
        sa.UniqueConstraint(
            "source", "source_id", "source_part", name="uq_layer_roads_source_key"
        ),
    )
    op.create_geospatial_index(
        "ix_layer_roads_geom",
        "layer_roads",
        ["geom"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_geospatial_index(
        "ix_layer_roads_geom_3857",
        "layer_roads",
        ["geom_3857"],
        unique=False,
        postgresql_using="gist",
        postgresql_ops={},
    )
    op.create_index(
        "ix_layer_roads_updated_at", "layer_roads", ["updated_at"], unique=False
    )
    # ### end Alembic commands ###
    op.execute(BOOKKEEPING)
    op.execute(DIRTY_FUNCTION)
    for layer_id, kinds in WATCHED.items():
        table = f"layer_{layer_id}"
        args = f"'{layer_id}', '{{{','.join(kinds)}}}'"
        for event, referencing in (
            ("INSERT", "NEW TABLE AS new_rows"),
            ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", "OLD TABLE AS old_rows"),
        ):
            op.execute(
                f"CREATE TRIGGER risk_dirty_{event.lower()} AFTER {event} ON {table} "
                f"REFERENCING {referencing} FOR EACH STATEMENT "
                f"EXECUTE FUNCTION gis_risk_mark_dirty({args})"
            )
        op.execute(
            f"CREATE TRIGGER risk_dirty_truncate AFTER TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION gis_risk_mark_dirty({args})"
        )
    op.execute(GRID_DIRTY_FUNCTION)
    for event, referencing in (
        ("INSERT", "NEW TABLE AS new_rows"),
        ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ("DELETE", "OLD TABLE AS old_rows"),
    ):
        op.execute(
            f"CREATE TRIGGER risk_grid_dirty_{event.lower()} AFTER {event} "
            f"ON layer_risk_zones REFERENCING {referencing} FOR EACH STATEMENT "
            f"EXECUTE FUNCTION gis_risk_grid_dirty()"
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
            f"INSERT INTO layer_versions (layer_id, version) VALUES ('{layer_id}', 0)"
        )


def downgrade() -> None:
    for layer_id in WATCHED:
        for event in ("insert", "update", "delete", "truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS risk_dirty_{event} ON layer_{layer_id}")
    op.execute("DROP FUNCTION IF EXISTS gis_risk_mark_dirty()")
    op.execute("DROP FUNCTION IF EXISTS gis_risk_grid_dirty() CASCADE")
    op.execute(
        "DROP TABLE IF EXISTS risk_runs, risk_river_local, risk_grid_dirty, risk_dirty"
    )
    op.execute(
        "DELETE FROM layer_versions "
        "WHERE layer_id IN ('roads', 'risk_zones', 'risk_grid')"
    )
    # ### commands auto generated by Alembic - please adjust! ###
    op.drop_index("ix_layer_roads_updated_at", table_name="layer_roads")
    op.drop_geospatial_index(
        "ix_layer_roads_geom_3857",
        table_name="layer_roads",
        postgresql_using="gist",
        column_name="geom_3857",
    )
    op.drop_geospatial_index(
        "ix_layer_roads_geom",
        table_name="layer_roads",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_geospatial_table("layer_roads")
    op.drop_index("ix_layer_risk_zones_updated_at", table_name="layer_risk_zones")
    op.drop_geospatial_index(
        "ix_layer_risk_zones_geom_3857",
        table_name="layer_risk_zones",
        postgresql_using="gist",
        column_name="geom_3857",
    )
    op.drop_geospatial_index(
        "ix_layer_risk_zones_geom",
        table_name="layer_risk_zones",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_index("ix_layer_risk_zones_computed_at", table_name="layer_risk_zones")
    op.drop_geospatial_table("layer_risk_zones")
    op.drop_index("ix_layer_risk_grid_updated_at", table_name="layer_risk_grid")
    op.drop_geospatial_index(
        "ix_layer_risk_grid_geom_3857",
        table_name="layer_risk_grid",
        postgresql_using="gist",
        column_name="geom_3857",
    )
    op.drop_geospatial_index(
        "ix_layer_risk_grid_geom",
        table_name="layer_risk_grid",
        postgresql_using="gist",
        column_name="geom",
    )
    op.drop_index("ix_layer_risk_grid_computed_at", table_name="layer_risk_grid")
    op.drop_geospatial_table("layer_risk_grid")
    # ### end Alembic commands ###
