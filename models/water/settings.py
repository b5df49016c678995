"""Settings of the water domain: thresholds, warning cut-offs, patrol frequencies.

Every threshold is a named, configurable field (env prefix ``GIS_WATER_``) whose
description names its source and a confidence mark:

- [S] seen in a published source (the standard's text or a faithful copy);
- [R] the standard's value as commonly cited, not checked against its text;
- [D] a design default with no standard behind it.

Boundary convention for the black-odorous grades (2015 guideline 《城市黑臭水体
整治工作指南》): a reading is *mild* when it is strictly worse than the mild
limit and *severe* when strictly worse than the severe limit, e.g. DO < 2.0 is
mild, DO < 0.2 severe; NH3-N > 8.0 mild, > 15 severe. The guideline's ranges
("0.2 - 2.0") leave the endpoints ambiguous; this choice is [D].
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from gis_server.overrides import OverridableSettings, cached
from gis_server.settings import PROJECT_ROOT

#: GB 3838-2002 table 1, limits for classes I..V [S]. ``do`` is a lower bound
#: (>=); every other indicator an upper bound (<=). ``tp`` is for rivers,
#: ``tp_lake`` for lakes and reservoirs.
GB3838_2002_LIMITS: dict[str, tuple[float, float, float, float, float]] = {
    "do": (7.5, 6.0, 5.0, 3.0, 2.0),
    "codmn": (2.0, 4.0, 6.0, 10.0, 15.0),
    "cod": (15.0, 15.0, 20.0, 30.0, 40.0),
    "bod5": (3.0, 3.0, 4.0, 6.0, 10.0),
    "nh3n": (0.15, 0.5, 1.0, 1.5, 2.0),
    "tp": (0.02, 0.1, 0.2, 0.3, 0.4),
    "tp_lake": (0.01, 0.025, 0.05, 0.1, 0.2),
}


class WaterSettings(OverridableSettings):
    """Thresholds and defaults of black-odorous water, relapse warnings and patrols."""

    model_config = SettingsConfigDict(
        env_prefix="GIS_WATER_", env_file=".env", extra="ignore"
    )

    # --- black-odorous grades, 2015 guideline table [S] -------------------------
    transparency_mild_cm: float = Field(
        25.0,
        description="Transparency below this is mild black-odorous "
        "(2015 guideline, 10-25 cm) [S].",
    )
    transparency_severe_cm: float = Field(
        10.0, description="Transparency below this is severe (2015 guideline) [S]."
    )
    do_mild_mg_l: float = Field(
        2.0, description="DO below this is mild (2015 guideline, 0.2-2.0 mg/L) [S]."
    )
    do_severe_mg_l: float = Field(
        0.2, description="DO below this is severe (2015 guideline) [S]."
    )
    orp_mild_mv: float = Field(
        50.0, description="ORP below this is mild (2015 guideline, -200-50 mV) [S]."
    )
    orp_severe_mv: float = Field(
        -200.0, description="ORP below this is severe (2015 guideline) [S]."
    )
    nh3n_mild_mg_l: float = Field(
        8.0, description="NH3-N above this is mild (2015 guideline, 8-15 mg/L) [S]."
    )
    nh3n_severe_mg_l: float = Field(
        15.0, description="NH3-N above this is severe (2015 guideline) [S]."
    )
    shallow_depth_cm: float = Field(
        25.0,
        description="Water shallower than this uses the shallow-water "
        "transparency rule (2015 guideline) [S].",
    )
    shallow_transparency_fraction: float = Field(
        0.4,
        description="In shallow water the mild transparency limit is this "
        "fraction of the depth (2015 guideline) [S]; the severe limit is scaled by "
        "the same ratio (severe/mild) [D].",
    )
    shallow_clear_to_bottom: bool = Field(
        True,
        description="Shallow water clear to the bottom (transparency >= "
        "depth) is not black-odorous (2015 guideline) [S].",
    )
    # --- sampling point and water body rules [S] ---------------------------------
    point_one_indicator_fraction: float = Field(
        0.6,
        description="A point is severe when one indicator is severe in at least "
        "this fraction of its readings (2015 guideline) [S].",
    )
    point_two_indicator_fraction: float = Field(
        0.3,
        description="...or two or more indicators in at least this fraction "
        "(2015 guideline) [S].",
    )
    point_min_readings: int = Field(
        3,
        description="A point needs this many readings to be graded with "
        "confidence (2015 guideline: sampled at least 3 times) [S].",
    )
    consecutive_severe_points: int = Field(
        3,
        description="This many consecutive severe points make the stretch "
        "between them severe (2015 guideline) [S].",
    )
    water_body_severe_fraction: float = Field(
        0.6,
        description="At least this fraction of severe points makes the whole "
        "water body severe (2015 guideline) [S].",
    )
    # --- relapse early warning ---------------------------------------------------
    turbidity_critical_ntu: float = Field(
        46.9,
        description="Critical turbidity for relapse (环境工程学报 20(3):709-718, "
        "2026) [S]; used as an early-warning default [D].",
    )
    relapse_do_mg_l: float = Field(
        2.0,
        description="Early warning when DO is below this (GB 3838 class V "
        "lower limit, i.e. 劣V) [D].",
    )
    relapse_nh3n_mg_l: float = Field(
        2.0,
        description="Early warning when NH3-N is above this (GB 3838 class V "
        "upper limit, i.e. 劣V) [D].",
    )
    # --- prediction and warning levels [D] ---------------------------------------
    yellow_probability: float = Field(
        0.30, description="Predicted probability from which a segment is yellow [D]."
    )
    orange_probability: float = Field(
        0.55, description="Predicted probability from which a segment is orange [D]."
    )
    red_probability: float = Field(
        0.80, description="Predicted probability from which a segment is red [D]."
    )
    severe_grade_level: str = Field(
        "red",
        description="Warning level at least given to a segment graded "
        "severe by the standard [D].",
    )
    mild_grade_level: str = Field(
        "orange",
        description="Warning level at least given to a segment graded "
        "mild by the standard [D].",
    )
    early_warning_level: str = Field(
        "yellow",
        description="Warning level at least given by a relapse "
        "early-warning rule (remediated and mild, 劣V DO/NH3-N, turbidity) [D].",
    )
    overdue_patrol_level: str = Field(
        "yellow",
        description="Warning level given to a segment whose patrol is "
        "overdue (2021 guidance: overdue patrol is a problem warning) [D].",
    )
    recent_days: int = Field(
        30, ge=1, description="Readings this recent describe the current state [D]."
    )
    lookback_days: int = Field(
        180,
        ge=1,
        description="Readings this old are used for trends and past relapses [D].",
    )
    pressure_radius_m: float = Field(
        1500.0,
        gt=0,
        description="Construction sites and plants within this "
        "distance of a segment add pollution pressure [D].",
    )
    upstream_decay: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Share of a segment's pressure passed on to "
        "the next segment downstream [D].",
    )
    buffer_m: float = Field(
        300.0, gt=0, description="River buffer for raster zonal statistics [D]."
    )
    clusters: int = Field(8, ge=2, description="KMeans clusters over features [D].")
    self_training_threshold: float = Field(
        0.9,
        gt=0.5,
        lt=1,
        description="Confidence from which SelfTrainingClassifier "
        "adopts a pseudo-label [D].",
    )
    top_factors: int = Field(3, ge=1, description="Factors recorded per prediction.")
    model_dir: Path = Field(
        PROJECT_ROOT / "var" / "models" / "water",
        description="Where trained models are saved (joblib, one file per version).",
    )
    # --- patrol frequencies, as intervals in days --------------------------------
    patrol_interval_red_days: float = Field(
        1.0,
        gt=0,
        description="Red: every working day (Guangzhou 2021 guidance "
        "differentiates by level; the value is not published) [D].",
    )
    patrol_interval_orange_days: float = Field(
        7.0, gt=0, description="Orange: weekly [D]."
    )
    patrol_interval_yellow_days: float = Field(
        5.0, gt=0, description="Yellow: twice every ten days [D]."
    )
    patrol_interval_none_days: float = Field(
        10.0,
        gt=0,
        description="No warning: a village chief patrols at least once "
        "every ten days (每旬, 2021 guidance) [S].",
    )
    patrol_interval_town_days: float = Field(
        7.0,
        gt=0,
        description="Town/street chiefs at least weekly for black-odorous "
        "water (2019 guidance) [S]; longest interval for town chiefs.",
    )
    patrol_interval_district_days: float = Field(
        30.0, gt=0, description="District chiefs, longest interval [D]."
    )
    patrol_interval_city_days: float = Field(
        91.0,
        gt=0,
        description="City chiefs at least quarterly, not differentiated "
        "by warning level (2021 guidance) [S].",
    )
    patrol_min_minutes: float = Field(
        10.0, description="A patrol lasts at least this long (2021 guidance) [S]."
    )
    patrol_min_km: float = Field(
        1.0, description="A patrol covers at least this distance (2021 guidance) [S]."
    )
    patrol_grace_days: float = Field(
        0.0, ge=0, description="Days after the due date before a patrol is overdue [D]."
    )
    # --- what a recorded patrol may say (checked for the API and the CLI) --------
    patrol_max_minutes: float = Field(
        24 * 60.0,
        gt=0,
        description="A recorded patrol lasts at most this long: one patrol is "
        "one outing, not a day's log [D].",
    )
    patrol_max_km: float = Field(
        500.0,
        gt=0,
        description="A recorded patrol covers at most this distance (more is "
        "a unit mistake, metres for km) [D].",
    )
    patrol_clock_skew_minutes: float = Field(
        5.0,
        ge=0,
        description="A patrol may start at most this far after the server's "
        "clock (a phone's clock running ahead); later is refused as a patrol "
        "that has not happened yet [D].",
    )

    def patrol_interval_days(self, level: str, chief_level: str | None) -> float:
        """Days between patrols at warning ``level`` for a chief of ``chief_level``.

        City chiefs are not differentiated by level; town and district chiefs
        patrol at least as often as their own minimum.

        >>> s = WaterSettings()
        >>> s.patrol_interval_days("red", "village")
        1.0
        >>> s.patrol_interval_days("none", "city")
        91.0
        """
        if chief_level == "city":
            return self.patrol_interval_city_days
        by_level = {
            "red": self.patrol_interval_red_days,
            "orange": self.patrol_interval_orange_days,
            "yellow": self.patrol_interval_yellow_days,
            "none": self.patrol_interval_none_days,
        }[level]
        if chief_level == "town":
            return min(by_level, self.patrol_interval_town_days)
        if chief_level == "district" and level == "none":
            return self.patrol_interval_district_days
        return by_level


@cached
def water_settings() -> WaterSettings:
    return WaterSettings()
