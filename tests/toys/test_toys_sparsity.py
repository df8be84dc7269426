"""Sparsity measures and explained-variance-against-sparsity frontiers: known answers."""

import math

import numpy as np
import pytest
import torch

from rsae_utils.toys import sparsity as sp


def test_one_hot_and_constant_vectors():
    d = 16
    one_hot = 3.0 * np.eye(d)[[0, 5, 9]]
    assert sp.l0(one_hot) == 1.0 and sp.l1(one_hot) == 3.0
    assert sp.l1_over_sqrt_l2(one_hot) == pytest.approx(1.0)
    assert sp.hoyer(one_hot) == pytest.approx(1.0)
    const = np.full((4, d), -2.0)
    assert sp.l0(const) == d and sp.l1(const) == 2.0 * d
    assert sp.l1_over_sqrt_l2(const) == pytest.approx(math.sqrt(d))
    assert sp.hoyer(const) == pytest.approx(0.0, abs=1e-12)
    # two equal entries out of 4: ratio sqrt(2), Hoyer (2 - sqrt 2) / (2 - 1)
    assert sp.hoyer([1.0, 1.0, 0.0, 0.0]) == pytest.approx(2 - math.sqrt(2))


def test_per_sample_then_mean_and_zero_rows():
    z = torch.tensor([[1.0, 0, 0, 0], [1.0, 1, 1, 1], [0.0, 0, 0, 0]])
    np.testing.assert_allclose(sp.l0(z, per_sample=True), [1, 4, 0])
    assert sp.l0(z) == pytest.approx(5 / 3)  # a zero row counts for L0 ...
    h = sp.hoyer(z, per_sample=True)
    assert h[0] == pytest.approx(1.0) and h[1] == pytest.approx(0.0) and math.isnan(h[2])
    assert sp.hoyer(z) == pytest.approx(0.5)  # ... but has no Hoyer sparsity, so it is left out
    assert sp.l0([[0.1, 0.5]], eps=0.2) == 1.0
    s = sp.sparsity_summary(z)
    assert set(s) == {"l0", "l1", "l1_over_sqrt_l2", "hoyer"} and s["l1"] == pytest.approx(5 / 3)
    # scale-free
    r = np.random.default_rng(0).random((20, 8))
    np.testing.assert_allclose(sp.hoyer(r, per_sample=True), sp.hoyer(7 * r, per_sample=True))


def test_pareto_frontier_known_set():
    # (L0, EV): lower L0 and higher EV are better
    pts = [(1, 0.2), (2, 0.5), (2, 0.4), (3, 0.45), (4, 0.8), (5, 0.8), (6, 0.9), (1, 0.1), (np.nan, 1.0), (2, 0.5)]
    front = sp.pareto_frontier(pts)
    np.testing.assert_allclose(front, [(1, 0.2), (2, 0.5), (4, 0.8), (6, 0.9)])
    # Hoyer: higher is sparser; same points read the other way round
    hoy = sp.pareto_frontier([(0.9, 0.2), (0.8, 0.5), (0.85, 0.1), (0.7, 0.5), (0.5, 0.9)], lower_is_sparser=False)
    np.testing.assert_allclose(hoy, [(0.5, 0.9), (0.8, 0.5), (0.9, 0.2)])
    many = sp.frontiers({"data": pts, "mlp": [(1, 0.3)], "empty": []})
    assert set(many) == {"data", "mlp", "empty"} and many["mlp"].tolist() == [[1.0, 0.3]]
    assert many["empty"].shape == (0, 2)
