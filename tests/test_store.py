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
