"""Every factor, weight and distance of the risk models, one setting each.

Each description starts with its confidence mark (see ``../shared/DOMAIN.md``):
[S] seen in a published source, [R] commonly cited value, [D] no standard: a
design default chosen here and meant to be changed by an administrator.
Environment variables use the prefix ``GIS_RISK_`` (``GIS_RISK_GRID_CELL_M``).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from gis_server.overrides import OverridableSettings
from gis_server.settings import PROJECT_ROOT
from models.wall_schedule import WallScheduleRules

NO_STANDARD = "[D] no standard: design default."


class RiskSettings(OverridableSettings):
    """Parameters of the dangerous-building, curtain-wall, river and grid models."""

    model_config = SettingsConfigDict(
        env_prefix="GIS_RISK_", env_file=".env", extra="ignore"
    )
    #: the metric frame is not a rule: it stays env-only (gis_server.overrides)
    env_only: ClassVar[frozenset[str]] = frozenset({"metric_srid"})

    # -- metric frame ----------------------------------------------------------
    metric_srid: int = Field(
        default=32649,
        description="[S] EPSG:32649 (WGS 84 / UTM 49N, 108-114 E) holds all of "
        "Guangzhou (112.9-114.1 E): every distance, radius, length and area is "
        "computed after ST_Transform to it (scale error < 0.1 %).",
    )

    # -- 1. dangerous buildings (JGJ 125-2016 grades) ---------------------------
    building_grades: tuple[str, ...] = Field(
        default=("C", "D"),
        description="[S] JGJ 125-2016 §6.1.4: C = local danger, D = whole "
        "building dangerous; zones are drawn around these grades.",
    )
    d_radius_factor: float = Field(
        default=1.0,
        ge=0,
        description=f"{NO_STANDARD} Hazard radius per metre of height around a D "
        "building (collapse debris reaches about one height).",
    )
    c_radius_factor: float = Field(
        default=0.5,
        ge=0,
        description=f"{NO_STANDARD} Hazard radius per metre of height around a C "
        "building (local falls only).",
    )
    building_min_radius_m: float = Field(
        default=10.0, ge=0, description=f"{NO_STANDARD} Smallest hazard radius."
    )
    building_max_radius_m: float = Field(
        default=200.0, ge=0, description=f"{NO_STANDARD} Largest hazard radius."
    )
    floor_height_m: float = Field(
        default=3.0,
        gt=0,
        description="[D] Height per floor when a building has floors but no "
        "height (GB 50096-2011 §5.5.1 gives 2.80 m for dwellings [R]; 3.0 m "
        "covers mixed uses).",
    )
    default_building_height_m: float = Field(
        default=10.0,
        gt=0,
        description=f"{NO_STANDARD} Height assumed with neither height nor floors.",
    )
    d_grade_weight: float = Field(
        default=1.0, ge=0, description=f"{NO_STANDARD} Base score of a D zone."
    )
    c_grade_weight: float = Field(
        default=0.6, ge=0, description=f"{NO_STANDARD} Base score of a C zone."
    )
    sensitive_uses: tuple[str, ...] = Field(
        default=(
            "school",
            "kindergarten",
            "university",
            "college",
            "hospital",
            "clinic",
            "nursing_home",
            "elderly_care",
        ),
        description=f"{NO_STANDARD} Building `use` values counted as sensitive.",
    )
    exposure_per_building: float = Field(
        default=0.05,
        ge=0,
        description=f"{NO_STANDARD} Score added per other building in a zone.",
    )
    exposure_per_sensitive: float = Field(
        default=0.5,
        ge=0,
        description=f"{NO_STANDARD} Score added per sensitive building in a zone.",
    )
    exposure_per_road_km: float = Field(
        default=0.5,
        ge=0,
        description=f"{NO_STANDARD} Score added per km of road in a zone.",
    )
    building_orange: float = Field(
        default=1.0,
        ge=0,
        description=f"{NO_STANDARD} Building-zone score from which the level is "
        "orange (a lone D building is orange).",
    )
    building_red: float = Field(
        default=2.0,
        ge=0,
        description=f"{NO_STANDARD} Building-zone score from which the level is red.",
    )

    # -- 2. glass curtain walls (fall zones) --------------------------------------
    # The check schedule (GIS_RULES_BUILDINGS_WALL_*, formerly GIS_RISK_WALL_*,
    # still read) is models.wall_schedule.WallScheduleRules, shared with the
    # supervision rules and the housing page.
    wall_radius_factor: float = Field(
        default=0.5,
        ge=0,
        description=f"{NO_STANDARD} Fall-zone radius per metre of wall height.",
    )
    wall_min_radius_m: float = Field(
        default=5.0, ge=0, description=f"{NO_STANDARD} Smallest fall-zone radius."
    )
    wall_default_height_m: float = Field(
        default=20.0, gt=0, description=f"{NO_STANDARD} Height of a wall without one."
    )
    wall_typhoon_score: float = Field(
        default=1.0, ge=0,
        description=f"{NO_STANDARD} Base score after a typhoon (or another event: "
        "fire, burst glass, ...) with no appraisal since.",
    )
    wall_dangerous_building_score: float = Field(
        default=0.8, ge=0,
        description=f"{NO_STANDARD} Base score of a wall on a C / D building with "
        "no appraisal of the wall since the grade.",
    )
    wall_past_life_score: float = Field(
        default=0.8,
        ge=0,
        description=f"{NO_STANDARD} Base score of a wall past its design life.",
    )
    wall_overdue_score: float = Field(
        default=0.5,
        ge=0,
        description=f"{NO_STANDARD} Base score of a wall overdue for its check.",
    )
    wall_overdue_per_year: float = Field(
        default=0.1,
        ge=0,
        description=f"{NO_STANDARD} Added per started year overdue (stepwise, so "
        "a zone does not change every day).",
    )
    wall_orange: float = Field(
        default=0.75, ge=0, description=f"{NO_STANDARD} Wall-zone orange level."
    )
    wall_red: float = Field(
        default=1.0, ge=0, description=f"{NO_STANDARD} Wall-zone red level."
    )

    # -- 3. river pollution pressure --------------------------------------------
    river_distance_m: float = Field(
        default=500.0,
        gt=0,
        description=f"{NO_STANDARD} Sources within this distance of a segment "
        "press on it; the weight falls linearly from 1 at the bank to 0 here.",
    )
    river_site_weight: float = Field(
        default=1.0,
        ge=0,
        description=f"{NO_STANDARD} Weight of a construction site per hectare.",
    )
    river_plant_weight: float = Field(
        default=2.0,
        ge=0,
        description=f"{NO_STANDARD} Weight of a concrete plant per "
        "`river_plant_capacity_ref` of yearly capacity.",
    )
    river_plant_capacity_ref: float = Field(
        default=100_000.0,
        gt=0,
        description=f"{NO_STANDARD} Yearly capacity (m3) counted as size 1; a "
        "plant without capacity counts as size 1.",
    )
    river_site_statuses: tuple[str, ...] = Field(
        default=("active", "suspended", "planned"),
        description=f"{NO_STANDARD} Site statuses that press on rivers (sites "
        "without a status count; completed sites do not).",
    )
    river_attenuation: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description=f"{NO_STANDARD} Share of a segment's accumulated pressure "
        "passed to the segment downstream (1 = no decay).",
    )
    river_orange: float = Field(
        default=5.0, ge=0, description=f"{NO_STANDARD} River-zone orange level."
    )
    river_red: float = Field(
        default=20.0, ge=0, description=f"{NO_STANDARD} River-zone red level."
    )

    # -- 4. composite grid -------------------------------------------------------
    grid_cell_m: float = Field(
        default=250.0,
        gt=0,
        description=f"{NO_STANDARD} Side of a grid cell (and raster pixel).",
    )
    weight_building: float = Field(
        default=0.4, ge=0, description=f"{NO_STANDARD} Composite weight."
    )
    weight_curtain_wall: float = Field(
        default=0.2, ge=0, description=f"{NO_STANDARD} Composite weight."
    )
    weight_river: float = Field(
        default=0.4, ge=0, description=f"{NO_STANDARD} Composite weight."
    )
    normalise_quantile: float = Field(
        default=0.99,
        gt=0,
        le=1,
        description=f"{NO_STANDARD} Each kind's cell score is divided by this "
        "quantile of its non-zero cells (and capped at 1) before weighting.",
    )
    hotspot_alpha: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="[R] Two-sided significance level of Gi* hot/cold spots "
        "(0.05, the usual choice).",
    )
    hotspot_fdr: bool = Field(
        default=True,
        description="[R] Control the false discovery rate over all cells "
        "(Benjamini-Hochberg), as recommended for local statistics (Caldas de "
        "Castro & Singer 2006) and offered by common hot-spot tools; false "
        "tests each cell at `hotspot_alpha` alone.",
    )
    raster_path: Path = Field(
        default=PROJECT_ROOT / "var" / "rasters" / "risk_composite.tif",
        description="GeoTIFF of the composite score (EPSG:32649, one pixel a cell).",
    )
    raster_name: str = Field(
        default="risk_composite", description="Name in the `raster_layers` table."
    )

    # -- incremental refresh -----------------------------------------------------
    refresh_full_threshold: int = Field(
        default=100_000,
        ge=0,
        description="[D] With more queued changes than this, a refresh "
        "recomputes the kinds concerned in full (a bulk ingest).",
    )
    workers: int = Field(
        default=2,
        ge=1,
        description="Database connections used in parallel for the zone measures.",
    )

    @property
    def wall_typhoon_key(self) -> str:
        """The typhoon flag's key in ``extra`` (a schedule setting now)."""
        return WallScheduleRules().wall_typhoon_key

    def params(self, kind: str) -> dict:
        """The settings that shape zones of ``kind`` (stored with each zone)."""
        prefix = {
            "dangerous_building": (
                "metric",
                "building",
                "d_",
                "c_",
                "floor",
                "default_b",
                "sensitive",
                "exposure",
            ),
            "curtain_wall": ("metric", "wall", "exposure", "sensitive"),
            "river_pressure": ("metric", "river"),
        }[kind]
        data = self.model_dump(mode="json")
        out = {k: v for k, v in data.items() if k.startswith(prefix)}
        if kind == "curtain_wall":  # the schedule decides which walls get a zone
            out.update(WallScheduleRules().model_dump(mode="json"))
        return out
