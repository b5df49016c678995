"""Who may see and change what: every role against every route.

The expectations are written out by hand below (not derived from
``gis_server.auth.policy``), and ``test_matrix_covers_every_route`` fails when
a route exists that the matrix does not list, so a new route cannot slip in
unchecked. The database's own enforcement (row-level security, grants) is
tested apart, with the Python policy bypassed.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import jwt
import morecantile
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, exc, text

from gis_server import db
from gis_server.app import create_app
from gis_server.auth import accounts
from gis_server.auth.principal import CURRENT, Principal
from gis_server.auth.settings import AuthSettings
from gis_server.limits import LimitSettings
from gis_server.settings import DatabaseSettings, ServerSettings
from map_ui.settings import MapSettings

SEC_DB = "gis_security_test"
ROLES = ("anon", "admin", "analyst", "housing", "chief")
OWN, OTHER = "天河区", "越秀区"
TILE = morecantile.tms.get("WebMercatorQuad").tile(113.3005, 23.1005, 14)


@pytest.fixture(scope="module")
def sec_db(db_settings: DatabaseSettings) -> Iterator[DatabaseSettings]:
    settings = db.create_database(db_settings, SEC_DB)
    try:
        yield settings
    finally:
        db.drop_database(db_settings, SEC_DB)


@pytest.fixture(scope="module")
def sec_engine(sec_db: DatabaseSettings) -> Iterator[Engine]:
    engine = db.make_engine(sec_db)
    yield engine
    engine.dispose()


BUILDING = text("""
INSERT INTO layer_buildings (source, source_id, address, district, floors, geom)
VALUES ('sec', :sid, :address, :district, 3,
        ST_Multi(ST_MakeEnvelope(:x, 23.100, :x + 0.0005, 23.1005, 4326)))
RETURNING id
""")
RIVER = text("""
INSERT INTO layer_rivers (source, source_id, name, code, district, chief_id,
    length_m, geom)
VALUES ('sec', :code, :code, :code, :district, :chief, 1000,
        ST_Multi(ST_MakeLine(ST_MakePoint(:x, 23.11), ST_MakePoint(:x + 0.01, 23.12))))
RETURNING id
""")


@dataclass
class World:
    ids: dict[str, int]
    keys: dict[str, str]
    passwords: dict[str, str]


@pytest.fixture(scope="module")
def world(sec_engine: Engine) -> World:
    ids: dict[str, int] = {}
    with sec_engine.begin() as conn:
        for i in range(4):
            district = OWN if i % 2 == 0 else OTHER
            ids[f"b{i}"] = conn.execute(
                BUILDING,
                {"sid": f"b{i}", "address": f"{i} 路", "district": district,
                 "x": 113.3 + i * 0.001},
            ).scalar_one()
        ids["own"], ids["other"] = ids["b0"], ids["b1"]
        for code, chief, x in (("R1", "C1", 113.30), ("R2", "C1", 113.32),
                               ("R3", "C2", 113.34)):
            ids[code] = conn.execute(
                RIVER, {"code": code, "district": OWN, "chief": chief, "x": x}
            ).scalar_one()
        conn.execute(text(
            "INSERT INTO layer_districts (source, source_id, name, geom) VALUES "
            "('sec', 'd1', '天河区', ST_Multi(ST_MakeEnvelope(113.2, 23.0, "
            "113.5, 23.3, 4326)))"))
        conn.execute(text(
            "INSERT INTO layer_plants (source, source_id, enterprise, geom) VALUES "
            "('sec', 'p1', '混凝土公司', ST_SetSRID(ST_MakePoint(113.31, 23.11), "
            "4326))"))
        passwords = {}
        keys = {}
        for name, role, extra in (
            ("admin", "admin", {}),
            ("analyst", "analyst", {}),
            ("housing", "housing_officer", {"district": OWN}),
            ("chief", "river_chief", {"chief_id": "C1"}),
        ):
            passwords[name] = f"{name}-password-1"
            accounts.add_user(conn, name, role, passwords[name], **extra)
            keys[name] = accounts.create_key(conn, name, "tests")
    return World(ids, keys, passwords)


def _app(sec_db: DatabaseSettings, **auth) -> object:
    app = create_app(
        db=sec_db,
        server=ServerSettings(log_requests=False),
        auth=AuthSettings(**auth),
        # the matrix signs in with wrong passwords once per role and credential:
        # more than the login throttle lets one address try (tested apart)
        limits=LimitSettings(rate_limit=False, login_ip_max_failures=10_000),
    )
    app.state.map_settings = MapSettings(basemap="none")
    return app


@pytest.fixture(scope="module")
def client(sec_db: DatabaseSettings, world: World) -> Iterator[TestClient]:
    with TestClient(_app(sec_db), follow_redirects=False) as c:
        yield c


def _headers(world: World, role: str) -> dict[str, str]:
    return {} if role == "anon" else {"X-API-Key": world.keys[role]}


@dataclass(frozen=True)
class Cred:
    """How a matrix request presents its caller's credential."""

    headers: dict[str, str]
    params: dict[str, str]


#: the ways a client presents a credential (AuthMiddleware reads them all)
VIAS = ("key header", "bearer token", "key query")


@pytest.fixture(scope="module")
def tokens(client, world) -> dict[str, str]:
    """A bearer token per role, signed in once for the module."""
    return {name: _token(client, world, name) for name in world.keys}


def _cred(world: World, tokens: dict[str, str], role: str, via: str) -> Cred:
    if role == "anon":
        return Cred({}, {})
    if via == "bearer token":
        return Cred({"Authorization": f"Bearer {tokens[role]}"}, {})
    if via == "key query":
        return Cred({}, {"api_key": world.keys[role]})
    return Cred({"X-API-Key": world.keys[role]}, {})


def _feature(district: str, x: float = 113.305) -> dict:
    return {
        "type": "Feature",
        "properties": {"address": "新 路", "district": district, "floors": 2},
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[x, 23.1], [x + 0.0003, 23.1], [x + 0.0003, 23.1003],
                             [x, 23.1003], [x, 23.1]]],
        },
    }


def _new_building(engine: Engine, district: str) -> int:
    with engine.begin() as conn:
        return conn.execute(
            BUILDING,
            {"sid": f"tmp-{dt.datetime.now().timestamp()}", "address": "x",
             "district": district, "x": 113.309},
        ).scalar_one()


_SEQ = iter(range(1, 1_000_000))


def _warning(engine: Engine, district: str, state: str = "raised",
             responsible: str = "某建设单位") -> int:
    """A fresh supervision warning in ``district``, moved to ``state``."""
    import models.supervision.inspections  # noqa: F401  (registers the rule)
    from gis_server.audit import Actor
    from models.supervision import loop
    from models.supervision.demo import demo_png
    from models.supervision.evidence import store_evidence
    from models.supervision.rules import Finding
    from models.supervision.settings import loop_settings

    system = Actor("tests", "admin")
    finding = Finding(
        rule="inspections.problem", subject_layer="buildings", subject_id="b0",
        level="yellow", observed_at=dt.datetime.now(dt.UTC),
        period=f"p{next(_SEQ)}", summary="test", district=district,
        responsible=responsible,
    )
    with engine.begin() as conn:
        wid = loop.raise_findings(conn, [finding], system).ids[0]
        if state in ("dispatched", "rectified"):
            loop.dispatch(conn, wid, system)
        if state == "rectified":
            ref = store_evidence(conn, demo_png(1), "photo.png", "image/png",
                                 loop_settings())
            loop.rectify(conn, wid, system, "fixed", [ref])
    return wid


