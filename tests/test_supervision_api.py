"""The loop's HTTP routes: who may take which step, evidence, listing, limits.

Separation of duties is written out by hand as a roles x actions table (not
derived from ``gis_server.auth.policy``): each warning of the table is in the
scope of every signed-in role (its district is the housing officer's, its
responsible party the river chief), so what the table shows is the
permission of the step alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from gis_server.app import create_app
from gis_server.audit import Actor
from gis_server.auth import accounts
from gis_server.auth.settings import AuthSettings
from gis_server.errors import NotFound
from gis_server.limits import LimitSettings
from gis_server.settings import DatabaseSettings, ServerSettings
from models.supervision import loop
from models.supervision.demo import demo_png
from models.supervision.evidence import store_evidence
from models.supervision.rules import LOCAL_TZ, Finding
from models.supervision.settings import LoopSettings, loop_settings

DISTRICT = "测试区"
CHIEF_ID = "SAPI-C1"
SYSTEM = Actor("tests:sapi", "admin")
ROLES = ("anon", "admin", "analyst", "housing", "chief")
_seq = itertools.count(1)

#: expected status per action and role (anon, admin, analyst, housing, chief)
DUTIES: dict[str, tuple[int, ...]] = {
    # the supervisor issues the notice; the responsible chief may not
    "dispatch": (401, 200, 403, 200, 403),
    # the responsible side replies: the chief, or an officer recording it
    "rectify": (401, 200, 403, 200, 200),
    # the supervisor closes or sends back; never the responsible chief
    "accept": (401, 200, 403, 200, 403),
    "reject": (401, 200, 403, 200, 403),
}
#: the state each action starts from
START = {
    "dispatch": "raised",
    "rectify": "dispatched",
    "accept": "rectified",
    "reject": "rectified",
}


@pytest.fixture(scope="module")
def evidence_dir(tmp_path_factory) -> Iterator[LoopSettings]:
    """The server's evidence folder for this module (the app reads
    ``loop_settings()``)."""
    folder = tmp_path_factory.mktemp("sapi-evidence")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GIS_LOOP_EVIDENCE_DIR", str(folder))
        mp.setenv("GIS_LOOP_EVIDENCE_MAX_BYTES", "4096")
        loop_settings.cache_clear()
        yield loop_settings()
    loop_settings.cache_clear()


@pytest.fixture(scope="module")
def keys(engine: Engine) -> dict[str, str]:
    out: dict[str, str] = {}
    with engine.begin() as conn:
        for role, account, extra in (
            ("admin", "admin", {}),
            ("analyst", "analyst", {}),
            ("housing", "housing_officer", {"district": DISTRICT}),
            ("housing2", "housing_officer", {"district": DISTRICT}),
            ("chief", "river_chief", {"chief_id": CHIEF_ID}),
        ):
            name = f"sapi-{role}"
            try:
                accounts.get_user(conn, name)
            except NotFound:
                accounts.add_user(conn, name, account, **extra)
            out[role] = accounts.create_key(conn, name, "tests")
    return out


@pytest.fixture(scope="module")
def client(db_settings: DatabaseSettings, keys, evidence_dir) -> Iterator[TestClient]:
    app = create_app(
        db=db_settings,
        server=ServerSettings(log_requests=False),
        auth=AuthSettings(),
        limits=LimitSettings(rate_limit=False),
    )
    with TestClient(app) as c:
        yield c


@pytest.fixture(autouse=True, scope="module")
def _clean(engine: Engine) -> Iterator[None]:
    yield
    with engine.begin() as conn:
        conn.execute(
            text("DELETE FROM layer_supervision_warnings WHERE district = :d"),
            {"d": DISTRICT},
        )


def _headers(keys: dict[str, str], role: str) -> dict[str, str]:
    return {} if role == "anon" else {"X-API-Key": keys[role]}


def _warning(
    engine: Engine,
    settings: LoopSettings,
    state: str,
    evidence: dict | None = None,
    listed: bool = False,
) -> int:
    """A warning in everybody's scope, moved to ``state`` by the system."""
    import models.supervision.inspections  # noqa: F401  (registers the rule)

    finding = Finding(
        rule="inspections.problem",
        subject_layer=None,
        subject_id="SAPI-P",
        level="yellow",
        observed_at=dt.datetime.now(dt.UTC),
        period=f"sapi-{next(_seq)}",
        summary="测试问题",
        evidence=evidence or {"severity": "general"},
        responsible=CHIEF_ID,
        district=DISTRICT,
        listed=listed,
    )
    with engine.begin() as conn:
        wid = loop.raise_findings(conn, [finding], SYSTEM).ids[0]
        if state in ("dispatched", "rectified"):
            loop.dispatch(conn, wid, SYSTEM)
        if state == "rectified":
            ref = store_evidence(conn, demo_png(1), "p.png", "image/png", settings)
            loop.rectify(conn, wid, Actor("tests:party", "responsible"), "ok", [ref])
    return wid


