"""Request limits: 413 on large bodies, 429 per client, login throttling.

The app is the real one (``create_app`` over the test database) with
:class:`LimitMiddleware` added here, small limits from settings objects and
an injected clock: nothing sleeps.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
import uvicorn
from fastapi import Body, FastAPI, Request
from fastapi.testclient import TestClient

from gis_server.api.auth import AuthMiddleware
from gis_server.api.errors import status_for
from gis_server.api.tiles import TileCacheMiddleware
from gis_server.app import create_app
from gis_server.auth import accounts, tokens
from gis_server.auth.settings import AuthSettings
from gis_server.errors import Conflict, PayloadTooLarge, TooManyRequests
from gis_server.limits import (
    LimitMiddleware,
    LimitSettings,
    LoginThrottle,
    RateLimiter,
    address_key,
    check_feature_count,
)
from gis_server.settings import DatabaseSettings, ServerSettings

UPLOADS = "/test-uploads/"
AUTH = AuthSettings(secret_key="limits-test-signing-key-0123456789abcdef")
USER, PASSWORD = "limits-tester", "limits-pass-123"
OTHER_USER = "limits-other"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def small_limits(**overrides) -> LimitSettings:
    values = {
        "max_body_bytes": 1024,
        "max_upload_bytes": 4096,
        "upload_prefixes": (UPLOADS,),
        "requests_per_minute": 6,
        "anonymous_requests_per_minute": 3,
        "unverified_requests_per_minute": 3,
        "exempt_prefixes": ("/static/",),
    }
    return LimitSettings(**{**values, **overrides})


def limited_app(
    db: DatabaseSettings,
    limits: LimitSettings,
    clock: FakeClock,
    limiter: RateLimiter | None = None,
    auth: AuthSettings = AUTH,
) -> FastAPI:
    """The real app with these limits and clock, plus a few body-reading routes."""
    app = create_app(
        db=db, server=ServerSettings(log_requests=False), auth=auth, limits=limits
    )
    entry = next(m for m in app.user_middleware if m.cls is LimitMiddleware)
    entry.kwargs.update(clock=clock, limiter=limiter)
    app.state.login_throttle = LoginThrottle(limits, clock)
    app.state.bodies_read = []

    @app.post("/echo")
    async def echo(request: Request) -> dict:
        body = await request.body()
        app.state.bodies_read.append(len(body))
        return {"bytes": len(body)}

    @app.post("/echo-json")
    def echo_json(doc: dict = Body(...)) -> dict:
        return {"keys": len(doc)}

    @app.post(UPLOADS + "evidence")
    async def upload(request: Request) -> dict:
        return {"bytes": len(await request.body())}

    return app


@pytest.fixture(scope="module")
def creds(api_engine) -> dict:
    """A real account with two API keys and a bearer token, and another
    account with a key."""
    with api_engine.begin() as conn:
        for user in (USER, OTHER_USER):
            try:
                accounts.add_user(conn, user, "analyst", PASSWORD)
            except Conflict:  # a rerun on a kept database
                pass
        account = accounts.get_user(conn, USER)
        key_a = accounts.create_key(conn, USER, "limits-a")
        key_b = accounts.create_key(conn, USER, "limits-b")
        other = accounts.create_key(conn, OTHER_USER, "limits-other")
    token, _ = tokens.issue(account, AUTH)
    return {
        "a": key_a,
        "b": key_b,
        "token": token,
        "other": other,
        "version": account.token_version,
    }


def minted_token(version: int, n: int) -> str:
    """USER's ``n``-th freshly minted token (issued ``n`` seconds apart)."""
    now = int(time.time())
    claims = {
        "sub": USER,
        "role": "analyst",
        "ver": version,
        "iss": AUTH.issuer,
        "iat": now - n,
        "exp": now + 600,
    }
    return jwt.encode(claims, AUTH.signing_key(), algorithm=tokens.ALGORITHM)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_client(api_db_settings, clock) -> Iterator:
    """Build a client over a limited app: ``make_client(limits, limiter=None)``."""
    clients: list[TestClient] = []

    def make(limits: LimitSettings | None = None, **kwargs) -> TestClient:
        app = limited_app(api_db_settings, limits or small_limits(), clock, **kwargs)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def assert_ogc(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"code", "description"}
    assert body["code"] == code and body["description"]


