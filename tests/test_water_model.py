"""Simulate -> features -> train -> evaluate: the model beats the rules baseline."""

from __future__ import annotations

import numpy as np
import pytest

from models.water import model as relapse
from models.water.evaluate import evaluate
from models.water.features import FEATURES, segment_state
from models.water.network import synthetic_network
from models.water.settings import WaterSettings
from models.water.simulate import label_segments, simulate


@pytest.fixture(scope="module")
def city():
    net = synthetic_network(600, seed=7)
    return simulate(net, seed=7, history_days=150)


@pytest.fixture(scope="module")
def state(city):
    return segment_state(
        city.network,
        city.readings,
        city.now_day,
        WaterSettings(),
        rain=city.rain,
        impervious=city.impervious,
    )


def test_simulation_is_seeded_and_holds_back_truth(city):
    again = simulate(synthetic_network(600, seed=7), seed=7, history_days=150)
    assert np.array_equal(again.truth, city.truth)
    assert np.allclose(again.readings.values["do"], city.readings.values["do"])
    assert 0.05 < city.truth.mean() < 0.6  # both classes present
    assert city.readings.day.max() < city.now_day  # nothing from the future


def test_model_beats_rules_baseline(city, state):
    settings = WaterSettings(clusters=4)
    rows = evaluate(city, state, settings, fractions=(0.05, 0.2, 0.5), seed=3)
    for row in rows:
        assert row.model["roc_auc"] > row.baseline["roc_auc"] + 0.05, row
        assert row.model["brier"] < row.baseline["brier"], row
        assert sum(b["n"] for b in row.model["reliability"]) == row.held_out


def test_saved_model_records_version_and_factors(city, state, tmp_path):
    settings = WaterSettings(clusters=4, model_dir=tmp_path)
    labels = label_segments(city, 0.2, seed=1)
    model = relapse.train(state.features, labels, settings, seed=1)
    path = relapse.save(model, tmp_path)
    loaded = relapse.load(tmp_path)
    assert loaded.version == model.version and path.name.endswith(".joblib")
    p1, factors = loaded.predict(state.features, top=3)
    assert np.allclose(p1, model.predict_proba(state.features))
    assert all(len(f) == 3 for f in factors)
    names = {f["factor"] for fs in factors for f in fs}
    assert names <= set(FEATURES) | {"cluster", "similar_inspected_segments"}


def test_too_few_labels_is_a_domain_error(state):
    labels = np.full(len(state.features), -1)
    labels[:5] = 1
    with pytest.raises(relapse.NotEnoughLabels):
        relapse.train(state.features, labels, WaterSettings())


def test_missing_model_is_not_found(tmp_path):
    with pytest.raises(relapse.ModelNotFound):
        relapse.load(tmp_path)
