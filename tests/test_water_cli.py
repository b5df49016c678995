"""The water CLI verbs against the session database."""

from __future__ import annotations

import pytest
import typer
from sqlalchemy import text
from typer.testing import CliRunner

from gis_server.cli_water import ingest_observations_command, patrols_app, predict_app
from gis_server.settings import database_settings
from models.water.settings import water_settings

runner = CliRunner()


@pytest.fixture
def cli_env(db_settings, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", db_settings.effective_url())
    monkeypatch.setenv("GIS_WATER_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("GIS_INGEST_REPORT_DIR", str(tmp_path / "reports"))
    database_settings.cache_clear()
    water_settings.cache_clear()
    yield
    database_settings.cache_clear()
    water_settings.cache_clear()


@pytest.fixture
def river(engine):
    with engine.begin() as conn:
        conn.execute(
            text("""
            INSERT INTO layer_rivers (source, source_id, code, chief_id, chief_level,
                                      geom)
            VALUES ('test-water-cli', 'CLI1', 'CLI1', 'CHIEF-CLI', 'village',
                    ST_Multi(ST_GeomFromText('LINESTRING(113.5 23.2, 113.51 23.2)',
                                             4326)))""")
        )
    yield
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM layer_rivers WHERE source = 'test-water-cli'"))
        conn.execute(
            text("DELETE FROM water_patrol_records WHERE chief_id = 'CHIEF-CLI'")
        )
        conn.execute(text("DELETE FROM layer_patrol_tasks"))
        conn.execute(text("DELETE FROM layer_water_quality_warnings"))


def test_patrol_verbs(cli_env, river):
    res = runner.invoke(
        patrols_app,
        [
            "record",
            "--chief",
            "CHIEF-CLI",
            "--segment",
            "CLI1",
            "--minutes",
            "5",
            "--km",
            "0.5",
            "--at",
            "2026-05-09T09:00",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "does not count" in res.output
    res = runner.invoke(patrols_app, ["plan", "--now", "2026-05-10T09:00"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(patrols_app, ["--chief", "CHIEF-CLI"])
    assert res.exit_code == 0, res.output
    assert "CLI1" in res.output and "OVERDUE" in res.output


def test_ingest_observations_command(cli_env, tmp_path):
    app = typer.Typer()
    app.command()(ingest_observations_command)
    path = tmp_path / "r.csv"
    path.write_text(
        "station,time,do,nh3n\nCLI-S1,2026-05-01T09:00,3.0,1.0\n"
        "CLI-S1,2026-05-02T09:00,bad,1.0\n",
        encoding="utf-8",
    )
    report = tmp_path / "bad.csv"
    res = runner.invoke(
        app, [str(path), "--no-check-stations", "--report", str(report)]
    )
    assert res.exit_code == 0, res.output
    text_out = " ".join(res.output.split())
    assert "inserted 3" in text_out and "rejected 1" in text_out
    assert "not a number" in report.read_text(encoding="utf-8")


def test_train_without_labels_fails_cleanly(cli_env, river):
    res = runner.invoke(predict_app, ["train", "--now", "2026-05-10T09:00"])
    assert res.exit_code == 1
    assert "inspected segments" in res.output


def test_evaluate_on_a_synthetic_network(cli_env):
    res = runner.invoke(
        predict_app, ["evaluate", "--segments", "400", "--fractions", "0.2"]
    )
    assert res.exit_code == 0, res.output
    assert "20%" in res.output and "synthetic" in res.output
