"""The layer store: migrations, tables, version triggers."""

from __future__ import annotations

from sqlalchemy import text

from layers import all_layers


def test_every_layer_has_a_table_with_gist_index(engine):
    with engine.connect() as conn:
        for spec in all_layers():
            indexes = (
                conn.execute(
                    text("SELECT indexdef FROM pg_indexes WHERE tablename = :t"),
                    {"t": spec.table},
                )
                .scalars()
                .all()
            )
            assert any("gist (geom)" in ix for ix in indexes), spec.id
            srid = conn.execute(
                text("SELECT Find_SRID('public', :t, 'geom')"), {"t": spec.table}
            ).scalar()
            assert srid == 4326


def test_version_bumps_on_change(engine):
    with engine.begin() as conn:
        before = conn.execute(
            text("SELECT version FROM layer_versions WHERE layer_id = 'plants'")
        ).scalar()
        conn.execute(
            text(
                "INSERT INTO layer_plants (source, source_id, geom) "
                "VALUES ('t', 'v1', ST_SetSRID(ST_MakePoint(113.3, 23.1), 4326))"
            )
        )
        after = conn.execute(
            text("SELECT version FROM layer_versions WHERE layer_id = 'plants'")
        ).scalar()
        conn.execute(text("DELETE FROM layer_plants WHERE source = 't'"))
    assert after == before + 1


def test_migrations_match_the_declarations(engine):
    """Every table, column, index and constraint declared (layers, feeds,
    accounts, audit, supervision) is what the migrations built: a declaration
    changed without its migration fails here."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from gis_server.migrations.target import include_object, metadata

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_object": include_object, "compare_type": True}
        )
        diff = compare_metadata(context, metadata)
    assert diff == []


def test_every_layer_has_row_level_security(engine):
    with engine.connect() as conn:
        secured = set(
            conn.execute(
                text(
                    "SELECT relname FROM pg_class WHERE relrowsecurity "
                    "AND relname LIKE 'layer\\_%'"
                )
            ).scalars()
        )
    assert {spec.table for spec in all_layers()} <= secured
