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
        description="[S] A raised warning not dispatched within this many days is "
        "overdue (Guangzhou 2019 guidance: reported within one working day; "
        "approximated by one calendar day).",
    )
    escalation_interval_days: float = Field(
        default=7.0,
        gt=0,
        description="[D] An overdue warning escalates at most once per this many "
        "days (督办 -> 约谈 -> 通报).",
    )
    evidence_dir: Path = Field(
        default=PROJECT_ROOT / "var" / "evidence",
        description="Where rectification photos and files are stored, by sha256.",
    )
    evidence_max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1, description="Largest evidence file accepted."
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
