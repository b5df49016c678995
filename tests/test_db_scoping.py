"""The database's own backstop, with the Python policy bypassed.

Every database role reads, by plain SQL, only the rows its scope admits --
in the layers, the record feeds and every other table holding rows about
features (loop history, evidence, patrols, readings, credit history,
rasters); anonymous callers only the layers the runtime settings open;
writers add only rows inside their scope. The command line's ``--as`` scopes
every connection (raw DBAPI ones and worker threads too) and applies the
policy to every command. The expectations are written out by hand, not
derived from ``gis_server.auth``.
"""

from __future__ import annotations

import datetime as dt
import getpass
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, exc, text

from gis_server import db
from gis_server.auth import accounts, dbsecurity, policy
from gis_server.auth.principal import CURRENT, Principal
from gis_server.auth.settings import AuthSettings
from gis_server.settings import DatabaseSettings

SCOPE_DB = "gis_scoping_test"
OWN, OTHER = "天河区", "越秀区"
SRC = "scoping"
TODAY = dt.date(2026, 12, 3)
DENIED = "denied"

ANALYST = Principal("analyst", "analyst", via="key")
HOUSING = Principal("housing", "housing_officer", district=OWN, via="key")
CHIEF = Principal("chief", "river_chief", chief_id="C1", via="key")
ANON_NONE = policy.anonymous_principal(AuthSettings(anonymous_layers=[]))
ANON_RIVERS = policy.anonymous_principal(
    AuthSettings(anonymous_layers=["districts", "rivers"])
)
ANON_ALL = policy.anonymous_principal(AuthSettings(anonymous="read"))
PRINCIPALS = {
    "analyst": ANALYST,
    "housing": HOUSING,
    "chief": CHIEF,
    "anon_none": ANON_NONE,
    "anon_rivers": ANON_RIVERS,
    "anon_all": ANON_ALL,
}


def _box(x: float, y: float, w: float = 0.0002) -> str:
    return f"ST_Multi(ST_MakeEnvelope({x}, {y}, {x + w}, {y + w}, 4326))"


def _point(x: float, y: float) -> str:
    return f"ST_SetSRID(ST_MakePoint({x}, {y}), 4326)"


def _line(x: float, y: float) -> str:
    return (
        f"ST_Multi(ST_MakeLine(ST_SetSRID(ST_MakePoint({x}, {y}), 4326), "
        f"ST_SetSRID(ST_MakePoint({x + 0.004}, {y}), 4326)))"
    )


def _insert(conn, table: str, geom: str | None = None, **values) -> int:
    cols = list(values) + (["geom"] if geom else [])
    vals = [f":{k}" for k in values] + ([geom] if geom else [])
    returning = " RETURNING id" if table.startswith(("layer_", "feed_")) else ""
    row = conn.execute(
        text(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(vals)})"
            f"{returning}"
        ),
        values,
    )
    return row.scalar_one() if returning else 0


def _layer(conn, layer: str, sid: str, geom: str, **props) -> int:
    return _insert(conn, f"layer_{layer}", geom, source=SRC, source_id=sid, **props)


def _feed(conn, feed: str, **values) -> int:
    return _insert(conn, f"feed_{feed}", None, source=SRC, **values)


@pytest.fixture(scope="module")
def scope_db(db_settings: DatabaseSettings) -> Iterator[DatabaseSettings]:
    settings = db.create_database(db_settings, SCOPE_DB)
    try:
        yield settings
    finally:
        db.drop_database(db_settings, SCOPE_DB)


