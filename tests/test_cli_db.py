"""``gis-server db``: the embedded cluster's life cycle, as a user runs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

GIS = Path(sys.executable).parent / "gis-server"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster_env(tmp_path):
    os.chmod(tmp_path, 0o755)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(GIS_DB_DATA_DIR=str(tmp_path / "pgdata"), GIS_DB_PORT=str(_free_port()))
    yield env
    subprocess.run([str(GIS), "db", "stop"], env=env, capture_output=True, timeout=120)


def run(env, *args):
    return subprocess.run(
        [str(GIS), *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_db_start_status_upgrade_stop(cluster_env):
    before = run(cluster_env, "db", "status")
    assert before.returncode == 3 and "not created yet" in before.stdout

    started = run(cluster_env, "db", "start")
    assert started.returncode == 0, started.stderr
    assert f":{cluster_env['GIS_DB_PORT']}/gis" in started.stdout

    upgraded = run(cluster_env, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    status = run(cluster_env, "db", "status")
    assert status.returncode == 0 and "running" in status.stdout
    assert "schema revision: none" not in status.stdout

    layers = run(cluster_env, "layers")
    assert layers.returncode == 0 and "buildings" in layers.stdout

    stopped = run(cluster_env, "db", "stop")
    assert stopped.returncode == 0
    after = run(cluster_env, "db", "status")
    assert after.returncode == 3 and "stopped" in after.stdout


def test_port_taken_is_one_clear_line(cluster_env):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(cluster_env["GIS_DB_PORT"])))
        squatter.listen()
        result = run(cluster_env, "db", "start")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: port ") and "GIS_DB_PORT" in lines[-1]
