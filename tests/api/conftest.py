"""Fixtures of the features API tests: their own database, fixture rows, the app.

The features tests count features, so they get a database of their own in
the session's PostGIS cluster (created, migrated and dropped here) instead of
sharing the session database other tests write to.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from features_fixtures import (
    N_BUILDINGS,
    building_box,
    building_row,
    make_app,
)
from sqlalchemy import Engine, text

from gis_server import db
from gis_server.settings import DatabaseSettings

API_DB = "gis_api_test"


@pytest.fixture(scope="session")
def api_db_settings(db_settings: DatabaseSettings) -> Iterator[DatabaseSettings]:
    """A migrated database for the features API tests alone."""
    settings = db.create_database(db_settings, API_DB)
    try:
        yield settings
    finally:
        db.drop_database(db_settings, API_DB)


@pytest.fixture(scope="session")
def api_engine(api_db_settings: DatabaseSettings) -> Iterator[Engine]:
    engine = db.make_engine(api_db_settings)
    yield engine
    engine.dispose()


INSERT_BUILDING = text("""
INSERT INTO layer_buildings (source, source_id, address, district, structure,
    floors, height_m, built_year, safety_grade, appraised_on, historic, use,
    extra, geom)
VALUES ('api-test', :source_id, :address, :district, :structure, :floors,
    :height_m, :built_year, :safety_grade, :appraised_on, :historic, :use,
    CAST(:extra AS jsonb), ST_Multi(ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)))
RETURNING id
""")

#: Curtain walls: a point at even ``i``, a small square at odd ``i``.
INSERT_CURTAIN_WALL = text("""
INSERT INTO layer_curtain_walls (source, source_id, building, area_m2,
    support_type, accepted_on, last_checked_on, geom)
VALUES ('api-test', :sid, :building, :area, 'frame', :accepted, :checked,
    CASE WHEN :point THEN ST_SetSRID(ST_MakePoint(:x, 23.15), 4326)
         ELSE ST_Multi(ST_MakeEnvelope(:x, 23.16, :x + 0.0005, 23.1605, 4326)) END)
RETURNING id
""")

INSERT_PLANT = text("""
INSERT INTO layer_plants (source, source_id, enterprise, credit_score, geom)
VALUES ('api-test', :sid, :name, :score, ST_SetSRID(ST_MakePoint(:x, 23.2), 4326))
RETURNING id
""")


@pytest.fixture(scope="session")
def fixture_data(api_engine: Engine) -> dict[str, list[int]]:
    """Synthetic buildings, curtain walls and plants; returns their ids."""
    ids: dict[str, list[int]] = {"buildings": [], "curtain_walls": [], "plants": []}
    with api_engine.begin() as conn:
        for i in range(N_BUILDINGS):
            x0, y0, x1, y1 = building_box(i)
            row = {**building_row(i), "x0": x0, "y0": y0, "x1": x1, "y1": y1}
            ids["buildings"].append(conn.execute(INSERT_BUILDING, row).scalar_one())
        for i in range(6):
            row = {
                "sid": f"cw{i}",
                "building": f"大厦{i}",
                "area": 100.0 * (i + 1),
                "accepted": dt.date(2005 + i, 6, 1),
                "checked": dt.date(2023, 1 + i, 1),
                "point": i % 2 == 0,
                "x": 113.35 + i * 0.001,
            }
            ids["curtain_walls"].append(
                conn.execute(INSERT_CURTAIN_WALL, row).scalar_one()
            )
        for i in range(3):
            row = {
                "sid": f"p{i}",
                "name": f"混凝土公司{i}",
                "score": 80.0 + i,
                "x": 113.4 + i * 0.01,
            }
            ids["plants"].append(conn.execute(INSERT_PLANT, row).scalar_one())
        conn.execute(text("ANALYZE layer_buildings, layer_curtain_walls, layer_plants"))
    return ids


@pytest.fixture(scope="session")
def app(api_db_settings: DatabaseSettings, fixture_data) -> FastAPI:
    return make_app(api_db_settings)


@pytest.fixture(scope="session")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(api_db_settings: DatabaseSettings, fixture_data) -> Iterator[str]:
    """The app served by uvicorn on a free port (for GDAL and OWSLib)."""
    port = _free_port()
    config = uvicorn.Config(
        make_app(api_db_settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