def _photo() -> dict:
    from models.supervision.demo import demo_png

    return {"photos": ("after.png", demo_png(7), "image/png")}


Call = Callable[[TestClient, World, Cred, Engine], object]
t = f"{TILE.z}"


def _get(path: str, setup: Callable[[Engine], dict] | None = None) -> Call:
    def call(c, w, cred, e):
        ids = dict(w.ids)
        if setup:
            ids.update(setup(e))
        return c.get(_url(path.format(**ids), cred), headers=cred.headers)

    call.template, call.method = path, "GET"  # type: ignore[attr-defined]
    return call


def _send(method: str, path: str, body: Callable[[], dict] | None = None,
          setup: Callable[[Engine], dict] | None = None,
          files: Callable[[], dict] | None = None,
          form: Callable[[], dict] | None = None) -> Call:
    def call(c, w, cred, e):
        ids = dict(w.ids)
        if setup:
            ids.update(setup(e))
        kwargs = {"json": body()} if body else {}
        if files:
            kwargs = {"files": files(), "data": {"note": "已整改"}}
        if form:
            kwargs = {"data": form()}
        return c.request(method, _url(path.format(**ids), cred),
                         headers=cred.headers, **kwargs)

    call.template, call.method = path, method  # type: ignore[attr-defined]
    return call


def _url(path: str, cred: Cred) -> str:
    """``path`` with the credential's query parameters added to its own (httpx's
    ``params=`` would replace the query of the path)."""
    if not cred.params:
        return path
    return path + ("&" if "?" in path else "?") + urlencode(cred.params)


def _html(call: Call) -> Call:
    """A row answered with an HTML page, also when refused (the sign-in form)."""
    call.html = True  # type: ignore[attr-defined]
    return call


TILE_PATH = f"/collections/buildings/tiles/WebMercatorQuad/{TILE.z}/{TILE.y}/{TILE.x}"
XYZ_PATH = f"/tiles/buildings/{TILE.z}/{TILE.x}/{TILE.y}.pbf"

