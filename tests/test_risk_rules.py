"""Pure risk rules: schedules, radii, scores, downstream accumulation, Gi*."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from models.risk import scoring
from models.risk.grid import normalise
from models.risk.hotspot import classify, gi_star
from models.risk.network import accumulate_downstream
from models.risk.settings import RiskSettings

S = RiskSettings()
D = dt.date


# -- curtain-wall schedule (JGJ 102-2003 §12.2), each side of each threshold -------
#
# The schedule is models.wall_schedule's (shared with the supervision rules and
# the housing page); these cases check what a fall zone makes of it.

SILICONE_SAMPLED = [("adhesive_sampling", D(2020, 1, 1))]


@pytest.mark.parametrize(
    ("support", "accepted", "checked", "life", "today", "overdue", "past_life",
     "checks"),
    [
        # first check one year after acceptance
        ("frame", D(2020, 3, 1), None, 25, D(2021, 3, 1), False, False, []),
        ("frame", D(2020, 3, 1), None, 25, D(2021, 3, 2), True, False, []),
        # then every five years
        ("frame", D(2020, 3, 1), D(2021, 3, 1), 25, D(2026, 3, 1), False, False, []),
        ("frame", D(2020, 3, 1), D(2021, 3, 1), 25, D(2026, 3, 2), True, False, []),
        # structural silicone: adhesive sampled at ten years, a check of its own
        ("structural_silicone", D(2010, 1, 1), D(2016, 1, 1), 25, D(2020, 1, 1),
         False, False, []),
        ("structural_silicone", D(2010, 1, 1), D(2016, 1, 1), 25, D(2020, 1, 2),
         True, False, []),
        # ... then every three years after the sampling
        ("structural_silicone", D(2010, 1, 1), D(2020, 1, 1), 25, D(2023, 1, 1),
         False, False, SILICONE_SAMPLED),
        ("structural_silicone", D(2010, 1, 1), D(2020, 1, 1), 25, D(2023, 1, 2),
         True, False, SILICONE_SAMPLED),
        # a safety check is not an adhesive sampling
        ("structural_silicone", D(2010, 1, 1), D(2020, 1, 1), 25, D(2020, 1, 2),
         True, False, []),
        # the same dates are fine for a frame wall (5 years)
        ("frame", D(2010, 1, 1), D(2020, 1, 1), 25, D(2023, 1, 2), False, False, []),
        # point- and cable-supported: every three years
        ("point", D(2015, 1, 1), D(2021, 1, 1), 25, D(2024, 1, 1), False, False, []),
        ("point", D(2015, 1, 1), D(2021, 1, 1), 25, D(2024, 1, 2), True, False, []),
        ("cable", D(2015, 1, 1), D(2021, 1, 1), 25, D(2024, 1, 2), True, False, []),
        # design life reached: a check falls due on that day ...
        ("frame", D(2000, 1, 1), D(2023, 6, 1), 25, D(2024, 12, 31), False, False,
         []),
        ("frame", D(2000, 1, 1), D(2023, 6, 1), 25, D(2025, 1, 1), False, True, []),
        ("frame", D(2000, 1, 1), D(2023, 6, 1), 25, D(2025, 1, 2), True, True, []),
        # ... and every year after it
        ("frame", D(2000, 1, 1), D(2025, 2, 1), 25, D(2026, 2, 1), False, True, []),
        ("frame", D(2000, 1, 1), D(2025, 2, 1), 25, D(2026, 2, 2), True, True, []),
        # a missing design life is taken as 25 years
        ("frame", D(2000, 1, 1), D(2025, 2, 1), None, D(2026, 2, 2), True, True, []),
        # a shorter declared design life counts
        ("frame", D(2010, 1, 1), D(2019, 1, 1), 10, D(2020, 1, 2), True, True, []),
        # the checks feed counts as much as the layer's last_checked_on
        ("frame", D(2014, 1, 1), D(2015, 1, 1), 25, D(2026, 12, 3), False, False,
         [("safety_check", D(2026, 6, 1))]),
    ],
)
def test_wall_schedule(support, accepted, checked, life, today, overdue, past_life,
                       checks):
    status = scoring.wall_status(support, accepted, checked, life, None, today, S,
                                 checks=checks)
    assert status.overdue is overdue
    assert status.past_design_life is past_life
    assert bool(status.reasons) is (overdue or past_life)


def test_one_schedule_for_zones_and_supervision():
    """The audit's case: checked 2015 in the layer, 2026-06-01 in the feed."""
    from models.supervision.buildings import BuildingRules
    from models.wall_schedule import next_checks

    wall = {"support_type": "frame", "accepted_on": D(2014, 1, 1),
            "last_checked_on": D(2015, 1, 1), "design_life_years": 25}
    feed = [("safety_check", D(2026, 6, 1))]
    today = D(2026, 12, 3)
    (due,) = next_checks(wall, feed, [], today, BuildingRules())
    st = scoring.wall_status("frame", D(2014, 1, 1), D(2015, 1, 1), 25, None, today,
                             S, checks=feed)
    assert due.due_on == st.next_due == D(2031, 6, 1)
    assert not st.overdue and st.reasons == []