def _act(client: TestClient, wid: int, action: str, headers: dict[str, str]):
    base = f"/supervision/warnings/{wid}"
    if action == "dispatch":
        return client.post(
            f"{base}/dispatch", json={"note": "限期整改"}, headers=headers
        )
    if action == "rectify":
        files = {"photos": ("after.png", demo_png(5), "image/png")}
        return client.post(
            f"{base}/rectify", files=files, data={"note": "已整改"}, headers=headers
        )
    body = {"accept": action == "accept", "note": "复核意见"}
    return client.post(f"{base}/verify", json=body, headers=headers)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", list(DUTIES))
def test_roles_by_actions(client, engine, keys, evidence_dir, action, role):
    wid = _warning(engine, evidence_dir, START[action])
    response = _act(client, wid, action, _headers(keys, role))
    want = DUTIES[action][ROLES.index(role)]
    assert response.status_code == want, (action, role, response.text[:300])
    expected_state = START[action]
    if want == 200:
        expected_state = loop.TRANSITIONS[(START[action], action)]
    else:
        assert set(response.json()) == {"code", "description"}
    with engine.connect() as conn:
        assert loop.get_warning(conn, wid)["state"] == expected_state


def test_no_one_walks_a_warning_from_raised_to_closed_alone(
    client, engine, keys, evidence_dir
):
    wid = _warning(engine, evidence_dir, "raised")
    officer = _headers(keys, "housing")
    for action in ("dispatch", "rectify"):
        assert _act(client, wid, action, officer).status_code == 200
    refused = _act(client, wid, "accept", officer)
    assert refused.status_code == 403 and "four-eyes" in refused.json()["description"]
    colleague = _headers(keys, "housing2")
    assert _act(client, wid, "accept", colleague).status_code == 200
    with engine.connect() as conn:
        w = loop.get_warning(conn, wid)
    assert [(e["action"], e["actor"]) for e in w["events"]] == [
        ("raise", SYSTEM.name),
        ("dispatch", "sapi-housing"),
        ("rectify", "sapi-housing"),
        ("accept", "sapi-housing2"),
    ]


def test_an_inspection_photo_is_served_to_whoever_sees_its_warning(
    client, engine, keys, evidence_dir
):
    photo = demo_png(77)
    up = client.post(
        "/supervision/evidence",
        files={"photo": ("现场.png", photo, "image/png")},
        headers=_headers(keys, "housing"),
    )
    assert up.status_code == 201, up.text
    sha = up.json()["sha256"]
    assert sha == hashlib.sha256(photo).hexdigest()
    path = f"/supervision/evidence/{sha}"
    # stored, but no warning names it yet: nobody gets it
    assert client.get(path, headers=_headers(keys, "admin")).status_code == 404
    _warning(
        engine, evidence_dir, "raised", {"severity": "severe", "photo_sha256": sha}
    )
    for role in ("admin", "analyst", "housing", "chief"):
        r = client.get(path, headers=_headers(keys, role))
        assert r.status_code == 200, role
        assert r.content == photo and r.headers["content-type"] == "image/png"
    assert client.get(path, headers={}).status_code == 401
    # a file changed on disk is not served
    stored = evidence_dir.evidence_dir / sha[:2] / sha
    stored.write_bytes(photo + b"tampered")
    try:
        r = client.get(path, headers=_headers(keys, "admin"))
        assert r.status_code == 500 and r.json()["code"] == "EvidenceCorrupt"
    finally:
        stored.write_bytes(photo)


