"""Held-out evaluation of the relapse model against the rules-only baseline.

For each label fraction a random share of segments is "inspected" (labelled
with the simulator's held-back truth); the model trains on all segments with
those labels and both the model and the baseline are scored on the segments
that were *not* inspected. The baseline ranks segments by their grade under
the standards (severe > mild > early warning > nothing); for calibration its
categories get the black-odorous rate observed among the inspected segments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import (
    brier_score_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from models.water.features import FEATURES, SegmentState
from models.water.model import train
from models.water.settings import WaterSettings
from models.water.simulate import SimulatedCity, label_segments


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict]:
    """Reliability bins: mean predicted vs observed rate, per probability decile.

    >>> reliability(np.array([0, 1]), np.array([0.05, 0.95]), bins=2)[1]["observed"]
    1.0
    """
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        m = which == b
        if m.any():
            out.append(
                {
                    "bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}",
                    "n": int(m.sum()),
                    "predicted": round(float(p[m].mean()), 3),
                    "observed": round(float(y[m].mean()), 3),
                }
            )
    return out


def _metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    pred = p >= threshold
    return {
        "precision": round(float(precision_score(y, pred, zero_division=0)), 3),
        "recall": round(float(recall_score(y, pred, zero_division=0)), 3),
        "roc_auc": round(float(roc_auc_score(y, p)), 3),
        "brier": round(float(brier_score_loss(y, p)), 4),
        "reliability": reliability(y, p),
    }


@dataclass
class EvaluationRow:
    fraction: float
    labelled: int
    held_out: int
    prevalence: float
    model: dict
    baseline: dict
    #: ROC-AUC on held-out segments that have a station (where the rules can act)
    monitored: dict


def evaluate(
    city: SimulatedCity,
    state: SegmentState,
    settings: WaterSettings,
    *,
    fractions=(0.05, 0.2, 0.5),
    seed: int = 0,
) -> list[EvaluationRow]:
    """Model vs rules baseline on held-out segments, one row per label fraction."""
    rows = []
    score = state.baseline_score
    for i, frac in enumerate(fractions):
        labels = label_segments(city, frac, seed=seed + 101 * (i + 1))
        model = train(state.features, labels, settings, seed=seed)
        hold = labels < 0
        y = city.truth[hold].astype(int)
        p_model = model.predict_proba(state.features[hold])
        # baseline calibrated on the inspected segments: rate per category
        lab = labels >= 0
        p_base = np.empty(hold.sum())
        for cat in np.unique(score):
            m_lab = lab & (score == cat)
            rate = (
                labels[m_lab].mean() if m_lab.any() else float(cat)
            )  # unseen category: its nominal score
            p_base[score[hold] == cat] = rate
        base = _metrics(y, p_base, 0.5)
        # precision / recall of the rules themselves: any grade or early warning
        rules_pred = score[hold] > 0
        base["precision"] = round(
            float(precision_score(y, rules_pred, zero_division=0)), 3
        )
        base["recall"] = round(float(recall_score(y, rules_pred, zero_division=0)), 3)
        base["roc_auc"] = round(float(roc_auc_score(y, score[hold])), 3)
        mon = state.features[hold, FEATURES.index("has_station")] > 0
        monitored: dict = {"segments": int(mon.sum())}
        if 0 < y[mon].sum() < mon.sum():
            monitored["model_roc_auc"] = round(
                float(roc_auc_score(y[mon], p_model[mon])), 3
            )
            monitored["rules_roc_auc"] = round(
                float(roc_auc_score(y[mon], score[hold][mon])), 3
            )
        rows.append(
            EvaluationRow(
                frac,
                int(lab.sum()),
                int(hold.sum()),
                round(float(y.mean()), 3),
                _metrics(y, p_model, 0.5),
                base,
                monitored,
            )
        )
    return rows


def format_rows(rows: list[EvaluationRow]) -> str:
    """A plain-text table of the evaluation."""
    lines = [
        "labels  held-out  prev   | model: prec  rec   AUC    Brier  | "
        "rules: prec  rec   AUC    Brier  | AUC where a station: model  rules"
    ]
    for r in rows:
        m, b = r.model, r.baseline
        lines.append(
            f"{r.fraction:>5.0%}  {r.held_out:>8}  {r.prevalence:.2f}  |        "
            f"{m['precision']:.2f}  {m['recall']:.2f}  {m['roc_auc']:.3f}  "
            f"{m['brier']:.3f}  |        {b['precision']:.2f}  {b['recall']:.2f}  "
            f"{b['roc_auc']:.3f}  {b['brier']:.3f}  |  "
            f"{r.monitored.get('model_roc_auc', float('nan')):.3f}  "
            f"{r.monitored.get('rules_roc_auc', float('nan')):.3f} "
            f"(n={r.monitored['segments']})"
        )
    return "\n".join(lines)