def test_wall_overdue_years_are_stepwise():
    due = D(2021, 1, 1)   # frame wall accepted 2020-01-01, never checked
    for today, years in [(D(2021, 1, 2), 1), (D(2022, 1, 1), 1),
                         (D(2022, 1, 2), 2), (D(2024, 6, 1), 4)]:
        st = scoring.wall_status("frame", D(2020, 1, 1), None, 25, None, today, S)
        assert st.next_due == due
        assert st.overdue_years == years


@pytest.mark.parametrize(
    ("flag", "appraised", "flagged"),
    [
        ("2026-09-20", None, True),            # typhoon, no appraisal since
        ("2026-09-20", D(2026, 9, 19), True),  # appraised the day before
        ("2026-09-20", D(2026, 9, 20), False),  # appraised on the day: met
        (True, None, True),                    # no date: until an appraisal
        ("true", D(2020, 10, 1), False),       # any appraisal on record meets it
        (False, None, False),
        (None, None, False),
        ("not a date", None, False),
    ],
)
def test_typhoon_flag(flag, appraised, flagged):
    checks = [("appraisal", appraised)] if appraised else []
    st = scoring.wall_status("frame", D(2025, 1, 1), D(2026, 9, 25), 25, flag,
                             D(2026, 10, 2), S, checks=checks)
    assert st.typhoon is flagged
    assert ("typhoon" in st.reasons) is flagged


def test_typhoon_flag_is_not_cleared_by_a_routine_check():
    # JGJ 102: an appraisal after a typhoon, not the periodic check
    st = scoring.wall_status("frame", D(2025, 1, 1), D(2026, 9, 25), 25,
                             "2026-09-20", D(2026, 10, 2), S,
                             checks=[("safety_check", D(2026, 9, 30))])
    assert st.reasons == ["typhoon"]


@pytest.mark.parametrize(
    ("events", "appraised", "reasons"),
    [
        ([("burst_glass", D(2026, 9, 1))], None, ["event_appraisal"]),
        ([("burst_glass", D(2026, 9, 1))], D(2026, 9, 1), []),
        ([("typhoon", D(2026, 9, 1)), ("fire", D(2026, 9, 5))], D(2026, 9, 2),
         ["event_appraisal"]),
    ],
)
def test_events_of_the_feed_give_a_zone(events, appraised, reasons):
    checks = [("appraisal", appraised)] if appraised else []
    st = scoring.wall_status("frame", D(2025, 1, 1), D(2026, 1, 5), 25, None,
                             D(2026, 10, 2), S, checks=checks, events=events)
    assert st.reasons == reasons