#: (name, call, expected status for anon, admin, analyst, housing, chief)
MATRIX: list[tuple[str, Call, tuple[int, ...]]] = [
    ("landing", _get("/"), (200, 200, 200, 200, 200)),
    ("conformance", _get("/conformance"), (200, 200, 200, 200, 200)),
    ("openapi", _get("/api"), (200, 200, 200, 200, 200)),
    ("me", _get("/auth/me"), (200, 200, 200, 200, 200)),
    ("collections", _get("/collections"), (401, 200, 200, 200, 200)),
    ("buildings", _get("/collections/buildings"), (401, 200, 200, 200, 404)),
    ("buildings items", _get("/collections/buildings/items"),
     (401, 200, 200, 200, 404)),
    ("own building", _get("/collections/buildings/items/{own}"),
     (401, 200, 200, 200, 404)),
    ("other building", _get("/collections/buildings/items/{other}"),
     (401, 200, 200, 404, 404)),
    ("buildings csv", _get("/collections/buildings/items?f=csv"),
     (401, 200, 200, 200, 404)),
    ("buildings gpkg", _get("/collections/buildings/items?f=gpkg"),
     (401, 200, 200, 200, 404)),
    ("queryables", _get("/collections/buildings/queryables"),
     (401, 200, 200, 200, 404)),
    ("schema", _get("/collections/buildings/schema"), (401, 200, 200, 200, 404)),
    ("tile", _get(TILE_PATH), (401, 200, 200, 200, 404)),
    ("xyz tile", _get(XYZ_PATH), (401, 200, 200, 200, 404)),
    ("xyz geojson tile", _get(XYZ_PATH.replace(".pbf", ".geojson")),
     (401, 200, 200, 200, 404)),
    ("tilesets", _get("/collections/buildings/tiles"), (401, 200, 200, 200, 404)),
    ("tileset", _get("/collections/buildings/tiles/WebMercatorQuad"),
     (401, 200, 200, 200, 404)),
    ("tilejson", _get("/collections/buildings/tiles/WebMercatorQuad/tilejson.json"),
     (401, 200, 200, 200, 404)),
    ("xyz tilejson", _get("/tiles/buildings/tilejson.json"),
     (401, 200, 200, 200, 404)),
    ("tile matrix sets", _get("/tileMatrixSets"), (200, 200, 200, 200, 200)),
    ("tile matrix set", _get("/tileMatrixSets/WebMercatorQuad"),
     (200, 200, 200, 200, 200)),
    ("rivers items", _get("/collections/rivers/items"), (401, 200, 200, 404, 200)),
    ("other chief's river", _get("/collections/rivers/items/{R3}"),
     (401, 200, 200, 404, 404)),
    ("own river", _get("/collections/rivers/items/{R1}"), (401, 200, 200, 404, 200)),
    ("plants", _get("/collections/plants/items"), (401, 200, 200, 404, 200)),
    ("districts", _get("/collections/districts/items"), (401, 200, 200, 200, 200)),
    ("unknown collection", _get("/collections/nope/items"),
     (404, 404, 404, 404, 404)),
    ("housing map", _get("/maps/housing"), (303, 200, 200, 200, 404)),
    ("river chief map", _get("/maps/river-chief"), (303, 200, 200, 404, 200)),
    ("river chief page", _get("/maps/river-chief?chief=C1"),
     (303, 200, 200, 404, 200)),
    ("other chief page", _get("/maps/river-chief?chief=C2"),
     (303, 200, 200, 404, 404)),
    ("analyst map", _get("/maps/analyst"), (303, 200, 200, 200, 200)),
    ("map index", _get("/maps"), (303, 200, 200, 200, 200)),
    ("audit", _get("/audit"), (401, 200, 403, 403, 403)),
    ("users", _get("/admin/users"), (401, 200, 403, 403, 403)),
    ("river summary", _get("/summary/rivers"), (401, 200, 200, 200, 200)),
    ("login form", _get("/auth/login"), (200, 200, 200, 200, 200)),
    ("sign in with the form", _send("POST", "/auth/login", form=lambda: {
        "username": "analyst", "password": "analyst-password-1",
        "next": "/maps/analyst"}), (303, 303, 303, 303, 303)),
    ("sign in with a wrong password", _html(_send(
        "POST", "/auth/login", form=lambda: {
            "username": f"nobody{next(_SEQ)}", "password": "wrong-password"})),
     (401, 401, 401, 401, 401)),
    ("token for a password", _send("POST", "/auth/token", form=lambda: {
        "username": "analyst", "password": "analyst-password-1"}),
     (200, 200, 200, 200, 200)),
    ("token for a wrong password", _send("POST", "/auth/token", form=lambda: {
        "username": f"nobody{next(_SEQ)}", "password": "wrong-password"}),
     (401, 401, 401, 401, 401)),
    ("sign out", _send("POST", "/auth/logout"), (303, 303, 303, 303, 303)),
    ("api page", _get("/api.html"), (200, 200, 200, 200, 200)),
    ("api page sign-in redirect", _get("/docs/oauth2-redirect"),
     (200, 200, 200, 200, 200)),
    ("static script", _get("/static/gis/maps.js"), (200, 200, 200, 200, 200)),
    ("static file that is not there", _get("/static/gis/nope.js"),
     (404, 404, 404, 404, 404)),
    ("raster overlay not registered", _get("/maps/rasters/nope.png"),
     (303, 404, 404, 404, 404)),
    ("create own-district building",
     _send("POST", "/collections/buildings/items", lambda: _feature(OWN)),
     (401, 201, 403, 201, 404)),
    ("create other-district building",
     _send("POST", "/collections/buildings/items", lambda: _feature(OTHER)),
     (401, 201, 403, 403, 404)),
    ("patch own building",
     _send("PATCH", "/collections/buildings/items/{own}",
           lambda: {"properties": {"floors": 9}}),
     (401, 200, 403, 200, 404)),
    ("patch other building",
     _send("PATCH", "/collections/buildings/items/{other}",
           lambda: {"properties": {"floors": 9}}),
     (401, 200, 403, 404, 404)),
    ("move own building out of scope",
     _send("PATCH", "/collections/buildings/items/{tmp}",
           lambda: {"properties": {"district": OTHER}},
           setup=lambda e: {"tmp": _new_building(e, OWN)}),
     (401, 200, 403, 403, 404)),
    ("replace own building",
     _send("PUT", "/collections/buildings/items/{own}", lambda: _feature(OWN)),
     (401, 200, 403, 200, 404)),
    ("delete own-district building",
     _send("DELETE", "/collections/buildings/items/{tmp}",
           setup=lambda e: {"tmp": _new_building(e, OWN)}),
     (401, 204, 403, 204, 404)),
    ("delete other-district building",
     _send("DELETE", "/collections/buildings/items/{tmp}",
           setup=lambda e: {"tmp": _new_building(e, OTHER)}),
     (401, 204, 403, 404, 404)),
    ("create river", _send("POST", "/collections/rivers/items", lambda: {
        "type": "Feature", "properties": {"code": "RX", "chief_id": "C1"},
        "geometry": {"type": "LineString",
                     "coordinates": [[113.3, 23.1], [113.31, 23.11]]}}),
     (401, 201, 403, 404, 403)),
    ("supervision rules", _get("/supervision/rules"), (401, 200, 200, 200, 200)),
    ("supervision warnings", _get("/supervision/warnings"),
     (401, 200, 200, 200, 200)),
    ("own-district warning", _get("/supervision/warnings/{w}",
                                  setup=lambda e: {"w": _warning(e, OWN)}),
     (401, 200, 200, 200, 404)),
    ("other-district warning", _get("/supervision/warnings/{w}",
                                    setup=lambda e: {"w": _warning(e, OTHER)}),
     (401, 200, 200, 404, 404)),
    ("rankings", _get("/supervision/rankings?by=district"),
     (401, 200, 200, 200, 200)),
    ("chief's warning", _get("/supervision/warnings/{w}", setup=lambda e: {
        "w": _warning(e, OTHER, responsible="C1")}),
     (401, 200, 200, 404, 200)),
    ("chief dispatches their warning",
     _send("POST", "/supervision/warnings/{w}/dispatch", lambda: {"note": "收到"},
           setup=lambda e: {"w": _warning(e, OTHER, responsible="C1")}),
     (401, 200, 403, 404, 403)),
    ("chief hands their warning to someone else",
     _send("POST", "/supervision/warnings/{w}/dispatch",
           lambda: {"responsible": "C2"},
           setup=lambda e: {"w": _warning(e, OTHER, responsible="C1")}),
     (401, 200, 403, 404, 403)),
    ("dispatch own-district warning",
     _send("POST", "/supervision/warnings/{w}/dispatch", lambda: {"note": "限期整改"},
           setup=lambda e: {"w": _warning(e, OWN)}),
     (401, 200, 403, 200, 403)),
    ("dispatch other-district warning",
     _send("POST", "/supervision/warnings/{w}/dispatch", lambda: {},
           setup=lambda e: {"w": _warning(e, OTHER)}),
     (401, 200, 403, 404, 403)),
    ("dispatch twice", _send("POST", "/supervision/warnings/{w}/dispatch",
                             lambda: {}, setup=lambda e: {"w": _warning(
                                 e, OWN, "dispatched")}),
     (401, 409, 403, 409, 403)),
    ("reply with a photo",
     _send("POST", "/supervision/warnings/{w}/rectify", files=_photo,
           setup=lambda e: {"w": _warning(e, OWN, "dispatched")}),
     (401, 200, 403, 200, 404)),
    ("close", _send("POST", "/supervision/warnings/{w}/verify",
                    lambda: {"accept": True},
                    setup=lambda e: {"w": _warning(e, OWN, "rectified")}),
     (401, 200, 403, 200, 403)),
    ("close without a reply", _send("POST", "/supervision/warnings/{w}/verify",
                                    lambda: {"accept": True},
                                    setup=lambda e: {"w": _warning(e, OWN)}),
     (401, 409, 403, 409, 403)),
    ("upload a photo", _send("POST", "/supervision/evidence",
                             files=lambda: {"photo": _photo()["photos"]}),
     (401, 201, 403, 201, 201)),
    ("upload a text file as a photo", _send(
        "POST", "/supervision/evidence",
        files=lambda: {"photo": ("x.png", b"#!/bin/sh\nrm -rf /", "image/png")}),
     (401, 400, 403, 400, 400)),
    ("evidence photo", _get("/supervision/evidence/{sha}", setup=lambda e: {
        "sha": _evidence_of(e, _warning(e, OWN, "rectified"))}),
     (401, 200, 200, 200, 404)),
    ("record own patrol", _send("POST", "/patrols", lambda: {
        "segment_code": "R1", "started_at": "2026-12-01T09:00:00+08:00",
        "duration_min": 20, "distance_km": 1.5}),
     (401, 201, 403, 403, 201)),
    ("record other chief's patrol", _send("POST", "/patrols", lambda: {
        "segment_code": "R3", "started_at": "2026-12-01T09:00:00+08:00",
        "duration_min": 20, "distance_km": 1.5}),
     (401, 201, 403, 403, 404)),
    ("hazard list", _get("/supervision/hazards"), (401, 200, 200, 200, 404)),
    ("plant credit", _get("/supervision/plants/p1/credit"),
     (401, 200, 200, 404, 200)),
    ("enterprises", _get("/supervision/enterprises"), (401, 200, 200, 404, 200)),
    ("fund centres", _get("/supervision/fund/centres"), (401, 200, 200, 404, 404)),
    ("fund centre", _get("/supervision/fund/centres/440100"),
     (401, 404, 404, 404, 404)),
    ("supervision map", _get("/maps/supervision"), (303, 200, 200, 200, 200)),
    ("supervision chart", _get("/maps/supervision/charts/warnings_by_state.png"),
     (303, 200, 200, 200, 200)),
    ("ranking table chart", _get("/maps/supervision/charts/ranking_table.png"),
     (303, 200, 200, 200, 200)),
    ("fund centres chart", _get("/maps/supervision/charts/fund_centres.png"),
     (303, 200, 200, 404, 404)),
    ("create computed risk zone", _send("POST", "/collections/risk_zones/items",
                                        lambda: _feature(OWN)),
     (401, 403, 403, 403, 403)),
]


# -- administration of accounts and rule settings: administrators only ----------