# --- body size --------------------------------------------------------------


def test_body_within_limit_passes(make_client):
    client = make_client(small_limits(rate_limit=False))
    r = client.post("/echo", content=b"x" * 1024)
    assert r.status_code == 200 and r.json() == {"bytes": 1024}


@pytest.mark.parametrize("path", ["/echo", "/no/such/route", "/conformance"])
def test_content_length_over_limit_is_413_before_reading(make_client, path):
    client = make_client(small_limits(rate_limit=False))
    r = client.post(path, content=b"x" * 1025)
    assert_ogc(r, 413, "PayloadTooLarge")
    assert "1024 bytes" in r.json()["description"]
    assert client.app.state.bodies_read == []  # the route never ran


def _chunks(n: int, size: int = 256) -> Iterator[bytes]:
    for _ in range(n):
        yield b"y" * size


@pytest.mark.parametrize("path", ["/echo", "/echo-json"])
def test_chunked_body_over_limit_is_413(make_client, path):
    client = make_client(small_limits(rate_limit=False))
    r = client.post(path, content=_chunks(8))  # 2 KiB, no Content-Length
    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    # 413, also where FastAPI parses the body itself (it would make a 400)
    assert_ogc(r, 413, "PayloadTooLarge")
    assert client.app.state.bodies_read == []


def test_chunked_body_within_limit_passes(make_client):
    client = make_client(small_limits(rate_limit=False))
    r = client.post("/echo", content=_chunks(4))
    assert r.status_code == 200 and r.json() == {"bytes": 1024}


def test_upload_prefix_has_its_own_larger_limit(make_client):
    client = make_client(small_limits(rate_limit=False))
    assert client.post(UPLOADS + "evidence", content=b"z" * 4096).status_code == 200
    assert client.post(UPLOADS + "evidence", content=_chunks(8)).status_code == 200
    r = client.post(UPLOADS + "evidence", content=b"z" * 4097)
    assert_ogc(r, 413, "PayloadTooLarge")
    assert "4096 bytes" in r.json()["description"]
    assert_ogc(client.post("/echo", content=b"z" * 2048), 413, "PayloadTooLarge")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chunked_upload_over_a_real_server_is_cut_short(api_db_settings, clock):
    """Over uvicorn, a real chunked stream is refused once past the limit."""
    app = limited_app(api_db_settings, small_limits(rate_limit=False), clock)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "no uvicorn"
        time.sleep(0.05)
    sent = 0

    def slow_chunks() -> Iterator[bytes]:
        nonlocal sent
        for _ in range(64):  # 16 KiB if nobody stops it
            sent += 256
            yield b"y" * 256
            time.sleep(0.005)

    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            r = http.post("/echo", content=slow_chunks())
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert_ogc(r, 413, "PayloadTooLarge")
    assert app.state.bodies_read == []
    assert sent < 64 * 256  # not read to the end


# --- requests per minute ----------------------------------------------------


def test_429_with_retry_after_after_the_budget(make_client):
    client = make_client()
    for remaining in (2, 1, 0):
        r = client.get("/conformance")
        assert r.status_code == 200
        assert r.headers["ratelimit-limit"] == "3"
        assert r.headers["ratelimit-remaining"] == str(remaining)
    r = client.get("/conformance")
    assert_ogc(r, 429, "TooManyRequests")
    assert r.headers["retry-after"] == "20"  # 3 per minute: one token per 20 s
    assert r.headers["ratelimit-remaining"] == "0"
    # errors count too: a 404 or a 413 is still a request
    assert client.get("/no/such/route").status_code == 429