@pytest.fixture(scope="module")
def scope_engine(scope_db: DatabaseSettings) -> Iterator[Engine]:
    engine = db.make_engine(scope_db)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def world(scope_engine: Engine, tmp_path_factory) -> dict:
    """Two districts, each with a dangerous building, a curtain wall due and
    a site near a river of its own chief; records of every kind on both."""
    ids: dict = {}
    with scope_engine.begin() as conn:
        _layer(conn, "districts", "own", _box(113.28, 23.08, 0.04), name=OWN)
        _layer(conn, "districts", "other", _box(113.32, 23.08, 0.04), name=OTHER)
        ids["b_own"] = _layer(
            conn,
            "buildings",
            "b_own",
            _box(113.300, 23.100),
            district=OWN,
            safety_grade="D",
            height_m=30.0,
        )
        ids["b_own_a"] = _layer(
            conn,
            "buildings",
            "b_own_a",
            _box(113.305, 23.100),
            district=OWN,
            safety_grade="A",
            height_m=10.0,
        )
        ids["b_other"] = _layer(
            conn,
            "buildings",
            "b_other",
            _box(113.340, 23.100),
            district=OTHER,
            safety_grade="C",
            height_m=20.0,
        )
        wall = {
            "accepted_on": dt.date(2015, 1, 1),
            "last_checked_on": dt.date(2016, 1, 1),
            "support_type": "frame",
            "height_m": 30.0,
        }
        # on its building: the building's district
        _layer(
            conn,
            "curtain_walls",
            "w_own",
            _point(113.3001, 23.1001),
            building="b_own",
            **wall,
        )
        # its building unknown: the district it lies in
        _layer(
            conn,
            "curtain_walls",
            "w_other",
            _point(113.3451, 23.1021),
            building="no-such-building",
            **wall,
        )
        for code, chief, x in (("R1", "C1", 113.300), ("R3", "C2", 113.340)):
            ids[code] = _layer(
                conn,
                "rivers",
                code,
                _line(x, 23.103),
                code=code,
                chief_id=chief,
                district=OWN if x < 113.32 else OTHER,
            )
        for sid, district, x in (("s_own", OWN, 113.301), ("s_other", OTHER, 113.341)):
            _layer(
                conn,
                "construction_sites",
                sid,
                _box(x, 23.1035, 0.001),
                district=district,
                status="active",
                contractor="某建设公司",
            )
        _layer(conn, "plants", "p1", _point(113.31, 23.09), enterprise="混凝土")
        _layer(
            conn,
            "monitoring_stations",
            "st1",
            _point(113.301, 23.103),
            code="st1",
            river_code="R1",
        )
        _layer(conn, "fund_centres", "440100", _box(113.2, 23.0, 0.3), code="440100")
        # record feeds, one record per subject (own district, other district)
        for b in ("b_own", "b_other"):
            _feed(
                conn,
                "building_readings",
                building_id=b,
                sensor_id="s1",
                measured_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
                kind="settlement_mm",
                value=3.0,
            )
        _feed(
            conn,
            "curtain_wall_checks",
            wall_id="w_own",
            checked_on=dt.date(2016, 1, 1),
            kind="safety_check",
        )
        for s in ("s_own", "s_other"):
            _feed(conn, "site_workers", site_id=s, worker_id=f"{s}-1")
        for i, project in (
            ("i_own", "s_own"),
            ("i_other", "s_other"),
            ("i_free", "free-project-code"),
        ):
            _feed(
                conn,
                "inspections",
                inspection_id=i,
                project=project,
                stage="foundation",
                inspected_on=dt.date(2026, 11, 2),
            )
            _feed(
                conn,
                "inspection_problems",
                inspection_id=i,
                problem_no=1,
                description="裂缝",
                photo_sha256="c" * 64 if i == "i_other" else None,
            )
        _feed(
            conn,
            "inspection_checklists",
            stage="foundation",
            item_code="F1",
            item="基坑支护",
        )
        _feed(
            conn,
            "enterprise_records",
            record_id="BR-2026-0001",
            enterprise="某建设公司",
            recorded_on=dt.date(2026, 1, 5),
            kind="bad_behaviour",
            note="欠薪",
        )
        _feed(
            conn,
            "fund_metrics",
            centre_code="440100",
            month=dt.date(2026, 10, 1),
            deposit_balance=1.0,
            loan_balance=0.5,
        )
        _insert(
            conn,
            "concrete_credit_history",
            plant_id="p1",
            as_of=dt.date(2026, 11, 1),
            score=90.0,
            deductions="[]",
        )
        at = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
        _insert(
            conn,
            "water_observations",
            station_code="st1",
            observed_at=at,
            indicator="do",
            value=4.2,
            unit="mg/L",
        )
        _insert(conn, "water_samples", station_code="st1", observed_at=at)
        for chief, code in (("C1", "R1"), ("C2", "R3")):
            _insert(
                conn,
                "water_patrol_records",
                chief_id=chief,
                segment_code=code,
                started_at=at,
                duration_min=30.0,
                distance_km=2.0,
                meets_standard=True,
            )
        # warnings with one loop event each; evidence cited by them or not
        for name, district, responsible, sha in (
            ("own", OWN, "某建设单位", "a" * 64),
            ("other", OTHER, "某建设单位", "b" * 64),
            ("c1", OTHER, "C1", None),
        ):
            wid = _layer(
                conn,
                "supervision_warnings",
                f"warn-{name}",
                _point(113.30, 23.10),
                district=district,
                responsible=responsible,
                state="raised",
                domain="buildings",
            )
            ids[f"warn_{name}"] = wid
            cited = f'[{{"sha256": "{sha}"}}]' if sha else "[]"
            conn.execute(
                text(
                    "INSERT INTO supervision_warning_events (warning_id, actor, "
                    "action, to_state, evidence) VALUES "
                    "(:w, 'tests', 'raise', 'raised', CAST(:e AS jsonb))"
                ),
                {"w": wid, "e": cited},
            )
        for sha, uploader in (("a", None), ("b", None), ("c", None), ("d", "housing")):
            _insert(
                conn,
                "supervision_evidence",
                sha256=sha * 64,
                name="photo.png",
                size=10,
                content_type="image/png",
                path=f"{sha}/{sha}",
                uploaded_by=uploader,
            )
        for name, role, extra in (
            ("admin", "admin", {}),
            ("analyst", "analyst", {}),
            ("housing", "housing_officer", {"district": OWN}),
            ("chief", "river_chief", {"chief_id": "C1"}),
        ):
            accounts.add_user(conn, name, role, f"{name}-password-1", **extra)
            ids[f"key_{name}"] = accounts.create_key(conn, name, "tests")
        for actor in ("housing", "admin"):
            _insert(
                conn,
                "audit_log",
                actor=actor,
                action="test",
                target_kind="test",
                target="x",
            )
    from models.risk import RiskSettings, compute

    raster = tmp_path_factory.mktemp("scoping") / "risk.tif"
    compute(scope_engine, RiskSettings(raster_path=raster, workers=1), today=TODAY)
    return ids