def _tmp_user(engine: Engine) -> dict:
    name = f"tmp{next(_SEQ)}"
    with engine.begin() as conn:
        accounts.add_user(conn, name, "analyst", None)
    return {"u": name}


def _tmp_key(engine: Engine) -> dict:
    with engine.begin() as conn:
        _, row = accounts.new_key(conn, "analyst", "to revoke")
    return {"u": "analyst", "k": row["id"]}


def _tmp_override(engine: Engine) -> dict:
    """An override equal to the default (the snapshot is the process's)."""
    from gis_server import audit, overrides
    from models.settings_groups import load_groups

    load_groups()
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM setting_overrides"))
        overrides.set_override(conn, audit.Actor("tests"), "loop",
                               "escalation_interval_days", 7.0)
    return {}


ADMIN_ONLY = (401, 200, 403, 403, 403)
MATRIX += [
    ("user", _get("/admin/users/analyst"), ADMIN_ONLY),
    ("create user", _send("POST", "/admin/users", lambda: {
        "username": f"new{next(_SEQ)}", "role": "analyst"}),
     (401, 201, 403, 403, 403)),
    ("change user", _send("PATCH", "/admin/users/{u}",
                          lambda: {"display_name": "新名"}, setup=_tmp_user),
     ADMIN_ONLY),
    ("user keys", _get("/admin/users/analyst/keys"), ADMIN_ONLY),
    ("create key", _send("POST", "/admin/users/{u}/keys", lambda: {"name": "t"},
                         setup=_tmp_user), (401, 201, 403, 403, 403)),
    ("revoke key", _send("DELETE", "/admin/users/{u}/keys/{k}", setup=_tmp_key),
     (401, 204, 403, 403, 403)),
    ("settings", _get("/admin/settings"), ADMIN_ONLY),
    ("override a setting", _send(
        "PUT", "/admin/settings/loop/escalation_interval_days",
        lambda: {"value": 7.0}), ADMIN_ONLY),
    ("remove an override", _send(
        "DELETE", "/admin/settings/loop/escalation_interval_days",
        setup=_tmp_override), ADMIN_ONLY),
]

#: (role, how its credential is presented): every role with each credential
#: of VIAS; anonymous callers present none
CALLERS = [("anon", "none")] + [(r, v) for r in ROLES[1:] for v in VIAS]


@pytest.mark.parametrize(
    ("name", "call", "expected"), MATRIX, ids=[m[0] for m in MATRIX]
)
@pytest.mark.parametrize(("role", "via"), CALLERS, ids=[f"{r}-{v}" for r, v in CALLERS])
def test_role_route_matrix(client, world, tokens, sec_engine, role, via, name, call,
                           expected):
    want = expected[ROLES.index(role)]
    response = call(client, world, _cred(world, tokens, role, via), sec_engine)
    assert response.status_code == want, (role, via, name, response.text[:300])
    if want >= 400 and not getattr(call, "html", False):
        body = response.json()
        assert set(body) == {"code", "description"}
    if want == 401:
        assert "www-authenticate" in response.headers
    if want == 303 and response.request.url.path != "/auth/login" and (
        response.request.url.path != "/auth/logout"
    ):
        assert response.headers["location"].startswith("/auth/login?next=")


#: Routes the matrix does not call, each with its reason: (method, path).
NOT_IN_MATRIX: dict[tuple[str, str], str] = {}


def _app_routes(app) -> list:
    """Every route the app serves, those of included routers too.

    FastAPI >= 0.16x keeps an included router as one ``_IncludedRouter`` in
    ``app.routes``; ``iter_route_contexts`` walks into them. Older versions
    copied the routes into ``app.routes``.
    """
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - FastAPI before included routers
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def _route_of(routes: list, method: str, path: str):
    """The route serving ``method path``: the first matching it in full, as the
    router picks it."""
    for route in routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.fullmatch(path) and method in (
            route.methods or ()
        ):
            return route
    return None


def test_matrix_covers_every_route(client):
    routes = _app_routes(client.app)
    served = {(m, r.path) for r in routes for m in (r.methods or ()) if m != "HEAD"}
    covered, unresolved = set(), []
    for name, call, _ in MATRIX:
        path = _concrete(call.template.split("?")[0])
        route = _route_of(routes, call.method, path)
        if route is None:
            unresolved.append(f"{name}: {call.method} {path}")
        else:
            covered.add((call.method, route.path))
    # every row reaches a route the walk found: a walk missing routes fails here
    assert not unresolved, f"matrix rows no route serves: {unresolved}"
    stale = set(NOT_IN_MATRIX) - served
    assert not stale, f"NOT_IN_MATRIX names routes that do not exist: {stale}"
    # the guard cannot pass on a walk that saw (almost) nothing
    assert len(served) >= len(covered) + len(NOT_IN_MATRIX)
    assert len(covered) >= 50, sorted(covered)
    missing = sorted(served - covered - set(NOT_IN_MATRIX))
    assert not missing, f"routes without a row in the security matrix: {missing}"


def _concrete(template: str) -> str:
    for name, value in (("{own}", "1"), ("{other}", "2"), ("{tmp}", "3"),
                        ("p1", "p1"), ("440100", "440100"),
                        ("{R1}", "4"), ("{R3}", "5"), ("{w}", "6"),
                        ("{sha}", "ab" * 32)):
        template = template.replace(name, value)
    return template


def _evidence_of(engine: Engine, warning_id: int) -> str:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT evidence->0->>'sha256' FROM supervision_warning_events "
            "WHERE warning_id = :w AND evidence <> '[]'::jsonb"),
            {"w": warning_id}).scalar_one()


def test_scoped_reads_return_only_the_scope(client, world):
    r = client.get("/collections/buildings/items", headers=_headers(world, "housing"),
                   params={"limit": 100})
    districts = {f["properties"]["district"] for f in r.json()["features"]}
    assert districts == {OWN}
    # a filter cannot widen the scope
    r = client.get("/collections/buildings/items", headers=_headers(world, "housing"),
                   params={"filter": f"district = '{OTHER}' OR 1 = 1"})
    assert r.status_code in (200, 400)
    if r.status_code == 200:
        assert {f["properties"]["district"] for f in r.json()["features"]} <= {OWN}
    r = client.get("/collections/rivers/items", headers=_headers(world, "chief"))
    assert {f["properties"]["chief_id"] for f in r.json()["features"]} == {"C1"}
    everything = client.get("/collections/rivers/items",
                            headers=_headers(world, "analyst")).json()
    assert len(everything["features"]) >= 3
    listed = client.get("/collections", headers=_headers(world, "chief")).json()
    ids = {c["id"] for c in listed["collections"]}
    assert "rivers" in ids and "buildings" not in ids


FAR = "番禺区"  # a district whose buildings only the test below makes


@pytest.fixture(scope="module")
def far_officer(sec_engine, world) -> dict[str, str]:
    """Two buildings in FAR, away from the others, and FAR's housing officer."""
    with sec_engine.begin() as conn:
        for i, x in enumerate((114.0, 114.01)):
            conn.execute(BUILDING, {"sid": f"far{i}", "address": f"{i} 远路",
                                    "district": FAR, "x": x})
        accounts.add_user(conn, "far", "housing_officer", "far-password-1",
                          district=FAR)
        key = accounts.create_key(conn, "far")
    with sec_engine.connect() as conn:  # planner statistics: estimates exist
        conn.execute(text("ANALYZE layer_buildings"))
    return {"X-API-Key": key}


