"""Features per river segment for the relapse model, and the rules-only baseline.

Features (names are what predictions report as contributing factors):

- recent state from the segment's stations (worst station): share of black-odorous
  and severe readings, mean DO / NH3-N / transparency / turbidity / TP;
- trends over the look-back window (DO, NH3-N slopes per 30 days) and the share
  of black-odorous readings before the recent window, relapse episodes;
- rainfall over the last 7 and 30 days (raster series or station readings);
- pollution pressure: construction sites and plants near the segment, and what
  the segments upstream receive (``downstream_code`` graph), a simple version
  of the risk model's pressure computed here;
- land use: imperviousness of the river buffer (raster zonal statistics);
- remediation state.

Segments without a station get NaN for reading features (imputed by the model)
and ``has_station = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.water.network import Network, accumulate_downstream, local_pressure
from models.water.settings import WaterSettings
from models.water.simulate import Readings
from models.water.standards import (
    MILD,
    SEVERE,
    gb3838_class_index,
    grade_indicators,
    severe_fractions_grade,
)

FEATURES = (
    "has_station",
    "recent_black_share",
    "recent_severe_share",
    "do_recent",
    "nh3n_recent_log",
    "transparency_recent",
    "turbidity_recent",
    "tp_recent",
    "do_trend",
    "nh3n_trend",
    "past_black_share",
    "relapse_episodes",
    "rain_7d_mm",
    "rain_30d_mm",
    "pressure_local",
    "pressure_upstream",
    "impervious",
    "remediated",
)


@dataclass
class SegmentState:
    """Features, standard grades and rules-baseline score of every segment."""

    features: np.ndarray  # (n, len(FEATURES))
    grade: np.ndarray  # 0 none / 1 mild / 2 severe (recent readings, worst point)
    gb3838: np.ndarray  # class index 0..5 of the recent mean (worst station)
    early_warning: np.ndarray  # bool: relapse early-warning rule met
    reasons: list[list[str]]

    @property
    def baseline_score(self) -> np.ndarray:
        """Rules-only score: severe 1, mild 0.75, early warning 0.5, else 0."""
        return np.select(
            [self.grade == SEVERE, self.grade == MILD, self.early_warning],
            [1.0, 0.75, 0.5],
            0.0,
        )


def _group_mean(idx: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    ok = ~np.isnan(values)
    s = np.bincount(idx[ok], weights=values[ok], minlength=n)
    c = np.bincount(idx[ok], minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, s / np.maximum(c, 1), np.nan)


def _group_slope(idx: np.ndarray, t: np.ndarray, v: np.ndarray, n: int) -> np.ndarray:
    ok = ~np.isnan(v)
    idx, t, v = idx[ok], t[ok], v[ok]
    c = np.bincount(idx, minlength=n).astype(float)
    st = np.bincount(idx, t, n)
    sv = np.bincount(idx, v, n)
    stt = np.bincount(idx, t * t, n)
    stv = np.bincount(idx, t * v, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        den = c * stt - st * st
        return np.where((c >= 3) & (den > 0), (c * stv - st * sv) / den, np.nan)


def _worst(seg: np.ndarray, values: np.ndarray, n: int, *, lowest=False) -> np.ndarray:
    """Per segment, the worst station's value (max, or min with ``lowest``)."""
    out = np.full(n, np.inf if lowest else -np.inf)
    ok = ~np.isnan(values)
    (np.minimum if lowest else np.maximum).at(out, seg[ok], values[ok])
    out[np.isinf(out)] = np.nan
    return out