def _as(principal: Principal):
    return CURRENT.set(principal)


def _count(engine: Engine, principal: Principal, sql: str) -> int | str:
    token = _as(principal)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    except exc.ProgrammingError as e:
        assert "permission denied" in str(e.orig), e
        return DENIED
    finally:
        CURRENT.reset(token)


#: table (or query) -> expected count per principal:
#: analyst, housing (OWN), chief (C1), anonymous with no layers, with
#: districts + rivers, with every layer
_D = DENIED
EXPECTED = {
    # feeds on a scoped layer: the records of the features in scope
    "feed_building_readings": (2, 1, _D, 0, 0, 2),
    "feed_site_workers": (2, 1, 2, 0, 0, 2),
    "feed_inspections": (3, 1, 3, 0, 0, 3),
    # ...and the records belonging to those
    "feed_inspection_problems": (3, 1, 3, 0, 0, 3),
    # feeds on a layer a role does not read: not granted
    "feed_curtain_wall_checks": (1, 1, _D, 0, 0, 1),
    "feed_fund_metrics": (1, _D, _D, 0, 0, 1),
    # reference data for every reader of the layer, city-wide records only
    # for those reading all of it
    "feed_inspection_checklists": (1, 1, 1, 0, 0, 1),
    "feed_enterprise_records": (1, _D, 1, 0, 0, 1),
    "concrete_credit_history": (1, _D, 1, 0, 0, 1),
    "water_observations": (1, _D, 1, 0, 0, 1),
    "water_samples": (1, _D, 1, 0, 0, 1),
    "water_patrol_records": (2, _D, 1, 0, 2, 2),
    "supervision_warning_events": (3, 1, 1, 0, 0, 3),
    # cited by a visible event or problem record, or one's own upload
    "supervision_evidence": (3, 2, 1, 0, 0, 3),
    # the risk layers carry their subjects' scope
    "layer_risk_zones": (6, 2, 1, 0, 0, 6),
    "raster_layers": (1, _D, _D, 0, 0, 1),
    # anonymous callers: only the layers the settings open, even in raw SQL
    "layer_buildings": (3, 2, _D, 0, 0, 3),
    "layer_rivers": (2, _D, 1, 0, 2, 2),
    "layer_districts": (2, 2, 2, 0, 2, 2),
    # private to the server
    # writers append in their own name and read back only their own rows
    "audit_log": (_D, 1, 0, _D, _D, _D),
    "users": (_D, _D, _D, _D, _D, _D),
    "risk_dirty": (_D, _D, _D, _D, _D, _D),
    "water_models": (_D, _D, _D, _D, _D, _D),
    "water_observation_loads": (_D, _D, _D, _D, _D, _D),
}