TILEJSONS = ("/collections/buildings/tiles/WebMercatorQuad/tilejson.json",
             "/tiles/buildings/tilejson.json")


@pytest.mark.parametrize("url", TILEJSONS)
def test_tilejson_bounds_are_those_of_the_callers_scope(client, world,
                                                        far_officer, url):
    everyone = client.get(url, headers=_headers(world, "analyst"))
    far = client.get(url, headers=far_officer)
    own = client.get(url, headers=_headers(world, "housing"))
    assert everyone.status_code == far.status_code == own.status_code == 200
    west, south, east, north = far.json()["bounds"]
    # FAR's two buildings: 114.0 .. 114.0105, 23.1 .. 23.1005
    assert west == pytest.approx(114.0, abs=1e-6)
    assert east == pytest.approx(114.0105, abs=1e-6)
    assert (south, north) == pytest.approx((23.1, 23.1005), abs=1e-6)
    assert everyone.json()["bounds"][0] < 113.31  # every district's buildings
    assert own.json()["bounds"][2] < 114.0  # not FAR's: cached per scope
    # answered from the cache the second time, still per scope
    assert client.get(url, headers=far_officer).json()["bounds"] == [
        west, south, east, north]
    for r in (everyone, far, own):  # sign-in needed: no shared cache keeps it
        assert r.headers["cache-control"].startswith("private"), r.headers


def test_collection_extent_is_that_of_the_callers_scope(client, world,
                                                        far_officer):
    def extent(headers):
        r = client.get("/collections/buildings", headers=headers)
        assert r.status_code == 200
        assert r.headers["cache-control"].startswith("private")
        return r.json()["extent"]["spatial"]["bbox"][0]

    west, south, east, north = extent(far_officer)
    assert (west, east) == pytest.approx((114.0, 114.0105), abs=1e-6)
    assert extent(_headers(world, "analyst"))[0] < 113.31
    assert extent(_headers(world, "housing"))[2] < 114.0
    assert extent(far_officer) == [west, south, east, north]  # cached, per scope
    listed = client.get("/collections", headers=far_officer)
    assert listed.headers["cache-control"].startswith("private")
    doc = next(c for c in listed.json()["collections"] if c["id"] == "buildings")
    assert doc["extent"]["spatial"]["bbox"][0] == [west, south, east, north]


def test_only_anyones_answers_are_public(sec_db, world):
    """Shared caches may keep an answer only if anyone would get the same."""
    items = "/collections/{}/items"
    with TestClient(_app(sec_db, anonymous_layers="districts")) as c:
        analyst, housing = _headers(world, "analyst"), _headers(world, "housing")
        cases = [
            (items.format("districts"), {}, "public"),  # anyone reads it
            (items.format("districts"), analyst, "public"),  # the same answer
            (items.format("buildings"), analyst, "private"),  # needs sign-in
            (items.format("buildings"), housing, "private"),  # a scope's own
            (items.format("buildings") + "?f=csv", analyst, "private"),
            ("/collections/districts/tiles/WebMercatorQuad/tilejson.json", {},
             "public"),
            (TILEJSONS[0], analyst, "private"),
            ("/collections/districts", {}, "public"),
            ("/collections/buildings", analyst, "private"),
            (f"/collections/buildings/items/{world.ids['own']}", analyst,
             "private"),
            (TILE_PATH, analyst, "private"),
            (TILE_PATH.replace("buildings", "districts"), analyst, "public"),
        ]
        for url, headers, want in cases:
            for _ in range(2):  # routed, then (tiles) from the cache
                r = c.get(url, headers=headers)
                assert r.status_code in (200, 204), (url, r.text)
                cache_control = r.headers.get("cache-control", "")
                assert cache_control.startswith(want), (url, headers, cache_control)
                etag = r.headers.get("etag")
                if etag:  # a 304 says the same
                    again = c.get(url, headers={**headers, "If-None-Match": etag})
                    assert again.status_code == 304, url
                    assert again.headers["cache-control"] == cache_control, url


def test_scoped_tiles_are_cached_per_scope(client, world):
    """A tile rendered for one scope is never answered to another."""
    own = client.get(XYZ_PATH.replace(".pbf", ".geojson"),
                     headers=_headers(world, "housing"))
    everyone = client.get(XYZ_PATH.replace(".pbf", ".geojson"),
                          headers=_headers(world, "analyst"))
    again = client.get(XYZ_PATH.replace(".pbf", ".geojson"),
                       headers=_headers(world, "housing"))
    districts = {f["properties"].get("district") for f in own.json()["features"]}
    assert districts == {OWN}
    assert {f["properties"].get("district")
            for f in everyone.json()["features"]} >= {OWN, OTHER}
    assert again.json() == own.json()
    assert own.headers["etag"] != everyone.headers["etag"]
    assert own.headers["cache-control"].startswith("private")


def test_river_summary_counts_every_river(client, world):
    body = client.get("/summary/rivers", headers=_headers(world, "chief")).json()
    assert sum(d["segments"] for d in body["districts"]) >= 3


# -- the database enforces the same scopes --------------------------------------


def _as(principal: Principal):
    return CURRENT.set(principal)


def test_database_scopes_rows_without_the_python_policy(sec_engine, world):
    token = _as(Principal("housing", "housing_officer", district=OWN, via="key"))
    try:
        with sec_engine.connect() as conn:
            districts = set(conn.execute(
                text("SELECT DISTINCT district FROM layer_buildings")).scalars())
            assert districts == {OWN}
            with pytest.raises(exc.ProgrammingError, match="permission denied"):
                conn.execute(text("SELECT * FROM users"))
        with sec_engine.connect() as conn, pytest.raises(exc.ProgrammingError):
            conn.execute(text("SELECT count(*) FROM layer_rivers"))  # not granted
        with sec_engine.connect() as conn:  # the spatial index serves scoped callers
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            plan = "\n".join(conn.execute(text(
                "EXPLAIN SELECT id FROM layer_buildings WHERE geom && "
                "ST_MakeEnvelope(113.3, 23.1, 113.301, 23.101, 4326)")).scalars())
            assert "Index Cond: (geom &&" in plan, plan
        with sec_engine.begin() as conn:
            moved = conn.execute(text(
                "UPDATE layer_buildings SET floors = 1 WHERE district = :d"),
                {"d": OTHER}).rowcount
            assert moved == 0
        with sec_engine.connect() as conn, pytest.raises(
            exc.ProgrammingError, match="row-level security"
        ):
            conn.execute(text(
                "UPDATE layer_buildings SET district = :d WHERE district = :o"),
                {"d": OTHER, "o": OWN})
    finally:
        CURRENT.reset(token)
    token = _as(Principal("analyst", "analyst", via="key"))
    try:
        with sec_engine.connect() as conn, pytest.raises(
            exc.ProgrammingError, match="permission denied"
        ):
            conn.execute(text("UPDATE layer_buildings SET floors = 1"))
        with sec_engine.connect() as conn:
            n = conn.execute(text("SELECT count(*) FROM layer_buildings")).scalar()
            assert n >= 4
    finally:
        CURRENT.reset(token)
    token = _as(Principal("chief", "river_chief", chief_id="C1", via="key"))
    try:
        with sec_engine.connect() as conn:
            assert set(conn.execute(text(
                "SELECT DISTINCT chief_id FROM layer_rivers")).scalars()) == {"C1"}
    finally:
        CURRENT.reset(token)


