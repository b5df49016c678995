"""Test session fixtures: a real PostGIS created for the session, never a mock.

By default the session creates a throw-away PostgreSQL cluster in a temporary
folder on a free port (the same embedded-cluster code users run) and deletes
it at the end. With ``GIS_TEST_DATABASE_URL`` pointing at a PostGIS server
(a superuser URL), a fresh database is created there instead and dropped after.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from gis_server import db
from gis_server.embedded import EmbeddedCluster
from gis_server.settings import DatabaseSettings, IngestSettings

ROOT = Path(__file__).resolve().parent.parent
REAL_DATA = ROOT.parent / "shared" / "data" / "real"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def db_settings() -> Iterator[DatabaseSettings]:
    """Settings of a database made for this test session, migrated to head."""
    external = os.environ.get("GIS_TEST_DATABASE_URL")
    if external:
        server = DatabaseSettings(url=external)
        name = f"gis_test_{uuid.uuid4().hex[:8]}"
        settings = db.create_database(server, name)
        try:
            yield settings
        finally:
            db.drop_database(server, name)
        return

    tmp = Path(tempfile.mkdtemp(prefix="gis-test-"))
    os.chmod(tmp, 0o755)
    settings = DatabaseSettings(
        url=None, data_dir=tmp / "pgdata", port=_free_port(), name="gis_test"
    )
    cluster = EmbeddedCluster(settings, fsync=False)
    cluster.start()
    db.upgrade(settings.effective_url())
    try:
        yield settings
    finally:
        cluster.destroy()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def engine(db_settings: DatabaseSettings) -> Iterator[Engine]:
    eng = db.make_engine(db_settings)
    yield eng
    eng.dispose()


@pytest.fixture
def ingest_settings(tmp_path: Path) -> IngestSettings:
    return IngestSettings(
        raster_dir=tmp_path / "rasters", report_dir=tmp_path / "reports"
    )


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL_DATA.is_dir():
        # CI always has ../shared beside the clone: there a missing folder is
        # a broken setup, not a reason to skip the real-data tests.
        if os.environ.get("CI"):
            pytest.fail(f"shared real data not found at {REAL_DATA}")
        pytest.skip(f"shared real data not found at {REAL_DATA}")
    return REAL_DATA