def segment_state(
    net: Network,
    readings: Readings,
    now_day: float,
    settings: WaterSettings,
    *,
    rain: np.ndarray | None = None,
    rain_totals: tuple[np.ndarray, np.ndarray] | None = None,
    impervious: np.ndarray | None = None,
) -> SegmentState:
    """Features, grades and early warnings of every segment at ``now_day``.

    Parameters
    ----------
    net
        The river network.
    readings
        Wide samples; only those in ``[now_day - lookback_days, now_day)`` count.
    now_day
        The scoring time, in the readings' day numbers.
    settings
        Thresholds and windows.
    rain
        (segments, days) daily rain in mm with day 0 = readings' day 0, or None.
    rain_totals
        Rain of the last 7 and 30 days per segment (mm), when known as totals
        (rain gauges, rainfall rasters) rather than a daily series.
    impervious
        Impervious fraction of each segment's buffer, or None.
    """
    n, n_st = len(net), len(net.station_codes)
    s = settings
    win = (readings.day >= now_day - s.lookback_days) & (readings.day < now_day)
    st = readings.station[win]
    day = readings.day[win]
    vals = {k: v[win] for k, v in readings.values.items()}
    grades = grade_indicators(vals, s)
    worst = np.max(np.vstack(list(grades.values())), axis=0)
    recent = day >= now_day - s.recent_days

    def share(mask: np.ndarray, sel: np.ndarray) -> np.ndarray:
        return _group_mean(st[sel], mask[sel].astype(float), n_st)

    st_black = share(worst >= MILD, recent)
    st_severe = share(worst >= SEVERE, recent)
    st_past_black = share(worst >= MILD, ~recent)
    sev_frac = {k: share(g == SEVERE, recent) for k, g in grades.items()}
    st_grade = severe_fractions_grade(sev_frac, np.nan_to_num(st_black) > 0, s)
    st_grade = np.where(np.isnan(st_black), -1, st_grade)
    means = {
        k: _group_mean(st[recent], vals[k][recent], n_st)
        for k in ("do", "nh3n", "transparency", "turbidity", "tp", "codmn", "cod", "ph")
        if k in vals
    }
    st_gb = gb3838_class_index(
        {k: means[k] for k in ("do", "nh3n", "tp", "codmn", "cod", "ph") if k in means}
    )
    st_gb = np.where(np.isnan(means.get("do", np.full(n_st, np.nan))), -1, st_gb)
    do_slope = (
        _group_slope(st, day, vals.get("do", np.full(len(st), np.nan)), n_st) * 30
    )
    nh_slope = (
        _group_slope(
            st, day, np.log1p(vals.get("nh3n", np.full(len(st), np.nan))), n_st
        )
        * 30
    )
    # relapse episodes: 30-day bins that turn black after a clean one
    bins = ((day - (now_day - s.lookback_days)) // 30).astype(np.int64)
    nb = int(bins.max()) + 1 if len(bins) else 1
    key = st * nb + bins
    bin_black = np.bincount(key, (worst >= MILD).astype(float), n_st * nb)
    bin_count = np.bincount(key, minlength=n_st * nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = (bin_black / np.maximum(bin_count, 1)).reshape(n_st, nb)
    has = bin_count.reshape(n_st, nb) > 0
    black_bin = (frac > 0.3) & has
    clean_bin = (frac <= 0.3) & has
    episodes = np.sum(black_bin[:, 1:] & clean_bin[:, :-1], axis=1).astype(float)

    seg = net.station_segment
    has_station = np.bincount(seg[~np.isnan(st_black)], minlength=n) > 0
    f = {
        "has_station": has_station.astype(float),
        "recent_black_share": _worst(seg, st_black, n),
        "recent_severe_share": _worst(seg, st_severe, n),
        "do_recent": _worst(
            seg, means.get("do", np.full(n_st, np.nan)), n, lowest=True
        ),
        "nh3n_recent_log": np.log1p(
            _worst(seg, means.get("nh3n", np.full(n_st, np.nan)), n)
        ),
        "transparency_recent": _worst(
            seg, means.get("transparency", np.full(n_st, np.nan)), n, lowest=True
        ),
        "turbidity_recent": _worst(
            seg, means.get("turbidity", np.full(n_st, np.nan)), n
        ),
        "tp_recent": _worst(seg, means.get("tp", np.full(n_st, np.nan)), n),
        "do_trend": _worst(seg, do_slope, n, lowest=True),
        "nh3n_trend": _worst(seg, nh_slope, n),
        "past_black_share": _worst(seg, st_past_black, n),
        "relapse_episodes": _worst(seg, episodes, n),
    }
    if rain is not None:
        t = int(now_day)
        f["rain_7d_mm"] = rain[:, max(0, t - 7) : t].sum(axis=1)
        f["rain_30d_mm"] = rain[:, max(0, t - 30) : t].sum(axis=1)
    elif rain_totals is not None:
        f["rain_7d_mm"], f["rain_30d_mm"] = rain_totals
    else:
        f["rain_7d_mm"] = f["rain_30d_mm"] = np.full(n, np.nan)
    local = local_pressure(net, s.pressure_radius_m)
    f["pressure_local"] = local
    f["pressure_upstream"] = accumulate_downstream(
        local, net.downstream, s.upstream_decay
    )
    f["impervious"] = impervious if impervious is not None else np.full(n, np.nan)
    f["remediated"] = net.remediated.astype(float)
    X = np.column_stack([np.asarray(f[name], float) for name in FEATURES])

    # NOTE: a segment takes its worst point's grade. The water-body rules
    # (3 consecutive severe points, 60 % severe points; standards.
    # grade_water_body) need the points' order along the flow, which the
    # stations layer does not record yet; apply them when it does.
    grade = np.maximum(_worst(seg, st_grade.astype(float), n), 0)
    grade = np.nan_to_num(grade).astype(np.int8)
    gb = np.nan_to_num(_worst(seg, st_gb.astype(float), n), nan=-1).astype(np.int8)
    with np.errstate(invalid="ignore"):
        remediated_black = net.remediated & (np.nan_to_num(f["recent_black_share"]) > 0)
        do_low = f["do_recent"] < s.relapse_do_mg_l
        nh_high = np.expm1(f["nh3n_recent_log"]) > s.relapse_nh3n_mg_l
        turbid = f["turbidity_recent"] > s.turbidity_critical_ntu
    early = remediated_black | do_low | nh_high | turbid
    reasons: list[list[str]] = []
    for i in range(n):
        r = []
        if grade[i] == SEVERE:
            r.append("severe black-odorous (2015 guideline)")
        elif grade[i] == MILD:
            r.append("mild black-odorous (2015 guideline)")
        if remediated_black[i]:
            r.append("remediated water body meets a black-odorous criterion again")
        if do_low[i]:
            r.append(
                f"mean DO {f['do_recent'][i]:.2f} mg/L < {s.relapse_do_mg_l:g} (劣V)"
            )
        if nh_high[i]:
            r.append(
                f"mean NH3-N {np.expm1(f['nh3n_recent_log'][i]):.2f} mg/L > "
                f"{s.relapse_nh3n_mg_l:g} (劣V)"
            )
        if turbid[i]:
            r.append(
                f"turbidity {f['turbidity_recent'][i]:.1f} NTU > "
                f"{s.turbidity_critical_ntu:g}"
            )
        reasons.append(r)
    return SegmentState(
        features=X, grade=grade, gb3838=gb, early_warning=early, reasons=reasons
    )