def test_audit_log_is_append_only(sec_engine, client, world):
    client.patch(f"/collections/buildings/items/{world.ids['b2']}",
                 headers=_headers(world, "housing"),
                 json={"properties": {"floors": 7}})
    entries = client.get("/audit", headers=_headers(world, "admin"),
                         params={"target": f"buildings/{world.ids['b2']}"}).json()
    entry = entries["entries"][0]
    assert entry["actor"] == "housing" and entry["action"] == "feature.patch"
    assert entry["before"]["floors"] == 3 and entry["after"]["floors"] == 7
    with sec_engine.connect() as conn, pytest.raises(exc.DBAPIError,
                                                     match="append-only"):
        conn.execute(text("DELETE FROM audit_log"))
    with sec_engine.connect() as conn, pytest.raises(exc.DBAPIError,
                                                     match="append-only"):
        conn.execute(text("UPDATE audit_log SET actor = 'someone else'"))


def test_a_taken_feature_id_is_a_409_with_the_same_words_for_everyone(
    client, world, sec_engine
):
    admin, housing = _headers(world, "admin"), _headers(world, "housing")
    items = "/collections/buildings/items"
    taken = {**_feature(OTHER), "id": "sec-taken-1"}
    assert client.post(items, headers=admin, json=taken).status_code == 201
    # the holder is outside the officer's district: a 409, not a 500, in the
    # words an administrator (who sees the holder) gets too
    mine = {**_feature(OWN), "id": "sec-taken-1"}
    officer = client.post(items, headers=housing, json=mine)
    everyone = client.post(items, headers=admin, json=mine)
    assert officer.status_code == everyone.status_code == 409, officer.text
    assert officer.json() == everyone.json()
    assert officer.json()["code"] == "Conflict"
    assert OTHER not in officer.text
    # the same id twice in one request: 409, and nothing of it is kept
    with sec_engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM layer_buildings")).scalar()
    twice = {"type": "FeatureCollection",
             "features": [{**_feature(OWN), "id": "sec-twice"}] * 2}
    r = client.post(items, headers=housing, json=twice)
    assert r.status_code == 409 and "feature 1" in r.json()["description"]
    with sec_engine.connect() as conn:
        after = conn.execute(text("SELECT count(*) FROM layer_buildings")).scalar()
    assert after == before


@pytest.mark.parametrize(("given", "status", "stored"), [
    ("sec-str-id", 201, "sec-str-id"),
    (987654321, 201, "987654321"),
    (0, 201, "0"),
    ({"a": 1}, 400, None),
    ([1, 2], 400, None),
    (True, 400, None),
    (1.5, 400, None),
    ("", 400, None),
    ("  ", 400, None),
])
def test_feature_ids_are_strings_or_integers(client, world, sec_engine, given,
                                             status, stored):
    r = client.post("/collections/buildings/items", headers=_headers(world, "admin"),
                    json={**_feature(OWN), "id": given})
    assert r.status_code == status, r.text
    if status == 201:
        fid = r.json()["created"][0]["id"]
        with sec_engine.connect() as conn:
            source_id = conn.execute(text(
                "SELECT source_id FROM layer_buildings WHERE id = :i"), {"i": fid}
            ).scalar_one()
        assert source_id == stored
    else:
        assert r.json()["code"] == "InvalidParameterValue"
        assert "id" in r.json()["description"]


def test_invalid_feature_is_a_400_and_writes_nothing(client, world, sec_engine):
    with sec_engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM audit_log")).scalar()
    bad_grade = _feature(OWN)
    bad_grade["properties"]["safety_grade"] = "E"
    bad_geom = _feature(OWN)
    bad_geom["geometry"] = {"type": "Point", "coordinates": [113.3, 23.1]}
    far = _feature(OWN, x=500.0)
    for body in (bad_grade, bad_geom, far, {"type": "Feature"}, {"nope": 1}):
        r = client.post("/collections/buildings/items",
                        headers=_headers(world, "admin"), json=body)
        assert r.status_code == 400, r.text
    with sec_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar() == before


# -- credentials ----------------------------------------------------------------


