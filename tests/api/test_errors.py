"""Errors: OGC exception JSON, the right status, logged when ours, 503 + recovery."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator

import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from features_fixtures import make_app

ITEMS = "/collections/buildings/items"

CLIENT_ERRORS = [
    ("/collections/nope/items", {}, 404),
    (f"{ITEMS}/123456789", {}, 404),
    ("/no/such/path", {}, 404),
    (ITEMS, {"bbox": "a,b,c,d"}, 400),
    (ITEMS, {"bbox": "113.3,23.1,113.2,23.2"}, 400),
    (ITEMS, {"bbox": "113,95,114,96"}, 400),
    (ITEMS, {"bbox": "1,2,3,4", "bbox-crs": "EPSG:2385"}, 400),
    (ITEMS, {"crs": "EPSG:2385"}, 400),
    (ITEMS, {"crs": "http://www.opengis.net/def/crs/EPSG/0/999999"}, 400),
    (ITEMS, {"filter": "floors >>> 1"}, 400),
    (ITEMS, {"nope": "1"}, 400),
    (ITEMS, {"sortby": "geom"}, 400),
    (ITEMS, {"limit": 100000}, 400),
    (ITEMS, {"f": "xml"}, 400),
]


@pytest.mark.parametrize(
    ("url", "params", "status"),
    CLIENT_ERRORS,
    ids=[f"{u}?{p}" for u, p, _ in CLIENT_ERRORS],
)
def test_client_errors_are_ogc_json(client, caplog, url, params, status):
    with caplog.at_level(logging.INFO, logger="gis_server"):
        r = client.get(url, params=params)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"code", "description"} and body["description"]
    for leak in ("psycopg2", "sqlalchemy", "Traceback", "SELECT", "layer_buildings"):
        assert leak not in body["description"]
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]


def test_method_not_allowed(client):
    r = client.post(ITEMS.replace("/items", ""))  # a collection is not posted to
    assert r.status_code == 405
    assert r.json()["code"] == "MethodNotAllowed"


def test_server_error_logged_once_with_traceback(api_db_settings, caplog):
    app = make_app(api_db_settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internal detail")

    with TestClient(app, raise_server_exceptions=False) as test_client:
        with caplog.at_level(logging.ERROR):
            r = test_client.get("/boom")
    assert r.status_code == 500
    assert r.json() == {"code": "ServerError", "description": "Internal server error."}
    errors = [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert errors[0].name == "gis_server.api.errors"


def test_a_unique_value_taken_is_a_409(api_db_settings, caplog):
    """Any unique violation reaching the central handler is a conflict."""
    from sqlalchemy import text

    from gis_server.auth import dbsecurity

    app = make_app(api_db_settings)

    @app.post("/twice")
    def twice(request: Request) -> None:
        with dbsecurity.as_server(), request.app.state.engine.begin() as conn:
            conn.execute(text("CREATE TEMP TABLE once (v int UNIQUE)"))
            conn.execute(text("INSERT INTO once VALUES (1), (1)"))

    with TestClient(app, raise_server_exceptions=False) as test_client:
        with caplog.at_level(logging.INFO):
            r = test_client.post("/twice")
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "Conflict"
    assert "once" not in r.json()["description"]
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]


class _Forwarder:
    """A TCP port that forwards to PostgreSQL while switched on.

    Switching it off closes every forwarded connection: to the server it is
    exactly a database that went away.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(32)
        self.port = self.listener.getsockname()[1]
        self.on = threading.Event()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.on.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def switch_off(self) -> None:
        self.on.clear()
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        self.sockets.clear()

    def close(self) -> None:
        self.switch_off()
        self.listener.close()


@pytest.fixture
def forwarder(api_db_settings) -> Iterator[_Forwarder]:
    from sqlalchemy.engine import make_url

    url = make_url(api_db_settings.effective_url())
    fwd = _Forwarder((url.host or "127.0.0.1", url.port or 5432))
    yield fwd
    fwd.close()


def test_database_away_is_503_then_recovers(api_db_settings, forwarder, caplog):
    from sqlalchemy.engine import make_url

    url = make_url(api_db_settings.effective_url()).set(port=forwarder.port)
    settings = api_db_settings.model_copy(
        update={"url": url.render_as_string(hide_password=False)}
    )
    forwarder.on.set()
    with TestClient(make_app(settings), raise_server_exceptions=False) as test_client:
        assert test_client.get(ITEMS).status_code == 200

        forwarder.switch_off()
        with caplog.at_level(logging.WARNING):
            r = test_client.get(ITEMS)
        assert r.status_code == 503
        assert r.headers["retry-after"].isdigit()
        assert r.json()["code"] == "ServiceUnavailable"
        assert "psycopg2" not in r.json()["description"]
        assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]

        forwarder.on.set()  # the database is back: no restart needed
        r = test_client.get(ITEMS)
        assert r.status_code == 200, r.text
        assert r.json()["numberReturned"] == 10


def test_statement_timeout_is_503(api_db_settings, caplog):
    """A query the database cancels (statement_timeout) is a 503, not a 500."""
    from sqlalchemy import text

    settings = api_db_settings.model_copy(update={"statement_timeout_ms": 50})
    app = make_app(settings)

    @app.get("/slow")
    def slow(request: Request) -> None:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(2)"))

    with TestClient(app, raise_server_exceptions=False) as test_client:
        with caplog.at_level(logging.WARNING):
            r = test_client.get("/slow")
    assert r.status_code == 503
    assert "Retry-After" in r.headers
    assert "longer than the server allows" in r.json()["description"]
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