@pytest.mark.parametrize(
    ("grade", "graded_on", "appraised", "dangerous"),
    [
        ("D", D(2026, 3, 1), None, True),
        ("D", D(2026, 3, 1), D(2026, 2, 28), True),   # appraised before the grade
        ("D", D(2026, 3, 1), D(2026, 3, 2), False),
        ("C", None, None, True),                      # grade without its date
        ("C", None, D(2019, 1, 1), False),            # ... any appraisal meets it
        ("B", D(2026, 3, 1), None, False),
    ],
)
def test_dangerous_building_gives_a_zone(grade, graded_on, appraised, dangerous):
    checks = [("appraisal", appraised)] if appraised else []
    st = scoring.wall_status("frame", D(2025, 1, 1), D(2026, 1, 5), 25, None,
                             D(2026, 10, 2), S, checks=checks, building_grade=grade,
                             building_appraised_on=graded_on)
    assert st.dangerous_building is dangerous
    assert ("dangerous_building" in st.reasons) is dangerous
    if dangerous:
        assert scoring.wall_score(st, 0, 0, 0.0, S) == S.wall_dangerous_building_score


def test_wall_without_acceptance_date_is_not_scheduled():
    st = scoring.wall_status("frame", None, None, None, None, D(2026, 1, 1), S)
    assert st.reasons == [] and st.next_due is None


def test_legacy_schedule_env_names(monkeypatch):
    from models.supervision.buildings import BuildingRules
    from models.wall_schedule import WallScheduleRules

    monkeypatch.setenv("GIS_RISK_WALL_CHECK_INTERVAL_YEARS", "4")
    assert WallScheduleRules().wall_check_interval_years == 4
    assert BuildingRules().wall_check_interval_years == 4
    monkeypatch.setenv("GIS_RULES_BUILDINGS_WALL_CHECK_INTERVAL_YEARS", "6")
    assert WallScheduleRules().wall_check_interval_years == 6  # the new name wins
    assert WallScheduleRules(wall_check_interval_years=2).wall_check_interval_years == 2
    assert "wall_check_interval_years" in S.params("curtain_wall")


