"""Rule settings overridden at run time (gis_server.overrides): precedence,
validation at write time, audit, the snapshot and its refresh (another
connection, another process), the CLI, and an evaluator's outcome flipping.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time

import psycopg2
import pytest
import test_supervision_concrete as tc
from sqlalchemy import text
from typer.testing import CliRunner

from gis_server import overrides
from gis_server.audit import Actor
from gis_server.errors import InvalidParameter, NotFound
from gis_server.settings import database_settings
from models.risk.settings import RiskSettings
from models.settings_groups import load_groups
from models.supervision import concrete as C
from models.supervision.settings import LoopSettings, loop_settings
from models.water.settings import WaterSettings

ACTOR = Actor("tests-admin", "admin", client="tests")


def _wipe(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM setting_overrides"))
    overrides.clear()


@pytest.fixture
def clean(engine):
    """No overrides before or after (the snapshot is the process's)."""
    _wipe(engine)
    yield engine
    _wipe(engine)


def _set(engine, group: str, field: str, value) -> dict:
    load_groups()
    with engine.begin() as conn:
        result = overrides.set_override(conn, ACTOR, group, field, value)
    overrides.load(engine)
    return result


def _unset(engine, group: str, field: str) -> dict:
    with engine.begin() as conn:
        result = overrides.unset_override(conn, ACTOR, group, field)
    overrides.load(engine)
    return result


def _source(group: str, field: str) -> tuple[object, str]:
    row = overrides.describe_field(group, field)
    return row["value"], row["source"]


def _dsn(db_settings) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(db_settings.effective_url()).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


# -- declarations --------------------------------------------------------------------


def test_every_rule_settings_class_is_a_group():
    groups = load_groups()
    assert set(groups) == {
        "loop",
        "water",
        "risk",
        "rules_buildings",
        "rules_concrete",
        "rules_sites",
        "rules_fund",
        "rules_inspections",
    }
    assert groups["rules_concrete"] is C.ConcreteRules
    assert overrides.group_name(LoopSettings) == "loop"
    assert overrides.group_name(WaterSettings) == "water"


def test_paths_and_the_metric_frame_stay_env_only():
    assert "evidence_dir" not in overrides.overridable_fields(LoopSettings)
    assert "model_dir" not in overrides.overridable_fields(WaterSettings)
    risk = overrides.overridable_fields(RiskSettings)
    assert "raster_path" not in risk and "metric_srid" not in risk
    assert "deadline_days_red" in overrides.overridable_fields(LoopSettings)


def test_a_variant_class_is_not_a_second_group():
    class Strict(LoopSettings):  # same env prefix: a variant, not a group
        pass

    assert overrides.GROUPS["loop"] is LoopSettings


# -- precedence ------------------------------------------------------------------------


def test_override_beats_env_beats_default(clean, monkeypatch):
    load_groups()
    assert LoopSettings().deadline_days_red == 30
    assert _source("loop", "deadline_days_red") == (30, "default")
    monkeypatch.setenv("GIS_LOOP_DEADLINE_DAYS_RED", "25")
    assert LoopSettings().deadline_days_red == 25
    assert _source("loop", "deadline_days_red") == (25, "env")
    _set(clean, "loop", "deadline_days_red", 20)
    assert LoopSettings().deadline_days_red == 20
    assert _source("loop", "deadline_days_red") == (20, "override")
    # arguments still win: tests and callers passing settings are not overridden
    assert LoopSettings(deadline_days_red=10).deadline_days_red == 10
    assert LoopSettings().deadline_days_orange == 15  # other fields untouched
    _unset(clean, "loop", "deadline_days_red")
    assert _source("loop", "deadline_days_red") == (25, "env")


def test_cached_getters_follow_the_overrides(clean):
    before = loop_settings()
    assert loop_settings() is before  # cached
    _set(clean, "loop", "deadline_days_yellow", 5)
    assert loop_settings().deadline_days_yellow == 5
    _unset(clean, "loop", "deadline_days_yellow")
    assert loop_settings().deadline_days_yellow == 7


# -- validation at write time ----------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "field", "value", "error", "message"),
    [
        (
            "loop",
            "deadline_days_red",
            0,
            InvalidParameter,
            "greater than or equal to 1",
        ),
        ("loop", "deadline_days_red", "soon", InvalidParameter, "valid integer"),
        ("loop", "evidence_dir", "/tmp", InvalidParameter, "environment only"),
        ("risk", "metric_srid", 4326, InvalidParameter, "environment only"),
        (
            "rules_concrete",
            "chloride_environment",
            "marine",
            InvalidParameter,
            "not a key of chloride_limits_pct",
        ),
        (
            "rules_fund",
            "liquidity_level_1",
            99.0,
            InvalidParameter,
            "rules_fund.liquidity_level_1",
        ),
        ("loop", "no_such_field", 1, NotFound, "no field"),
        ("nope", "deadline_days_red", 1, NotFound, "no settings group"),
    ],
)
def test_bad_values_are_refused_with_the_fields_error(
    clean, group, field, value, error, message
):
    load_groups()
    with clean.begin() as conn:
        audit_before = conn.execute(text("SELECT count(*) FROM audit_log")).scalar()
        with pytest.raises(error, match=message):
            overrides.set_override(conn, ACTOR, group, field, value)
    with clean.connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM setting_overrides")).scalar() == 0
        )
        assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar() == (
            audit_before
        )


