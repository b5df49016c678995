"""Settings, one class per concern, read from the environment (and ``.env``).

Every class has its own prefix so that a setting's name says what it is for;
objects are passed in (never read from globals deep inside), so tests build
their own instead of patching.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class DatabaseSettings(BaseSettings):
    """Where the PostGIS database is, or how to run the embedded one.

    With ``DATABASE_URL`` set the server uses that database; otherwise it
    creates and manages its own PostgreSQL + PostGIS cluster under
    ``GIS_DB_DATA_DIR``.
    """

    # populate_by_name: DatabaseSettings(url=...) must not be silently ignored
    model_config = SettingsConfigDict(
        env_prefix="GIS_DB_", env_file=".env", extra="ignore", populate_by_name=True
    )

    url: str | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        description="SQLAlchemy URL of an existing PostGIS database.",
    )
    data_dir: Path = Field(
        default=PROJECT_ROOT / "var" / "pgdata",
        description="Folder of the embedded cluster (created on first start).",
    )
    host: str = Field(
        default="127.0.0.1", description="Embedded cluster listen address."
    )
    port: int = Field(default=55432, description="Embedded cluster port.")
    name: str = Field(
        default="gis", description="Database name in the embedded cluster."
    )
    user: str = Field(default="gis", description="Role the server connects as.")
    os_user: str = Field(
        default="postgres",
        description="System user that runs the embedded cluster when started as root "
        "(PostgreSQL refuses to run as root).",
    )
    install_packages: bool = Field(
        default=True,
        description="Install PostGIS with the system package manager when it is "
        "missing (root only); when false, say what to install and stop.",
    )
    pool_size: int = Field(default=8, ge=1)
    statement_timeout_ms: int = Field(
        default=30_000, ge=0, description="Per-statement timeout for API queries."
    )

    def effective_url(self) -> str:
        """The URL to connect to: ``DATABASE_URL`` or the embedded cluster's."""
        if self.url:
            return self.url
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{self.name}"

    @property
    def embedded(self) -> bool:
        return not self.url


class IngestSettings(BaseSettings):
    """Ingest behaviour."""

    model_config = SettingsConfigDict(
        env_prefix="GIS_INGEST_", env_file=".env", extra="ignore"
    )

    chunk_size: int = Field(default=50_000, ge=100, description="Rows per COPY chunk.")
    raster_dir: Path = Field(
        default=PROJECT_ROOT / "var" / "rasters",
        description="Where registered GeoTIFFs are copied (unless --in-place).",
    )
    report_dir: Path = Field(
        default=PROJECT_ROOT / "var" / "reports",
        description="Where ingest reports are written.",
    )


class ServerSettings(BaseSettings):
    """The HTTP server."""

    model_config = SettingsConfigDict(
        env_prefix="GIS_", env_file=".env", extra="ignore"
    )

    host: str = Field(default="127.0.0.1", description="Address to listen on.")
    port: int = Field(default=8000, description="Port to listen on.")
    public_url: str | None = Field(
        default=None, description="Base URL used in links when behind a proxy."
    )
    log_level: str = Field(default="INFO")
    log_requests: bool = Field(default=True, description="Log one line per request.")
    log_json: bool = Field(default=False, description="Log as JSON lines.")


class TileSettings(BaseSettings):
    """Vector and GeoJSON tiles (OGC API - Tiles) and their cache."""

    model_config = SettingsConfigDict(
        env_prefix="GIS_TILES_", env_file=".env", extra="ignore"
    )

    extent: int = Field(default=4096, ge=256, description="MVT tile extent (units).")
    buffer: int = Field(
        default=64, ge=0, description="Geometry buffer around a tile, in extent units."
    )
    feature_cap: int = Field(
        default=20_000,
        ge=1,
        description="Most features in one tile; when reached the response says so "
        "in the X-Tile-Truncated header.",
    )
    tile_px: int = Field(
        default=512, ge=64, description="Tile size on screen that pixels refer to."
    )
    simplify_px: float = Field(
        default=1.0,
        ge=0,
        description="Simplification tolerance in screen pixels at each zoom (0: off).",
    )
    cluster_max_zoom: int = Field(
        default=13,
        ge=-1,
        description="Point layers are clustered on a grid at this zoom and below "
        "(-1: never).",
    )
    cluster_px: int = Field(
        default=64, ge=8, description="Cluster grid cell size in screen pixels."
    )
    respect_layer_zoom: bool = Field(
        default=True,
        description="Refuse tiles outside a layer's declared min/max zoom (404); "
        "false serves every zoom of the tile matrix set (benchmarks).",
    )
    cache_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=0,
        description="Size of the in-process tile cache per worker (0: no cache).",
    )
    cache_control: str = Field(
        default="public, max-age=0, must-revalidate",
        description="Cache-Control of tiles; ETags make revalidation a cheap 304.",
    )
    gzip_level: int = Field(default=1, ge=0, le=9, description="0: never gzip tiles.")
    gzip_min_bytes: int = Field(default=1024, ge=0)
    listen: bool = Field(
        default=True,
        description="LISTEN for layer changes (instant cache invalidation); when "
        "false or disconnected, every tile request reads the layer version.",
    )


@lru_cache
def database_settings() -> DatabaseSettings:
    return DatabaseSettings()


@lru_cache
def ingest_settings() -> IngestSettings:
    return IngestSettings()


@lru_cache
def server_settings() -> ServerSettings:
    return ServerSettings()