@pytest.mark.parametrize("table", list(EXPECTED))
def test_every_role_reads_only_its_rows(scope_engine, world, table):
    got = {
        name: _count(scope_engine, p, f'SELECT count(*) FROM "{table}"')
        for name, p in PRINCIPALS.items()
    }
    assert tuple(got.values()) == EXPECTED[table], got


def test_risk_zones_carry_their_subjects_scope(scope_engine, world):
    with scope_engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT kind, subject_id, district, chief_id FROM layer_risk_zones "
                "ORDER BY kind, subject_id"
            )
        ).all()
    by_kind: dict[str, set] = {}
    for kind, _sid, district, chief in rows:
        by_kind.setdefault(kind, set()).add((district, chief))
    assert by_kind == {
        "dangerous_building": {(OWN, None), (OTHER, None)},
        # one on its building (its district), one by where it lies
        "curtain_wall": {(OWN, None), (OTHER, None)},
        "river_pressure": {(None, "C1"), (None, "C2")},
    }
    housing = _count(
        scope_engine,
        HOUSING,
        "SELECT count(*) FROM layer_risk_zones "
        f"WHERE district <> '{OWN}' OR kind = 'river_pressure'",
    )
    assert housing == 0


def test_risk_grid_cells_of_the_district(scope_engine, world):
    with scope_engine.connect() as conn:
        total, own, other = conn.execute(
            text(
                "SELECT count(*), count(*) FILTER (WHERE district = :o), "
                "count(*) FILTER (WHERE district = :x) FROM layer_risk_grid"
            ),
            {"o": OWN, "x": OTHER},
        ).one()
    assert own > 0 and other > 0
    assert (
        _count(scope_engine, ANALYST, "SELECT count(*) FROM layer_risk_grid") == total
    )
    assert _count(scope_engine, HOUSING, "SELECT count(*) FROM layer_risk_grid") == own
    assert _count(scope_engine, CHIEF, "SELECT count(*) FROM layer_risk_grid") == DENIED


def _insert_patrol(engine: Engine, principal: Principal, chief: str, code: str):
    token = _as(principal)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO water_patrol_records (chief_id, segment_code, "
                    "started_at, duration_min, distance_km, meets_standard) VALUES "
                    "(:c, :s, now(), 30, 2, true)"
                ),
                {"c": chief, "s": code},
            )
    finally:
        CURRENT.reset(token)


@pytest.mark.parametrize(
    "who, chief, code, error",
    [
        ("chief", "C2", "R3", "row-level security"),  # another chief, their segment
        ("chief", "C2", "R1", "row-level security"),  # own segment, another's name
        ("chief", "C1", "R3", "row-level security"),  # own name, another's segment
        ("housing", "C1", "R1", "permission denied"),  # not a patrol-recording role
        ("analyst", "C1", "R1", "permission denied"),
    ],
)
def test_patrol_rows_only_of_the_chief_and_segment(
    scope_engine, world, who, chief, code, error
):
    with pytest.raises(exc.ProgrammingError, match=error):
        _insert_patrol(scope_engine, PRINCIPALS[who], chief, code)


def test_chief_records_own_patrol(scope_engine, world):
    _insert_patrol(scope_engine, CHIEF, "C1", "R1")
    with scope_engine.begin() as conn:
        n = conn.execute(
            text(
                "DELETE FROM water_patrol_records WHERE chief_id = 'C1' "
                "AND started_at > now() - interval '1 hour'"
            )
        ).rowcount
    assert n == 1


def test_writers_append_history_only_in_scope(scope_engine, world):
    def event(principal, warning):
        token = _as(principal)
        try:
            with scope_engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO supervision_warning_events (warning_id, actor, "
                        "action) VALUES (:w, 'x', 'note')"
                    ),
                    {"w": warning},
                )
        finally:
            CURRENT.reset(token)

    with pytest.raises(exc.ProgrammingError, match="row-level security"):
        event(HOUSING, world["warn_other"])
    with pytest.raises(exc.ProgrammingError, match="row-level security"):
        event(CHIEF, world["warn_own"])
    event(HOUSING, world["warn_own"])
    with scope_engine.begin() as conn:
        conn.execute(
            text("DELETE FROM supervision_warning_events WHERE action = 'note'")
        )


