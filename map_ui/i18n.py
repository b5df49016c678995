"""Page labels in Chinese (default) and English (``?lang=en``)."""

from __future__ import annotations

from typing import Literal

from layers import LayerSpec

Lang = Literal["zh", "en"]

#: key -> (Chinese, English)
LABELS: dict[str, tuple[str, str]] = {
    "river_chief_title": ("河长巡河地图", "River chief map"),
    "housing_title": ("房屋安全地图", "Housing safety map"),
    "analyst_title": ("分析地图", "Analyst map"),
    "chief": ("河长", "River chief"),
    "segments": ("河段", "Segments"),
    "stations": ("水质监测点", "Monitoring stations"),
    "risk_zones": ("附近风险区", "Nearby risk zones"),
    "pollution_sources": ("附近污染源", "Nearby pollution sources"),
    "tasks": ("巡河任务（按紧急程度）", "Patrol tasks (most urgent first)"),
    "no_tasks": ("暂无巡河任务", "No patrol tasks"),
    "due": ("应巡时间", "Due"),
    "overdue": ("已逾期", "Overdue"),
    "days": ("天", "days"),
    "patrols": ("已巡/应巡", "Done/required"),
    "warning_level": ("预警等级", "Warning level"),
    "latest": ("最新读数", "Latest reading"),
    "trend": ("近{days}天趋势", "Last {days} days"),
    "no_readings": ("暂无读数", "No readings"),
    "legend_warning": ("河段预警等级", "Segment warning level"),
    "legend_grade": ("房屋安全等级", "Building safety grade"),
    "grade": ("安全等级", "Safety grade"),
    "district": ("行政区", "District"),
    "all_districts": ("全部行政区", "All districts"),
    "filter": ("筛选", "Filter"),
    "buildings": ("房屋", "Buildings"),
    "curtain_walls_due": ("到期/逾期玻璃幕墙", "Curtain walls due or overdue"),
    "wall_due": ("幕墙检查即将到期", "Curtain wall check due"),
    "wall_overdue": ("幕墙检查已逾期", "Curtain wall check overdue"),
    "hazard_zones": ("危房与幕墙风险区", "Hazard and fall zones"),
    "hazard_list": ("隐患清单", "Hazard list"),
    "hazard_buildings": ("隐患房屋", "Buildings at risk"),
    "overdue_walls": ("逾期幕墙", "Overdue curtain walls"),
    "address": ("地址", "Address"),
    "next_check": ("下次检查", "Next check"),
    "next_due": ("下次检查", "Next check"),
    "status": ("状态", "Status"),
    "kind": ("类型", "Kind"),
    "building": ("房屋", "Building"),
    "curtain_wall": ("玻璃幕墙", "Curtain wall"),
    "shown_of": ("显示 {shown} / 共 {total} 条", "showing {shown} of {total}"),
    "zoom_hint": ("{layer}在{zoom}级及以上显示", "{layer} shown from zoom {zoom}"),
    "layers": ("图层", "Layers"),
    "download": ("框选下载", "Download a box"),
    "download_hint": (
        "在地图上画一个矩形，下载所选图层在框内的要素",
        "Draw a rectangle on the map to download the chosen layer inside it",
    ),
    "layer": ("图层", "Layer"),
    "ogc_api": ("OGC API 接口", "OGC API"),
    "landing": ("服务首页", "Landing page"),
    "collections": ("图层列表", "Collections"),
    "openapi": ("接口文档", "API documentation"),
    "features": ("要素", "features"),
    "raster": ("栅格", "Raster"),
    "risk_grid": ("综合风险网格", "Composite risk grid"),
    "basemap": ("底图", "Basemap"),
    "language": ("English", "中文"),
    "unknown_chief": ("未找到河长", "Unknown river chief"),
    "chief_overview": ("河长列表", "River chiefs"),
}

LEVEL_NAMES: dict[str, tuple[str, str]] = {
    "none": ("无", "none"),
    "yellow": ("黄色", "yellow"),
    "orange": ("橙色", "orange"),
    "red": ("红色", "red"),
}

INDICATOR_NAMES: dict[str, tuple[str, str]] = {
    "do": ("溶解氧", "DO"),
    "nh3n": ("氨氮", "NH3-N"),
    "transparency": ("透明度", "Transparency"),
    "turbidity": ("浊度", "Turbidity"),
    "orp": ("氧化还原电位", "ORP"),
    "cod": ("化学需氧量", "COD"),
    "codmn": ("高锰酸盐指数", "COD_Mn"),
    "bod5": ("五日生化需氧量", "BOD5"),
    "tp": ("总磷", "TP"),
    "ph": ("pH", "pH"),
    "depth": ("水深", "Depth"),
    "rainfall": ("降雨量", "Rainfall"),
}


def parse_lang(value: str | None, default: Lang = "zh") -> Lang:
    """``zh`` or ``en`` from a ``lang`` parameter (anything else: the default).

    >>> parse_lang("en"), parse_lang("EN-us"), parse_lang(None), parse_lang("fr")
    ('en', 'en', 'zh', 'zh')
    """
    if value and value.lower().startswith("en"):
        return "en"
    if value and value.lower().startswith("zh"):
        return "zh"
    return default


def _pick(pair: tuple[str, str], lang: Lang) -> str:
    return pair[0] if lang == "zh" else pair[1]


def t(key: str, lang: Lang, **fmt: object) -> str:
    """The label ``key`` in ``lang``, formatted with ``fmt``.

    >>> t("trend", "en", days=90)
    'Last 90 days'
    """
    text = _pick(LABELS[key], lang)
    return text.format(**fmt) if fmt else text


def level_name(level: str | None, lang: Lang) -> str:
    return _pick(LEVEL_NAMES.get(level or "none", (level or "", level or "")), lang)


def indicator_name(code: str, lang: Lang) -> str:
    return _pick(INDICATOR_NAMES.get(code, (code, code)), lang)


def layer_title(spec: LayerSpec, lang: Lang) -> str:
    return spec.title_zh if lang == "zh" and spec.title_zh else spec.title


def property_titles(spec: LayerSpec, lang: Lang) -> dict[str, str]:
    """Property name -> its title in ``lang`` (popups)."""
    return {
        p.name: (p.title_zh if lang == "zh" and p.title_zh else p.title)
        for p in spec.properties
    }