def test_keys_and_tokens_of_one_account_share_its_budget(make_client, creds):
    client = make_client(small_limits(unverified_requests_per_minute=10))
    key_a = {"X-API-Key": creds["a"]}
    for remaining in range(5, -1, -1):
        r = client.get("/conformance", headers=key_a)
        assert r.status_code == 200
        assert r.headers["ratelimit-remaining"] == str(remaining)
    assert client.get("/conformance", headers=key_a).status_code == 429
    # the same key as a query parameter, or as a bearer, is the same budget
    assert client.get("/conformance", params={"api_key": creds["a"]}).status_code == 429
    bearer_a = {"Authorization": f"Bearer {creds['a']}"}
    assert client.get("/conformance", headers=bearer_a).status_code == 429
    # a token of the account names it: the account's spent budget at once
    bearer = {"Authorization": f"Bearer {creds['token']}"}
    assert client.get("/conformance", headers=bearer).status_code == 429
    # another key of the account: its first request on the address's budget
    # of unverified requests (its account is not known before it is looked
    # up), then the account's spent budget
    key_b = {"X-API-Key": creds["b"]}
    assert client.get("/conformance", headers=key_b).status_code == 200
    assert client.get("/conformance", headers=key_b).status_code == 429
    # another account has a budget of its own
    r = client.get("/conformance", headers={"X-API-Key": creds["other"]})
    assert r.status_code == 200 and r.headers["ratelimit-limit"] == "6"
    # without a credential: the address's (smaller) budget, untouched so far
    r = client.get("/conformance")
    assert r.status_code == 200
    assert r.headers["ratelimit-limit"] == "3"
    assert r.headers["ratelimit-remaining"] == "2"


def test_minting_tokens_buys_no_budget(make_client, creds):
    """Fresh tokens of one account: no fresh budgets, one account's in all."""
    client = make_client(small_limits(unverified_requests_per_minute=100))
    passed = 0
    for n in range(5):
        bearer = {"Authorization": f"Bearer {minted_token(creds['version'], n)}"}
        passed += sum(
            client.get("/conformance", headers=bearer).status_code == 200
            for _ in range(4)
        )
    # the account's 6, however many tokens it holds (20 requests were sent)
    assert passed == 6


def test_the_configured_credential_names_are_read(api_db_settings, clock, creds):
    """GIS_AUTH_API_KEY_HEADER / _QUERY: the limiter reads what auth reads."""
    auth = AuthSettings(
        secret_key=AUTH.secret_key, api_key_header="X-GIS-Key", api_key_query="key"
    )
    app = limited_app(api_db_settings, small_limits(), clock, auth=auth)
    with TestClient(app) as client:
        r = client.get("/conformance", headers={"X-GIS-Key": creds["a"]})
        assert r.status_code == 200 and r.headers["ratelimit-limit"] == "6"
        r = client.get("/conformance", params={"key": creds["a"]})
        assert r.status_code == 200 and r.headers["ratelimit-remaining"] == "4"
        # the default names are no credential here: anonymous, by address
        r = client.get("/conformance", headers={"X-API-Key": creds["a"]})
        assert r.status_code == 200 and r.headers["ratelimit-limit"] == "3"
        r = client.get("/conformance", params={"api_key": creds["a"]})
        assert r.status_code == 200 and r.headers["ratelimit-remaining"] == "1"


def test_each_address_has_its_own_budget(api_db_settings, clock):
    app = limited_app(api_db_settings, small_limits(), clock)
    with (
        TestClient(app, client=("203.0.113.1", 1000)) as one,
        TestClient(app, client=("203.0.113.2", 1000)) as two,
    ):
        for _ in range(3):
            assert one.get("/conformance").status_code == 200
        assert one.get("/conformance").status_code == 429
        assert two.get("/conformance").status_code == 200


