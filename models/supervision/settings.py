"""Settings of the warning loop (``GIS_LOOP_*``): deadlines, escalation, evidence."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from gis_server.overrides import OverridableSettings, cached
from gis_server.settings import PROJECT_ROOT


class LoopSettings(OverridableSettings):
    """How warnings move along their loop and where their evidence is kept."""

    model_config = SettingsConfigDict(
        env_prefix="GIS_LOOP_", env_file=".env", extra="ignore"
    )

    deadline_days_yellow: int = Field(
        default=7,
        ge=1,
        description="[D] Rectification deadline of a yellow warning, days "
        "(DOMAIN §6: general problem 7 days).",
    )
    deadline_days_orange: int = Field(
        default=15,
        ge=1,
        description="[D] Rectification deadline of an orange warning, days "
        "(DOMAIN §6: serious problem 15 days).",
    )
    deadline_days_red: int = Field(
        default=30,
        ge=1,
        description="[D] Rectification deadline of a red warning, days "
        "(DOMAIN §6: severe problem 30 days, with supervised listing).",
    )
    dispatch_within_days: float = Field(
        default=1.0,
        gt=0,
        description="[D] A raised warning not dispatched within this many "
        "calendar days is overdue. Design default: no rule sets a time to "
        "dispatch a warning; one day is borrowed from the 2019 Guangzhou "
        "guidance [S], where a village river chief reports a problem they cannot "
        "solve within one working day (a different step, and working days, "
        "which this count does not skip).",
    )
    verify_within_days: float = Field(
        default=7.0,
        gt=0,
        description="[D] A rectified warning not verified (closed or sent back) "
        "within this many calendar days of the reply is overdue and escalates "
        "like the other steps. Design default: a week to check a reply, on site "
        "when needed; no rule found sets it.",
    )
    escalation_interval_days: float = Field(
        default=7.0,
        gt=0,
        description="[D] An overdue warning escalates at most once per this many "
        "days (督办 -> 约谈 -> 通报).",
    )
    reopen_after_days: float = Field(
        default=30.0,
        ge=0,
        description="[D] A closed warning's key raises a new occurrence only for "
        "a finding observed later than this many days after the closure: until "
        "then the record feeds may still show the condition a rectification "
        "verified on site has removed (a monthly feed, a late upload). Design "
        "default: one monthly reporting cycle.",
    )
    four_eyes: bool = Field(
        default=True,
        description="[D] Four-eyes rule: the person who recorded a "
        "rectification may not verify it (close or send it back). Design default "
        "(separation of duties).",
    )
    evidence_dir: Path = Field(
        default=PROJECT_ROOT / "var" / "evidence",
        description="Where rectification photos and files are stored, by sha256.",
    )
    evidence_max_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=1,
        description="[D] Largest evidence file accepted, in bytes (413 above). "
        "Keep it under GIS_LIMITS_MAX_UPLOAD_BYTES, the body limit of the upload "
        "routes, or that generic limit answers first.",
    )
    fallback_lon: float = Field(
        default=113.2644,
        description="Longitude of warnings whose subject has no position "
        "(Guangzhou city hall).",
    )
    fallback_lat: float = Field(default=23.1291, description="Latitude, likewise.")

    def deadline_days(self, level: str) -> int:
        """Days a party has to rectify a warning of ``level``."""
        return {
            "yellow": self.deadline_days_yellow,
            "orange": self.deadline_days_orange,
            "red": self.deadline_days_red,
        }[level]


@cached
def loop_settings() -> LoopSettings:
    return LoopSettings()