def test_values_are_stored_as_the_class_holds_them(clean):
    result = _set(clean, "loop", "deadline_days_red", "21")  # text -> int
    assert result["value"] == 21
    with clean.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT value FROM setting_overrides WHERE field = 'deadline_days_red'"
            )
        ).scalar()
    assert stored == 21


def test_a_value_checked_with_the_groups_other_overrides(clean):
    # chloride_environment must be a key of chloride_limits_pct
    with pytest.raises(InvalidParameter, match="not a key"):
        _set(clean, "rules_concrete", "chloride_limits_pct", {"coastal": 0.08})
    # every environment a record may name keeps its limit; a coastal row is added
    table = {**C.ConcreteRules().chloride_limits_pct, "coastal": 0.08}
    _set(clean, "rules_concrete", "chloride_limits_pct", table)
    _set(clean, "rules_concrete", "chloride_environment", "coastal")
    assert C.ConcreteRules().chloride_limit_pct == 0.08
    # removing the table alone would leave the environment dangling
    with pytest.raises(InvalidParameter, match="cannot be removed alone"):
        _unset(clean, "rules_concrete", "chloride_limits_pct")
    _unset(clean, "rules_concrete", "chloride_environment")
    _unset(clean, "rules_concrete", "chloride_limits_pct")
    assert C.ConcreteRules().chloride_limit_pct == 0.20


def test_unset_without_an_override_is_not_found(clean):
    load_groups()
    with clean.begin() as conn, pytest.raises(NotFound, match="no override"):
        overrides.unset_override(conn, ACTOR, "loop", "deadline_days_red")


def test_changes_are_audited_before_and_after(clean):
    _set(clean, "loop", "deadline_days_red", 20)
    _set(clean, "loop", "deadline_days_red", 22)
    _unset(clean, "loop", "deadline_days_red")
    with clean.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT action, actor, before, after FROM audit_log "
                "WHERE target_kind = 'setting' AND target = 'loop.deadline_days_red' "
                "ORDER BY id DESC LIMIT 3"
            )
        ).all()
    assert [r.action for r in rows] == ["setting.unset", "setting.set", "setting.set"]
    unset, second, first = rows
    assert first.before == {"value": 30, "source": "default"}
    assert first.after == {"value": 20, "source": "override"}
    assert second.before == {"value": 20, "source": "override"}
    assert unset.before == {"value": 22, "source": "override"}
    assert unset.after == {"value": 30}
    assert {r.actor for r in rows} == {"tests-admin"}


def test_stored_overrides_that_no_longer_validate_are_set_aside(clean, caplog):
    load_groups()
    with clean.begin() as conn:  # as if written before a code change
        conn.execute(
            text(
                "INSERT INTO setting_overrides (group_name, field, value, updated_by) "
                "VALUES ('loop', 'deadline_days_red', '0', 'sql')"
            )
        )
    overrides.load(clean)
    assert LoopSettings().deadline_days_red == 30
    assert "refused" in caplog.text
    described = overrides.describe("loop")
    assert "deadline_days_red" in described["problem"]
    assert _source("loop", "deadline_days_red") == (30, "default")


# -- the snapshot kept current ---------------------------------------------------------