def test_bucket_refills_with_the_clock(make_client, clock):
    client = make_client()
    for _ in range(3):
        client.get("/conformance")
    assert client.get("/conformance").status_code == 429
    clock.advance(19)
    r = client.get("/conformance")
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    clock.advance(1)
    assert client.get("/conformance").status_code == 200
    assert client.get("/conformance").status_code == 429
    clock.advance(60)  # a full minute refills the whole budget, no more
    statuses = [client.get("/conformance").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_exempt_paths_are_not_counted(make_client):
    client = make_client(small_limits(anonymous_requests_per_minute=1))
    for _ in range(5):
        r = client.get("/static/does-not-exist.js")
        assert r.status_code != 429
        assert "ratelimit-limit" not in r.headers
    assert client.get("/conformance").status_code == 200
    assert client.get("/conformance").status_code == 429


def test_many_keys_keep_memory_bounded(make_client, clock):
    """A flood of distinct (made-up) keys: the limiter stays at max_keys."""
    limiter = RateLimiter(max_keys=50, clock=clock)
    client = make_client(
        small_limits(unverified_requests_per_minute=1000), limiter=limiter
    )
    for i in range(300):
        r = client.get("/conformance", headers={"X-API-Key": f"made-up-{i}"})
        assert r.status_code == 401  # refused by the auth layer
        assert len(limiter) <= 50
    assert len(limiter) == 50
    # idle keys (a minute without requests: full buckets) go as new ones come
    clock.advance(61)
    limiter.take("fresh", 6)
    assert len(limiter) == 1


def test_made_up_credentials_cannot_buy_fresh_budgets(make_client, clock, creds):
    """Unverified credentials share one budget per address."""
    client = make_client()
    for i in range(3):  # unverified_requests_per_minute
        r = client.get("/conformance", headers={"X-API-Key": f"guess-{i}"})
        assert r.status_code == 401
    r = client.get("/conformance", headers={"X-API-Key": "guess-next"})
    assert_ogc(r, 429, "TooManyRequests")
    assert r.headers["retry-after"] == "20"
    assert "not (yet) accepted" in r.json()["description"]
    # anonymous requests have their own budget
    assert client.get("/conformance").status_code == 200
    # a valid key's first request is unverified too: it waits for a token ...
    key_a = {"X-API-Key": creds["a"]}
    assert client.get("/conformance", headers=key_a).status_code == 429
    clock.advance(20)
    assert client.get("/conformance", headers=key_a).status_code == 200
    # ... then, accepted, its account's budget while the guesses stay refused
    for _ in range(5):
        assert client.get("/conformance", headers=key_a).status_code == 200
    r = client.get("/conformance", headers={"X-API-Key": "guess-again"})
    assert r.status_code == 429


def test_a_stale_sign_in_cookie_is_an_unverified_credential(make_client):
    """The auth layer reads an expired cookie as anonymous: no budget of its own."""
    client = make_client()
    for i in range(3):
        client.cookies.set("gis_token", f"expired-{i}")
        assert client.get("/conformance").status_code == 200
    client.cookies.set("gis_token", "expired-next")
    assert client.get("/conformance").status_code == 429
    client.cookies.clear()
    assert client.get("/conformance").status_code == 200  # anonymous budget


def test_limiter_unit_retry_after_is_whole_seconds_at_least_one(clock):
    limiter = RateLimiter(max_keys=10, clock=clock)
    assert limiter.take("k", 600).allowed
    for _ in range(599):
        limiter.take("k", 600)
    refused = limiter.take("k", 600)
    assert not refused.allowed and refused.retry_after == 1  # 0.1 s -> 1
    clock.advance(0.1)
    assert limiter.take("k", 600).allowed


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::7", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.9", "203.0.113.9"),
        (None, "unknown"),
        ("testclient", "testclient"),
    ],
)
def test_address_key(host, key):
    assert address_key(host) == key


def test_limits_are_outermost(api_db_settings):
    """Outside auth and the tile cache (cached tiles are counted too); only the
    request log is outside them (their refusals are logged)."""
    app = create_app(
        db=api_db_settings, server=ServerSettings(log_requests=False), auth=AUTH
    )
    order = [m.cls.__name__ for m in app.user_middleware]
    assert order[:2] == ["RequestLogMiddleware", "LimitMiddleware"]
    order = [m.cls for m in app.user_middleware]
    assert order.index(AuthMiddleware) < order.index(TileCacheMiddleware)


# --- login throttling -------------------------------------------------------


def test_login_throttle_per_username(clock):
    throttle = LoginThrottle(small_limits(), clock)
    for _ in range(5):
        throttle.check("alice", "198.51.100.1")
        throttle.failed("alice", "198.51.100.1")
    with pytest.raises(TooManyRequests) as refused:
        throttle.check("alice", "198.51.100.2")  # from anywhere
    assert refused.value.retry_after == 300
    with pytest.raises(TooManyRequests):
        throttle.check(" ALICE ", "198.51.100.3")  # same account, other spelling
    throttle.check("bob", "198.51.100.1")  # another account is not locked
    clock.advance(299)
    with pytest.raises(TooManyRequests) as refused:
        throttle.check("alice", "198.51.100.1")
    assert refused.value.retry_after == 1
    clock.advance(1)
    throttle.check("alice", "198.51.100.1")  # the window has passed
    # the next lock lasts twice as long (exponential back-off)
    for _ in range(5):
        throttle.failed("alice", "198.51.100.1")
    with pytest.raises(TooManyRequests) as refused:
        throttle.check("alice", "198.51.100.1")
    assert refused.value.retry_after == 600


