"""A seeded simulator of water-quality series for a river network (synthetic data).

Hidden per-segment pollution load drives a daily severity ``s`` (higher is
dirtier); indicators are noisy functions of ``s`` calibrated so that
``s ~= 2`` crosses the 2015 guideline's mild limits and ``s ~= 3.5`` the
severe ones. The load comes from:

- a base level and the remediation state (remediated segments start cleaner
  but keep part of their old load: relapses happen);
- emissions of nearby construction sites and plants, each with a hidden
  activity level (some discharge, most do not), decaying with distance and
  carried downstream;
- seasonal rain (Guangzhou: wet season April-September) washing impervious
  catchments into the river (overflow), with lags;
- pollution events: a source discharging for a few days;
- an AR(1) persistence term.

The simulator keeps the truth the models never see: the severity of every
segment over the next period, and from it whether the segment is
black-odorous then (``truth``). Stations sample every few days.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from models.water.network import Network, accumulate_downstream

#: Severity from which a day counts as black-odorous in the truth [D]: the
#: indicator maps put the mild limits of DO / transparency near s = 2.
BLACK_SEVERITY = 2.0


@dataclass
class Readings:
    """Samples in wide form: one row per (station, time), one array per indicator."""

    station: np.ndarray  # station index into Network.station_codes
    day: np.ndarray  # days since ``start`` (float)
    values: dict[str, np.ndarray]
    start: dt.datetime

    def __len__(self) -> int:
        return len(self.station)

    def times(self) -> np.ndarray:
        base = np.datetime64(self.start.replace(tzinfo=None), "s")
        return base + (self.day * 86400).astype("timedelta64[s]")


@dataclass
class SimulatedCity:
    """What the simulator produced; ``truth`` and ``severity`` are held back."""

    network: Network
    readings: Readings
    rain: np.ndarray  # (segments, days) daily rain in mm
    impervious: np.ndarray  # fraction per segment
    now_day: int  # first day of the predicted period
    period_days: int
    truth: np.ndarray  # bool per segment: black-odorous in the next period
    severity: np.ndarray  # (segments, days) hidden state, history + next period
    past_relapses: np.ndarray  # relapses per segment over the history
    seed: int

    @property
    def now(self) -> dt.datetime:
        return self.readings.start + dt.timedelta(days=self.now_day)


def _smooth_field(
    xy: np.ndarray, rng: np.random.Generator, scale_m: float, waves: int = 12
) -> np.ndarray:
    """A smooth random field in [0, 1] over positions (random Fourier features)."""
    k = rng.normal(0, 1 / scale_m, (waves, 2))
    phase = rng.uniform(0, 2 * np.pi, waves)
    f = np.cos(xy @ k.T + phase).sum(axis=1) / np.sqrt(waves / 2)
    return 1 / (1 + np.exp(-f))


def simulate(
    net: Network,
    *,
    seed: int = 0,
    history_days: int = 240,
    period_days: int = 30,
    start: dt.datetime | None = None,
    sample_every_days: int = 5,
    black_share: float | None = 0.2,
) -> SimulatedCity:
    """Simulate ``history_days`` of readings and hold back the next period.

    Parameters
    ----------
    net
        Segments, stations and sources (database, demo batches or synthetic).
    seed
        Everything random derives from it: same seed, same city.
    history_days, period_days
        Days observed, then days predicted (truth only).
    start
        Date of day 0 (default: ``history_days`` before 1 May 2026, so that the
        predicted period opens the wet season).
    sample_every_days
        Days between samples at a station (stations are staggered).
    black_share
        Calibration [D]: severity is shifted so that this share of the
        segment-days of the history is black-odorous, whatever the density of
        sources in the network (None: no shift).
    """
    rng = np.random.default_rng(seed)
    n = len(net)
    days = history_days + period_days
    start = start or (
        dt.datetime(2026, 5, 1, 9, tzinfo=dt.timezone(dt.timedelta(hours=8)))
        - dt.timedelta(days=history_days)
    )

    # rain: seasonal gamma showers, shared across the city with a smooth
    # spatial factor (convective storms hit parts of the city)
    doy = np.array(
        [(start + dt.timedelta(days=d)).timetuple().tm_yday for d in range(days)]
    )
    season = 1.0 + 0.9 * np.sin(2 * np.pi * (doy - 100) / 365)  # peaks in June-July
    wet_day = rng.random(days) < 0.2 + 0.3 * season / 1.9
    city_rain = np.where(wet_day, rng.gamma(0.8, 12.0 * season + 1.0), 0.0)
    spatial = 0.6 + 0.8 * _smooth_field(net.xy, rng, 6000.0)
    rain = spatial[:, None] * city_rain[None, :]

    impervious = np.clip(
        0.15 + 0.75 * _smooth_field(net.xy, rng, 8000.0) + rng.normal(0, 0.05, n),
        0.02,
        0.98,
    )

    # hidden source activity: most sources are clean, some discharge
    m = len(net.source_xy)
    activity = rng.lognormal(-1.0, 1.0, m) * (rng.random(m) < 0.35)
    emission = np.zeros(n)
    event_load = np.zeros((n, days))
    if m:
        tree = cKDTree(net.xy)
        reach = tree.query_ball_point(net.source_xy, r=2000.0)
        for s, segs in enumerate(reach):
            if not segs:
                continue
            segs = np.asarray(segs)
            d = np.linalg.norm(net.xy[segs] - net.source_xy[s], axis=1)
            w = np.exp(-d / 700.0) * net.source_weight[s]
            emission[segs] += activity[s] * w
            # discharge events: more likely from active sources and in the rain
            n_events = rng.poisson(0.6 + 3.0 * activity[s])
            for _ in range(n_events):
                t0 = int(rng.integers(0, days))
                dur = int(rng.integers(2, 12))
                amp = rng.uniform(0.8, 2.5)
                event_load[segs, t0 : t0 + dur] += amp * w[:, None]
    upstream_em = accumulate_downstream(emission, net.downstream, 0.6)

    base = rng.normal(-1.2, 0.7, n)
    # remediated bodies are cleaner, but only partly so
    base -= np.where(net.remediated, rng.uniform(0.5, 1.5, n), 0.0)
    load = base + 1.0 * emission + 0.35 * upstream_em

    # rain: first flush over impervious land raises severity a few days later,
    # with heavy rain diluting clean rivers a little
    kernel = np.array([0.0, 0.5, 0.3, 0.15, 0.05])
    rain_lag = np.apply_along_axis(lambda r: np.convolve(r, kernel)[:days], 1, rain)
    rain_effect = (impervious[:, None] * 0.045 - 0.008) * rain_lag

    events_down = event_load + accumulate_downstream(event_load, net.downstream, 0.3)
    severity = np.empty((n, days))
    ar = np.zeros(n)
    for t in range(days):
        ar = 0.85 * ar + rng.normal(0, 0.35, n)
        severity[:, t] = load + rain_effect[:, t] + events_down[:, t] + ar

    if black_share is not None and n:
        shift = BLACK_SEVERITY - np.quantile(
            severity[:, :history_days], 1 - black_share
        )
        severity += shift
    hist = severity[:, :history_days]
    black_hist = hist > BLACK_SEVERITY
    # relapse: a black spell after at least 20 clean days
    clean_run = np.zeros(n, dtype=np.int64)
    past_relapses = np.zeros(n, dtype=np.int64)
    for t in range(history_days):
        starts = black_hist[:, t] & (clean_run >= 20)
        past_relapses += starts
        clean_run = np.where(black_hist[:, t], 0, clean_run + 1)
    future = severity[:, history_days:]
    truth = np.mean(future > BLACK_SEVERITY, axis=1) >= 0.3

    readings = _sample(
        net, severity[:, :history_days], rain, rng, sample_every_days, start
    )
    return SimulatedCity(
        network=net,
        readings=readings,
        rain=rain,
        impervious=impervious,
        now_day=history_days,
        period_days=period_days,
        truth=truth,
        severity=severity,
        past_relapses=past_relapses,
        seed=seed,
    )


def _sample(
    net: Network,
    severity: np.ndarray,
    rain: np.ndarray,
    rng: np.random.Generator,
    every: int,
    start: dt.datetime,
) -> Readings:
    """Noisy station readings of the hidden severity."""
    n_days = severity.shape[1]
    n_st = len(net.station_codes)
    offset = rng.integers(0, every, n_st)
    per = np.arange(0, n_days, every)
    station = np.repeat(np.arange(n_st), len(per))
    day = np.tile(per, n_st) + np.repeat(offset, len(per))
    keep = day < n_days
    station, day = station[keep], day[keep]
    seg = net.station_segment[station]
    s = severity[seg, day] + rng.normal(0, 0.3, len(day))
    k = len(day)
    depth_seg = np.where(
        rng.random(len(net)) < 0.08,
        rng.uniform(12, 30, len(net)),
        rng.uniform(40, 180, len(net)),
    )
    depth = np.clip(depth_seg[seg] + rng.normal(0, 3, k) + 0.4 * rain[seg, day], 5, 400)
    vals = {
        "do": np.clip(5.6 - 2.3 * s + rng.normal(0, 0.7, k), 0.05, 14.0),
        "nh3n": np.clip(np.exp(0.0 + 0.8 * s + rng.normal(0, 0.3, k)), 0.02, 80.0),
        "transparency": np.clip(60 * np.exp(-0.45 * s) + rng.normal(0, 4, k), 2, 150),
        "orp": np.clip(150 - 95 * s + rng.normal(0, 30, k), -450, 450),
        "turbidity": np.clip(
            15 * np.exp(0.33 * s) + 0.5 * rain[seg, day] + rng.normal(0, 3, k), 0.5, 900
        ),
        "tp": np.clip(0.08 * np.exp(0.55 * s) + rng.normal(0, 0.02, k), 0.005, 20),
        "codmn": np.clip(3.0 + 2.4 * s + rng.normal(0, 0.8, k), 0.5, 60),
        "cod": np.clip(12 + 8.5 * s + rng.normal(0, 3, k), 3, 300),
        "ph": np.clip(7.3 - 0.08 * s + rng.normal(0, 0.25, k), 5.0, 9.8),
        "depth": depth,
    }
    vals["transparency"] = np.minimum(vals["transparency"], depth + 1)
    order = np.lexsort((day, station))
    return Readings(
        station=station[order],
        day=day[order].astype(float),
        values={k2: v[order] for k2, v in vals.items()},
        start=start,
    )


def label_segments(
    city: SimulatedCity, fraction: float, *, seed: int = 0
) -> np.ndarray:
    """Inspection labels for a random ``fraction`` of segments (-1 = not inspected)."""
    rng = np.random.default_rng(seed)
    n = len(city.network)
    labels = np.full(n, -1, dtype=np.int64)
    pick = rng.choice(n, max(2, round(fraction * n)), replace=False)
    labels[pick] = city.truth[pick].astype(np.int64)
    return labels


def write_wide_csv(city: SimulatedCity, path, *, indicators=None) -> int:
    """Write the readings as a wide CSV (station, observed_at, one column each).

    Returns the number of readings written (samples x indicators).
    """
    r = city.readings
    names = list(indicators or r.values)
    offset = r.start.utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    zone = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    times = np.char.add(r.times().astype(str), zone)
    codes = city.network.station_codes[r.station]
    cols = [np.char.mod("%.4g", r.values[k]) for k in names]
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("station_code,observed_at," + ",".join(names) + "\n")
        block = 200_000
        for a in range(0, len(r), block):
            b = min(a + block, len(r))
            rows = zip(codes[a:b], times[a:b], *(c[a:b] for c in cols), strict=True)
            fh.write("".join(",".join(row) + "\n" for row in rows))
    return len(r) * len(names)
