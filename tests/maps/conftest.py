"""Fixtures of the map page tests: a demo city in a database of their own,
with risk zones, water-quality warnings and patrol tasks computed on it, the
app served by uvicorn, and a headless Debian chromium driven by Playwright.

The maps tests load a whole (small) city and run the risk and water models
over it, so they get their own database in the session's cluster rather than
writing into the one other tests count rows in.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from sqlalchemy import Engine, text

from gis_server import db
from gis_server.app import create_app
from gis_server.auth.settings import AuthSettings
from gis_server.limits import LimitSettings
from gis_server.settings import DatabaseSettings, ServerSettings
from map_ui.settings import MapSettings

MAPS_DB = "gis_maps_test"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("GIS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: The demo's "today" (ingest.demo_city.AS_OF) and the water model's "now".
AS_OF = dt.date(2026, 11, 30)


@pytest.fixture(scope="session")
def maps_db_settings(db_settings: DatabaseSettings) -> Iterator[DatabaseSettings]:
    """A migrated database for the map tests alone (dropped afterwards)."""
    settings = db.create_database(db_settings, MAPS_DB)
    try:
        yield settings
    finally:
        db.drop_database(db_settings, MAPS_DB)


def load_demo(engine: Engine, work: Path) -> None:
    """A 2,000-building demo city, its risk zones, warnings and patrol tasks."""
    from ingest.demo_city import generate_city
    from ingest.loader import load_batch
    from layers import get_layer
    from models.risk import RiskSettings, compute
    from models.water import service as water
    from models.water.network import network_from_database
    from models.water.settings import WaterSettings
    from models.water.simulate import simulate

    city = generate_city(buildings=2000, segments=80, sites=40, plants=8)
    for layer_id, batch in city.items():
        report = load_batch(engine, get_layer(layer_id), batch, source="demo",
                            sync=True)
        assert report.rejected == 0, (layer_id, report.issues[:3])
    compute(engine, RiskSettings(raster_path=work / "risk.tif", workers=1),
            today=AS_OF)
    net = network_from_database(engine)
    sim = simulate(net, seed=3, history_days=120)
    water.write_simulation(engine, sim, label_fraction=0.4, seed=3)
    settings = WaterSettings(model_dir=work / "models", clusters=4)
    water.train_from_database(engine, settings, sim.now, seed=3)
    water.score_database(engine, settings, sim.now)
    water.plan_patrols(engine, settings, sim.now, period_start=sim.now.date(),
                       period_end=sim.now.date() + dt.timedelta(days=9))
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


@pytest.fixture(scope="session")
def maps_engine(maps_db_settings: DatabaseSettings) -> Iterator[Engine]:
    engine = db.make_engine(maps_db_settings)
    work = Path(tempfile.mkdtemp(prefix="gis-maps-"))
    try:
        load_demo(engine, work)
        yield engine
    finally:
        engine.dispose()
        shutil.rmtree(work, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(app) -> tuple[uvicorn.Server, threading.Thread, str]:
    """Run ``app`` with uvicorn in a thread on a free port; returns its URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="session")
def serve_app():
    """:func:`serve` for fixtures of the test modules (``from conftest import``
    would find whichever ``conftest`` module pytest imported last)."""
    return serve


@pytest.fixture(scope="session")
def maps_app(maps_db_settings: DatabaseSettings, maps_engine):
    """The app on the maps database; tests may swap ``app.state.map_settings``."""
    app = create_app(
        db=maps_db_settings,
        server=ServerSettings(log_requests=False),
        auth=AuthSettings(anonymous="read"),  # pages, not sign-in, are tested here
        limits=LimitSettings(rate_limit=False),
    )
    app.state.map_settings = MapSettings(basemap="none")
    return app


@pytest.fixture(scope="session")
def maps_server(maps_app) -> Iterator[str]:
    """The app served by uvicorn on a free port."""
    server, thread, url = serve(maps_app)
    yield url
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def map_settings(maps_app):
    """Swap the served map settings for one test: ``map_settings(**changes)``."""
    original = maps_app.state.map_settings

    def swap(**changes) -> MapSettings:
        maps_app.state.map_settings = MapSettings(**{"basemap": "none", **changes})
        return maps_app.state.map_settings

    yield swap
    maps_app.state.map_settings = original


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium, headless (Playwright cannot download its own here)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: apt-get install chromium "
                    "(scripts/install-system.sh installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # a dev dependency: missing means a broken install
        pytest.fail("playwright is not installed: pip install -e '.[dev]'")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                     headless=True)
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
