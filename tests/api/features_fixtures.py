"""The synthetic rows the features API tests load and check against."""

from __future__ import annotations

import datetime as dt
import json

from fastapi import FastAPI

from gis_server.app import create_app
from gis_server.auth.settings import AuthSettings
from gis_server.features.config import FeaturesSettings
from gis_server.limits import LimitSettings
from gis_server.settings import DatabaseSettings, ServerSettings

#: The synthetic buildings lie in a 6 x 5 grid in this box (lon/lat).
GRID_ORIGIN = (113.30, 23.10)
GRID_STEP = 0.002
BUILDING_SIZE = 0.001
N_BUILDINGS = 30
GRADES = ("A", "B", "C", "D")


def building_box(i: int) -> tuple[float, float, float, float]:
    """The footprint (a square) of synthetic building ``i``."""
    col, row = i % 6, i // 6
    x0 = GRID_ORIGIN[0] + col * GRID_STEP
    y0 = GRID_ORIGIN[1] + row * GRID_STEP
    return (x0, y0, x0 + BUILDING_SIZE, y0 + BUILDING_SIZE)


def building_row(i: int) -> dict:
    """Properties of synthetic building ``i`` (``floors`` is ``i + 1``)."""
    return {
        "source_id": f"b{i}",
        "address": f"{i + 1} 测试路",
        "district": "越秀区" if i % 2 else "天河区",
        "structure": "concrete" if i % 3 else "brick",
        "floors": i + 1,
        "height_m": 3.0 * (i + 1),
        "built_year": 1980 + i,
        "safety_grade": GRADES[i % 4],
        "appraised_on": None
        if i % 5 == 4
        else dt.date(2020, 1, 1) + dt.timedelta(30 * i),
        "historic": i % 7 == 0,
        "use": "residential",
        "extra": json.dumps({"name:en": f"Building {i}", "note": "测试"}),
    }


def make_app(settings: DatabaseSettings, **features: int) -> FastAPI:
    return create_app(
        db=settings,
        server=ServerSettings(log_requests=False),
        features=FeaturesSettings(**{"max_limit": 1000, **features}),
        # these tests are about the features API, not sign-in: demo mode
        auth=AuthSettings(anonymous="read"),
        limits=LimitSettings(rate_limit=False),
    )
