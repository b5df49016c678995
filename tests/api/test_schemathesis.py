"""Property-based tests of the whole API from its OpenAPI document.

Schemathesis generates requests for every operation the document describes
(valid and invalid parameters and bodies) and sends them to a real server on
a real database, signed in as an administrator (the deepest paths: writes,
audit, admin) and as a housing officer (a row scope: 404s for what is outside
it, 403s for what the role may not do). Every answer must be below 500 and
conform to the document: a documented status code, a documented content
type, and a body matching the declared schema. Operations that cannot
conform yet are listed in ``NOT_CONFORMING`` with their reason, and the test
fails when one of them starts to conform (the entry is stale).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import text

from gis_server import db
from gis_server.app import create_app
from gis_server.auth import accounts
from gis_server.auth.settings import AuthSettings
from gis_server.limits import LimitSettings
from gis_server.settings import DatabaseSettings, ServerSettings
from map_ui.settings import MapSettings

FUZZ_DB = "gis_fuzz_test"
KEY: dict[str, str] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def fuzz_url(db_settings: DatabaseSettings) -> Iterator[str]:
    settings = db.create_database(db_settings, FUZZ_DB)
    engine = db.make_engine(settings)
    with engine.begin() as conn:
        accounts.add_user(conn, "fuzz-admin", "admin", "fuzz-password-1")
        KEY["admin"] = accounts.create_key(conn, "fuzz-admin")
        accounts.add_user(
            conn, "fuzz-housing", "housing_officer", "fuzz-pass-2", district="天河区"
        )
        KEY["housing"] = accounts.create_key(conn, "fuzz-housing")
        for i in range(5):
            conn.execute(
                text(
                    "INSERT INTO layer_buildings (source, source_id, district, floors, "
                    "geom) VALUES ('fuzz', :i, '天河区', :f, ST_Multi(ST_MakeEnvelope("
                    "113.3 + :x, 23.1, 113.3005 + :x, 23.1005, 4326)))"
                ),
                {"i": f"b{i}", "f": i + 1, "x": i * 0.001},
            )
    engine.dispose()
    app = create_app(
        db=settings,
        server=ServerSettings(log_requests=False),
        auth=AuthSettings(),
        limits=LimitSettings(rate_limit=False),
    )
    app.state.map_settings = MapSettings(basemap="none")
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        db.drop_database(db_settings, FUZZ_DB)


@pytest.fixture(scope="module")
def api_schema(fuzz_url: str):
    return schemathesis.openapi.from_url(f"{fuzz_url}/api")


CHECKS = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
)

#: (operation, check) that cannot pass yet, each with its reason
NOT_CONFORMING: dict[tuple[str, str], str] = {}

#: who signs in, and the generated requests per operation (the same on every
#: run): fewer for the second caller, whose deep paths the first one reached
CALLERS = [("admin", 12), ("housing", 6)]


@pytest.mark.parametrize(("who", "examples"), CALLERS, ids=[w for w, _ in CALLERS])
def test_answers_conform_to_the_document(api_schema, who, examples):
    """Every operation: no 5xx, documented status and content type, and a
    body matching its schema.

    NOTE: driven through hypothesis directly -- schemathesis' pytest plugin
    does not run under pytest 9 yet.
    """
    failures: dict[tuple[str, str], list[str]] = {}
    calls = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) > 30

    for operation in operations:
        _fuzz(operation, examples, KEY[who], failures, calls)
    unexpected = {k: v for k, v in failures.items() if k not in NOT_CONFORMING}
    assert not unexpected, "\n".join(
        f"{op} [{name}] x{len(v)}: {v[0]}" for (op, name), v in unexpected.items()
    )
    stale = [k for k in NOT_CONFORMING if k not in failures]
    assert not stale, f"these conform now; remove them from NOT_CONFORMING: {stale}"
    # the run did reach the server, and past the validation of parameters
    assert len(calls) > examples * len(operations) // 2
    assert sum(200 <= c < 300 for c in calls) > len(operations) // 2


def _fuzz(operation, examples: int, key: str, failures: dict, calls: list) -> None:
    """Send ``examples`` generated requests to ``operation``; collect failures
    of each check, by (operation, check)."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case) -> None:
        response = case.call(
            headers={"X-API-Key": key}, timeout=30, allow_redirects=False
        )
        calls.append(response.status_code)
        for fn in CHECKS:
            try:
                case.validate_response(response, checks=[fn])
            except FailureGroup as exc:
                failures.setdefault((operation.label, fn.__name__), []).append(
                    f"{case.method} {case.formatted_path} {case.query} -> "
                    f"{response.status_code} {response.headers.get('content-type')}: "
                    + str(exc.exceptions[0]).replace("\n", " | ")[:300]
                )

    check()
