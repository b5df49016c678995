"""Settings of the map pages (``GIS_MAP_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Presets of ``GIS_MAP_BASEMAP``: tile URL template, subdomains, datum, attribution.
BASEMAP_PRESETS: dict[str, dict[str, str]] = {
    "osm": {
        "url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        "subdomains": "abc",
        "datum": "wgs84",
        "attribution": "&copy; OpenStreetMap contributors",
    },
    "amap": {
        "url": "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1"
        "&scale=1&style=8&x={x}&y={y}&z={z}",
        "subdomains": "1234",
        "datum": "gcj02",
        "attribution": "&copy; 高德地图 AutoNavi",
    },
}


class MapSettings(BaseSettings):
    """The interactive map pages (``/maps/...``).

    Every number below without a standard behind it is a design default [D]
    (DOMAIN.md): the distances and windows only decide what is shown.
    """

    model_config = SettingsConfigDict(
        env_prefix="GIS_MAP_", env_file=".env", extra="ignore"
    )

    basemap: str = Field(
        default="none",
        description="`none` (offline default: government networks and tests have "
        "no internet), a preset (`osm`, `amap`) or a tile URL template with "
        "`{z}/{x}/{y}`.",
    )
    basemap_datum: Literal["wgs84", "gcj02"] | None = Field(
        default=None,
        description="Datum of a custom basemap URL; GCJ-02 shifts the data on the "
        "page so it lines up (presets know their own).",
    )
    basemap_attribution: str = Field(default="", description="Attribution of a "
                                     "custom basemap URL.")
    basemap_subdomains: str = Field(default="abc")
    basemap_max_zoom: int = Field(default=19, ge=1, le=24)
    static_url: str = Field(
        default="/static", description="URL prefix the vendored assets are served at."
    )
    default_lang: Literal["zh", "en"] = Field(default="zh")
    inline_max_features: int = Field(
        default=5_000,
        ge=0,
        description="[D] Layers with at most this many features are embedded in the "
        "page; larger ones are drawn from the GeoJSON tiles.",
    )
    analyst_inline_max_features: int = Field(
        default=1_000,
        ge=0,
        description="[D] The analyst page embeds layers up to this size (it holds "
        "every layer, most of them hidden at first); larger ones come from tiles.",
    )
    inline_simplify_m: float = Field(
        default=1.0,
        ge=0,
        description="[D] Embedded lines and polygons are simplified by this much "
        "(hazard-zone circles shrink ~3x; invisible up to zoom 18).",
    )
    list_max_rows: int = Field(
        default=500,
        ge=1,
        description="[D] Most rows in a side list (hazard list); the page says when "
        "rows are left out.",
    )
    trend_days: int = Field(
        default=90, ge=1, description="Days of readings in a station's trend chart."
    )
    trend_indicators: tuple[str, ...] = Field(
        default=("do", "nh3n", "transparency", "turbidity"),
        description="Indicators with a trend chart in a station's popup.",
    )
    nearby_m: float = Field(
        default=1_000.0,
        ge=0,
        description="[D] Risk zones and pollution sources within this distance of a "
        "chief's segments are drawn on the river-chief page.",
    )
    metric_srid: int = Field(
        default=32649,
        description="Metric CRS distances are measured in (UTM zone 49N covers "
        "Guangzhou; 50N for eastern Guangdong).",
    )
    wall_due_within_days: int = Field(
        default=90,
        ge=0,
        description="[D] Curtain walls whose next check falls due within this many "
        "days count as due (overdue ones always show).",
    )
    tile_min_zoom_by_layer: dict[str, int] = Field(
        default={"buildings": 14, "risk_zones": 12},
        description="[D] Per-layer floor of the zoom tiled layers are drawn from: "
        "a zoom-12 tile of the 1,000,000-building city holds up to the tile "
        "feature cap (20,000), and its 40,000 hazard zones at city scale take "
        "seconds to draw -- too many for a browser at once.",
    )
    tile_layer_min_zoom: int = Field(
        default=8,
        ge=0,
        description="Lowest zoom a tiled layer is drawn at, whatever its own range "
        "(each layer's own `min_zoom` applies too: buildings from 12).",
    )

    def basemap_config(self) -> dict[str, str] | None:
        """URL template, subdomains, datum and attribution; None for no basemap."""
        if self.basemap in ("", "none"):
            return None
        preset = BASEMAP_PRESETS.get(self.basemap)
        if preset is not None:
            return dict(preset)
        return {
            "url": self.basemap,
            "subdomains": self.basemap_subdomains,
            "datum": self.basemap_datum or "wgs84",
            "attribution": self.basemap_attribution,
        }

    @property
    def simplify_deg(self) -> float:
        """``inline_simplify_m`` in degrees (of latitude; ~1.1x in longitude)."""
        return self.inline_simplify_m / 111_320.0

    @property
    def datum(self) -> str:
        """Datum the page draws in: the basemap's (WGS84 with no basemap)."""
        config = self.basemap_config()
        return config["datum"] if config else "wgs84"