def _wait(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_watcher_hears_a_change_made_on_another_connection(clean, db_settings):
    load_groups()
    watcher = overrides.Watcher(_dsn(db_settings), reconnect_s=0.1)
    watcher.start()
    try:
        assert watcher.wait_live(10)
        other = psycopg2.connect(_dsn(db_settings))
        other.autocommit = True
        with other.cursor() as cur:  # plain SQL on a connection of its own
            cur.execute(
                "INSERT INTO setting_overrides (group_name, field, value, updated_by) "
                "VALUES ('water', 'do_mild_mg_l', '2.5', 'sql')"
            )
        assert _wait(lambda: WaterSettings().do_mild_mg_l == 2.5)
        with other.cursor() as cur:
            cur.execute("DELETE FROM setting_overrides")
        assert _wait(lambda: WaterSettings().do_mild_mg_l == 2.0)
        other.close()
    finally:
        watcher.stop()


def test_another_process_applies_the_override(clean, db_settings):
    _set(clean, "rules_concrete", "chloride_environment", "reinforced_chloride")
    env = {**os.environ, "DATABASE_URL": db_settings.effective_url(), "COLUMNS": "250"}
    cli = [sys.executable, "-m", "gis_server.cli"]
    listed = subprocess.run(
        [*cli, "settings", "list", "rules_concrete", "--json"],
        cwd=tc.__file__.rsplit("/", 2)[0],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    fields = {f["field"]: f for f in json.loads(listed.stdout)[0]["fields"]}
    assert fields["chloride_environment"]["value"] == "reinforced_chloride"
    assert fields["chloride_environment"]["source"] == "override"
    assert fields["chloride_environment"]["updated_by"] == "tests-admin"
    rules = subprocess.run(
        [*cli, "supervision", "rules", "--domain", "concrete"],
        cwd=tc.__file__.rsplit("/", 2)[0],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rules.returncode == 0, rules.stderr
    assert "chloride_environment=reinforced_chloride*" in rules.stdout


# -- an evaluator's outcome -----------------------------------------------------------


def test_an_override_flips_the_chloride_rule(clean, plant):
    """0.15 % chloride: within the humid default (0.20 %), over the limit of an
    environment with chlorides (0.10 %) once an administrator sets it."""
    data = copy.deepcopy(tc.baseline(plant))
    data["concrete_batching"][0]["chloride_pct"] = 0.15
    tc.load(clean, data)
    assert tc.findings(clean, plant, "chloride") == []
    _set(clean, "rules_concrete", "chloride_environment", "reinforced_chloride")
    found = tc.findings(clean, plant, "chloride")  # the evaluator's own ConcreteRules()
    assert len(found) == 1 and found[0].evidence["limit_pct"] == 0.10
    _unset(clean, "rules_concrete", "chloride_environment")
    assert tc.findings(clean, plant, "chloride") == []


@pytest.fixture
def plant(engine):
    pid = f"CT-ovr-{os.getpid()}"
    tc._insert_plant(engine, pid)
    yield pid
    tc._cleanup(engine, [pid])


# -- the command line -----------------------------------------------------------------


@pytest.fixture
def cli_env(db_settings, monkeypatch):
    from gis_server import cli_risk, cli_settings

    monkeypatch.setenv("DATABASE_URL", db_settings.effective_url())
    monkeypatch.setattr(cli_settings.out, "_width", 250)
    monkeypatch.setattr(cli_risk.out, "_width", 250)
    database_settings.cache_clear()
    yield
    database_settings.cache_clear()


def test_cli_sets_lists_and_unsets(clean, cli_env):
    from gis_server.cli import app as cli

    runner = CliRunner()
    r = runner.invoke(cli, ["settings", "set", "loop.deadline_days_red", "20"])
    assert r.exit_code == 0, r.output
    assert "loop.deadline_days_red = 20 (was 30)" in r.output
    assert LoopSettings().deadline_days_red == 20  # this process reloaded
    r = runner.invoke(
        cli, ["settings", "set", "rules_inspections.level_general", "orange"]
    )
    assert r.exit_code == 0, r.output  # not JSON: the text itself
    r = runner.invoke(cli, ["settings", "list", "loop"])
    assert r.exit_code == 0 and "override" in r.output and "env only" in r.output
    r = runner.invoke(cli, ["settings", "set", "loop.deadline_days_red", "0"])
    assert r.exit_code != 0
    assert "greater than or equal to 1" in str(r.exception)
    r = runner.invoke(cli, ["settings", "set", "loop", "1"])
    assert r.exit_code != 0 and "GROUP.FIELD" in str(r.exception)
    r = runner.invoke(cli, ["settings", "unset", "loop.deadline_days_red"])
    assert r.exit_code == 0 and "= 30" in r.output
    r = runner.invoke(cli, ["settings", "set", "risk.d_radius_factor", "1.5"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(cli, ["risk", "settings"])
    row = next(line for line in r.output.splitlines() if "D_RADIUS_FACTOR" in line)
    assert "1.5" in row and "override" in row
    r = runner.invoke(cli, ["settings", "unset", "risk.d_radius_factor"])
    assert r.exit_code == 0
    r = runner.invoke(cli, ["settings", "unset", "rules_inspections.level_general"])
    assert r.exit_code == 0
    with clean.connect() as conn:
        actors = conn.execute(
            text(
                "SELECT DISTINCT actor FROM audit_log WHERE target_kind = 'setting' "
                "AND target = 'loop.deadline_days_red' AND client = 'cli'"
            )
        ).scalars()
        assert all(a.startswith("cli:") for a in actors)


def test_cli_refuses_a_scoped_account(clean, cli_env):
    from gis_server.auth import accounts
    from gis_server.auth.principal import CURRENT
    from gis_server.cli import app as cli

    name = f"ovr-analyst-{os.getpid()}"
    with clean.begin() as conn:
        accounts.add_user(conn, name, "analyst", None)
    try:
        r = CliRunner().invoke(
            cli, ["--as", name, "settings", "set", "loop.deadline_days_red", "20"]
        )
        CURRENT.set(None)  # --as set the caller of this thread's context
        assert r.exit_code != 0 and "settings.manage" in str(r.exception)
        with clean.connect() as conn:
            assert not conn.execute(text("SELECT 1 FROM setting_overrides")).first()
    finally:
        CURRENT.set(None)  # --as set the caller of this thread's context
        with clean.begin() as conn:
            conn.execute(text("DELETE FROM users WHERE username = :n"), {"n": name})
