"""Hand-made cases for the black-odorous grades and GB 3838-2002 classes."""

from __future__ import annotations

import pytest

from models.water.settings import WaterSettings
from models.water.standards import (
    MILD,
    NONE,
    SEVERE,
    gb3838_class,
    gb3838_class_index,
    grade_indicators,
    grade_point,
    grade_reading,
    grade_water_body,
)

S = WaterSettings()


@pytest.mark.parametrize(
    ("indicator", "value", "grade"),
    [
        ("transparency", 25.0, NONE),
        ("transparency", 24.9, MILD),
        ("transparency", 10.0, MILD),
        ("transparency", 9.9, SEVERE),
        ("do", 2.0, NONE),
        ("do", 1.99, MILD),
        ("do", 0.2, MILD),
        ("do", 0.19, SEVERE),
        ("orp", 50.0, NONE),
        ("orp", 49.0, MILD),
        ("orp", -200.0, MILD),
        ("orp", -201.0, SEVERE),
        ("nh3n", 8.0, NONE),
        ("nh3n", 8.01, MILD),
        ("nh3n", 15.0, MILD),
        ("nh3n", 15.01, SEVERE),
    ],
)
def test_indicator_thresholds(indicator, value, grade):
    assert int(grade_indicators({indicator: value}, S)[indicator][0]) == grade


def test_shallow_water_transparency_limit_is_40_percent_of_depth():
    # 20 cm deep: mild limit 8 cm, severe limit 8 * 10/25 = 3.2 cm
    g = grade_indicators(
        {"transparency": [8.5, 7.9, 3.0, 12.0], "depth": [20, 20, 20, 40]}, S
    )["transparency"]
    assert g.tolist() == [NONE, MILD, SEVERE, MILD]


def test_shallow_water_clear_to_bottom_is_not_black():
    clear = {"transparency": 15.0, "depth": 15.0, "do": 0.1, "nh3n": 20.0}
    assert int(grade_reading(clear, S)[0]) == NONE
    murky = dict(clear, transparency=14.0)
    assert int(grade_reading(murky, S)[0]) == SEVERE
    deep = dict(clear, depth=30.0, transparency=30.0)  # not shallow: rule off
    assert int(grade_reading(deep, S)[0]) == SEVERE


def test_point_60_percent_rule():
    three_of_five = grade_point({"do": [0.1, 0.1, 0.1, 3, 3]}, S)
    assert three_of_five.name == "severe"
    two_of_five = grade_point({"do": [0.1, 0.1, 3, 3, 3]}, S)
    assert two_of_five.name == "mild"


def test_point_two_indicators_30_percent_rule():
    # DO and NH3-N each severe in 3 of 10 readings (30 %): severe
    do = [0.1] * 3 + [3.0] * 7
    nh = [3.0] * 7 + [16.0] * 3
    assert grade_point({"do": do, "nh3n": nh}, S).name == "severe"
    # only 2 of 10 for NH3-N (20 %): one indicator at 30 % is not enough
    nh2 = [3.0] * 8 + [16.0] * 2
    assert grade_point({"do": do, "nh3n": nh2}, S).name == "mild"


def test_point_clean_and_few_readings():
    p = grade_point({"do": [5.0, 6.0]}, S)
    assert p.name == "none" and not p.enough_readings


def test_water_body_consecutive_points():
    assert grade_water_body([0, 2, 2, 2, 0, 0, 0, 0], S).severe_stretches == ((1, 3),)
    assert grade_water_body([0, 2, 2, 0, 2, 2, 0, 0], S).severe_stretches == ()
    assert grade_water_body([0, 2, 2, 0, 2, 2, 0, 0], S).name == "mild"


def test_water_body_60_percent_severe_points():
    assert grade_water_body([2, 2, 0, 2, 0], S).name == "severe"  # 60 %
    assert grade_water_body([2, 0, 2, 0, 0], S).name == "mild"  # 40 %
    assert grade_water_body([0, 0, 0], S).name == "none"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"do": 7.5}, "I"),
        ({"do": 7.49}, "II"),
        ({"do": 2.0}, "V"),
        ({"do": 1.9}, "劣V"),
        ({"nh3n": 0.15}, "I"),
        ({"nh3n": 0.16}, "II"),
        ({"nh3n": 2.0}, "V"),
        ({"nh3n": 2.01}, "劣V"),
        ({"cod": 15}, "I"),
        ({"cod": 16}, "III"),
        ({"tp": 0.2}, "III"),
        ({"codmn": 10.5}, "V"),
        ({"ph": 5.9}, "劣V"),
        ({"do": 6.5, "nh3n": 0.4, "tp": 0.25}, "IV"),
    ],
)
def test_gb3838_classes(values, expected):
    assert gb3838_class(values)[0] == expected
    vec = gb3838_class_index({k: [v] for k, v in values.items()})
    assert ("I", "II", "III", "IV", "V", "劣V")[int(vec[0])] == expected


def test_gb3838_lake_phosphorus():
    assert gb3838_class({"tp": 0.04}, lake=True)[0] == "III"
    assert gb3838_class({"tp": 0.04})[0] == "II"