def test_every_granted_table_is_secured(scope_engine, world):
    """A table a scoped role may read has row-level security, except the
    public reference tables: a new table is closed until it is declared."""
    with scope_engine.connect() as conn:
        open_tables = set(
            conn.execute(
                text(
                    "SELECT DISTINCT g.table_name "
                    "FROM information_schema.role_table_grants g "
                    "JOIN pg_class c ON c.relname = g.table_name "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "AND n.nspname = 'public' "
                    "WHERE g.grantee LIKE 'gis\\_%' AND g.privilege_type = 'SELECT' "
                    "AND NOT c.relrowsecurity"
                )
            ).scalars()
        )
    assert open_tables <= set(dbsecurity.PUBLIC_TABLES), open_tables


# -- pages and routes still work under the policies --------------------------------


@pytest.fixture(scope="module")
def client(scope_db: DatabaseSettings, world: dict) -> Iterator[TestClient]:
    from gis_server.app import create_app
    from gis_server.limits import LimitSettings
    from gis_server.settings import ServerSettings
    from map_ui.settings import MapSettings

    app = create_app(
        db=scope_db,
        server=ServerSettings(log_requests=False),
        auth=AuthSettings(),
        limits=LimitSettings(rate_limit=False),
    )
    app.state.map_settings = MapSettings(basemap="none")
    with TestClient(app, follow_redirects=False) as c:
        yield c


def _key(world: dict, who: str) -> dict:
    return {"X-API-Key": world[f"key_{who}"]}


def _has(page: str, name: str, value: str) -> bool:
    """Whether an inline feature of ``page`` has property ``name`` = ``value``."""
    return re.search(rf'"{name}"\s*:\s*"{value}"', page) is not None


def test_housing_page_shows_the_district_zones(client, world):
    mine = client.get("/maps/housing", headers=_key(world, "housing"))
    assert mine.status_code == 200
    assert _has(mine.text, "kind", "dangerous_building")
    assert _has(mine.text, "district", OWN)
    assert not _has(mine.text, "district", OTHER)
    every = client.get("/maps/housing", headers=_key(world, "analyst"))
    assert _has(every.text, "district", OTHER)


def test_river_chief_page_shows_own_corridors(client, world):
    mine = client.get("/maps/river-chief?chief=C1", headers=_key(world, "chief"))
    assert mine.status_code == 200
    assert _has(mine.text, "kind", "river_pressure")
    # the hazard zone of the building beside the river is a housing matter
    assert not _has(mine.text, "kind", "dangerous_building")
    every = client.get("/maps/river-chief?chief=C1", headers=_key(world, "analyst"))
    assert _has(every.text, "kind", "dangerous_building")


def test_city_wide_raster_only_for_the_whole_grid(client, world):
    from models.risk import RiskSettings

    name = RiskSettings().raster_name
    assert (
        client.get(
            f"/maps/rasters/{name}.png", headers=_key(world, "housing")
        ).status_code
        == 404
    )
    assert (
        client.get(
            f"/maps/rasters/{name}.png", headers=_key(world, "analyst")
        ).status_code
        == 200
    )
    page = client.get("/maps/analyst", headers=_key(world, "housing"))
    assert page.status_code == 200 and "/maps/rasters/" not in page.text


def test_scoped_routes_read_their_records(client, world):
    housing = _key(world, "housing")
    r = client.get(f"/supervision/warnings/{world['warn_own']}", headers=housing)
    assert r.status_code == 200 and r.json()["events"], r.text
    assert (
        client.get(
            f"/supervision/warnings/{world['warn_other']}", headers=housing
        ).status_code
        == 404
    )
    r = client.get("/supervision/hazards", headers=housing)
    assert r.status_code == 200
    assert {h.get("district") for h in r.json()["hazards"]} <= {OWN}
    chart = client.get(
        "/maps/supervision/charts/trend.png?building=b_own", headers=housing
    )
    assert chart.status_code == 200 and chart.content[:4] == b"\x89PNG"
    assert (
        client.get(
            "/maps/supervision/charts/trend.png?building=b_other", headers=housing
        ).status_code
        == 404
    )
    chief = _key(world, "chief")
    assert client.get("/supervision/plants/p1/credit", headers=chief).json()["history"]
    assert client.get("/supervision/enterprises", headers=chief).status_code == 200


# -- the command line's --as ---------------------------------------------------


