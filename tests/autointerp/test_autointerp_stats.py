"""Scores and statistics of the auto-interp pipeline against hand-computed cases."""

import math

import numpy as np
import pandas as pd
import pytest

from rsae_utils import tokenstats
from rsae_utils.autointerp import stats

LABELS = [1, 1, 0, 0, 1, 0]
SCORES = [0.9, 0.4, 0.4, 0.2, 0.8, 0.7]


def test_auroc_hand_computed_with_tie():
    # positive-negative pairs won: 0.9 -> 3, 0.4 -> 1 + tie(0.5), 0.8 -> 3: 7.5 of 9
    assert stats.auroc(LABELS, SCORES) == pytest.approx(7.5 / 9)


def test_auroc_edge_cases():
    assert stats.auroc([1, 1, 0, 0], [4, 3, 2, 1]) == 1.0
    assert stats.auroc([1, 1, 0, 0], [1, 2, 3, 4]) == 0.0
    assert stats.auroc([1, 0], [0.5, 0.5]) == 0.5
    assert math.isnan(stats.auroc([1, 1], [0.1, 0.2]))
    # missing scores are dropped, not counted as zeros
    assert stats.auroc([1, 0, 1], [0.9, 0.1, None]) == 1.0


def test_roc_points_hand_computed():
    fpr, tpr, thr = stats.roc_points(LABELS, SCORES)
    np.testing.assert_allclose(fpr, [0, 0, 0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(thr[1:], [0.9, 0.8, 0.7, 0.4, 0.2])
    assert np.trapezoid(tpr, fpr) == pytest.approx(stats.auroc(LABELS, SCORES))


def test_balanced_accuracy():
    # predictions at 0.5: 1 0 0 0 1 1 -> TPR 2/3, TNR 2/3
    assert stats.balanced_accuracy(LABELS, SCORES) == pytest.approx(2 / 3)
    assert stats.balanced_accuracy([1, 0, 0, 0], [0.9, 0.1, 0.2, 0.3]) == 1.0


def _noisy(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = y + rng.normal(0, 1.0, n)
    return y, s


def test_bootstrap_band_contains_estimate_and_narrows():
    y, s = _noisy(200, 0)
    small = stats.bootstrap_roc(y, s, n_boot=100, seed=1)
    assert small.fpr.shape == (101,) and small.n_boot == 100
    assert small.auc_lo <= small.auc <= small.auc_hi
    f, t, _ = stats.roc_points(y, s)
    point = stats.tpr_on_grid(f, t, small.fpr)
    inside = (point >= small.tpr_lo - 1e-9) & (point <= small.tpr_hi + 1e-9)
    assert inside.mean() > 0.95
    y2, s2 = _noisy(5000, 0)
    big = stats.bootstrap_roc(y2, s2, n_boot=100, seed=1)
    assert (big.auc_hi - big.auc_lo) < 0.5 * (small.auc_hi - small.auc_lo)
    assert np.mean(big.tpr_hi - big.tpr_lo) < 0.5 * np.mean(small.tpr_hi - small.tpr_lo)


def test_entropy_known_distributions():
    assert tokenstats.entropy([1, 1, 1, 1]) == pytest.approx(math.log(4))
    assert tokenstats.entropy([1, 1, 1, 1], base=2) == pytest.approx(2.0)
    assert tokenstats.entropy([5.0]) == 0.0
    assert tokenstats.entropy([3, 1], base=2) == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))
    # token entropy sums activation per token id first: ids 1,1,2 with acts 1,1,2 -> masses 2,2 -> ln 2
    assert tokenstats.token_entropy([1, 1, 2, 3], [1.0, 1.0, 2.0, 0.0]) == pytest.approx(math.log(2))


def test_window_resampled_known_answers():
    """Two windows, each all one token with equal mass: a draw is {A, A}, {B, B} (entropy 0, single-token) or
    {A, B} (entropy ln 2, not), each pair half the time, so the entropy's sd is ln(2)/2 and the single-token share
    1/2. One window, or windows that all agree, do not move."""
    two = [(np.array([1, 1]), np.array([1.0, 1.0])), (np.array([2, 2]), np.array([1.0, 1.0]))]
    sd, p = tokenstats.window_resampled(two, threshold=0.9, n_draws=20000, seed=3)
    assert sd == pytest.approx(math.log(2) / 2, rel=0.02) and p == pytest.approx(0.5, abs=0.015)
    same = [(np.array([1, 2]), np.array([1.0, 3.0]))] * 5
    assert tokenstats.window_resampled(same, threshold=0.7) == pytest.approx((0.0, 1.0))
    assert tokenstats.window_resampled(same[:1], threshold=0.9) == pytest.approx((0.0, 0.0))
    assert all(math.isnan(x) for x in tokenstats.window_resampled([]))
    assert all(math.isnan(x) for x in tokenstats.window_resampled([(np.array([1]), np.array([0.0]))]))


def test_token_mass_single_token_and_position():
    ids, mass = tokenstats.token_mass([7, 7, 3, 7], [1.0, 2.0, 0.5, 0.0])
    assert ids.tolist() == [7, 3] and mass.tolist() == [3.0, 0.5]
    assert tokenstats.is_single_token([7] * 9 + [3], [1.0] * 10, threshold=0.9)
    assert not tokenstats.is_single_token([7] * 8 + [3, 4], [1.0] * 10, threshold=0.9)
    assert tokenstats.position_concentration([0, 0, 0], [1, 2, 3], 32) == pytest.approx(1.0)
    assert tokenstats.position_concentration(np.arange(32), np.ones(32), 32) == pytest.approx(0.0, abs=1e-12)
    # 4 active tokens on 4 distinct positions of a long context: spread as far as the sample allows
    assert tokenstats.position_concentration([3, 100, 700, 2000], [1, 1, 1, 1], 2048) == pytest.approx(0.0, abs=1e-12)
    # half the mass on one position, the rest spread over 8: in between
    mid = tokenstats.position_concentration([0] * 8 + list(range(1, 9)), [1] * 8 + [1] * 8, 2048)
    assert 0.2 < mid < 0.8
    assert np.isnan(tokenstats.position_concentration([5], [1.0], 32))


def test_entropy_auroc_table_known_rank_correlations():
    from rsae_utils.studies.roc.tables import entropy_auroc_table

    ent = [0.1, 0.5, 0.9, 1.3]
    lat = pd.DataFrame(
        {
            "backend": "b",
            "scorer": "detection",
            "variant": ["v"] * 4 + ["w"] * 4 + ["x"] * 2,
            "entropy_nats": ent + ent + [0.1, 0.2],
            "auroc": [0.9, 0.8, 0.7, 0.6] + [0.6, 0.7, 0.8, 0.9] + [0.5, 0.6],
        }
    )
    t = entropy_auroc_table(lat).set_index("variant")
    assert t.loc["v", "spearman_rho"] == pytest.approx(-1.0) and t.loc["w", "spearman_rho"] == pytest.approx(1.0)
    assert t.loc["v", "n_latents"] == 4 and np.isnan(t.loc["x", "spearman_rho"])  # two latents: no correlation