def test_an_inspection_photo_outside_the_scope_is_not_found(
    client, engine, keys, evidence_dir
):
    photo = demo_png(78)
    sha = hashlib.sha256(photo).hexdigest()
    with engine.begin() as conn:
        store_evidence(conn, photo, "x.png", "image/png", evidence_dir)
        # a warning of another district and party
        finding = Finding(
            rule="inspections.problem",
            subject_layer=None,
            subject_id="SAPI-Q",
            level="red",
            observed_at=dt.datetime.now(dt.UTC),
            period=f"sapi-{next(_seq)}",
            summary="别处",
            evidence={"photo_sha256": sha},
            responsible="someone",
            district=DISTRICT + "外",
        )
        loop.raise_findings(conn, [finding], SYSTEM)
    try:
        path = f"/supervision/evidence/{sha}"
        assert client.get(path, headers=_headers(keys, "admin")).status_code == 200
        for role in ("housing", "chief"):
            assert client.get(path, headers=_headers(keys, role)).status_code == 404
    finally:
        with engine.begin() as conn:
            conn.execute(
                text("DELETE FROM layer_supervision_warnings WHERE district = :d"),
                {"d": DISTRICT + "外"},
            )


def test_an_oversized_photo_is_413_with_the_limit_named(
    client, engine, keys, evidence_dir
):
    limit = evidence_dir.evidence_max_bytes
    big = demo_png(1) + b"\0" * limit
    r = client.post(
        "/supervision/evidence",
        files={"photo": ("big.png", big, "image/png")},
        headers=_headers(keys, "housing"),
    )
    assert r.status_code == 413, r.text
    body = r.json()
    assert body["code"] == "PayloadTooLarge"
    assert f"{limit:,} bytes" in body["description"]
    assert "GIS_LOOP_EVIDENCE_MAX_BYTES" in body["description"]
    wid = _warning(engine, evidence_dir, "dispatched")
    r = client.post(
        f"/supervision/warnings/{wid}/rectify",
        files={"photos": ("big.png", big, "image/png")},
        data={"note": "已整改"},
        headers=_headers(keys, "chief"),
    )
    assert r.status_code == 413 and "GIS_LOOP_EVIDENCE_MAX_BYTES" in r.text
    with engine.connect() as conn:
        assert loop.get_warning(conn, wid)["state"] == "dispatched"


def test_evidence_uploads_may_reach_the_upload_limit():
    """The body limit of the upload route is the upload one, so the evidence
    limit (smaller by default) is the one a client meets."""
    limits = LimitSettings()
    assert "/supervision/evidence".startswith(limits.upload_prefixes)
    assert LoopSettings().evidence_max_bytes < limits.max_upload_bytes


def test_listed_filter(client, engine, keys, evidence_dir):
    listed = _warning(engine, evidence_dir, "raised", listed=True)
    plain = _warning(engine, evidence_dir, "raised")
    headers = _headers(keys, "housing")

    def ids(query: str) -> set[int]:
        r = client.get(
            f"/supervision/warnings?district={DISTRICT}&{query}", headers=headers
        )
        assert r.status_code == 200, r.text
        return {w["id"] for w in r.json()["warnings"]}

    assert listed in ids("listed=true") and plain not in ids("listed=true")
    assert plain in ids("listed=false") and listed not in ids("listed=false")
    assert {listed, plain} <= ids("limit=1000")
    r = client.get(f"/supervision/warnings/{listed}", headers=headers)
    assert r.json()["listed"] is True
    # dispatched through the API, the notice says so and has the domain's
    # deadline (a general problem: 7 days from the notice)
    r = client.post(
        f"/supervision/warnings/{listed}/dispatch", json={}, headers=headers
    )
    assert r.status_code == 200, r.text
    with engine.connect() as conn:
        w = loop.get_warning(conn, listed)
    assert "挂牌督办" in w["events"][-1]["note"]
    deadline, notice = (
        w[k].astimezone(LOCAL_TZ) for k in ("deadline", "dispatched_at")
    )
    assert (deadline.date() - notice.date()).days == 7
    assert deadline.time() == dt.time(23, 59, 59)