def test_pinned_connections_are_scoped_raw_and_threaded(scope_db, world):
    """What ``--as`` does to the engines a command makes: raw DBAPI
    connections (the risk models, the water model, the observation ingest)
    and worker threads, which begin no SQLAlchemy transaction or do not see
    the context variable, run under the account's role too."""
    from models.risk import status

    dbsecurity.pin(HOUSING)
    try:
        engine = db.make_engine(scope_db)
    finally:
        dbsecurity.pin(None)
    try:

        def raw() -> tuple:
            conn = engine.raw_connection()
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT current_user, count(*) FROM layer_buildings")
                    return cur.fetchone()
            finally:
                conn.close()

        assert raw() == ("gis_housing", 2)
        with ThreadPoolExecutor(max_workers=2) as pool:
            assert list(pool.map(lambda _: raw(), range(2))) == [("gis_housing", 2)] * 2
        with pytest.raises(Exception, match="permission denied"):
            status(engine)  # the risk bookkeeping is the server's
    finally:
        engine.dispose()
    unpinned = db.make_engine(scope_db)
    try:
        conn = unpinned.raw_connection()
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM layer_buildings")
            assert cur.fetchone()[0] == 3
        conn.close()
    finally:
        unpinned.dispose()


@pytest.fixture
def cli(scope_db, monkeypatch):
    from typer.testing import CliRunner

    from gis_server.cli import app
    from gis_server.settings import database_settings
    from models.water.settings import water_settings

    monkeypatch.setenv("DATABASE_URL", scope_db.effective_url())
    database_settings.cache_clear()
    water_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str):
        result = runner.invoke(app, list(args))
        # the --as scope ends with the command
        assert CURRENT.get() is None and dbsecurity.pinned() is None
        return result

    yield run
    database_settings.cache_clear()


def _patrols(engine: Engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT chief_id, segment_code FROM water_patrol_records ORDER BY id")
        ).all()


def _last_audit(engine: Engine) -> tuple:
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT actor, actor_role, action, target_kind FROM audit_log "
                "ORDER BY id DESC LIMIT 1"
            )
        ).one()


PATROL = ("--minutes", "30", "--km", "2")


@pytest.mark.parametrize(
    "args, error",
    [
        # a housing officer records no patrols (the bug: this succeeded)
        (
            (
                "--as",
                "housing",
                "patrols",
                "record",
                "--chief",
                "C2",
                "--segment",
                "R3",
                *PATROL,
            ),
            "may not",
        ),
        # a chief only of their own segments
        (
            (
                "--as",
                "chief",
                "patrols",
                "record",
                "--chief",
                "C2",
                "--segment",
                "R3",
                *PATROL,
            ),
            "no river segment",
        ),
        (
            (
                "--as",
                "chief",
                "patrols",
                "record",
                "--chief",
                "C2",
                "--segment",
                "R1",
                *PATROL,
            ),
            "in the charge of",
        ),
        # the server's own work
        (("--as", "housing", "risk", "compute"), "server's own work"),
        (("--as", "chief", "predict", "score"), "server's own work"),
        (("--as", "housing", "users", "list"), "server's own work"),
        (("--as", "analyst", "ingest", "raster", "x", "x.tif"), "server's own work"),
        # reading what the account does not read
        (("--as", "housing", "patrols", "--chief", "C1"), "no collection"),
    ],
)
def test_cli_as_applies_the_policy(cli, scope_engine, world, args, error):
    before = _patrols(scope_engine)
    result = cli(*args)
    assert result.exit_code != 0
    assert error in getattr(result.exception, "description", str(result.exception))
    assert _patrols(scope_engine) == before


def test_cli_patrols_are_checked_and_audited(cli, scope_engine, world):
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    result = cli(
        "--as",
        "chief",
        "patrols",
        "record",
        "--chief",
        "C1",
        "--segment",
        "R1",
        "--at",
        future,
        *PATROL,
    )
    assert result.exit_code != 0 and "in the future" in result.exception.description
    result = cli(
        "--as",
        "chief",
        "patrols",
        "record",
        "--chief",
        "C1",
        "--segment",
        "R1",
        *PATROL,
    )
    assert result.exit_code == 0, result.output
    assert _patrols(scope_engine)[-1] == ("C1", "R1")
    assert _last_audit(scope_engine) == (
        "chief",
        "river_chief",
        "patrol.record",
        "patrol",
    )
    result = cli("patrols", "record", "--chief", "C2", "--segment", "R3", *PATROL)
    assert result.exit_code == 0, result.output
    assert _last_audit(scope_engine)[:3] == (
        f"cli:{getpass.getuser()}",
        "admin",
        "patrol.record",
    )
    with scope_engine.begin() as conn:
        conn.execute(
            text(
                "DELETE FROM water_patrol_records WHERE "
                "started_at > now() - interval '1 hour'"
            )
        )


