"""Sign-in: who the caller is, for every request.

:class:`AuthMiddleware` (outside the tile cache, so cached tiles are scoped
too) reads the credentials of a request (:class:`CredentialReader`) -- a bearer
token or API key in the ``Authorization`` header, an API key in
``X-API-Key`` or the ``api_key`` query parameter (``GIS_AUTH_API_KEY_HEADER``
and ``GIS_AUTH_API_KEY_QUERY``; QGIS and GDAL can send one or the other), or
the map pages' token cookie -- and sets the caller (:class:`Principal`) for the request:
in ``scope["state"]`` for the routes and in the context variable every
database transaction reads (``gis_server.auth.dbsecurity``). Credentials that
are presented but wrong are refused (401) rather than treated as anonymous.

Routes: ``POST /auth/token`` (OAuth2 password flow: a JWT for scripts),
``GET/POST /auth/login`` (the map pages' sign-in form; the token goes into an
HttpOnly, SameSite=Strict cookie), ``POST /auth/logout``, ``GET /auth/me``.
A cookie signs in reads only: writes need the token or a key in a header,
so another site cannot make a signed-in browser change data.
"""

from __future__ import annotations

import hashlib
import html
import logging
import time
from collections import OrderedDict
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote

import anyio
import orjson
from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import OAuth2PasswordRequestForm
from starlette.types import ASGIApp, Receive, Scope, Send

from gis_server.api.errors import ogc_exception
from gis_server.auth import accounts, dbsecurity, policy, tokens
from gis_server.auth.principal import ANONYMOUS, CURRENT, Principal
from gis_server.auth.settings import AuthSettings
from gis_server.errors import Unauthorized

log = logging.getLogger("gis_server.api.auth")

router = APIRouter(tags=["Sign-in"])

COOKIE = "gis_token"