def _token(client, world, name: str) -> str:
    r = client.post("/auth/token", data={"username": name,
                                          "password": world.passwords[name]})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def test_tokens_sign_in_and_expire(client, world, sec_db):
    tok = _token(client, world, "housing")
    bearer = {"Authorization": f"Bearer {tok}"}
    assert client.get("/auth/me", headers=bearer).json()["role"] == "housing_officer"
    assert client.get("/collections/buildings/items", headers=bearer).status_code == 200
    wrong = client.post("/auth/token", data={"username": "housing", "password": "x"})
    assert wrong.status_code == 401
    key = AuthSettings().signing_key()
    now = dt.datetime.now(dt.UTC)
    expired = jwt.encode({"sub": "housing", "role": "housing_officer",
                          "iss": "gis-server", "exp": now - dt.timedelta(minutes=1)},
                         key, algorithm="HS256")
    tampered = tok[:-4] + ("AAAA" if not tok.endswith("AAAA") else "BBBB")
    forged = jwt.encode({"sub": "admin", "role": "admin", "iss": "gis-server",
                         "exp": now + dt.timedelta(hours=1)}, "guessed", "HS256")
    unsigned = jwt.encode({"sub": "admin", "role": "admin", "iss": "gis-server",
                           "exp": now + dt.timedelta(hours=1)}, None, algorithm="none")
    promoted = jwt.encode({"sub": "housing", "role": "admin", "iss": "gis-server",
                           "exp": now + dt.timedelta(hours=1)}, key, "HS256")
    for bad in (expired, tampered, forged, unsigned, promoted, "garbage"):
        r = client.get("/collections/buildings/items",
                       headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401, bad
        assert r.json()["code"] == "Unauthorized"


def test_api_key_in_query_and_revocation(sec_db, sec_engine, world):
    with sec_engine.begin() as conn:
        key = accounts.create_key(conn, "analyst", "qgis")
    with TestClient(_app(sec_db, lookup_cache_seconds=0)) as c:
        assert c.get("/collections/buildings/items",
                     params={"api_key": key}).status_code == 200
        with sec_engine.begin() as conn:
            accounts.revoke_keys(conn, "analyst", key[:12])
        assert c.get("/collections/buildings/items",
                     params={"api_key": key}).status_code == 401
        assert c.get("/collections/buildings/items",
                     headers={"X-API-Key": "gis_not-a-key"}).status_code == 401


def test_disabled_account_stops_working(sec_db, sec_engine, world):
    with sec_engine.begin() as conn:
        accounts.add_user(conn, "leaver", "analyst", "leaver-password-1")
        key = accounts.create_key(conn, "leaver")
    with TestClient(_app(sec_db, lookup_cache_seconds=0)) as c:
        assert c.get("/collections", headers={"X-API-Key": key}).status_code == 200
        with sec_engine.begin() as conn:
            accounts.set_disabled(conn, "leaver")
        assert c.get("/collections", headers={"X-API-Key": key}).status_code == 401
        r = c.post("/auth/token", data={"username": "leaver",
                                         "password": "leaver-password-1"})
        assert r.status_code == 401


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _sign_in(c: TestClient, username: str, password: str) -> str:
    r = c.post("/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def test_a_new_password_or_disabling_voids_earlier_tokens(sec_db, sec_engine, world):
    with sec_engine.begin() as conn:
        accounts.add_user(conn, "mover", "analyst", "mover-password-1")
    items = "/collections/buildings/items"
    with TestClient(_app(sec_db, lookup_cache_seconds=0),
                    follow_redirects=False) as c:
        old = _sign_in(c, "mover", "mover-password-1")
        r = c.post("/auth/login", data={"username": "mover",
                                         "password": "mover-password-1"})
        cookie = {"gis_token": r.cookies["gis_token"]}
        assert c.get(items, headers=_bearer(old)).status_code == 200
        assert c.get("/maps/analyst", cookies=cookie).status_code == 200
        with sec_engine.begin() as conn:
            accounts.set_password(conn, "mover", "mover-password-2")
        r = c.get(items, headers=_bearer(old))
        assert r.status_code == 401 and "sign in again" in r.json()["description"]
        # the page's cookie is read as anonymous: back to the sign-in form
        page = c.get("/maps/analyst", cookies=cookie)
        assert page.status_code == 303 and "/auth/login" in page.headers["location"]
        new = _sign_in(c, "mover", "mover-password-2")
        assert c.get(items, headers=_bearer(new)).status_code == 200
        # disabling voids the tokens, and enabling again does not revive them
        with sec_engine.begin() as conn:
            accounts.set_disabled(conn, "mover")
        assert c.get(items, headers=_bearer(new)).status_code == 401
        with sec_engine.begin() as conn:
            accounts.set_disabled(conn, "mover", False)
        assert c.get(items, headers=_bearer(new)).status_code == 401
        fresh = _sign_in(c, "mover", "mover-password-2")
        assert c.get(items, headers=_bearer(fresh)).status_code == 200
        # a well-signed token without the version (issued before it existed)
        now = dt.datetime.now(dt.UTC)
        unversioned = jwt.encode(
            {"sub": "mover", "role": "analyst", "iss": "gis-server", "iat": now,
             "exp": now + dt.timedelta(minutes=5)},
            AuthSettings().signing_key(), "HS256")
        assert c.get(items, headers=_bearer(unversioned)).status_code == 401


def test_the_lookup_cache_bounds_how_long_a_voided_token_lasts(sec_db, sec_engine,
                                                               world):
    """GIS_AUTH_LOOKUP_CACHE_SECONDS is the most a voided token lives on."""
    with sec_engine.begin() as conn:
        accounts.add_user(conn, "cached", "analyst", "cached-password-1")
    with TestClient(_app(sec_db, lookup_cache_seconds=1.0)) as c:
        token = _sign_in(c, "cached", "cached-password-1")
        assert c.get("/auth/me", headers=_bearer(token)).status_code == 200
        with sec_engine.begin() as conn:
            accounts.set_password(conn, "cached", "cached-password-2")
        # within the cache time the remembered account still answers ...
        assert c.get("/auth/me", headers=_bearer(token)).status_code == 200
        time.sleep(1.1)
        # ... and not after it
        assert c.get("/auth/me", headers=_bearer(token)).status_code == 401


def test_the_signing_key_file_is_never_readable_by_others(tmp_path, monkeypatch):
    """Created 0600 from the start: no chmod after the key is written."""
    import pathlib

    monkeypatch.setattr(pathlib.Path, "chmod", lambda self, mode: None)
    monkeypatch.setattr(os, "chmod", lambda *a, **k: None)
    old_umask = os.umask(0o022)
    try:
        settings = AuthSettings(secret_key=None, secret_file=tmp_path / "k" / "secret")
        key = settings.signing_key()
    finally:
        os.umask(old_umask)
    path = tmp_path / "k" / "secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) >= 48 and settings.signing_key() == key
    assert [p.name for p in path.parent.iterdir()] == ["secret"]  # no leftovers


def test_cookie_sign_in_reads_only(client, world):
    r = client.post("/auth/login", data={"username": "housing",
                                          "password": world.passwords["housing"],
                                          "next": "/maps/housing"})
    assert r.status_code == 303 and r.headers["location"] == "/maps/housing"
    assert "httponly" in r.headers["set-cookie"].lower()
    assert "samesite=strict" in r.headers["set-cookie"].lower()
    cookies = {"gis_token": r.cookies["gis_token"]}
    page = client.get("/maps/housing", cookies=cookies)
    assert page.status_code == 200
    write = client.patch(f"/collections/buildings/items/{world.ids['own']}",
                         cookies=cookies, json={"properties": {"floors": 4}})
    assert write.status_code == 401  # a cookie cannot make changes (CSRF)
    # an open redirect is refused
    r = client.post("/auth/login", data={"username": "housing",
                                          "password": world.passwords["housing"],
                                          "next": "//evil.example/x"})
    assert r.headers["location"] == "/maps"
    out = client.post("/auth/logout")
    assert out.status_code == 303 and "gis_token=" in out.headers["set-cookie"]


def test_login_attempts_are_throttled(sec_db, world):
    limits = LimitSettings(rate_limit=False, login_max_failures=3)
    app = create_app(db=sec_db, server=ServerSettings(log_requests=False),
                     auth=AuthSettings(), limits=limits)
    with TestClient(app) as c:
        codes = [c.post("/auth/token", data={"username": "analyst",
                                              "password": "wrong-guess"}).status_code
                 for _ in range(5)]
        assert codes[:3] == [401, 401, 401] and codes[-1] == 429
        r = c.post("/auth/token", data={"username": "analyst",
                                         "password": world.passwords["analyst"]})
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


def test_anonymous_access_per_layer(sec_db, world):
    with TestClient(_app(sec_db, anonymous_layers="districts,rivers")) as c:
        assert c.get("/collections/rivers/items").status_code == 200
        assert c.get("/collections/districts/items").status_code == 200
        assert c.get("/collections/buildings/items").status_code == 401
        ids = {x["id"] for x in c.get("/collections").json()["collections"]}
        assert ids == {"districts", "rivers"}
        assert c.post("/collections/rivers/items", json={}).status_code == 401
    with TestClient(_app(sec_db, anonymous="read")) as c:
        assert c.get("/collections/buildings/items").status_code == 200
        assert c.post("/collections/buildings/items",
                      json=_feature(OWN)).status_code == 401


# -- hostile input ----------------------------------------------------------------

INJECTIONS = [
    {"filter": "district = '天河区'; DROP TABLE users; --"},
    {"filter": "district = '' OR '1'='1'"},
    {"filter": "floors = 1) OR (1 = 1"},
    {"filter": "\"district\\\" = 1; SELECT * FROM users --\" = 'x'"},
    {"filter": "S_INTERSECTS(geom, POINT(113 23)) OR pg_sleep(5) = 1"},
    {"district": "天河区' OR '1'='1"},
    {"sortby": "floors; DROP TABLE users"},
    {"properties": "address,(SELECT password_hash FROM users)"},
    {"bbox": "113,23,114,24); DROP TABLE users; --"},
    {"datetime": "2020-01-01'; DROP TABLE users; --"},
    {"filter-lang": "sql"},
]


@pytest.mark.parametrize("params", INJECTIONS)
def test_sql_and_cql2_injection(client, world, sec_engine, params):
    r = client.get("/collections/buildings/items", headers=_headers(world, "housing"),
                   params=params)
    assert r.status_code in (200, 400), r.text
    if r.status_code == 200:
        assert {f["properties"]["district"] for f in r.json()["features"]} <= {OWN}
    with sec_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM users")).scalar() >= 4


#: (path as sent, its status): separators and dots encoded (``%2F``, ``%5C``
#: backslash, ``%2E``), NUL (``%00``), aimed at what names a file: the layer
#: and feature ids of exports, static files, rasters, charts, evidence
TRAVERSALS = [
    ("/collections/..%2Fusers/items?f=csv", 404),
    ("/collections/..%2F..%2F..%2Fetc%2Fpasswd/items?f=gpkg", 404),
    ("/collections/buildings%2F..%2F..%2Fpyproject.toml/items?f=csv", 404),
    ("/collections/..%5C..%5Cpyproject.toml/items?f=gpkg", 404),
    ("/collections/buildings%5C..%5C..%5Cetc/items?f=csv", 404),
    ("/collections/%2E%2E/items?f=gpkg", 404),
    ("/collections/buildings%00/items?f=csv", 400),
    ("/collections/buildings%00.gpkg/items?f=gpkg", 400),
    ("/collections/buildings/items/..%2F..%2F..%2Fetc%2Fpasswd", 404),
    ("/collections/buildings/items/..%5C..%5Cpyproject.toml", 404),
    ("/collections/buildings/items/%2E%2E", 404),
    ("/collections/buildings/items/1%00", 400),
    ("/collections/buildings/items?f=csv&district=%00", 400),
    ("/collections/buildings/items?f=csv&limit=10&filter=district%3D%27%00%27", 400),
    ("/collections/buildings/items?f=gpkg&address=..%2F..%2Fetc%00", 400),
    ("/collections/buildings/items?filter=address%20LIKE%20%27%25%00%27", 400),
    ("/static/..%2F..%2F..%2Fetc%2Fpasswd", 404),
    ("/static/..%2F..%2Fpyproject.toml", 404),
    ("/static/..%5C..%5Cpyproject.toml", 404),
    ("/static/gis%00/maps.js", 400),
    ("/static/gis/maps.js%00.png", 400),
    ("/maps/rasters/..%2F..%2Fetc%2Fpasswd.png", 404),
    ("/maps/rasters/..%5C..%5Cetc.png", 404),
    ("/maps/rasters/x%00.png", 400),
    ("/maps/supervision/charts/..%5C..%5Cpyproject.png", 404),
    ("/supervision/evidence/..%2F..%2F..%2Fetc%2Fpasswd", 404),
    ("/supervision/evidence/..%5C..%5C..%5Cpyproject.toml", 404),
    ("/supervision/evidence/" + "ab" * 31 + "%00a", 400),
]


@pytest.mark.parametrize(("path", "status"), TRAVERSALS,
                         ids=[p for p, _ in TRAVERSALS])
def test_path_traversal(client, world, path, status):
    r = client.get(path, headers=_headers(world, "admin"))
    assert r.status_code == status, r.text
    assert r.json()["code"] in ("NotFound", "InvalidParameterValue")
    assert b"root:" not in r.content and b"[project]" not in r.content
    assert "content-disposition" not in r.headers


@pytest.mark.parametrize("layer", ["buildings", "rivers", "districts"])
@pytest.mark.parametrize("fmt", ["csv", "gpkg"])
def test_export_file_names_are_the_layer_id(client, world, layer, fmt):
    from email.message import Message

    r = client.get(f"/collections/{layer}/items", params={"f": fmt, "limit": 5},
                   headers=_headers(world, "admin"))
    assert r.status_code == 200
    header = Message()
    header["content-disposition"] = r.headers["content-disposition"]
    assert header.get_content_disposition() == "attachment"
    assert header.get_filename() == f"{layer}.{fmt}"


def test_layer_ids_cannot_name_a_path():
    """Export file names, table names and URLs are built from layer ids."""
    import re

    from layers import all_layers

    for spec in all_layers():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", spec.id), spec.id


def test_a_nul_in_a_written_value_is_a_400(client, world, sec_engine):
    with sec_engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM audit_log")).scalar()
    for props in ({"address": "a\x00b"}, {"x\x00": "extra"},
                  {"note": "extra \x00"}):
        body = _feature(OWN)
        body["properties"].update(props)
        r = client.post("/collections/buildings/items",
                        headers=_headers(world, "admin"), json=body)
        assert r.status_code == 400, (props, r.text)
        assert r.json()["code"] == "InvalidParameterValue"
    r = client.patch(f"/collections/buildings/items/{world.ids['own']}",
                     headers=_headers(world, "admin"),
                     json={"properties": {"address": "\x00"}})
    assert r.status_code == 400, r.text
    with sec_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM audit_log")).scalar() == before


def test_oversized_bodies(sec_db, world):
    limits = LimitSettings(rate_limit=False, max_body_bytes=10_000,
                           max_features_per_write=3)
    app = create_app(db=sec_db, server=ServerSettings(log_requests=False),
                     auth=AuthSettings(), limits=limits)
    admin = _headers(world, "admin")
    with TestClient(app) as c:
        big = _feature(OWN)
        big["properties"]["address"] = "x" * 20_000
        assert c.post("/collections/buildings/items", headers=admin,
                      json=big).status_code == 413
        many = {"type": "FeatureCollection",
                "features": [_feature(OWN, 113.3 + i * 0.001) for i in range(4)]}
        r = c.post("/collections/buildings/items", headers=admin, json=many)
        assert r.status_code == 413 and "batches" in r.json()["description"]


def test_requests_per_minute_per_key(sec_db, world):
    limits = LimitSettings(requests_per_minute=5, anonymous_requests_per_minute=2)
    app = create_app(db=sec_db, server=ServerSettings(log_requests=False),
                     auth=AuthSettings(), limits=limits)
    with TestClient(app) as c:
        codes = [c.get("/auth/me", headers=_headers(world, "analyst")).status_code
                 for _ in range(7)]
        assert codes[:5] == [200] * 5 and codes[-1] == 429
        r = c.get("/auth/me", headers=_headers(world, "analyst"))
        assert int(r.headers["retry-after"]) >= 1
        # another key has a budget of its own
        assert c.get("/auth/me", headers=_headers(world, "chief")).status_code == 200


def test_users_cli_and_audit(sec_db, world, monkeypatch):
    from typer.testing import CliRunner

    from gis_server.cli import app as cli

    monkeypatch.setenv("DATABASE_URL", sec_db.effective_url())
    monkeypatch.setenv("GIS_NEW_PASSWORD", "cli-password-1")
    runner = CliRunner()
    r = runner.invoke(cli, ["users", "add", "newchief", "--role", "river_chief",
                            "--chief-id", "C2", "--key"])
    assert r.exit_code == 0, r.output
    assert "gis_" in r.output
    r = runner.invoke(cli, ["users", "add", "nochief", "--role", "river_chief"])
    assert r.exit_code != 0
    r = runner.invoke(cli, ["users", "list", "--json"])
    assert "newchief" in r.output
    r = runner.invoke(cli, ["--as", "newchief", "layers"])
    assert r.exit_code == 0 and "rivers" in r.output and "buildings" not in r.output
    r = runner.invoke(cli, ["users", "disable", "newchief"])  # no --as: unscoped
    assert r.exit_code == 0
    r = runner.invoke(cli, ["audit", "--json", "--limit", "5"])
    assert "user.disable" in r.output and "user.add" in r.output