def test_cli_ingest_as_writes_only_in_scope(cli, scope_engine, world, tmp_path):
    def geojson(district: str, sid: str) -> Path:
        path = tmp_path / f"{sid}.geojson"
        path.write_text(
            '{"type": "FeatureCollection", "features": [{"type": "Feature", '
            f'"id": "{sid}", "properties": {{"district": "{district}", '
            '"floors": 2}, "geometry": {"type": "Polygon", "coordinates": '
            "[[[113.31, 23.11], [113.3101, 23.11], [113.3101, 23.1101], "
            "[113.31, 23.1101], [113.31, 23.11]]]}}]}"
        )
        return path

    result = cli("--as", "analyst", "ingest", "buildings", str(geojson(OWN, "n0")))
    assert result.exit_code != 0 and "may not edit" in result.exception.description
    result = cli(
        "--as",
        "housing",
        "ingest",
        "buildings",
        str(geojson(OTHER, "n1")),
        "--no-progress",
        "--source",
        "cli-as",
    )
    assert result.exit_code != 0
    assert "row-level security" in str(result.exception)
    result = cli(
        "--as",
        "housing",
        "ingest",
        "buildings",
        str(geojson(OWN, "n2")),
        "--no-progress",
        "--source",
        "cli-as",
    )
    assert result.exit_code == 0, result.output
    assert "marked stale" in result.output
    assert _last_audit(scope_engine)[:3] == ("housing", "housing_officer", "ingest")
    with scope_engine.begin() as conn:
        stored = (
            conn.execute(
                text(
                    "DELETE FROM layer_buildings WHERE source = 'cli-as' "
                    "RETURNING source_id"
                )
            )
            .scalars()
            .all()
        )
    assert stored == ["n2"]


def test_risk_refresh_follows_a_district_change(scope_engine, world, tmp_path):
    """Runs last: edits the world (and puts it back)."""
    from models.risk import RiskSettings, refresh

    settings = RiskSettings(raster_path=tmp_path / "risk.tif", workers=1)

    def zone() -> tuple | None:
        with scope_engine.connect() as conn:
            return conn.execute(
                text(
                    "SELECT district FROM layer_risk_zones WHERE kind = "
                    "'dangerous_building' AND subject_id = :b"
                ),
                {"b": world["b_own_a"]},
            ).one_or_none()

    def edit(**values) -> None:
        sets = ", ".join(f"{k} = :{k}" for k in values)
        with scope_engine.begin() as conn:
            conn.execute(
                text(f"UPDATE layer_buildings SET {sets} WHERE id = :b"),
                {"b": world["b_own_a"], **values},
            )
        refresh(scope_engine, settings, today=TODAY, write_raster=False)

    edit(safety_grade="D")
    assert zone() == (OWN,)
    edit(district=OTHER)
    assert zone() == (OTHER,)
    assert (
        _count(
            scope_engine,
            HOUSING,
            "SELECT count(*) FROM layer_risk_zones "
            f"WHERE subject_id = {world['b_own_a']}",
        )
        == 0
    )
    edit(safety_grade="A", district=OWN)
    assert zone() is None


def test_database_writers_match_the_policy():
    """The roles the database lets write records are those the policy does."""
    from layers import all_layers

    side = next(s for s in dbsecurity.SIDE_TABLES if s.table == "water_patrol_records")
    assert set(side.writers) == set(policy.PERMISSIONS["patrols.record"]) - {"admin"}
    scoped_writers = {r for spec in all_layers() for r in spec.access.scoped_write}
    assert set(dbsecurity.WRITER_ROLES) == scoped_writers


def test_cli_as_reads_within_scope(cli, world):
    result = cli("--as", "chief", "patrols", "--chief", "C1")
    assert result.exit_code == 0, result.output
    result = cli("--as", "housing", "layers")
    assert result.exit_code == 0 and "buildings" in result.output
    assert "rivers" not in result.output
