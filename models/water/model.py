"""Relapse model: clustering plus semi-supervised learning over segment features.

Labels are scarce -- only inspected segments are known to be black-odorous or
not -- so the model uses every segment:

1. impute (training medians) and standardise the features;
2. KMeans groups all segments into profiles (one-hot ``cluster`` features);
3. LabelSpreading over a k-nearest-neighbour graph of all segments spreads
   the inspection labels to similar segments; labelled segments get the value
   spread from the *other* folds, so the label never leaks into its own input;
4. SelfTrainingClassifier around a logistic regression learns from the
   labelled segments plus its own confident pseudo-labels, over the features,
   the profile and the spread label.

A prediction's contributing factors are the logistic terms ``coef * x`` of its
features (profile one-hots summed as ``cluster``), largest first.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier

from gis_server.errors import GisServerError, InvalidParameter, NotFound
from models.water.features import FEATURES
from models.water.settings import WaterSettings

log = logging.getLogger("gis_server.models.water")

MODEL_PREFIX = "water-relapse-"


class NotEnoughLabels(InvalidParameter):
    """Too few inspected segments (or only one class) to train."""


class ModelNotFound(NotFound):
    """No trained relapse model with that version (or none at all)."""


@dataclass
class RelapseModel:
    """A trained relapse model; ``predict`` gives probabilities and factors."""

    version: str
    feature_names: tuple[str, ...]
    medians: np.ndarray
    scaler: StandardScaler
    kmeans: KMeans
    spreading: LabelSpreading
    classifier: SelfTrainingClassifier
    trained_at: dt.datetime
    labelled: int
    segments: int
    prior: float = 0.5
    params: dict = field(default_factory=dict)

    def _base(self, X: np.ndarray) -> np.ndarray:
        X = np.where(np.isnan(X), self.medians, X)
        return self.scaler.transform(X)

    def _spread(self, Xs: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.spreading.predict_proba(Xs)[:, 1]

    def _design(self, Xs: np.ndarray, spread: np.ndarray) -> np.ndarray:
        onehot = np.eye(self.kmeans.n_clusters)[self.kmeans.predict(Xs)]
        # a segment the spreading cannot reach (no labelled neighbour in its
        # part of the graph: 0/0) gets the prior
        p = np.clip(np.where(np.isnan(spread), self.prior, spread), 1e-3, 1 - 1e-3)
        return np.column_stack([Xs, onehot, np.log(p / (1 - p))])

    def predict(
        self, X: np.ndarray, *, top: int = 3
    ) -> tuple[np.ndarray, list[list[dict]]]:
        """Probabilities and the ``top`` contributing factors of each row."""
        Xs = self._base(X)
        D = self._design(Xs, self._spread(Xs))
        proba = self.classifier.predict_proba(D)[:, 1]
        est = self.classifier.estimator_
        terms = D * est.coef_[0]
        k = len(self.feature_names)
        c = self.kmeans.n_clusters
        named = np.column_stack(
            [terms[:, :k], terms[:, k : k + c].sum(axis=1), terms[:, k + c]]
        )
        names = [*self.feature_names, "cluster", "similar_inspected_segments"]
        order = np.argsort(-np.abs(named), axis=1)[:, :top]
        factors = [
            [
                {
                    "factor": names[j],
                    "contribution": round(float(named[i, j]), 3),
                    "value": (
                        None
                        if j >= k or np.isnan(X[i, j])
                        else round(float(X[i, j]), 3)
                    ),
                }
                for j in order[i]
            ]
            for i in range(len(X))
        ]
        return proba, factors

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        Xs = self._base(X)
        return self.classifier.predict_proba(self._design(Xs, self._spread(Xs)))[:, 1]


def train(
    X: np.ndarray,
    labels: np.ndarray,
    settings: WaterSettings,
    *,
    seed: int = 0,
    feature_names: tuple[str, ...] = FEATURES,
) -> RelapseModel:
    """Train on every segment's features; ``labels`` is 1 / 0, or -1 when unknown."""
    labels = np.asarray(labels, dtype=np.int64)
    known = labels >= 0
    counts = np.bincount(labels[known], minlength=2)
    if known.sum() < 10 or counts.min() < 3:
        raise NotEnoughLabels(
            f"need at least 10 inspected segments with 3 of each outcome; have "
            f"{int(counts[1])} black-odorous and {int(counts[0])} clean"
        )
    medians = np.nanmedian(np.where(np.all(np.isnan(X), axis=0), 0.0, X), axis=0)
    medians = np.where(np.isnan(medians), 0.0, medians)
    Xi = np.where(np.isnan(X), medians, X)
    scaler = StandardScaler().fit(Xi)
    Xs = scaler.transform(Xi)
    km = KMeans(n_clusters=settings.clusters, n_init=3, random_state=seed).fit(Xs)

    def spreading() -> LabelSpreading:
        return LabelSpreading(kernel="knn", n_neighbors=15, alpha=0.2, max_iter=60)

    with np.errstate(invalid="ignore", divide="ignore"):
        full = spreading().fit(Xs, labels)
        spread = full.predict_proba(Xs)[:, 1]
    # cross-fitted spread for labelled segments: their own label hidden
    idx = np.flatnonzero(known)
    folds = StratifiedKFold(
        n_splits=min(5, int(counts.min())), shuffle=True, random_state=seed
    )
    for _, hold in folds.split(idx, labels[idx]):
        lab = labels.copy()
        lab[idx[hold]] = -1
        with np.errstate(invalid="ignore", divide="ignore"):
            part = spreading().fit(Xs, lab)
            spread[idx[hold]] = part.predict_proba(Xs[idx[hold]])[:, 1]
    version = (
        dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        + "-"
        + hashlib.sha1(
            np.ascontiguousarray(labels).tobytes() + Xs[:50].tobytes()
        ).hexdigest()[:6]
    )
    model = RelapseModel(
        version=version,
        feature_names=tuple(feature_names),
        medians=medians,
        scaler=scaler,
        kmeans=km,
        spreading=full,
        classifier=SelfTrainingClassifier(
            LogisticRegression(C=0.5, max_iter=2000),
            threshold=settings.self_training_threshold,
            max_iter=5,
        ),
        trained_at=dt.datetime.now(dt.UTC),
        prior=float(labels[known].mean()),
        labelled=int(known.sum()),
        segments=len(X),
        params={
            "clusters": settings.clusters,
            "seed": seed,
            "self_training_threshold": settings.self_training_threshold,
        },
    )
    model.classifier.fit(model._design(Xs, spread), labels)
    log.info(
        "relapse model trained",
        extra={
            "version": version,
            "segments": len(X),
            "labelled": int(known.sum()),
            "pseudo_labelled": int(np.sum(model.classifier.labeled_iter_ > 0)),
        },
    )
    return model


def save(model: RelapseModel, model_dir: Path) -> Path:
    """Write the model with joblib; the file name carries the version."""
    import joblib

    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / f"{MODEL_PREFIX}{model.version}.joblib"
    joblib.dump(model, path)
    return path


def load(model_dir: Path, version: str | None = None) -> RelapseModel:
    """The model of ``version``, or the newest one in ``model_dir``."""
    import joblib

    if version:
        path = model_dir / f"{MODEL_PREFIX}{version}.joblib"
    else:
        found = sorted(model_dir.glob(f"{MODEL_PREFIX}*.joblib"))
        if not found:
            raise ModelNotFound(
                f"no trained relapse model in {model_dir}; run "
                "`gis-server predict train` first"
            )
        path = found[-1]
    if not path.exists():
        raise ModelNotFound(f"no relapse model {version!r} in {model_dir}")
    try:
        return joblib.load(path)
    except Exception as exc:
        raise GisServerError(f"cannot read model {path.name}: {exc}") from exc
