"""Settings of the features API (env prefix ``GIS_FEATURES_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FeaturesSettings(BaseSettings):
    """Limits and trade-offs of the ``/collections/{id}/items`` endpoint."""

    model_config = SettingsConfigDict(
        env_prefix="GIS_FEATURES_", env_file=".env", extra="ignore"
    )

    default_limit: int = Field(
        default=10, ge=1, description="Features per page when `limit` is not given."
    )
    max_limit: int = Field(
        default=10_000,
        ge=1,
        description="Largest `limit` accepted; a larger one is a 400, not clamped.",
    )
    exact_count_threshold: int = Field(
        default=1_000,
        ge=0,
        description=(
            "`numberMatched` is counted exactly when the planner expects at most "
            "this many matches, and is the planner's estimate above it "
            "(`numberMatchedExact: false`), so a page never costs a full COUNT(*) "
            "of a large layer."
        ),
    )
    coordinate_precision: int = Field(
        default=7,
        ge=0,
        le=15,
        description=(
            "Decimal digits of output coordinates in degrees (7 digits ~ 1 cm); "
            "projected CRSs (EPSG:3857) get 2 (cm)."
        ),
    )
    export_max_features: int = Field(
        default=2_000_000,
        ge=1,
        description="Most features one CSV or GeoPackage export may hold.",
    )
