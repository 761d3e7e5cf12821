"""Drift: KL(base || checkpoint) and flip rate on the shipped probe set."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gate.drift import measure_drift, probe_texts, token_kl
from gate.loading.loaders import ScoringSettings
from gate.loading.references import resolve_model
from gate.runner import ModelPair


def test_token_kl_matches_the_definition() -> None:
    p = np.log(np.array([[0.5, 0.5], [0.9, 0.1]]))
    q = np.log(np.array([[0.25, 0.75], [0.1, 0.9]]))
    kl, flips = token_kl(p, q)
    expected = [0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75), 0.9 * math.log(9) + 0.1 * math.log(1 / 9)]
    assert np.allclose(kl, expected)
    assert flips.tolist() == [True, True]
    same, no_flips = token_kl(p, p)
    assert np.allclose(same, 0) and not no_flips.any()


def test_probe_set_ships_with_the_package() -> None:
    texts = probe_texts()
    assert len(texts) >= 20 and all(len(t) > 40 for t in texts)


def test_drift_is_zero_for_the_same_model_and_positive_for_another(tiny_model: Path, other_tiny_model: Path) -> None:
    settings = ScoringSettings(batch_size=2)
    texts = probe_texts()[:3]
    with ModelPair(resolve_model(str(tiny_model)), resolve_model(str(tiny_model)), settings) as same:
        drift = measure_drift(
            lambda t: same.token_logprobs("base", t), lambda t: same.token_logprobs("checkpoint", t), texts
        )
    assert drift.kl_mean == 0 and drift.flip_rate == 0 and drift.tokens > 30
    with ModelPair(resolve_model(str(tiny_model)), resolve_model(str(other_tiny_model)), settings) as other:
        moved = measure_drift(
            lambda t: other.token_logprobs("base", t), lambda t: other.token_logprobs("checkpoint", t), texts
        )
    assert moved.kl_mean > 0.001 and moved.flip_rate > 0