def test_failures_outside_the_window_do_not_add_up(clock):
    throttle = LoginThrottle(small_limits(), clock)
    for _ in range(4):
        throttle.failed("carol", "198.51.100.1")
    clock.advance(300)
    throttle.failed("carol", "198.51.100.1")
    throttle.check("carol", "198.51.100.1")


def test_success_clears_the_username_not_the_address(clock):
    throttle = LoginThrottle(small_limits(login_ip_max_failures=9), clock)
    for _ in range(4):
        throttle.failed("dave", "198.51.100.1")
    throttle.succeeded("dave", "198.51.100.1")
    for _ in range(4):
        throttle.failed("dave", "198.51.100.1")
    throttle.check("dave", "198.51.100.1")  # 4 + 4, but a success in between
    # ... while the address keeps its 8 failures: one more locks it
    throttle.failed("erin", "198.51.100.1")
    with pytest.raises(TooManyRequests):
        throttle.check("erin", "198.51.100.1")


def test_login_throttle_per_address(clock):
    throttle = LoginThrottle(small_limits(), clock)
    for i in range(20):  # login_ip_max_failures, each username once
        throttle.check(f"user{i}", "198.51.100.7")
        throttle.failed(f"user{i}", "198.51.100.7")
    with pytest.raises(TooManyRequests) as refused:
        throttle.check("someone-else", "198.51.100.7")
    assert refused.value.retry_after == 300
    throttle.check("someone-else", "198.51.100.8")  # another address is fine
    clock.advance(300)
    throttle.check("someone-else", "198.51.100.7")


def test_login_throttle_memory_is_bounded(clock):
    throttle = LoginThrottle(small_limits(login_max_keys=10), clock)
    for i in range(100):
        throttle.failed(f"user{i}", f"198.51.100.{i}")
    users, addresses = throttle.tracked()
    assert users <= 10 and addresses <= 10


def test_login_throttle_refusal_is_429_with_retry_after(api_db_settings, clock):
    """TooManyRequests from a route: 429, Retry-After, OGC JSON (api/errors.py)."""
    app = limited_app(api_db_settings, small_limits(rate_limit=False), clock)

    @app.post("/try-login")
    def try_login(username: str) -> dict:
        app.state.login_throttle.check(username, "198.51.100.9")
        app.state.login_throttle.failed(username, "198.51.100.9")
        return {"failed": True}

    with TestClient(app) as client:
        for _ in range(5):
            assert (
                client.post("/try-login", params={"username": "g"}).status_code == 200
            )
        r = client.post("/try-login", params={"username": "g"})
        assert_ogc(r, 429, "TooManyRequests")
        assert r.headers["retry-after"] == "300"


def test_login_refusal_is_429_with_retry_after(make_client, clock, creds):
    """POST /auth/token refuses with 429 + Retry-After after 5 failures."""
    client = make_client(small_limits(rate_limit=False))
    wrong = {"username": USER, "password": "not-the-password"}
    for _ in range(5):
        assert client.post("/auth/token", data=wrong).status_code == 401
    right = {"username": USER, "password": PASSWORD}
    r = client.post("/auth/token", data=right)
    assert_ogc(r, 429, "TooManyRequests")
    assert r.headers["retry-after"] == "300"
    clock.advance(300)
    r = client.post("/auth/token", data=right)
    assert r.status_code == 200 and r.json()["access_token"]


# --- features per write and settings ---------------------------------------


def test_feature_count():
    limits = LimitSettings(max_features_per_write=3)
    check_feature_count(3, limits)
    with pytest.raises(PayloadTooLarge) as err:
        check_feature_count(4, limits)
    assert status_for(err.value) == 413
    assert "batches of 3" in err.value.description


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("GIS_LIMITS_REQUESTS_PER_MINUTE", "7")
    monkeypatch.setenv("GIS_LIMITS_EXEMPT_PREFIXES", '["/static/", "/health"]')
    limits = LimitSettings()
    assert limits.requests_per_minute == 7
    assert limits.exempt_prefixes == ("/static/", "/health")
    assert limits.max_body_bytes == 10 * 1024 * 1024