class _AccountCache:
    """Verified credentials -> account, for a few seconds (bounded LRU)."""

    def __init__(self, ttl: float, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()

    def get(self, key: str) -> Any:
        hit = self._entries.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: str, value: Any) -> None:
        self._entries[key] = (time.monotonic() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


class CredentialReader:
    """The credential a request presents: ``(kind, secret)`` or None.

    ``kind`` is ``"token"`` or ``"key"`` (a bearer token, a bearer or header
    API key, the ``api_key_query`` parameter), else ``"cookie"`` (the pages'
    sign-in cookie, read last). The header and parameter names are those of
    :class:`AuthSettings`; the rate limiter reads requests with the same
    reader, so both see the same credential.
    """

    def __init__(self, settings: AuthSettings) -> None:
        self.header = settings.api_key_header.lower().encode()
        self.query = settings.api_key_query
        self._query_bytes = self.query.encode()

    def __call__(self, scope: Scope) -> tuple[str, str] | None:
        cookie = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                kind, _, secret = value.decode("latin-1").partition(" ")
                if kind.lower() == "bearer" and secret:
                    secret = secret.strip()
                    if secret.startswith(accounts.KEY_PREFIX):
                        return "key", secret
                    return "token", secret
            elif name == self.header:
                return "key", value.decode("latin-1").strip()
            elif name == b"cookie":  # HTTP/2 may split cookies over headers
                cookie = value if cookie is None else cookie + b"; " + value
        query = scope.get("query_string", b"")
        if query and self._query_bytes in query:
            for k, v in parse_qsl(query.decode("latin-1")):
                if k == self.query and v:
                    return "key", v
        if cookie is not None and _COOKIE_BYTES in cookie:
            for part in cookie.decode("latin-1").split(";"):
                k, _, v = part.strip().partition("=")
                if k == COOKIE and v:
                    return "cookie", v
        return None


_COOKIE_BYTES = f"{COOKIE}=".encode()


class AuthMiddleware:
    """Resolve the caller of every HTTP request (see the module doc)."""

    def __init__(self, app: ASGIApp, settings: AuthSettings) -> None:
        self.app = app
        self.settings = settings
        self.cache = _AccountCache(settings.lookup_cache_seconds)
        self.credentials = CredentialReader(settings)
        #: callers without credentials (with the layers anyone may read)
        self.anonymous = policy.anonymous_principal(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            principal = await self._principal(scope)
        except Unauthorized as exc:
            log.info("credentials refused", extra={"path": scope.get("path")})
            response = ogc_exception(
                401,
                exc.code,
                exc.description,
                headers={"WWW-Authenticate": 'Bearer realm="gis-server"'},
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        token = CURRENT.set(principal)
        try:
            await self.app(scope, receive, send)
        finally:
            CURRENT.reset(token)

    async def _principal(self, scope: Scope) -> Principal:
        found = self.credentials(scope)
        if found is None:
            return self.anonymous
        kind, secret = found
        digest = hashlib.sha256(f"{kind}:{secret}".encode()).hexdigest()
        cached = self.cache.get(digest)
        if cached is not None:
            return cached
        engine = scope["app"].state.engine
        if kind == "key":
            account = await anyio.to_thread.run_sync(_key_account, engine, secret)
            if account is None:
                raise Unauthorized("the API key is not valid (unknown or revoked)")
            principal = account.principal("key")
        else:
            try:
                principal = await self._token_principal(engine, secret, kind)
            except Unauthorized:
                if kind == "cookie":  # an old cookie: read on as anonymous
                    return self.anonymous
                raise
        self.cache.put(digest, principal)
        return principal

    async def _token_principal(self, engine, secret: str, kind: str) -> Principal:
        claims = tokens.decode(secret, self.settings)
        account = await anyio.to_thread.run_sync(_named_account, engine, claims["sub"])
        if account is None or account.role != claims.get("role"):
            raise Unauthorized("the token's account is disabled or changed")
        if claims.get("ver") != account.token_version:
            # a new password, or the account was disabled, since it was issued
            raise Unauthorized("the token is no longer valid; sign in again")
        return account.principal(kind)


def _key_account(engine, key: str) -> accounts.Account | None:
    with engine.begin() as conn:  # commits the key's last use
        return accounts.account_for_key(conn, key)


def _named_account(engine, username: str) -> accounts.Account | None:
    with engine.connect() as conn:
        return accounts.account_by_name(conn, username)


# -- dependencies ------------------------------------------------------------------


def get_principal(request: Request) -> Principal:
    """The caller the middleware resolved (anonymous without the middleware)."""
    return request.scope.get("state", {}).get("principal", ANONYMOUS)


def get_auth_settings(request: Request) -> AuthSettings:
    return request.app.state.auth_settings


PrincipalDep = Annotated[Principal, Depends(get_principal)]
AuthSettingsDep = Annotated[AuthSettings, Depends(get_auth_settings)]


def get_writer(principal: PrincipalDep) -> Principal:
    """The caller of a write: signed in with a token or key in a header."""
    if principal.anonymous:
        raise Unauthorized("sign in to make changes")
    if principal.via == "cookie":
        raise Unauthorized(
            "changes need the token (Authorization: Bearer) or an API key, "
            "not the sign-in cookie"
        )
    return principal


WriterDep = Annotated[Principal, Depends(get_writer)]


# -- routes ------------------------------------------------------------------------


def _client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _login(request: Request, username: str, password: str) -> accounts.Account:
    throttle = request.app.state.login_throttle
    ip = _client_ip(request)
    throttle.check(username, ip)
    with dbsecurity.as_server(), request.app.state.engine.begin() as conn:
        account = accounts.verify_password(conn, username, password)
    if account is None:
        throttle.failed(username, ip)
        log.info("sign-in refused", extra={"username": username, "client": ip})
        raise Unauthorized("wrong user name or password (or the account is disabled)")
    throttle.succeeded(username, ip)
    log.info("signed in", extra={"username": username, "role": account.role})
    return account


@router.post("/auth/token", summary="Sign in: a bearer token (OAuth2 password flow)")
def token(
    request: Request,
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    settings: AuthSettingsDep,
) -> Response:
    """Exchange a user name and password for a short-lived bearer token."""
    account = _login(request, form.username, form.password)
    value, lifetime = tokens.issue(account, settings)
    return Response(
        orjson.dumps(
            {"access_token": value, "token_type": "bearer", "expires_in": lifetime}
        ),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


_LOGIN_PAGE = """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>Sign in · 登录</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:15px system-ui,sans-serif;max-width:22em;margin:4em auto}}
label{{display:block;margin:.8em 0 .2em}}input{{width:100%;padding:.4em}}
button{{margin-top:1em;padding:.5em 1.5em}}.err{{color:#b00}}</style></head>
<body><h1>Sign in · 登录</h1>{error}
<form method="post" action="{action}">
<input type="hidden" name="next" value="{next}">
<label for="u">User name · 用户名</label><input id="u" name="username" required
 autocomplete="username">
<label for="p">Password · 密码</label><input id="p" name="password" type="password"
 required autocomplete="current-password">
<button type="submit">Sign in · 登录</button></form></body></html>"""


def _safe_next(value: str | None) -> str:
    """Only a path on this server (no ``//host`` or scheme): no open redirect."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return "/maps"
    if "\\" in value or any(ord(c) < 32 for c in value):
        return "/maps"
    return value


@router.get("/auth/login", summary="Sign-in form", include_in_schema=False)
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    return HTMLResponse(
        _LOGIN_PAGE.format(
            error="",
            action=str(request.url_for("login_submit").path),
            next=html.escape(_safe_next(next)),
        )
    )


@router.post("/auth/login", name="login_submit", include_in_schema=False)
def login_submit(
    request: Request,
    settings: AuthSettingsDep,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str | None, Form()] = None,
) -> Response:
    target = _safe_next(next)
    try:
        account = _login(request, username, password)
    except Unauthorized as exc:
        return HTMLResponse(
            _LOGIN_PAGE.format(
                error=f'<p class="err">{html.escape(exc.description)}</p>',
                action=str(request.url_for("login_submit").path),
                next=html.escape(target),
            ),
            status_code=401,
            # a 401 names how to authenticate (RFC 9110 15.5.2), also here
            headers={"WWW-Authenticate": 'Bearer realm="gis-server"'},
        )
    value, lifetime = tokens.issue(account, settings)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        value,
        max_age=lifetime,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post(
    "/auth/logout",
    summary="Sign out (forget the cookie)",
    status_code=303,
    response_class=RedirectResponse,
    responses={303: {"description": "Signed out: to the sign-in form."}},
)
def logout() -> Response:
    response = RedirectResponse("/auth/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/auth/me", summary="Who am I, and what may I read")
def me(principal: PrincipalDep, settings: AuthSettingsDep) -> Response:
    """The caller's account, role, scope attribute and readable layers."""
    layers = {
        spec.id: policy.read_scope(principal, spec, settings).key
        for spec in policy.readable_layers(principal, settings)
    }
    body = {
        "username": principal.username,
        "role": principal.role,
        "district": principal.district,
        "chief_id": principal.chief_id,
        "signed_in_with": principal.via,
        "layers": layers,
        "permissions": [p for p in policy.PERMISSIONS if policy.may(principal, p)],
    }
    return Response(orjson.dumps(body), media_type="application/json")


def login_redirect(request: Request) -> RedirectResponse:
    """Send a browser to the sign-in form, coming back here afterwards."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/auth/login?next={quote(target)}", status_code=303)