@pytest.mark.parametrize("module", ["models.risk.scoring", "models.wall_schedule"])
def test_doctests(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted >= 5 and result.failed == 0


def test_leap_day():
    assert scoring.add_years(D(2024, 2, 29), 5) == D(2029, 2, 28)


# -- radii and scores -----------------------------------------------------------------


def test_building_radius_by_grade_and_height():
    assert scoring.building_radius("D", 30.0, S) == 30.0
    assert scoring.building_radius("C", 30.0, S) == 15.0
    assert scoring.building_radius("C", 12.0, S) == S.building_min_radius_m
    assert scoring.building_radius("D", 900.0, S) == S.building_max_radius_m
    custom = RiskSettings(d_radius_factor=1.5, c_radius_factor=0.8)
    assert scoring.building_radius("D", 30.0, custom) == 45.0
    assert scoring.building_radius("C", 30.0, custom) == 24.0


def test_height_fallbacks():
    assert scoring.building_height(None, 4, S) == 12.0
    assert scoring.building_height(0.0, None, S) == S.default_building_height_m


def test_levels():
    assert scoring.level_for(0.99, 1.0, 2.0) == "yellow"
    assert scoring.level_for(1.0, 1.0, 2.0) == "orange"
    assert scoring.level_for(2.0, 1.0, 2.0) == "red"


def test_wall_score_takes_worst_reason():
    st = scoring.WallStatus(None, True, 1, True, True)
    assert scoring.wall_score(st, 0, 0, 0.0, S) == S.wall_typhoon_score
    st = scoring.WallStatus(None, True, 1, True, False)
    assert scoring.wall_score(st, 0, 0, 0.0, S) == S.wall_past_life_score
    st = scoring.WallStatus(None, False, 0, False, False, event_appraisal=True)
    assert scoring.wall_score(st, 0, 0, 0.0, S) == S.wall_typhoon_score


def test_source_pressure_decays_linearly():
    assert scoring.source_pressure(0.0, 2.0, 1.0, S) == 2.0
    assert scoring.source_pressure(250.0, 2.0, 1.0, S) == pytest.approx(1.0)
    assert scoring.source_pressure(500.0, 2.0, 1.0, S) == 0.0


# -- accumulation ----------------------------------------------------------------------


def test_accumulation_confluence_and_attenuation():
    local = {"a": 1.0, "b": 2.0, "c": 0.5, "d": 0.0}
    down = {"a": "c", "b": "c", "c": "d", "d": None}
    acc, cycles = accumulate_downstream(local, down)
    assert acc == {"a": 1.0, "b": 2.0, "c": 3.5, "d": 3.5} and cycles == []
    acc, _ = accumulate_downstream(local, down, attenuation=0.5)
    assert acc["c"] == pytest.approx(0.5 + 0.5 * 3.0)
    assert acc["d"] == pytest.approx(0.5 * acc["c"])


def test_accumulation_survives_cycles_and_dangling_codes():
    acc, cycles = accumulate_downstream({"a": 1.0, "b": 1.0, "x": 2.0},
                                        {"a": "b", "b": "a", "x": "nowhere"})
    assert cycles == ["a", "b"]
    assert acc["x"] == 2.0


# -- Gi* -------------------------------------------------------------------------------


def _gi_brute(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    rows, cols = x.shape
    vals = x[mask]
    n = vals.size
    mean = vals.mean()
    s = np.sqrt((vals**2).mean() - mean**2)
    z = np.full(x.shape, np.nan)
    for r in range(rows):
        for c in range(cols):
            if not mask[r, c]:
                continue
            nb = [(rr, cc) for rr in range(r - 1, r + 2) for cc in range(c - 1, c + 2)
                  if 0 <= rr < rows and 0 <= cc < cols and mask[rr, cc]]
            w = len(nb)
            lag = sum(x[p] for p in nb)
            z[r, c] = (lag - mean * w) / (s * np.sqrt((n * w - w * w) / (n - 1)))
    return z


def test_gi_star_matches_the_formula():
    rng = np.random.default_rng(7)
    x = rng.gamma(1.0, 1.0, size=(9, 11))
    mask = rng.random((9, 11)) > 0.15
    z, p = gi_star(x, mask)
    expected = _gi_brute(x, mask)
    np.testing.assert_allclose(z[mask], expected[mask], rtol=1e-9)
    assert np.isnan(z[~mask]).all()
    assert ((p[mask] >= 0) & (p[mask] <= 1)).all()


def test_gi_star_finds_a_cluster():
    x = np.zeros((15, 15))
    x[5:8, 5:8] = 5.0
    z, p = gi_star(x)
    klass = classify(z, p, 0.05)
    assert klass[6, 6] == "hot"
    assert klass[0, 0] == "not_significant"
    assert (klass == "hot").sum() >= 9


def test_fdr_is_stricter_than_per_cell_alpha():
    rng = np.random.default_rng(3)
    x = rng.gamma(0.3, 1.0, size=(60, 60))
    x[20:24, 20:24] += 8.0
    z, p = gi_star(x)
    plain = classify(z, p, 0.05)
    fdr = classify(z, p, 0.05, fdr=True)
    assert (fdr == "hot").sum() <= (plain == "hot").sum()
    assert fdr[21, 21] == "hot"
    assert ((fdr != "not_significant") <= (plain != "not_significant")).all()


def test_normalise_caps_at_quantile():
    v = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 100.0])   # 0.75 quantile of non-zero: 4
    out = normalise(v, 0.75)
    assert out[0] == 0.0 and out[-1] == 1.0 and out[2] == pytest.approx(0.5)
