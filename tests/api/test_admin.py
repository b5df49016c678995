"""Account and rule-settings administration through the API (/admin/users,
/admin/settings): what an administrator can do, what is refused and how,
what the audit log keeps (never a secret). Who may call these routes at all
is in the security matrix (test_security.py).
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterator

import pytest
import test_supervision_concrete as tc
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from gis_server import overrides
from gis_server.app import create_app
from gis_server.auth import accounts
from gis_server.auth.settings import AuthSettings
from gis_server.errors import Conflict
from gis_server.limits import LimitSettings
from gis_server.settings import DatabaseSettings, ServerSettings

P = f"adm{os.getpid()}-"  # every account of this module starts so


@pytest.fixture(scope="module")
def admin_key(engine: Engine) -> Iterator[str]:
    with engine.begin() as conn:
        accounts.add_user(conn, f"{P}root", "admin", f"{P}root-password")
        key = accounts.create_key(conn, f"{P}root", "tests")
    yield key
    with engine.begin() as conn:
        ids = "SELECT id FROM users WHERE username LIKE :p"
        conn.execute(text(f"DELETE FROM api_keys WHERE user_id IN ({ids})"),
                     {"p": P + "%"})
        conn.execute(text("DELETE FROM users WHERE username LIKE :p"), {"p": P + "%"})


@pytest.fixture(scope="module")
def client(db_settings: DatabaseSettings, admin_key) -> Iterator[TestClient]:
    app = create_app(
        db=db_settings,
        server=ServerSettings(log_requests=False),
        auth=AuthSettings(lookup_cache_seconds=0),  # a revoked key fails at once
        limits=LimitSettings(rate_limit=False),
    )
    with TestClient(app) as c:
        c.headers["X-API-Key"] = admin_key
        yield c


@pytest.fixture
def no_overrides(engine: Engine) -> Iterator[None]:
    def wipe():
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM setting_overrides"))
        overrides.load(engine)

    wipe()
    yield
    wipe()


def _audit(engine: Engine, target: str, kind: str = "user") -> list:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT action, actor, before, after FROM audit_log "
            "WHERE target_kind = :k AND target = :t ORDER BY id"),
            {"k": kind, "t": target}).all()


def _signs_in(client: TestClient, name: str, password: str) -> bool:
    key = client.headers.pop("X-API-Key")
    try:
        r = client.post("/auth/token", data={"username": name, "password": password})
    finally:
        client.headers["X-API-Key"] = key
    return r.status_code == 200


# -- accounts ------------------------------------------------------------------------


def test_create_an_account_with_a_generated_password(client, engine):
    name = f"{P}housing"
    r = client.post("/admin/users", json={
        "username": name, "role": "housing_officer", "district": "天河区",
        "display_name": "王工"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["user"]["district"] == "天河区" and body["user"]["has_password"]
    assert r.headers["cache-control"] == "no-store"
    password = body["password"]
    assert len(password) >= 16
    assert _signs_in(client, name, password)
    (row,) = _audit(engine, name)
    assert row.action == "user.add" and row.actor == f"{P}root"
    assert row.after["role"] == "housing_officer"
    assert row.after["password"] == "generated"
    assert password not in str(row.after)
    got = client.get(f"/admin/users/{name}").json()["user"]
    assert got["display_name"] == "王工" and got["keys"] == 0


def test_create_a_key_only_account_with_its_first_key(client):
    name = f"{P}script"
    r = client.post("/admin/users", json={
        "username": name, "role": "analyst", "key_only": True, "api_key": "qgis"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert "password" not in body and not body["user"]["has_password"]
    key = body["api_key"]["key"]
    assert key.startswith("gis_") and body["api_key"]["name"] == "qgis"
    me = client.get("/auth/me", headers={"X-API-Key": key}).json()
    assert me["username"] == name
    assert body["user"]["keys"] == 1


def test_a_given_password_is_not_echoed(client):
    name = f"{P}given"
    r = client.post("/admin/users", json={
        "username": name, "role": "river_chief", "chief_id": "C9",
        "password": "chosen-password-1"})
    assert r.status_code == 201
    assert "chosen-password-1" not in r.text and "password" not in r.json()
    assert _signs_in(client, name, "chosen-password-1")


@pytest.mark.parametrize(("body", "fragment"), [
    ({"role": "river_chief"}, "chief_id"),
    ({"role": "wizard"}, "role 'wizard'"),
    ({"role": "analyst", "username": "no spaces!"}, "user name"),
    ({"role": "analyst", "password": "short"}, "8 characters"),
    ({"role": "analyst", "district": "天河区"}, "has no district"),
    ({"role": "housing_officer", "district": "天河区", "chief_id": "C1"},
     "has no chief_id"),
    ({"role": "analyst", "passwd": "long-enough-1"}, "passwd"),
    ({"role": "analyst", "key_only": True, "password": "long-enough-1"}, "key-only"),
    ({"role": "analyst", "username": None}, "username"),
])
def test_invalid_accounts_are_refused(client, engine, body, fragment):
    name = f"{P}invalid"
    r = client.post("/admin/users", json={"username": name, **body})
    assert r.status_code == 400, r.text
    assert fragment in r.json()["description"]
    with engine.connect() as conn:
        assert accounts.account_by_name(conn, name) is None


def test_a_duplicate_name_is_a_conflict(client):
    body = {"username": f"{P}twice", "role": "analyst"}
    assert client.post("/admin/users", json=body).status_code == 201
    r = client.post("/admin/users", json=body)
    assert r.status_code == 409 and "exists" in r.json()["description"]


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/admin/users/{n}", None),
    ("PATCH", "/admin/users/{n}", {"disabled": True}),
    ("GET", "/admin/users/{n}/keys", None),
    ("POST", "/admin/users/{n}/keys", {"name": "x"}),
    ("DELETE", "/admin/users/{n}/keys/1", None),
])
def test_an_unknown_account_is_not_found(client, method, path, body):
    r = client.request(method, path.format(n=f"{P}nobody"), json=body)
    assert r.status_code == 404 and "no user" in r.json()["description"]


def test_change_role_scope_and_disable(client, engine):
    name = f"{P}mover"
    made = client.post("/admin/users", json={
        "username": name, "role": "analyst", "api_key": "k"}).json()
    key = made["api_key"]["key"]
    # a housing officer needs a district
    r = client.patch(f"/admin/users/{name}", json={"role": "housing_officer"})
    assert r.status_code == 400 and "district" in r.json()["description"]
    r = client.patch(f"/admin/users/{name}",
                     json={"role": "housing_officer", "district": "越秀区"})
    assert r.status_code == 200 and r.json()["user"]["district"] == "越秀区"
    me = client.get("/auth/me", headers={"X-API-Key": key}).json()
    assert me["role"] == "housing_officer"
    # back to analyst: the district goes with the role
    user = client.patch(f"/admin/users/{name}", json={"role": "analyst"}).json()["user"]
    assert user["role"] == "analyst" and user["district"] is None
    r = client.patch(f"/admin/users/{name}", json={"disabled": True})
    assert r.status_code == 200 and r.json()["user"]["disabled"] is True
    assert client.get("/auth/me", headers={"X-API-Key": key}).status_code == 401
    client.patch(f"/admin/users/{name}", json={"disabled": False})
    assert client.get("/auth/me", headers={"X-API-Key": key}).status_code == 200
    actions = [(r.action, r.before, r.after) for r in _audit(engine, name)]
    assert actions[2] == ("user.update",
                          {"role": "analyst", "district": None},
                          {"role": "housing_officer", "district": "越秀区"})
    assert actions[3][0] == "user.update"
    assert [a for a, _, _ in actions[4:]] == ["user.disable", "user.enable"]
    assert actions[4][1:] == ({"disabled": False}, {"disabled": True})


@pytest.mark.parametrize(("body", "fragment"), [
    ({}, "nothing to change"),
    ({"role": None}, "role cannot be null"),
    ({"password": "long-enough-1", "generate_password": True}, "not both"),
    ({"password": "short"}, "8 characters"),
    ({"district": "天河区"}, "has no district"),
    ({"colour": "red"}, "colour"),
])
def test_invalid_changes_are_refused(client, body, fragment):
    name = f"{P}steady"
    client.post("/admin/users", json={"username": name, "role": "analyst"})
    r = client.patch(f"/admin/users/{name}", json=body)
    assert r.status_code == 400, r.text
    assert fragment in r.json()["description"]
    assert client.get(f"/admin/users/{name}").json()["user"]["role"] == "analyst"


def test_password_reset(client, engine):
    name = f"{P}forgetful"
    first = client.post("/admin/users", json={
        "username": name, "role": "analyst"}).json()["password"]
    r = client.patch(f"/admin/users/{name}", json={"generate_password": True})
    assert r.status_code == 200
    second = r.json()["password"]
    assert second != first
    assert _signs_in(client, name, second) and not _signs_in(client, name, first)
    r = client.patch(f"/admin/users/{name}", json={"password": "my-own-password"})
    assert r.status_code == 200 and "password" not in r.json()
    assert _signs_in(client, name, "my-own-password")
    rows = [r for r in _audit(engine, name) if r.action == "user.password"]
    assert [r.after for r in rows] == [{"password": "generated"}, {"password": "set"}]


def test_the_last_enabled_administrator_stays(engine):
    with engine.connect() as conn:  # rolled back at the end
        conn.execute(text(
            "UPDATE users SET disabled = true WHERE role = 'admin' "
            "AND username <> :n"), {"n": f"{P}root"})
        with pytest.raises(Conflict, match="last enabled administrator"):
            accounts.update_user(conn, f"{P}root", disabled=True)
        with pytest.raises(Conflict, match="last enabled administrator"):
            accounts.update_user(conn, f"{P}root", role="analyst")
        conn.rollback()


def test_keys_create_list_use_revoke(client, engine):
    name = f"{P}keyholder"
    client.post("/admin/users", json={"username": name, "role": "analyst"})
    r = client.post(f"/admin/users/{name}/keys", json={"name": "nightly-import"})
    assert r.status_code == 201
    made = r.json()
    key, key_id = made["key"], made["id"]
    assert key.startswith(made["prefix"])
    listed = client.get(f"/admin/users/{name}/keys").json()["keys"]
    assert [k["id"] for k in listed] == [key_id]
    assert listed[0]["last_used_at"] is None and "key" not in listed[0]
    assert "key_sha256" not in listed[0]
    assert client.get("/auth/me", headers={"X-API-Key": key}).status_code == 200
    listed = client.get(f"/admin/users/{name}/keys").json()["keys"]
    assert listed[0]["last_used_at"] is not None
    # a key of another account is not this account's
    other = client.post(f"/admin/users/{P}root/keys", json={"name": "x"}).json()
    r = client.delete(f"/admin/users/{name}/keys/{other['id']}")
    assert r.status_code == 404
    assert client.delete(f"/admin/users/{name}/keys/{key_id}").status_code == 204
    assert client.get("/auth/me", headers={"X-API-Key": key}).status_code == 401
    r = client.delete(f"/admin/users/{name}/keys/{key_id}")
    assert r.status_code == 409 and "revoked already" in r.json()["description"]
    assert client.get(f"/admin/users/{name}/keys").json()["keys"][0]["revoked_at"]
    rows = _audit(engine, name)
    assert [r.action for r in rows][-2:] == ["key.create", "key.revoke"]
    assert rows[-1].after == {"key_id": key_id, "prefix": made["prefix"],
                              "revoked": True}
    r = client.post(f"/admin/users/{name}/keys", json={"name": ""})
    assert r.status_code == 400


def test_secrets_are_never_in_the_audit_log_or_the_log(client, engine, caplog):
    caplog.set_level(logging.DEBUG)
    name = f"{P}secretive"
    r = client.post("/admin/users", json={
        "username": name, "role": "analyst", "password": "a-secret-password",
        "api_key": "k"})
    key = r.json()["api_key"]["key"]
    generated = client.patch(f"/admin/users/{name}",
                             json={"generate_password": True}).json()["password"]
    second = client.post(f"/admin/users/{name}/keys", json={}).json()["key"]
    client.patch(f"/admin/users/{name}", json={"password": "short"})  # refused
    with engine.connect() as conn:
        logged = " ".join(conn.execute(text(
            "SELECT coalesce(before::text, '') || coalesce(after::text, '') "
            "FROM audit_log WHERE target = :t"), {"t": name}).scalars())
    everything = logged + caplog.text + " ".join(
        str(getattr(rec, k, "")) for rec in caplog.records for k in vars(rec))
    for secret in ("a-secret-password", generated, key, second):
        assert secret not in everything


# -- rule settings ------------------------------------------------------------------


def test_settings_list_every_group_with_sources(client, no_overrides):
    r = client.get("/admin/settings")
    assert r.status_code == 200
    groups = {g["group"]: g for g in r.json()["groups"]}
    assert {"loop", "water", "risk", "rules_concrete", "rules_buildings",
            "rules_sites", "rules_fund", "rules_inspections"} <= set(groups)
    fields = {f["field"]: f for f in groups["rules_concrete"]["fields"]}
    chloride = fields["chloride_environment"]
    assert chloride["value"] == "reinforced_humid" and chloride["source"] == "default"
    assert chloride["mark"] == "D" and chloride["overridable"]
    assert chloride["env"] == "GIS_RULES_CONCRETE_CHLORIDE_ENVIRONMENT"
    loop = {f["field"]: f for f in groups["loop"]["fields"]}
    assert loop["evidence_dir"]["overridable"] is False
    only = client.get("/admin/settings", params={"group": "loop"}).json()
    assert [g["group"] for g in only["groups"]] == ["loop"]
    assert client.get("/admin/settings", params={"group": "nope"}).status_code == 404


def test_override_and_remove_a_setting(client, engine, no_overrides):
    path = "/admin/settings/loop/deadline_days_red"
    r = client.put(path, json={"value": 20})
    assert r.status_code == 200, r.text
    setting = r.json()["setting"]
    assert setting["value"] == 20 and setting["source"] == "override"
    assert setting["updated_by"] == f"{P}root"
    from models.supervision.settings import LoopSettings, loop_settings

    assert LoopSettings().deadline_days_red == 20
    assert loop_settings().deadline_days_red == 20
    r = client.delete(path)
    assert r.status_code == 200
    assert r.json()["setting"] == {**r.json()["setting"], "value": 30,
                                   "source": "default"}
    assert client.delete(path).status_code == 404
    rows = _audit(engine, "loop.deadline_days_red", "setting")
    assert [(r.action, r.actor) for r in rows[-2:]] == [
        ("setting.set", f"{P}root"), ("setting.unset", f"{P}root")]
    assert rows[-2].after == {"value": 20, "source": "override"}


@pytest.mark.parametrize(("path", "body", "status", "fragment"), [
    ("loop/deadline_days_red", {"value": 0}, 400, "greater than or equal to 1"),
    ("loop/deadline_days_red", {"value": [1]}, 400, "valid integer"),
    ("loop/deadline_days_red", {}, 400, "value"),
    ("loop/deadline_days_red", {"value": 3, "also": 1}, 400, "also"),
    ("loop/evidence_dir", {"value": "/etc"}, 400, "environment only"),
    ("rules_concrete/chloride_environment", {"value": "marine"}, 400, "not a key"),
    ("loop/nope", {"value": 1}, 404, "no field"),
    ("database/url", {"value": "x"}, 404, "no settings group"),
])
def test_bad_settings_are_refused(client, path, body, status, fragment):
    r = client.put(f"/admin/settings/{path}", json=body)
    assert r.status_code == status, r.text
    assert fragment in r.json()["description"]


def test_an_override_through_the_api_flips_an_evaluator(client, engine, no_overrides):
    pid = f"CT-{P}1"
    tc._insert_plant(engine, pid)
    try:
        data = copy.deepcopy(tc.baseline(pid))
        data["concrete_batching"][0]["chloride_pct"] = 0.15
        tc.load(engine, data)
        assert tc.findings(engine, pid, "chloride") == []
        r = client.put("/admin/settings/rules_concrete/chloride_environment",
                       json={"value": "reinforced_chloride"})
        assert r.status_code == 200
        found = tc.findings(engine, pid, "chloride")
        assert [f.evidence["limit_pct"] for f in found] == [0.10]
        rules = client.get("/supervision/rules").json()["rules"]
        chloride = next(r for r in rules if r["id"] == "concrete.chloride")
        assert chloride["thresholds"]["chloride_environment"] == "reinforced_chloride"
    finally:
        tc._cleanup(engine, [pid])


# -- documentation -------------------------------------------------------------------


def test_every_admin_parameter_and_body_field_is_described(client):
    spec = client.get("/api").json()
    schemas = spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        if not path.startswith("/admin"):
            continue
        for method, op in item.items():
            for param in op.get("parameters", []):
                assert param.get("description"), (method, path, param["name"])
            body = op.get("requestBody", {}).get("content", {})
            for media in body.values():
                ref = media["schema"].get("$ref") or next(
                    (s["$ref"] for s in media["schema"].get("anyOf", [])
                     if "$ref" in s), None)
                model = schemas[ref.rsplit("/", 1)[-1]]
                for name, prop in model["properties"].items():
                    assert prop.get("description"), (path, name)
