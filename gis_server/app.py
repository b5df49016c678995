"""The web application: ``create_app`` builds it, the lifespan owns the engine.

``gis-server serve`` runs :func:`create_app` with uvicorn; tests build their
own app with their own settings (nothing is read from globals below this
module).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.security import APIKeyHeader, APIKeyQuery, OAuth2PasswordBearer
from sqlalchemy.exc import OperationalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gis_server import overrides
from gis_server.api.admin import router as admin_router
from gis_server.api.auth import AuthMiddleware
from gis_server.api.auth import router as auth_router
from gis_server.api.deps import refuse_nul
from gis_server.api.errors import error_responses, install_error_handlers, ogc_openapi
from gis_server.api.features import router as features_router
from gis_server.api.landing import router as landing_router
from gis_server.api.maps import router as maps_router
from gis_server.api.settings import router as settings_router
from gis_server.api.supervision import router as supervision_router
from gis_server.api.tiles import TileCacheMiddleware
from gis_server.api.tiles import router as tiles_router
from gis_server.api.writes import router as writes_router
from gis_server.auth.settings import AuthSettings
from gis_server.db import make_engine
from gis_server.features.config import FeaturesSettings
from gis_server.limits import LimitMiddleware, LimitSettings, LoginThrottle
from gis_server.logs import log_request
from gis_server.settings import (
    DatabaseSettings,
    ServerSettings,
    database_settings,
    server_settings,
)

log = logging.getLogger("gis_server.app")


def create_app(
    db: DatabaseSettings | None = None,
    server: ServerSettings | None = None,
    features: FeaturesSettings | None = None,
    auth: AuthSettings | None = None,
    limits: LimitSettings | None = None,
) -> FastAPI:
    """The FastAPI application serving every declared layer."""
    db_settings = db or database_settings()
    server_cfg = server or server_settings()
    features_cfg = features or FeaturesSettings()
    auth_cfg = auth or AuthSettings()
    limits_cfg = limits or LimitSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = _make_engine(db_settings)
        app.state.engine = engine
        watcher = _watch_overrides(engine)
        log.info("server started", extra={"database": engine.url.render_as_string()})
        try:
            yield
        finally:
            watcher.stop()
            overrides.clear()  # this process no longer serves that database
            engine.dispose()
            log.info("server stopped")

    # documented in the OpenAPI document (the "Authorize" button of /api.html);
    # the AuthMiddleware does the checking, these only describe it
    security = [
        Depends(OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)),
        Depends(APIKeyHeader(name=auth_cfg.api_key_header, auto_error=False)),
        Depends(APIKeyQuery(name=auth_cfg.api_key_query, auto_error=False)),
    ]
    app = FastAPI(
        dependencies=[Depends(refuse_nul), *security],
        title="Guangzhou city supervision GIS server",
        description=(
            "Layers of the city supervision departments (buildings, curtain "
            "walls, construction sites, rivers, ...) served as OGC API - "
            "Features and OGC API - Tiles."
        ),
        version="0.1.0",
        lifespan=lifespan,
        openapi_url="/api",
        docs_url="/api.html",
        redoc_url=None,
    )
    app.state.db_settings = db_settings
    app.state.server_settings = server_cfg
    app.state.features_settings = features_cfg
    app.state.auth_settings = auth_cfg
    app.state.limit_settings = limits_cfg
    app.state.login_throttle = LoginThrottle(limits_cfg)

    # level 4: most of the size gain of 9 at a fraction of the CPU (pages of
    # thousands of features are hundreds of KB)
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=4)
    install_error_handlers(app)
    # each router with the error answers its routes may give (OGC JSON)
    app.include_router(landing_router, responses=error_responses())
    app.include_router(auth_router, responses=error_responses())
    app.include_router(features_router, responses=error_responses(404))
    app.include_router(writes_router, responses=error_responses(403, 404, 409))
    app.include_router(tiles_router, responses=error_responses(404))
    app.include_router(maps_router, responses={**error_responses(404), **SIGN_IN})
    app.include_router(supervision_router, responses=error_responses(403, 404, 409))
    app.include_router(admin_router, responses=error_responses(403, 404, 409))
    app.include_router(settings_router, responses=error_responses(403, 404))
    _openapi = app.openapi
    app.openapi = lambda: app.openapi_schema or ogc_openapi(_openapi())
    # outermost last: request log -> limits -> caller -> tile cache (cached
    # tiles skip routing but are still logged, counted and scoped to the caller;
    # refusals of the limits are logged too)
    app.add_middleware(TileCacheMiddleware)
    app.add_middleware(AuthMiddleware, settings=auth_cfg)
    app.add_middleware(LimitMiddleware, settings=limits_cfg, auth=auth_cfg)
    app.add_middleware(RequestLogMiddleware)  # GIS_LOG_REQUESTS, read per request
    return app


#: map pages send callers without credentials to the sign-in form
SIGN_IN = {303: {"description": "Not signed in: to the sign-in form (`Location`)."}}


def _watch_overrides(engine) -> overrides.Watcher:
    """Load the rule settings' overrides and follow their changes."""
    try:
        overrides.load(engine)
    except OperationalError as exc:  # the watcher loads them once it connects
        log.warning(
            "database unreachable at start: setting overrides not loaded yet",
            extra={"error": type(exc.orig).__name__},
        )
    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    watcher = overrides.Watcher(dsn)
    watcher.start()
    return watcher


def _make_engine(settings: DatabaseSettings):
    # make_engine scopes every transaction to the request's caller
    return make_engine(settings, statement_timeout=True)


class RequestLogMiddleware:
    """One log line per request (method, path, status, duration, layer, user),
    outermost, so that every answer is logged: limits' 413/429, sign-in 401s,
    cached tiles.

    A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` costs a
    task and a stream per request, which shows on fast endpoints.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        settings = getattr(scope["app"].state, "server_settings", None)
        if scope["type"] != "http" or settings is None or not settings.log_requests:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            state = scope.get("state", {})
            fields = {"layer": scope.get("path_params", {}).get("collection_id")}
            if "cache" in state:  # answered by the tile cache, before routing
                fields = {"layer": state.get("layer"), "cache": state["cache"]}
            log_request(scope, status, start, **fields)
